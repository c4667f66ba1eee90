"""Test support for the operator API: a real uvicorn server in a thread, polling helpers, record builders, and a
stand-in for the engine's side of the control protocol (heartbeats and acknowledgements only)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg
import redis.asyncio as aioredis
import uvicorn

from api.operator import create_app, server_config
from live import portfolio as accounting
from live.domain import Fill, Side
from live.settings import Settings
from live.stores import record, redis_keys
from live.stores.record import book


async def eventually(
    predicate: Callable[[], Awaitable[Any]] | Callable[[], Any], within: float = 10.0, interval: float = 0.02
) -> Any:
    """Polls `predicate` (sync or async) until it returns something truthy; fails after `within` seconds."""
    deadline = time.monotonic() + within
    last: Any = None
    while True:
        last = predicate()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s (last value: {last!r})")
        await asyncio.sleep(interval)


def eventually_sync(predicate: Callable[[], Any], within: float = 10.0, interval: float = 0.02) -> Any:
    deadline = time.monotonic() + within
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s (last value: {value!r})")
        time.sleep(interval)


class ServerThread:
    """The real app served by uvicorn on a free port, in a background thread with its own event loop."""

    def __init__(self, settings: Settings, **app_options: Any) -> None:
        self.settings = settings
        app = create_app(settings, **app_options)
        config = server_config(app, host="127.0.0.1", port=0, log_config=None, log_level="debug")
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run, name="operator-api", daemon=True)

    def __enter__(self) -> ServerThread:
        self._thread.start()
        eventually_sync(lambda: self.server.started or not self._thread.is_alive(), within=20)
        if not self.server.started:
            raise RuntimeError("the operator API did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=15)

    @property
    def port(self) -> int:
        return int(self.server.servers[0].sockets[0].getsockname()[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def hub_clients(self) -> int:
        return int(self.server.config.app.state.hub.client_count)  # type: ignore[attr-defined]

    @property
    def hub_subscribed(self) -> bool:
        return bool(self.server.config.app.state.hub.subscribed.is_set())  # type: ignore[attr-defined]


def build_fills(trades: list[tuple[str, str, int, str, str]], *, start: datetime) -> list[Fill]:
    """Fills with consistent average-cost realized P&L: (symbol, side, quantity, price, signal_type), a minute apart."""
    from datetime import timedelta

    book = accounting.Portfolio(initial_cash=Decimal(100000))
    fills = []
    for n, (symbol, side, quantity, price, signal_type) in enumerate(trades):
        fills.append(
            book.apply_fill(
                fill_id=f"f-{n:04d}",
                order_id=f"o-{n:04d}",
                timestamp=start + timedelta(minutes=n),
                symbol=symbol,
                side=Side(side),
                quantity=quantity,
                price=Decimal(price),
                fee=Decimal("0.50"),
                signal_type=signal_type,
            )
        )
    return fills


def insert_fills(conn: psycopg.Connection, fills: list[Fill]) -> None:
    with conn.cursor() as cursor:
        for fill in fills:
            cursor.execute(
                "INSERT INTO orders (id, timestamp, symbol, side, quantity, signal_type, reduces_position, status)"
                " VALUES (%s, %s, %s, %s, %s, %s, false, 'filled')",
                (
                    fill.order_id,
                    fill.timestamp,
                    fill.symbol,
                    fill.side.value,
                    fill.quantity,
                    fill.signal_type,
                ),
            )
        # The fills as the engine records them (live/stores/record owns their columns).
        record.execute_many(cursor, book.insert_fills(fills))


def insert_signal(
    conn: psycopg.Connection,
    *,
    timestamp: datetime,
    symbol: str,
    signal_type: str,
    strength: float,
    actionable: bool = True,
    regime: str = "trending",
) -> None:
    conn.execute(
        "INSERT INTO signals (timestamp, symbol, signal_type, strength, horizon_bars, regime, actionable)"
        " VALUES (%s, %s, %s, %s, 20, %s, %s)",
        (timestamp, symbol, signal_type, strength, regime, actionable),
    )


SNAPSHOT: dict[str, Any] = {
    "timestamp": "2024-03-01T14:30:00Z",
    "total_value": 101234.56,
    "cash": 93790.56,
    "unrealized_pnl": 46.0,
    "realized_pnl_today": -12.4,
    "realized_pnl": 120.0,
    "drawdown": 0.0042,
    "high_water_mark": 101660.0,
    "positions": [
        {
            "symbol": "AAPL",
            "quantity": -40,
            "avg_price": 187.25,
            "market_price": 186.1,
            "market_value": -7444.0,
            "unrealized_pnl": 46.0,
        },
        {
            "symbol": "MSFT",
            "quantity": 0,
            "avg_price": 0.0,
            "market_price": 410.0,
            "market_value": 0.0,
            "unrealized_pnl": 0.0,
        },
    ],
}


def event(kind: str, data: dict[str, Any], timestamp: str = "2024-03-01T14:30:00Z") -> str:
    return json.dumps({"type": kind, "data": data, "timestamp": timestamp})


@dataclass
class EngineStandIn:
    """Only the engine's half of the control protocol: heartbeats, and an acknowledgement per command.

    `mode`: "ack" replies ok, "refuse" replies ok: false, "silent" never replies (a hung engine).
    """

    redis_url: str
    mode: str = "ack"
    commands: list[dict[str, Any]] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _client: aioredis.Redis | None = None
    listening: asyncio.Event = field(default_factory=asyncio.Event)
    _stopping: bool = False

    async def __aenter__(self) -> EngineStandIn:
        self._client = aioredis.from_url(self.redis_url)
        await self._beat()
        self._tasks = [asyncio.create_task(self._heartbeats()), asyncio.create_task(self._listen())]
        await asyncio.wait_for(self.listening.wait(), 10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        # redis-py can swallow a cancellation that races its read timeout: the flag ends the loops anyway.
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        await asyncio.wait(self._tasks, timeout=5)
        assert self._client is not None
        await self._client.delete(*(redis_keys.heartbeat_key(s) for s in redis_keys.HEARTBEAT_SERVICES))
        await self._client.aclose()

    async def _beat(self) -> None:
        assert self._client is not None
        now = str(time.time())
        await self._client.mset({redis_keys.heartbeat_key(s): now for s in redis_keys.HEARTBEAT_SERVICES})

    async def _heartbeats(self) -> None:
        while not self._stopping:
            await self._beat()
            await asyncio.sleep(0.5)

    async def _listen(self) -> None:
        assert self._client is not None
        db = int(self._client.connection_pool.connection_kwargs.get("db", 0))
        pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(redis_keys.control_channel(db))
        self.listening.set()
        try:
            while not self._stopping:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
                if message is None:
                    continue
                command = json.loads(message["data"])
                self.commands.append(command)
                if self.mode == "silent":
                    continue
                reply = (
                    {
                        "ok": True,
                        "state": "halted" if command["command"] == "halt" else "active",
                        "profile": None,
                    }
                    if self.mode == "ack"
                    else {"ok": False, "detail": "stand-in refuses"}
                )
                key = redis_keys.control_ack_key(command["id"])
                await self._client.lpush(key, json.dumps(reply))
                await self._client.expire(key, 60)
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()


def new_token() -> str:
    return "tok-" + uuid.uuid4().hex
