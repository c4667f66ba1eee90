"""Access log: method, path (never the query string, which may carry the token), status and latency per request,
logged and written to PostgreSQL's `api_requests` in batches off the request path (for /metrics/system).

A request only appends a tuple; the log lines are written by the flush task, just before the rows (two logging
handlers per request cost more than the `/portfolio` request itself).

Anyone, without a token, chooses the path recorded: it is made printable (control characters escaped) and bounded
before it is kept, and a row PostgreSQL still refuses is isolated (the batch is halved until the row is alone),
dropped, counted and logged once, so it never holds back the rows of other requests."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections import deque
from collections.abc import Sequence
from datetime import UTC, datetime

import psycopg
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.stores import Stores
from live.stores import record

log = logging.getLogger("tradeos.api.access")

AccessRecord = record.events.ApiRequestRow

_LINE = "%s %s %d %.1fms"
MAX_RECORDED_PATH = 512
MAX_RECORDED_METHOD = 16
# C0 controls, DEL and C1 controls: PostgreSQL refuses NUL in text, and the others forge or garble log lines.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(text: str, *, limit: int) -> str:
    """`text` with control characters escaped (`\\x00`) and cut to `limit` characters, marked with `…` when cut."""
    escaped = _CONTROL.sub(lambda match: f"\\x{ord(match.group()):02x}", text)
    return escaped if len(escaped) <= limit else escaped[: limit - 1] + "…"


def _refused_by_content(exc: Exception) -> bool:
    """Errors about what a row holds (SQLSTATE classes 22 and 23): retrying the same row can never succeed."""
    return isinstance(exc, psycopg.DataError | psycopg.IntegrityError)


class AccessLogRecorder:
    """Buffers request records and flushes them every `flush_interval` seconds; bounded, oldest lost first."""

    def __init__(self, *, flush_interval: float = 1.0, max_buffered: int = 50_000) -> None:
        self._flush_interval = flush_interval
        self.rows_refused = 0
        self._buffer: deque[AccessRecord] = deque(maxlen=max_buffered)
        self._unlogged: deque[AccessRecord] = deque(maxlen=max_buffered)
        self._stores: Stores | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    def record(self, *, method: str, path: str, status: int, latency_ms: float) -> None:
        record = (
            datetime.now(UTC),
            printable(method, limit=MAX_RECORDED_METHOD),
            printable(path, limit=MAX_RECORDED_PATH),
            status,
            latency_ms,
        )
        self._buffer.append(record)
        self._unlogged.append(record)

    def write_log(self) -> None:
        """Logs the requests recorded since the last call, one line each. What `log.info` does, less its caller
        lookup (a stack walk per line, and the format names no caller): thousands of lines a second at load."""
        unlogged = self._unlogged
        if not log.isEnabledFor(logging.INFO):
            unlogged.clear()
            return
        while unlogged:
            _, method, path, status, latency_ms = unlogged.popleft()
            log.handle(
                log.makeRecord(
                    log.name, logging.INFO, __file__, 0, _LINE, (method, path, status, latency_ms), None
                )
            )

    def start(self, stores: Stores) -> None:
        self._stores = stores
        self._task = asyncio.create_task(self._flush_forever(), name="tradeos-access-log")

    async def stop(self) -> None:
        """Stops the flush task and writes what is left; never raises (a failure here would fail the shutdown)."""
        # Not cancelled: a flush cut short would lose the batch it holds. The task ends after its current flush.
        self._stopping.set()
        if self._task:
            await self._task
        try:
            await self.flush()
        except Exception as exc:
            log.error("access log: %d request records lost at shutdown (%s)", len(self._buffer), exc)
            self._buffer.clear()

    async def flush(self) -> None:
        """Writes what is buffered. Rows PostgreSQL refuses for their content are dropped and counted; on any other
        failure (PostgreSQL unreachable) the rest go back to the buffer for the next attempt. The log lines are
        written on a worker thread: a second's worth at full load (thousands) would stall every request."""
        await asyncio.to_thread(self.write_log)
        if not self._buffer or self._stores is None:
            return
        batch = [self._buffer.popleft() for _ in range(len(self._buffer))]
        unwritten: list[AccessRecord] = []
        try:
            await self._write_isolating_refused(batch, unwritten)
        except Exception:
            self._buffer.extendleft(reversed(unwritten))
            raise

    async def _write_isolating_refused(
        self, batch: list[AccessRecord], unwritten: list[AccessRecord]
    ) -> None:
        """Writes `batch`, halving a part PostgreSQL refuses until the refused rows are alone; `unwritten` ends up
        holding, in order, the rows not yet written when something other than a row's content failed."""
        pending: list[Sequence[AccessRecord]] = [batch]
        while pending:
            part = pending.pop()
            try:
                await self._copy(part)
            except Exception as exc:
                if not _refused_by_content(exc):
                    unwritten.extend(part)
                    for rest in reversed(pending):
                        unwritten.extend(rest)
                    raise
                if len(part) == 1:
                    self.rows_refused += 1
                    log.warning("access log: PostgreSQL refused the record %r (%s); dropped", part[0], exc)
                    continue
                middle = len(part) // 2
                pending += [part[middle:], part[:middle]]  # the first half is written first

    async def _copy(self, rows: Sequence[AccessRecord]) -> None:
        assert self._stores is not None
        async with self._stores.postgres() as conn:
            await record.copy_async(conn, record.events.copy_api_requests(rows))

    async def _flush_forever(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._flush_interval)
            if self._stopping.is_set():
                return
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
