"""Access log: method, path (never the query string, which may carry the token), status and latency per request,
logged and written to PostgreSQL's `api_requests` in batches off the request path (for /metrics/system).

A request only appends a tuple; the log lines are written by the flush task, just before the rows (two logging
handlers per request cost more than the `/portfolio` request itself)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from datetime import UTC, datetime

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.stores import Stores, StoreUnavailable

log = logging.getLogger("tradeos.api.access")

AccessRecord = tuple[datetime, str, str, int, float]


class AccessLogRecorder:
    """Buffers request records and flushes them every `flush_interval` seconds; bounded, oldest lost first."""

    def __init__(self, *, flush_interval: float = 1.0, max_buffered: int = 50_000) -> None:
        self._flush_interval = flush_interval
        self._buffer: deque[AccessRecord] = deque(maxlen=max_buffered)
        self._unlogged: deque[AccessRecord] = deque(maxlen=max_buffered)
        self._stores: Stores | None = None
        self._task: asyncio.Task[None] | None = None

    def record(self, *, method: str, path: str, status: int, latency_ms: float) -> None:
        record = (datetime.now(UTC), method, path, status, latency_ms)
        self._buffer.append(record)
        self._unlogged.append(record)

    def write_log(self) -> None:
        """Logs the requests recorded since the last call, one line each."""
        unlogged = self._unlogged
        if not log.isEnabledFor(logging.INFO):
            unlogged.clear()
            return
        while unlogged:
            _, method, path, status, latency_ms = unlogged.popleft()
            log.info("%s %s %d %.1fms", method, path, status, latency_ms)

    def start(self, stores: Stores) -> None:
        self._stores = stores
        self._task = asyncio.create_task(self._flush_forever(), name="tradeos-access-log")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(StoreUnavailable):
            await self.flush()

    async def flush(self) -> None:
        """Writes what is buffered; on failure the records go back to the buffer for the next attempt."""
        self.write_log()
        if not self._buffer or self._stores is None:
            return
        batch = [self._buffer.popleft() for _ in range(len(self._buffer))]
        try:
            async with self._stores.postgres() as conn:
                cursor = conn.cursor()
                async with cursor.copy(
                    "COPY api_requests (timestamp, method, path, status, latency_ms) FROM STDIN"
                ) as copy:
                    for row in batch:
                        await copy.write_row(row)
        except Exception:
            self._buffer.extendleft(reversed(batch))
            raise

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(self._flush_interval)
            try:
                await self.flush()
            except Exception as exc:
                log.warning("access log not written yet (%s); will retry", exc)


class AccessLogMiddleware:
    """Pure ASGI middleware (no buffering of bodies, WebSockets pass through untouched)."""

    def __init__(self, app: ASGIApp, *, recorder: AccessLogRecorder) -> None:
        self.app = app
        self.recorder = recorder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            self.recorder.record(
                method=scope["method"],
                path=scope["path"],
                status=status,
                latency_ms=(time.perf_counter() - started) * 1000.0,
            )
