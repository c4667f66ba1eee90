"""What an alert says, and when it is sent: pure functions over recorded events (no I/O, the clock passed in).

- `AlertEvent`: one recorded event worth telling someone, with its kind and its id in the record.
- `compose`: which pending events become messages now. An urgent event (a halt, a resume, a breaker trip, a failed
  flow) is a message of its own at once. The others are held for the coalescing window from the moment the
  notifier first saw the oldest of their kind; then all the pending events of that kind go out as ONE message (a
  digest when there are several). So a storm of 50 rejections becomes one message, and a storm that lasts becomes
  one message per window.
- `retry_delay`: exponential backoff between attempts on a channel that refused a message.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from live.domain import iso_utc, require_utc
from live.stores.record.alerts import RejectionEvent
from live.stores.record.book import FillRow
from live.stores.record.decisions import RecordedControlAction
from live.stores.record.events import RecordedRiskEvent

FILL = "fill"
REJECTION = "rejection"
RISK_EVENT = "risk_event"
BREAKER_TRIP = "breaker_trip"
HALT = "halt"
RESUME = "resume"
FLOW_FAILED = "flow_failed"
FLOW_LATE = "flow_late"
DAILY_REPORT = "daily_report"
KINDS: tuple[str, ...] = (
    FILL,
    REJECTION,
    RISK_EVENT,
    BREAKER_TRIP,
    HALT,
    RESUME,
    FLOW_FAILED,
    FLOW_LATE,
    DAILY_REPORT,
)
URGENT_KINDS = frozenset({BREAKER_TRIP, HALT, RESUME, FLOW_FAILED})
DIGEST_SAMPLE = 5  # events listed by name in a digest; the rest are counted


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertEvent:
    """One recorded event, as an alert tells it: `kind` and `event_id` identify it in the record."""

    kind: str
    event_id: str
    at: datetime
    title: str
    line: str  # one line: what happened, for a single message or a digest

    def __post_init__(self) -> None:
        object.__setattr__(self, "at", require_utc(self.at))

    @property
    def key(self) -> tuple[str, str]:
        return (self.kind, self.event_id)

    @property
    def urgent(self) -> bool:
        return self.kind in URGENT_KINDS


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertMessage:
    """What one channel is sent: one event, or a digest of several of one kind. `message_id` names it in the
    delivery and dead-letter tables (a hash of its events, so it is the same after a restart)."""

    events: tuple[AlertEvent, ...]
    title: str
    body: str

    @property
    def message_id(self) -> str:
        keys = "\n".join(f"{kind}:{event_id}" for kind, event_id in sorted(e.key for e in self.events))
        return hashlib.sha256(keys.encode()).hexdigest()[:16]

    @property
    def keys(self) -> list[tuple[str, str]]:
        return [event.key for event in self.events]


def fill_event(row: FillRow) -> AlertEvent:
    return AlertEvent(
        kind=FILL,
        event_id=row.id,
        at=row.timestamp,
        title=f"Fill: {row.side} {row.quantity} {row.symbol}",
        line=f"{iso_utc(row.timestamp)} {row.side} {row.quantity} {row.symbol} at {row.price:f}"
        f" (fee {row.fee:f}, realized P&L {row.realized_pnl:f}, {row.signal_type})",
    )


def rejection_event(row: RejectionEvent) -> AlertEvent:
    return AlertEvent(
        kind=REJECTION,
        event_id=row.id,
        at=row.timestamp,
        title=f"Order rejected: {row.side} {row.quantity} {row.symbol}",
        line=f"{iso_utc(row.timestamp)} {row.side} {row.quantity} {row.symbol} rejected:"
        f" {row.reason or 'no reason given'}",
    )


def risk_event(row: RecordedRiskEvent) -> AlertEvent:
    kind = BREAKER_TRIP if row.halts_trading else RISK_EVENT
    what = "Circuit breaker tripped, trading halted" if row.halts_trading else "Risk event"
    symbol = f" {row.symbol}" if row.symbol else ""
    return AlertEvent(
        kind=kind,
        event_id=str(row.id),
        at=row.timestamp,
        title=f"{what}: {row.code}",
        line=f"{iso_utc(row.timestamp)} {row.code}{symbol}: {row.detail}",
    )


def trading_state_event(row: RecordedControlAction) -> AlertEvent:
    halted = row.action == HALT
    return AlertEvent(
        kind=HALT if halted else RESUME,
        event_id=str(row.id),
        at=row.timestamp,
        title=f"Trading {'halted' if halted else 'resumed'} by {row.actor}",
        line=f"{iso_utc(row.timestamp)} {row.action} by {row.actor}: {row.reason or 'no reason given'}",
    )


def flow_event(*, kind: str, run_id: str, flow: str, state: str, at: datetime, detail: str) -> AlertEvent:
    """A flow run that failed (FAILED, CRASHED) or is late (scheduled and not started), as Prefect recorded it."""
    title = f"Flow {flow} {'failed' if kind == FLOW_FAILED else 'is late'} ({state})"
    return AlertEvent(
        kind=kind, event_id=run_id, at=at, title=title, line=f"{iso_utc(at)} {flow}: {detail or state}"
    )


def daily_report_event(*, name: str, at: datetime, path: str) -> AlertEvent:
    return AlertEvent(
        kind=DAILY_REPORT,
        event_id=name,
        at=at,
        title=f"Daily report written: {name}",
        line=f"{iso_utc(at)} {path}",
    )


def message_of(events: Sequence[AlertEvent]) -> AlertMessage:
    """One event's own message, or a digest of several of one kind: counted, the first and last times, the most
    frequent reasons (the text after the last colon of each line) and the first few lines."""
    if len(events) == 1:
        (event,) = events
        return AlertMessage(events=(event,), title=f"TRADEOS: {event.title}", body=event.line)
    ordered = sorted(events, key=lambda e: (e.at, e.event_id))
    kind = ordered[0].kind
    reasons = Counter(event.line.rsplit(":", 1)[-1].strip() for event in ordered)
    common = ", ".join(f"{reason} x{count}" for reason, count in reasons.most_common(3))
    lines = [
        f"{len(ordered)} {kind.replace('_', ' ')} events from {iso_utc(ordered[0].at)} to {iso_utc(ordered[-1].at)}",
        f"most frequent: {common}",
        *(event.line for event in ordered[:DIGEST_SAMPLE]),
    ]
    if len(ordered) > DIGEST_SAMPLE:
        lines.append(f"... and {len(ordered) - DIGEST_SAMPLE} more")
    return AlertMessage(
        events=tuple(ordered), title=f"TRADEOS: {len(ordered)} x {ordered[0].title}", body="\n".join(lines)
    )


def compose(
    pending: Sequence[AlertEvent],
    *,
    first_seen: Mapping[tuple[str, str], float],
    now: float,
    window_seconds: float,
) -> list[AlertMessage]:
    """The messages to send now from `pending` (events of one channel not yet in a message). `first_seen`: when
    the notifier first read each event (monotonic seconds); an event it has no time for counts as seen now."""
    messages = [message_of([event]) for event in pending if event.urgent]
    by_kind: dict[str, list[AlertEvent]] = {}
    for event in pending:
        if not event.urgent:
            by_kind.setdefault(event.kind, []).append(event)
    for events in by_kind.values():
        oldest = min(first_seen.get(event.key, now) for event in events)
        if now - oldest >= window_seconds:
            messages.append(message_of(events))
    return messages


def retry_delay(*, attempts: int, base_seconds: float, max_seconds: float = 60.0) -> float:
    """Seconds to wait after the `attempts`-th failed attempt: base, 2 x base, 4 x base, ... at most max."""
    return float(min(max_seconds, base_seconds * 2 ** max(0, attempts - 1)))
