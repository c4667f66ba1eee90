"""What the notifier reads and writes (live/alerts/): the recorded events it alerts on, read after its cursor, and its
own tables (`alert_deliveries`, `alert_dead_letters`, `alert_cursors`, migration 005).

Fills are read after a (time, id) cursor on the engine's clock and rejections after one on the time the engine
recorded them: the engine writes both one batch at a time, in order. Risk events and control actions are read by
row id with an overlap of `ID_OVERLAP` rows, since several processes record control actions and a lower id can
commit after a higher one; the delivery table makes the overlap harmless."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import NamedTuple

from live.stores.record.book import FILL_COLUMNS, FillRow
from live.stores.record.decisions import CONTROL_ACTION_COLUMNS, RecordedControlAction
from live.stores.record.events import RecordedRiskEvent
from live.stores.record.statements import Batch, Query, Row, column_list, insert_sql, rows_of

ID_OVERLAP = 50
READ_LIMIT = 1000  # rows of one kind read in one pass; the rest come on the next

DELIVERY_COLUMNS = ("kind", "event_id", "channel", "message_id", "attempts", "delivered_at")
DEAD_LETTER_COLUMNS = (
    "kind",
    "event_id",
    "channel",
    "message_id",
    "attempts",
    "last_error",
    "title",
    "body",
    "failed_at",
)
CURSOR_COLUMNS = ("kind", "position", "floor", "updated_at")


class RejectionEvent(NamedTuple):
    id: str
    recorded_at: datetime  # orders.updated_at: when the engine recorded the rejection
    timestamp: datetime
    symbol: str
    side: str
    quantity: Decimal
    signal_type: str
    reason: str


def fills_after(*, timestamp: datetime | None, fill_id: str) -> Query[list[FillRow]]:
    """Fills after the (time, id) cursor, oldest first; None: from the first."""
    return Query(
        sql=f"SELECT {column_list(FILL_COLUMNS)} FROM fills"
        " WHERE %(ts)s::timestamptz IS NULL OR (timestamp, id) > (%(ts)s, %(id)s)"
        " ORDER BY timestamp, id LIMIT %(limit)s",
        params={"ts": timestamp, "id": fill_id, "limit": READ_LIMIT},
        decode=rows_of(FillRow._make),
    )


def rejections_after(*, recorded_at: datetime | None, order_id: str) -> Query[list[RejectionEvent]]:
    """Rejected orders recorded after the (time, id) cursor, oldest first; None: from the first."""
    return Query(
        sql="SELECT id, updated_at, timestamp, symbol, side, quantity, signal_type, reason FROM orders"
        " WHERE status = 'rejected'"
        " AND (%(ts)s::timestamptz IS NULL OR (updated_at, id) > (%(ts)s, %(id)s))"
        " ORDER BY updated_at, id LIMIT %(limit)s",
        params={"ts": recorded_at, "id": order_id, "limit": READ_LIMIT},
        decode=rows_of(RejectionEvent._make),
    )


def risk_events_after(*, after_id: int, floor: int) -> Query[list[RecordedRiskEvent]]:
    """Risk events from `ID_OVERLAP` rows before the cursor on (never before `floor`), oldest first."""
    return Query(
        sql=f"SELECT {column_list(RecordedRiskEvent._fields)} FROM risk_events"
        " WHERE id > GREATEST(%(after)s - %(overlap)s, %(floor)s) ORDER BY id LIMIT %(limit)s",
        params={"after": after_id, "overlap": ID_OVERLAP, "floor": floor, "limit": READ_LIMIT},
        decode=rows_of(RecordedRiskEvent._make),
    )


def trading_state_actions_after(*, after_id: int, floor: int) -> Query[list[RecordedControlAction]]:
    """Halts and resumes from `ID_OVERLAP` rows before the cursor on (never before `floor`), oldest first."""
    return Query(
        sql=f"SELECT {column_list(CONTROL_ACTION_COLUMNS)} FROM control_actions"
        " WHERE action IN ('halt', 'resume') AND id > GREATEST(%(after)s - %(overlap)s, %(floor)s)"
        " ORDER BY id LIMIT %(limit)s",
        params={"after": after_id, "overlap": ID_OVERLAP, "floor": floor, "limit": READ_LIMIT},
        decode=rows_of(RecordedControlAction._make),
    )


def _first_row(rows: list[Row]) -> Row:
    return rows[0]


class RecordHeads(NamedTuple):
    """Where each kind's record ends now: the cursors of a notifier's first start (nothing before is sent)."""

    last_fill: tuple[datetime | None, str]
    last_rejection: tuple[datetime | None, str]
    last_risk_event_id: int
    last_control_action_id: int


def _heads(rows: list[Row]) -> RecordHeads:
    fill_ts, fill_id, rejected_ts, rejected_id, risk_id, action_id = rows[0]
    return RecordHeads(
        last_fill=(fill_ts, fill_id or ""),
        last_rejection=(rejected_ts, rejected_id or ""),
        last_risk_event_id=int(risk_id),
        last_control_action_id=int(action_id),
    )


def record_heads() -> Query[RecordHeads]:
    return Query(
        sql="SELECT f.timestamp, f.id, r.updated_at, r.id,"
        " (SELECT COALESCE(max(id), 0) FROM risk_events), (SELECT COALESCE(max(id), 0) FROM control_actions)"
        " FROM (SELECT 1) AS one"
        " LEFT JOIN LATERAL (SELECT timestamp, id FROM fills ORDER BY timestamp DESC, id DESC LIMIT 1) f ON true"
        " LEFT JOIN LATERAL (SELECT updated_at, id FROM orders WHERE status = 'rejected'"
        " ORDER BY updated_at DESC, id DESC LIMIT 1) r ON true",
        decode=_heads,
    )


class Cursor(NamedTuple):
    position: str
    floor: str


def _cursors(rows: list[Row]) -> dict[str, Cursor]:
    return {kind: Cursor(position, floor) for kind, position, floor in rows}


def cursors() -> Query[dict[str, Cursor]]:
    """Each kind's cursor, by kind; a kind never read has none."""
    return Query(sql="SELECT kind, position, floor FROM alert_cursors", decode=_cursors)


def save_cursors(positions: Iterable[tuple[str, str, str]]) -> Batch:
    """(kind, position, floor): the floor is kept from the first save."""
    return Batch(
        sql=insert_sql("alert_cursors", ("kind", "position", "floor"))
        + " ON CONFLICT (kind) DO UPDATE SET position = EXCLUDED.position, updated_at = now()",
        rows=list(positions),
    )


class SettledKey(NamedTuple):
    kind: str
    event_id: str
    channel: str


def _settled_keys(rows: list[Row]) -> set[SettledKey]:
    return {SettledKey._make(row) for row in rows}


def settled(*, kind: str, event_ids: Sequence[str]) -> Query[set[SettledKey]]:
    """Which of `event_ids` of `kind` were delivered to, or dead-lettered on, which channel."""
    return Query(
        sql="SELECT kind, event_id, channel FROM alert_deliveries WHERE kind = %(kind)s AND event_id = ANY(%(ids)s)"
        " UNION SELECT kind, event_id, channel FROM alert_dead_letters"
        " WHERE kind = %(kind)s AND event_id = ANY(%(ids)s)",
        params={"kind": kind, "ids": list(event_ids)},
        decode=_settled_keys,
    )


def insert_deliveries(
    *, keys: Iterable[tuple[str, str]], channel: str, message_id: str, attempts: int
) -> Batch:
    """(kind, event id) of each event one message delivered to `channel`."""
    return Batch(
        sql=insert_sql("alert_deliveries", DELIVERY_COLUMNS[:-1], " ON CONFLICT DO NOTHING"),
        rows=[(kind, event_id, channel, message_id, attempts) for kind, event_id in keys],
    )


def insert_dead_letters(
    *,
    keys: Iterable[tuple[str, str]],
    channel: str,
    message_id: str,
    attempts: int,
    last_error: str,
    title: str,
    body: str,
) -> Batch:
    """(kind, event id) of each event of a message `channel` refused `attempts` times."""
    return Batch(
        sql=insert_sql("alert_dead_letters", DEAD_LETTER_COLUMNS[:-1], " ON CONFLICT DO NOTHING"),
        rows=[
            (kind, event_id, channel, message_id, attempts, last_error, title, body)
            for kind, event_id in keys
        ],
    )


class DeadLetter(NamedTuple):
    kind: str
    event_id: str
    channel: str
    message_id: str
    attempts: int
    last_error: str
    title: str
    body: str
    failed_at: datetime


def dead_letters() -> Query[list[DeadLetter]]:
    """Every dead letter, newest first."""
    return Query(
        sql=f"SELECT {column_list(DEAD_LETTER_COLUMNS)} FROM alert_dead_letters ORDER BY failed_at DESC",
        decode=rows_of(DeadLetter._make),
    )
