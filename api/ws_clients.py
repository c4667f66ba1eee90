"""How many WebSocket clients each API process serves, kept in Redis for the Metrics API's `/metrics`.

Each operator API process writes its own key (`tradeos:ws_clients:<process id>`) within `CHECK_SECONDS` of a
change of its count, and refreshes it every `REFRESH_SECONDS` with an expiry of a few refreshes, so a process that dies stops counting within `TTL_SECONDS`, and the Metrics API
sums the keys it finds: the gauge is right however many API processes serve the WebSocket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid

from redis.exceptions import RedisError

from api.stores import Stores, redis_errors
from api.ws import EventHub
from live.stores import redis_keys

log = logging.getLogger("tradeos.api.ws")

CHECK_SECONDS = 0.25
REFRESH_SECONDS = 2.0
TTL_SECONDS = 10


class ClientCensus:
    """Publishes one process's WebSocket client count to Redis while the operator API runs."""

    def __init__(self, *, stores: Stores, hub: EventHub) -> None:
        self._stores = stores
        self._hub = hub
        self.key = redis_keys.WS_CLIENTS_PREFIX + uuid.uuid4().hex
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="tradeos-ws-census")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            await self._stores.redis.delete(self.key)

    async def _run(self) -> None:
        published: int | None = None
        published_at = float("-inf")
        while True:
            count = self._hub.client_count
            now = time.monotonic()
            if count != published or now - published_at >= REFRESH_SECONDS:
                try:
                    await self._stores.redis.set(self.key, count, ex=TTL_SECONDS)
                    published, published_at = count, now
                except (RedisError, OSError, TimeoutError) as exc:
                    log.debug("WebSocket client count not published: %s", exc)
            await asyncio.sleep(CHECK_SECONDS)


async def websocket_clients(stores: Stores) -> int:
    """The WebSocket clients of every API process that published a count within `TTL_SECONDS`."""
    async with redis_errors():
        keys = [
            key async for key in stores.redis.scan_iter(match=redis_keys.WS_CLIENTS_PREFIX + "*", count=1000)
        ]
        counts = await stores.redis.mget(keys) if keys else []
    return sum(int(count) for count in counts if count is not None)
