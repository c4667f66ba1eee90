"""How many WebSocket clients each API process serves and how far behind they are, kept in Redis for the
dashboard's queue panel and the Metrics API's `/metrics`.

Each operator API process writes its own key (`tradeos:ws_clients:<process id>`, a `WebSocketQueues` JSON) within
`CHECK_SECONDS` of a change, and refreshes it every `REFRESH_SECONDS` with an expiry of a few refreshes, so a
process that dies stops counting within `TTL_SECONDS`, and the readers sum the keys they find: the figures are
right however many API processes serve the WebSocket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from redis.exceptions import RedisError

from api.stores import Stores, redis_errors
from api.ws import EventHub
from live.stores import redis_keys

log = logging.getLogger("tradeos.api.ws")

CHECK_SECONDS = 0.25
REFRESH_SECONDS = 2.0
TTL_SECONDS = 10


class WebSocketQueues(BaseModel):
    """One API process's WebSocket clients, or the sum over processes (`deepest_queue`: the worst of them)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    clients: int = Field(ge=0)
    deepest_queue: int = Field(ge=0, description="Messages the furthest-behind client has still to be sent.")
    queued: int = Field(ge=0, description="Messages waiting over all clients.")
    limit: int = Field(ge=0, description="How far behind a client may fall before it is dropped.")


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

    def reading(self) -> WebSocketQueues:
        deepest, queued = self._hub.queued()
        return WebSocketQueues(
            clients=self._hub.client_count, deepest_queue=deepest, queued=queued, limit=self._hub.queue_size
        )

    async def _run(self) -> None:
        published: WebSocketQueues | None = None
        published_at = float("-inf")
        while True:
            reading = self.reading()
            now = time.monotonic()
            if reading != published or now - published_at >= REFRESH_SECONDS:
                try:
                    await self._stores.redis.set(self.key, reading.model_dump_json(), ex=TTL_SECONDS)
                    published, published_at = reading, now
                except (RedisError, OSError, TimeoutError) as exc:
                    log.debug("WebSocket client count not published: %s", exc)
            await asyncio.sleep(CHECK_SECONDS)


async def websocket_queues(stores: Stores) -> WebSocketQueues:
    """The WebSocket clients of every API process that published within `TTL_SECONDS`, summed (the deepest queue:
    the worst); a reading that does not parse is left out."""
    async with redis_errors():
        keys = [
            key async for key in stores.redis.scan_iter(match=redis_keys.WS_CLIENTS_PREFIX + "*", count=1000)
        ]
        values = await stores.redis.mget(keys) if keys else []
    readings = []
    for value in values:
        if value is None:
            continue
        try:
            readings.append(WebSocketQueues.model_validate_json(value))
        except ValidationError:
            log.warning("ignored an unreadable WebSocket census entry")
    return WebSocketQueues(
        clients=sum(r.clients for r in readings),
        deepest_queue=max((r.deepest_queue for r in readings), default=0),
        queued=sum(r.queued for r in readings),
        limit=max((r.limit for r in readings), default=0),
    )


async def websocket_clients(stores: Stores) -> int:
    """The WebSocket clients of every API process that published within `TTL_SECONDS`."""
    return (await websocket_queues(stores)).clients
