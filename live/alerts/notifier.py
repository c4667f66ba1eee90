"""The notifier: reads the recorded events (PostgreSQL, and the sources it is given) and delivers them to every
channel, in a process of its own so that an alert goes out even when the engine has died.

- At least once, de-duplicated: an event is settled on a channel once a row of `alert_deliveries` (or of
  `alert_dead_letters`) says so; a restarted notifier skips what is settled. The one window for a duplicate is a
  crash between a channel's answer and that row's commit.
- Its cursor per kind is in `alert_cursors` and never passes an event still waiting on some channel, so an event
  recorded while the notifier was down, or read and not yet delivered when it died, is sent after a restart (in
  memory it reads on past the events it holds, so a held storm does not stop it reading). At its very first start
  the cursors are set at the end of the record: history is not alerted.
- A refused message is tried again after `retry_delay` (1, 2, 4, ... x TRADEOS_ALERT_RETRY_SECONDS); after
  TRADEOS_ALERT_MAX_ATTEMPTS it is dead-lettered: a row per event in `alert_dead_letters` and an ERROR log line.
- Storms are coalesced (live/alerts/events.py `compose`): one message per kind per TRADEOS_ALERT_COALESCE_SECONDS.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import psycopg

from live.alerts import events as alert_events
from live.alerts.channels import Channel
from live.alerts.events import AlertEvent, AlertMessage, compose, retry_delay
from live.settings import AlertSettings
from live.stores import record
from live.stores.record.alerts import Cursor

log = logging.getLogger("tradeos.alerts")

POLL_SECONDS = 0.5
ORPHAN_LIMIT_SECONDS = 300.0
_RECONNECT_LOG_SECONDS = 30.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadEvent:
    """An event as a source read it: where it is (`position`) and where the one before it was (`before`), so the
    cursor can stop just before the first event still waiting."""

    event: AlertEvent
    position: str
    before: str


class EventSource(Protocol):
    """Recorded events read after cursors (positions the source alone interprets). `cursor_kinds` names its
    cursors, one per table or record it reads; each is an alert kind (kinds read together share the first's)."""

    @property
    def cursor_kinds(self) -> tuple[str, ...]: ...

    def start(self, conn: psycopg.Connection[Any]) -> dict[str, str]:
        """The positions at the end of the record now: the cursors of a first start."""
        ...

    def read(self, conn: psycopg.Connection[Any], cursors: Mapping[str, Cursor]) -> list[ReadEvent]:
        """Events after each kind's cursor, each kind in record order."""
        ...


def _time_cursor(position: str) -> tuple[Any, str]:
    stamp, _, row_id = position.partition("|")
    return (stamp or None, row_id)


def _time_position(at: Any, row_id: str) -> str:
    return f"{at.astimezone(UTC).isoformat(timespec='microseconds') if at is not None else ''}|{row_id}"


def _chain(items: Sequence[tuple[AlertEvent, str]], start: str) -> list[ReadEvent]:
    read, before = [], start
    for event, position in items:
        read.append(ReadEvent(event=event, position=position, before=before))
        before = position
    return read


class RecordSource:
    """Fills, rejections, risk events (breaker trips among them), halts and resumes, from the system of record."""

    # Breaker trips are risk events and resumes control actions: read under the cursors of those.
    cursor_kinds = (
        alert_events.FILL,
        alert_events.REJECTION,
        alert_events.RISK_EVENT,
        alert_events.HALT,
    )

    def start(self, conn: psycopg.Connection[Any]) -> dict[str, str]:
        heads = record.fetch(conn, record.alerts.record_heads())
        return {
            alert_events.FILL: _time_position(*heads.last_fill),
            alert_events.REJECTION: _time_position(*heads.last_rejection),
            alert_events.RISK_EVENT: str(heads.last_risk_event_id),
            alert_events.HALT: str(heads.last_control_action_id),
        }

    def read(self, conn: psycopg.Connection[Any], cursors: Mapping[str, Cursor]) -> list[ReadEvent]:
        found: list[ReadEvent] = []
        fill = cursors[alert_events.FILL].position
        ts, fill_id = _time_cursor(fill)
        fills = record.fetch(conn, record.alerts.fills_after(timestamp=ts, fill_id=fill_id))
        found += _chain(
            [(alert_events.fill_event(r), _time_position(r.timestamp, r.id)) for r in fills], fill
        )
        rejection = cursors[alert_events.REJECTION].position
        ts, order_id = _time_cursor(rejection)
        rejections = record.fetch(conn, record.alerts.rejections_after(recorded_at=ts, order_id=order_id))
        found += _chain(
            [(alert_events.rejection_event(r), _time_position(r.recorded_at, r.id)) for r in rejections],
            rejection,
        )
        risk = cursors[alert_events.RISK_EVENT]
        risk_rows = record.fetch(
            conn, record.alerts.risk_events_after(after_id=int(risk.position), floor=int(risk.floor))
        )
        found += _chain(
            [(alert_events.risk_event(r), str(r.id)) for r in risk_rows],
            str(risk_rows[0].id - 1) if risk_rows else risk.position,
        )
        action = cursors[alert_events.HALT]
        actions = record.fetch(
            conn,
            record.alerts.trading_state_actions_after(after_id=int(action.position), floor=int(action.floor)),
        )
        found += _chain(
            [(alert_events.trading_state_event(r), str(r.id)) for r in actions],
            str(actions[0].id - 1) if actions else action.position,
        )
        return found


class ReportSource:
    """The daily reports the `daily-report` flow wrote (`TRADEOS_HOME/reports/<date>.html`): the file is its record."""

    cursor_kinds = (alert_events.DAILY_REPORT,)

    def __init__(self, reports_dir: Path) -> None:
        self._reports_dir = reports_dir

    def _reports(self) -> list[Path]:
        with contextlib.suppress(FileNotFoundError):
            return sorted(self._reports_dir.glob("*.html"))
        return []

    def start(self, conn: psycopg.Connection[Any]) -> dict[str, str]:
        reports = self._reports()
        return {alert_events.DAILY_REPORT: reports[-1].name if reports else ""}

    def read(self, conn: psycopg.Connection[Any], cursors: Mapping[str, Cursor]) -> list[ReadEvent]:
        cursor = cursors[alert_events.DAILY_REPORT].position
        items = []
        for path in self._reports():
            if path.name > cursor:
                with contextlib.suppress(FileNotFoundError):
                    at = datetime.fromtimestamp(path.stat().st_mtime, UTC)
                    items.append(
                        (alert_events.daily_report_event(name=path.name, at=at, path=str(path)), path.name)
                    )
        return _chain(items, cursor)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Held:
    """An event in flight: the cursor it was read under, in which order, and the position just before it."""

    cursor_kind: str
    sequence: int
    before: str


@dataclass(slots=True)
class _Outgoing:
    """A message on its way to one channel: how often it was tried, and when next."""

    message: AlertMessage
    attempts: int = 0
    next_at: float = 0.0
    last_error: str = ""


@dataclass(slots=True)
class _ChannelQueue:
    channel: Channel
    waiting: dict[tuple[str, str], AlertEvent] = field(default_factory=dict)
    outgoing: list[_Outgoing] = field(default_factory=list)

    def in_flight(self) -> set[tuple[str, str]]:
        keys = set(self.waiting)
        for item in self.outgoing:
            keys.update(item.message.keys)
        return keys


class Notifier:
    """One pass at a time (`run_pass`), so a test or the process loop drives it; not thread-safe."""

    def __init__(
        self,
        *,
        database_url: str,
        channels: Sequence[Channel],
        settings: AlertSettings,
        sources: Sequence[EventSource],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._database_url = database_url
        self._queues = [_ChannelQueue(channel=channel) for channel in channels]
        self._settings = settings
        self._kinds = settings.kinds
        self._sources = list(sources)
        self._clock = clock
        self._conn: psycopg.Connection[Any] | None = None
        self._cursors: dict[str, Cursor] = {}  # on record: nothing before them is still to be sent
        self._read_from: dict[str, Cursor] = {}  # in memory: where the next read starts (past what is held)
        self._held: dict[tuple[str, str], _Held] = {}  # events in flight on some channel, by key
        self._sequence = itertools.count()
        self._first_seen: dict[tuple[str, str], float] = {}
        self._unrecorded: list[
            record.Batch
        ] = []  # settled on a channel, not yet on record (PostgreSQL was down)

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
            self._conn = None

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self._database_url, autocommit=True, connect_timeout=3)
            self._cursors = self._load_cursors(self._conn)
            self._read_from = dict(self._cursors)
        return self._conn

    def _load_cursors(self, conn: psycopg.Connection[Any]) -> dict[str, Cursor]:
        """The stored cursors; a kind without one starts at the end of the record (and that is stored)."""
        stored = record.fetch(conn, record.alerts.cursors())
        fresh: dict[str, str] = {}
        for source in self._sources:
            if any(kind not in stored for kind in source.cursor_kinds):
                fresh.update({k: v for k, v in source.start(conn).items() if k not in stored})
        if fresh:
            record.execute_many(conn, record.alerts.save_cursors((k, v, v) for k, v in fresh.items()))
            stored = record.fetch(conn, record.alerts.cursors())
            log.info(
                "alerts: first start for %s; events recorded before now are not alerted", ", ".join(fresh)
            )
        return stored

    def run_pass(self) -> None:
        """Read what is new, compose, send what is due, record the outcome, move the cursors."""
        conn = self._connection()
        for batch in list(self._unrecorded):
            with conn.transaction():
                record.execute_many(conn, batch)
            self._unrecorded.remove(batch)
        now = self._clock()
        read_by_source = [(source, source.read(conn, self._read_from)) for source in self._sources]
        self._enqueue(conn, [item for _, items in read_by_source for item in items], now)
        for queue in self._queues:
            self._compose(queue, now)
            self._send_due(conn, queue)
        self._move_cursors(conn, read_by_source)

    def _enqueue(self, conn: psycopg.Connection[Any], read: list[ReadEvent], now: float) -> None:
        wanted = [item.event for item in read if item.event.kind in self._kinds]
        before = {item.event.key: item.before for item in read}
        by_kind: dict[str, list[str]] = {}
        for event in wanted:
            by_kind.setdefault(event.kind, []).append(event.event_id)
        settled: set[record.alerts.SettledKey] = set()
        for kind, ids in by_kind.items():
            found: set[record.alerts.SettledKey] = record.fetch(
                conn, record.alerts.settled(kind=kind, event_ids=ids)
            )
            settled.update(found)
        for queue in self._queues:
            in_flight = queue.in_flight()
            for event in wanted:
                if event.key in in_flight or (event.kind, event.event_id, queue.channel.name) in settled:
                    continue
                queue.waiting[event.key] = event
                self._first_seen.setdefault(event.key, now)
                if event.key not in self._held:
                    self._held[event.key] = _Held(
                        cursor_kind=_cursor_kind(event.kind),
                        sequence=next(self._sequence),
                        before=before[event.key],
                    )

    def _compose(self, queue: _ChannelQueue, now: float) -> None:
        messages = compose(
            list(queue.waiting.values()),
            first_seen=self._first_seen,
            now=now,
            window_seconds=self._settings.alert_coalesce_seconds,
        )
        for message in messages:
            for key in message.keys:
                queue.waiting.pop(key, None)
            queue.outgoing.append(_Outgoing(message=message, next_at=now))

    def _send_due(self, conn: psycopg.Connection[Any], queue: _ChannelQueue) -> None:
        channel = queue.channel
        for item in list(queue.outgoing):
            if self._clock() < item.next_at:
                continue
            result = channel.send(title=item.message.title, body=item.message.body)
            item.attempts += 1
            if result.delivered:
                queue.outgoing.remove(item)
                self._settle(
                    conn,
                    record.alerts.insert_deliveries(
                        keys=item.message.keys,
                        channel=channel.name,
                        message_id=item.message.message_id,
                        attempts=item.attempts,
                    ),
                )
                log.info(
                    "alert %s delivered to %s: %s", item.message.message_id, channel.name, item.message.title
                )
                continue
            item.last_error = result.error
            if item.attempts < self._settings.alert_max_attempts:
                item.next_at = self._clock() + retry_delay(
                    attempts=item.attempts, base_seconds=self._settings.alert_retry_seconds
                )
                log.warning(
                    "alert %s not delivered to %s (attempt %d of %d: %s); retrying",
                    item.message.message_id,
                    channel.name,
                    item.attempts,
                    self._settings.alert_max_attempts,
                    result.error,
                )
                continue
            queue.outgoing.remove(item)
            self._settle(
                conn,
                record.alerts.insert_dead_letters(
                    keys=item.message.keys,
                    channel=channel.name,
                    message_id=item.message.message_id,
                    attempts=item.attempts,
                    last_error=result.error,
                    title=item.message.title,
                    body=item.message.body,
                ),
            )
            log.error(
                "alert %s dead-lettered on %s after %d attempts (%s): %s",
                item.message.message_id,
                channel.name,
                item.attempts,
                result.error,
                item.message.title,
            )

    def _settle(self, conn: psycopg.Connection[Any], batch: record.Batch) -> None:
        """On record at once, all the message's events or none; if PostgreSQL fails now, kept and written first
        thing on the next pass."""
        try:
            with conn.transaction():
                record.execute_many(conn, batch)
        except psycopg.Error:
            self._unrecorded.append(batch)
            raise

    def _move_cursors(
        self, conn: psycopg.Connection[Any], read_by_source: list[tuple[EventSource, list[ReadEvent]]]
    ) -> None:
        """The next read starts after the last event read; the cursor on record stops just before the first event
        (in read order) still in flight on some channel, or else is where the next read starts."""
        in_flight: set[tuple[str, str]] = set()
        for queue in self._queues:
            in_flight |= queue.in_flight()
        for key in list(self._held):
            if key not in in_flight:
                del self._held[key]
        for key in list(self._first_seen):
            if key not in in_flight:
                del self._first_seen[key]
        if self._unrecorded:
            return
        first_held: dict[str, _Held] = {}
        for held in self._held.values():
            if held.cursor_kind not in first_held or held.sequence < first_held[held.cursor_kind].sequence:
                first_held[held.cursor_kind] = held
        moved: dict[str, str] = {}
        for source, read in read_by_source:
            for cursor_kind in source.cursor_kinds:
                floor = self._cursors[cursor_kind].floor
                items = [item for item in read if _cursor_kind(item.event.kind) == cursor_kind]
                if items:
                    self._read_from[cursor_kind] = Cursor(items[-1].position, floor)
                oldest = first_held.get(cursor_kind)
                position = oldest.before if oldest is not None else self._read_from[cursor_kind].position
                if position != self._cursors[cursor_kind].position:
                    moved[cursor_kind] = position
        if moved:
            record.execute_many(
                conn,
                record.alerts.save_cursors((k, v, self._cursors[k].floor) for k, v in moved.items()),
            )
            self._cursors.update({k: Cursor(v, self._cursors[k].floor) for k, v in moved.items()})

    def in_flight(self) -> int:
        """Events read and not yet settled on some channel."""
        return sum(len(queue.in_flight()) for queue in self._queues) + len(self._unrecorded)

    def run(
        self,
        stop: threading.Event,
        *,
        orphaned: Callable[[], bool] | None = None,
        linger_seconds: float = 0.0,
    ) -> None:
        """Passes every POLL_SECONDS until `stop`; outlives PostgreSQL outages (said at once, then every 30 s).
        With `orphaned` (started by a `tradeos up`): once that has gone, goes on for `linger_seconds` (the
        watchdog's halt and its alert) and until nothing is in flight, at most ORPHAN_LIMIT_SECONDS, then exits."""
        down_since: float | None = None
        last_said = 0.0
        orphan_since: float | None = None
        while not stop.is_set():
            try:
                self.run_pass()
                if down_since is not None:
                    log.warning("alerts: PostgreSQL is reachable again; reading the record")
                down_since = None
            except psycopg.Error as exc:
                self.close()
                now = time.monotonic()
                if down_since is None or now - last_said >= _RECONNECT_LOG_SECONDS:
                    log.error(
                        "alerts: cannot read the record in PostgreSQL (%s); no alert is sent until it is back",
                        str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
                    )
                    last_said = now
                down_since = down_since if down_since is not None else now
            if orphaned is not None and orphaned():
                now = time.monotonic()
                orphan_since = now if orphan_since is None else orphan_since
                lingered = now - orphan_since
                if (lingered >= linger_seconds and not self.in_flight()) or lingered >= ORPHAN_LIMIT_SECONDS:
                    log.warning(
                        "alerts: the `tradeos up` that started the notifier is gone; its work done, exiting"
                    )
                    break
            stop.wait(POLL_SECONDS)
        self.close()


def _cursor_kind(kind: str) -> str:
    """The cursor a kind is read under: breaker trips are risk events, resumes control actions like halts."""
    return {alert_events.BREAKER_TRIP: alert_events.RISK_EVENT, alert_events.RESUME: alert_events.HALT}.get(
        kind, kind
    )
