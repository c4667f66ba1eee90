"""WebSocket fan-out: 500 clients on `/ws` of the real `tradeos up --no-flows`; a fill is published on the Redis
events channel (`tradeos:<db>:events`) in the engine's own envelope (`live.wire.fill_message`, the one around
`live.wire.fill_json`), and each client's receipt is timed from the publish.

Controlled measurement: the engine's sim feed (1 day at `--speed 0`) is finished before the clients connect, so
the only events are ours (plus the engine's idle heartbeats). Clients and publisher share one asyncio process
(the `websockets` client), on the same 2 cores as the service: the latency includes the clients' own turn to
read, so it is an upper bound of what the server adds.
"""

from __future__ import annotations

import asyncio
import resource
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import redis.asyncio as aioredis
from harness import Figure, emit, figure, load_average
from live_service import LiveService, cpu_seconds, live_service
from websockets.asyncio.client import ClientConnection, connect

from live.domain import Fill, Side
from live.stores import redis_keys
from live.wire import fill_message

CLIENTS = 500
MESSAGES = 50
INTERVAL_SECONDS = 0.1
CONNECT_BATCH = 50
MARKER = "bench-fill-"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _fill_message(seq: int) -> str:
    fill = Fill(
        id=f"{MARKER}{seq}",
        order_id=f"bench-order-{seq}",
        timestamp=datetime.now(UTC),
        symbol="AAPL",
        side=Side.BUY,
        quantity=10,
        price=Decimal("187.25"),
        fee=Decimal("0.19"),
        signal_type="momentum",
        realized_pnl=Decimal("0"),
    )
    return fill_message(fill)


async def _receive(
    ws: ClientConnection, sent: dict[int, float], latencies: list[float], done: asyncio.Event
) -> int:
    """Times every bench fill this client gets; returns how many it got."""
    got = 0
    async for message in ws:
        now = time.perf_counter()
        text = message if isinstance(message, str) else message.decode()
        at = text.find(MARKER)
        if at < 0:
            continue
        end = text.index('"', at)
        seq = int(text[at + len(MARKER) : end])
        latencies.append(now - sent[seq])
        got += 1
        if got == MESSAGES:
            done.set()
            return got
    return got


async def fan_out(service: LiveService) -> dict[str, Any]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4 * CLIENTS:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8 * CLIENTS), hard))
    clients: list[ClientConnection] = []
    connect_started = time.perf_counter()
    for start in range(0, CLIENTS, CONNECT_BATCH):
        batch = await asyncio.gather(
            *(
                connect(service.ws_url, max_queue=None, ping_interval=None, compression=None)
                for _ in range(start, min(CLIENTS, start + CONNECT_BATCH))
            )
        )
        clients.extend(batch)
    for ws in clients:  # the portfolio_update every client gets on connecting
        await asyncio.wait_for(ws.recv(), 30)
    connect_seconds = time.perf_counter() - connect_started
    publisher = aioredis.from_url(service.redis_url)
    channel = redis_keys.events_channel(service.redis_db)
    sent: dict[int, float] = {}
    latencies: list[float] = []
    dones = [asyncio.Event() for _ in clients]
    receivers = [
        asyncio.create_task(_receive(ws, sent, latencies, d)) for ws, d in zip(clients, dones, strict=True)
    ]
    load = load_average()
    cpu0, wall0 = cpu_seconds(service.pid), time.perf_counter()
    try:
        for seq in range(MESSAGES):
            message = _fill_message(seq)
            sent[seq] = time.perf_counter()
            listeners = await publisher.publish(channel, message)
            if listeners < 1:
                raise RuntimeError("nothing subscribed to the events channel")
            await asyncio.sleep(INTERVAL_SECONDS)
        await asyncio.wait_for(asyncio.gather(*(d.wait() for d in dones)), 30)
    except TimeoutError:
        pass
    wall = time.perf_counter() - wall0
    service_cpu = cpu_seconds(service.pid) - cpu0
    for task in receivers:
        task.cancel()
    await asyncio.gather(*receivers, return_exceptions=True)
    await asyncio.gather(*(ws.close() for ws in clients), return_exceptions=True)
    await publisher.aclose()
    return {
        "latencies_ms": [x * 1000 for x in latencies],
        "connect_seconds": connect_seconds,
        "service_cpu_share": service_cpu / wall,
        "load": load,
    }


def _feed_done(service: LiveService) -> None:
    deadline = time.monotonic() + 120
    while "feed finished" not in service.log_path.read_text(errors="replace"):
        if time.monotonic() > deadline:
            raise RuntimeError("the sim feed did not finish within 120 s")
        time.sleep(0.2)


def measure() -> dict[str, Figure]:
    with live_service(sim_days=1) as service:
        _feed_done(service)
        result = asyncio.run(fan_out(service))
    latencies = result["latencies_ms"]
    expected = CLIENTS * MESSAGES
    p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
    return {
        "websocket_fanout_p99": figure(
            round(p99, 2),
            "ms",
            "<= 50",
            p99 <= 50 and len(latencies) == expected,
            p50_ms=round(p50, 2),
            p90_ms=round(percentile(latencies, 0.9), 2),
            max_ms=round(max(latencies), 2),
            clients=CLIENTS,
            messages=MESSAGES,
            deliveries=len(latencies),
            deliveries_expected=expected,
            connect_seconds=round(result["connect_seconds"], 2),
            service_cpu_share=round(result["service_cpu_share"], 2),
            load_average=round(result["load"], 2),
            note=f"{MESSAGES} fills published {INTERVAL_SECONDS:g} s apart on the Redis events channel in the "
            "engine's envelope → received by each of 500 websockets clients (one asyncio process, same 2 cores); "
            "engine feed finished beforehand",
        )
    }


if __name__ == "__main__":
    emit(measure())
