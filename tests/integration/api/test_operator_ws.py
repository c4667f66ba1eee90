"""/ws relays the engine's events to every client through one Redis subscription per API process (docs/api.md, WebSocket)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from operator_api_support import SNAPSHOT, ServerThread, event, eventually
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from live.settings import Settings
from live.stores import redis_keys

FILL = {
    "id": "f-1",
    "order_id": "o-1",
    "symbol": "AAPL",
    "side": "buy",
    "quantity": 10,
    "price": 187.25,
    "fee": 0.5,
    "timestamp": "2024-03-01T14:30:00Z",
    "signal_type": "momentum",
    "realized_pnl": 0.0,
}
EVENTS = [
    (
        "signal",
        {
            "symbol": "AAPL",
            "signal_type": "momentum",
            "strength": 0.7,
            "horizon_bars": 20,
            "regime": "trending",
        },
    ),
    ("fill", FILL),
    ("risk_event", {"code": "DRAWDOWN_LIMIT_EXCEEDED", "detail": "5% below HWM", "symbol": None}),
    ("regime_change", {"previous": "trending", "current": "crisis", "model": "hmm-v3"}),
    ("portfolio_update", SNAPSHOT),
]


@pytest.fixture
async def publisher(api: ServerThread, redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(redis_url)
    await eventually(lambda: api.hub_subscribed)
    yield client
    await client.aclose()


def _channel(redis_url: str) -> str:
    return redis_keys.events_channel(int(redis_url.rsplit("/", 1)[1]))


async def _recv_json(ws: ClientConnection) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), 10))  # type: ignore[no-any-return]


async def _messages_until_closed(ws: ClientConnection) -> int:
    """Reads what the server had sent before closing; fails if the connection stays open."""
    received = 0
    try:
        while True:
            await asyncio.wait_for(ws.recv(), 10)
            received += 1
    except ConnectionClosed:
        return received


async def test_a_client_gets_a_portfolio_update_right_after_connecting(
    api: ServerThread, token: str, rds: redis.Redis
) -> None:
    rds.set(redis_keys.PORTFOLIO, json.dumps(SNAPSHOT))

    async with connect(f"{api.ws_url}?token={token}") as ws:
        first = await _recv_json(ws)

    assert first["type"] == "portfolio_update"
    assert first["data"]["total_value"] == SNAPSHOT["total_value"]
    assert first["data"]["positions"][0]["symbol"] == "AAPL"
    assert first["timestamp"] == "2024-03-01T14:30:00Z"


async def test_every_event_type_is_relayed_in_order(
    api: ServerThread, token: str, publisher: aioredis.Redis, redis_url: str
) -> None:
    async with connect(f"{api.ws_url}?token={token}") as ws:
        assert (await _recv_json(ws))["type"] == "portfolio_update"
        await eventually(lambda: api.hub_clients == 1)
        for kind, data in EVENTS:
            await publisher.publish(_channel(redis_url), event(kind, data))
        received = [await _recv_json(ws) for _ in EVENTS]

    assert [m["type"] for m in received] == [kind for kind, _ in EVENTS]
    assert received[1] == {"type": "fill", "data": FILL, "timestamp": "2024-03-01T14:30:00Z"}
    assert all(set(m) == {"type", "data", "timestamp"} for m in received)


async def test_malformed_or_unknown_events_are_not_relayed(
    api: ServerThread, token: str, publisher: aioredis.Redis, redis_url: str
) -> None:
    async with connect(f"{api.ws_url}?token={token}") as ws:
        await _recv_json(ws)
        await eventually(lambda: api.hub_clients == 1)
        await publisher.publish(_channel(redis_url), "not json")
        await publisher.publish(_channel(redis_url), event("gossip", {}))
        await publisher.publish(_channel(redis_url), event("fill", FILL))

        assert (await _recv_json(ws))["type"] == "fill"


async def test_portfolio_updates_are_coalesced_to_the_latest(
    api: ServerThread, token: str, publisher: aioredis.Redis, redis_url: str
) -> None:
    async with connect(f"{api.ws_url}?token={token}") as ws:
        await _recv_json(ws)
        await eventually(lambda: api.hub_clients == 1)
        async with publisher.pipeline(transaction=False) as pipe:
            for n in range(50):
                pipe.publish(_channel(redis_url), event("portfolio_update", {**SNAPSHOT, "total_value": n}))
            await pipe.execute()
        values = []
        while not values or values[-1] != 49:
            values.append((await _recv_json(ws))["data"]["total_value"])

    assert len(values) < 50
    assert values == sorted(values)


async def test_a_slow_client_is_dropped_while_a_fast_one_keeps_receiving(
    api: ServerThread, token: str, publisher: aioredis.Redis, redis_url: str
) -> None:
    payload = {**FILL, "padding": base64.b64encode(os.urandom(48_000)).decode()}  # 64 kB, incompressible
    max_batches, batch_size = 400, 16  # stops as soon as the slow client is dropped (after a few MB)
    slow = await connect(f"{api.ws_url}?token={token}", max_queue=1, max_size=None, compression=None)
    published = 0
    try:
        async with connect(f"{api.ws_url}?token={token}", max_size=None) as fast:
            await _recv_json(fast)
            await eventually(lambda: api.hub_clients == 2)
            for batch in range(max_batches):
                for n in range(batch_size):
                    await publisher.publish(
                        _channel(redis_url), event("fill", {**payload, "id": f"{batch}-{n}"})
                    )
                published += batch_size
                for n in range(batch_size):
                    assert (await _recv_json(fast))["data"]["id"] == f"{batch}-{n}"
                if api.hub_clients == 1:
                    break
            assert api.hub_clients == 1, "the slow client was never dropped"
            await publisher.publish(_channel(redis_url), event("fill", {**FILL, "id": "after"}))
            assert (await _recv_json(fast))["data"]["id"] == "after"

        assert await _messages_until_closed(slow) < published
    finally:
        await slow.close()


async def test_two_api_processes_deliver_the_same_fills(
    api: ServerThread, api_settings: Settings, token: str, publisher: aioredis.Redis, redis_url: str
) -> None:
    with ServerThread(api_settings) as replica:
        await eventually(lambda: replica.hub_subscribed)
        async with (
            connect(f"{api.ws_url}?token={token}") as first,
            connect(f"{replica.ws_url}?token={token}") as second,
        ):
            await _recv_json(first)
            await _recv_json(second)
            await eventually(lambda: api.hub_clients == 1 and replica.hub_clients == 1)
            for n in range(5):
                await publisher.publish(_channel(redis_url), event("fill", {**FILL, "id": f"f-{n}"}))

            first_fills = [(await _recv_json(first))["data"]["id"] for _ in range(5)]
            second_fills = [(await _recv_json(second))["data"]["id"] for _ in range(5)]

    assert first_fills == second_fills == [f"f-{n}" for n in range(5)]
