"""The API process's connections: one async Redis client and one PostgreSQL pool, with short timeouts so a dead
server turns into a quick `StoreUnavailable` (HTTP 503) rather than a hung request."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar, cast

import psycopg
import redis.asyncio as aioredis
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from redis.exceptions import RedisError

T = TypeVar("T")

PG_CONNECT_TIMEOUT_SECONDS = 2
PG_STATEMENT_TIMEOUT_MS = 5000
POOL_CHECKOUT_SECONDS = 2.0
REDIS_SOCKET_TIMEOUT_SECONDS = 5.0


class StoreUnavailable(Exception):
    """PostgreSQL or Redis cannot be reached; `store` names which."""

    def __init__(self, store: str, cause: BaseException | str | None = None) -> None:
        self.store = store
        super().__init__(f"{store} is unavailable" + (f": {cause}" if cause and str(cause) else ""))


class SharedReads:
    """Identical reads asked for while one is in flight share it: 64 concurrent `/portfolio` requests cost one
    Redis round trip, 32 concurrent `/trades?limit=50` one query. Nothing is cached: a value is at most one round
    trip older than the request that gets it."""

    def __init__(self) -> None:
        self._pending: dict[Hashable, asyncio.Future[Any]] = {}

    async def read(self, key: Hashable, fetch: Callable[[], Awaitable[T]]) -> T:
        pending = self._pending.get(key)
        if pending is None:
            pending = self._pending[key] = asyncio.ensure_future(fetch())
            pending.add_done_callback(partial(self._settled, key))
        # Shielded: a caller that gives up (its client went away) does not cancel the read for the others.
        return cast(T, await asyncio.shield(pending))

    def _settled(self, key: Hashable, done: asyncio.Future[Any]) -> None:
        if self._pending.get(key) is done:
            del self._pending[key]
        if not done.cancelled():
            done.exception()  # retrieved, so a failure whose callers all gave up is not reported as lost


@dataclass(frozen=True, slots=True)
class Stores:
    redis: aioredis.Redis
    pool: AsyncConnectionPool
    redis_db: int
    shared: SharedReads = field(default_factory=SharedReads)

    @classmethod
    async def open(cls, *, database_url: str, redis_url: str) -> Stores:
        """Opens without waiting for either server: the API starts (and reports unhealthy) while they are down."""
        client = aioredis.from_url(
            redis_url,
            socket_connect_timeout=2.0,
            socket_timeout=REDIS_SOCKET_TIMEOUT_SECONDS,
            health_check_interval=10,
        )
        pool = AsyncConnectionPool(
            database_url,
            min_size=1,
            max_size=8,
            open=False,
            timeout=POOL_CHECKOUT_SECONDS,
            check=AsyncConnectionPool.check_connection,
            kwargs={
                "autocommit": True,
                "connect_timeout": PG_CONNECT_TIMEOUT_SECONDS,
                "options": f"-c TimeZone=UTC -c statement_timeout={PG_STATEMENT_TIMEOUT_MS}",
            },
            name="tradeos-api",
        )
        await pool.open(wait=False)
        db = int(client.connection_pool.connection_kwargs.get("db", 0))
        return cls(redis=client, pool=pool, redis_db=db)

    async def close(self) -> None:
        await self.pool.close()
        await self.redis.aclose()

    @asynccontextmanager
    async def postgres_soon(self) -> AsyncIterator[EarlyConnection]:
        """A pooled connection whose checkout (the pool's check is a round trip of its own) starts now and runs
        while the caller does other work; `await early.connection()` when it is needed. Given back on exit."""
        early = EarlyConnection(asyncio.ensure_future(self.pool.getconn()))
        try:
            yield early
        finally:
            await early.give_back(self.pool)

    @asynccontextmanager
    async def postgres(self) -> AsyncIterator[psycopg.AsyncConnection]:
        """A pooled connection; connection failures become `StoreUnavailable("postgres")`."""
        try:
            async with self.pool.connection() as conn:
                yield conn
        except (TimeoutError, psycopg.OperationalError, PoolTimeout) as exc:
            raise StoreUnavailable("postgres", exc) from exc


class EarlyConnection:
    """A pool checkout under way (`Stores.postgres_soon`)."""

    def __init__(self, checkout: asyncio.Future[psycopg.AsyncConnection]) -> None:
        self._checkout = checkout

    async def connection(self) -> psycopg.AsyncConnection:
        """The connection, once checked out; failures become `StoreUnavailable("postgres")`."""
        try:
            return await asyncio.shield(self._checkout)
        except (TimeoutError, psycopg.OperationalError, PoolTimeout) as exc:
            raise StoreUnavailable("postgres", exc) from exc

    async def give_back(self, pool: AsyncConnectionPool) -> None:
        if not self._checkout.done():
            self._checkout.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._checkout
            return
        if not self._checkout.cancelled() and self._checkout.exception() is None:
            await pool.putconn(self._checkout.result())


@asynccontextmanager
async def redis_errors() -> AsyncIterator[None]:
    """Turns Redis failures into `StoreUnavailable("redis")`."""
    try:
        yield
    except (TimeoutError, RedisError, OSError) as exc:
        raise StoreUnavailable("redis", exc) from exc
