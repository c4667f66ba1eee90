"""The operator API's read side: the live snapshot in Redis, the record in PostgreSQL, and the health probes."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache, partial

from api.schemas import Health, Portfolio, Position, Signal
from api.stores import Stores, StoreUnavailable, redis_errors
from live import portfolio as accounting
from live.stores import record, redis_keys
from live.wire import TRADES

PROBE_TIMEOUT_SECONDS = 2.0


async def _portfolio_snapshot(stores: Stores) -> bytes | None:
    try:
        async with redis_errors():
            return await stores.shared.read(redis_keys.PORTFOLIO, partial(_get_snapshot, stores))
    except StoreUnavailable:
        return None


async def _get_snapshot(stores: Stores) -> bytes | None:
    raw = await stores.redis.get(redis_keys.PORTFOLIO)
    return raw.encode() if isinstance(raw, str) else raw


async def read_portfolio(*, stores: Stores, initial_cash: Decimal) -> Portfolio:
    """The engine's last snapshot; without one (engine never ran, Redis down or flushed) the book rebuilt from
    PostgreSQL's fills, marked at each symbol's last recorded close."""
    raw = await _portfolio_snapshot(stores)
    if raw:
        return Portfolio.model_validate_json(raw)
    return await _portfolio_from_record(stores=stores, initial_cash=initial_cash)


async def read_portfolio_json(*, stores: Stores, initial_cash: Decimal) -> bytes:
    """`read_portfolio` as the response body: the engine re-publishes the same snapshot between marks, so each
    distinct snapshot is validated and serialised once."""
    raw = await _portfolio_snapshot(stores)
    if raw:
        return _portfolio_body(raw)
    book = await _portfolio_from_record(stores=stores, initial_cash=initial_cash)
    return book.model_dump_json().encode()


@lru_cache(maxsize=8)
def _portfolio_body(raw: bytes) -> bytes:
    return Portfolio.model_validate_json(raw).model_dump_json().encode()


async def read_positions(*, stores: Stores, initial_cash: Decimal) -> list[Position]:
    """Open positions only (quantity != 0), by symbol."""
    book = await read_portfolio(stores=stores, initial_cash=initial_cash)
    return sorted((p for p in book.positions if p.quantity != 0), key=lambda p: p.symbol)


async def _portfolio_from_record(*, stores: Stores, initial_cash: Decimal) -> Portfolio:
    async with stores.postgres() as conn:
        recorded_cash = await record.fetch_async(conn, record.lease.recorded_initial_cash())
        fills = await record.fetch_async(conn, record.book.all_fills())
        closes = await record.fetch_async(conn, record.market.last_closes())
        last_equity = await record.fetch_async(conn, record.book.latest_equity())
    book = accounting.Portfolio.from_fills(
        initial_cash=recorded_cash if recorded_cash is not None else initial_cash, fills=fills
    )
    for symbol, close in closes.items():
        book.mark(symbol, accounting.to_decimal(close))
    book.update_high_water_mark()
    timestamp = None
    if last_equity:
        book.high_water_mark = max(book.high_water_mark, last_equity.high_water_mark)
        timestamp = last_equity.timestamp
    elif fills:
        timestamp = fills[-1].timestamp
    return Portfolio.model_validate(book.snapshot(timestamp))


async def _recent_fills(
    *, stores: Stores, limit: int, symbol: str | None, since: datetime | None
) -> list[record.book.FillRow]:
    async with stores.postgres() as conn:
        return await record.fetch_async(
            conn, record.book.recent_fills(limit=limit, symbol=symbol, since=since)
        )


async def read_trades_json(
    *, stores: Stores, limit: int, symbol: str | None = None, since: datetime | None = None
) -> bytes:
    """Fills, newest first, as the response body in the `Trade` shape, validated and written by pydantic in one
    call for the whole page. Concurrent identical requests share one query."""
    return await stores.shared.read(
        ("trades", limit, symbol, since),
        partial(_trades_body, stores=stores, limit=limit, symbol=symbol, since=since),
    )


async def _trades_body(*, stores: Stores, limit: int, symbol: str | None, since: datetime | None) -> bytes:
    fills = await _recent_fills(stores=stores, limit=limit, symbol=symbol, since=since)
    return TRADES.dump_json(TRADES.validate_python([fill._asdict() for fill in fills]))


async def read_signals(
    *,
    stores: Stores,
    limit: int,
    signal_type: str | None = None,
    symbol: str | None = None,
    actionable: bool | None = None,
) -> list[Signal]:
    """Computed signal values, newest first."""
    query = record.market.recent_signals(
        limit=limit, signal_type=signal_type, symbol=symbol, actionable=actionable
    )
    async with stores.postgres() as conn:
        signals = await record.fetch_async(conn, query)
    return [Signal.model_validate(s._asdict()) for s in signals]


async def _probe(check: Awaitable[object]) -> bool:
    try:
        await asyncio.wait_for(check, PROBE_TIMEOUT_SECONDS)
    except Exception:
        return False
    return True


async def _postgres_alive(stores: Stores) -> None:
    async with stores.postgres() as conn:
        await conn.execute("SELECT 1")


async def heartbeat_ages(stores: Stores) -> dict[str, float | None]:
    """Seconds since each engine service's last heartbeat (None: never seen)."""
    async with redis_errors():
        values = await stores.redis.mget(HEARTBEAT_KEYS)
    return heartbeat_ages_of(values)


HEARTBEAT_KEYS = [redis_keys.heartbeat_key(s) for s in redis_keys.HEARTBEAT_SERVICES]


def heartbeat_ages_of(values: list[bytes | str | None]) -> dict[str, float | None]:
    """The ages of the values of `HEARTBEAT_KEYS`, read in one MGET (alone, or with other keys)."""
    now = time.time()
    ages: dict[str, float | None] = {}
    for service, value in zip(redis_keys.HEARTBEAT_SERVICES, values, strict=True):
        try:
            ages[service] = now - float(value) if value is not None else None
        except ValueError:
            ages[service] = None
    return ages


def is_fresh(age: float | None) -> bool:
    return age is not None and age < redis_keys.HEARTBEAT_MAX_AGE_SECONDS


async def probe_health(*, stores: Stores) -> Health:
    """Real probes: Redis PING, PostgreSQL `SELECT 1`, and both engine heartbeats younger than the limit."""
    redis_ok, postgres_ok = await asyncio.gather(_probe(stores.redis.ping()), _probe(_postgres_alive(stores)))
    ages: dict[str, float | None] = dict.fromkeys(redis_keys.HEARTBEAT_SERVICES)
    if redis_ok:
        try:
            ages = await asyncio.wait_for(heartbeat_ages(stores), PROBE_TIMEOUT_SECONDS)
        except Exception:
            redis_ok = False
    services = {
        "redis": "healthy" if redis_ok else "unhealthy",
        "postgres": "healthy" if postgres_ok else "unhealthy",
        **{service: "healthy" if is_fresh(age) else "unhealthy" for service, age in ages.items()},
    }
    if not (redis_ok and postgres_ok):
        overall = "unhealthy"
    elif all(value == "healthy" for value in services.values()):
        overall = "healthy"
    else:
        overall = "degraded"
    return Health.model_validate({"status": overall, "services": services, "timestamp": datetime.now(UTC)})


def decode_json(raw: bytes | str | None) -> dict[str, object] | None:
    """A JSON object from Redis, or None when absent or unreadable."""
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
