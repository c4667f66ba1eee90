"""What is recorded for audit and the batch side: `risk_events`, `regime_changes` and the operator API's access log
(`api_requests`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from functools import partial
from typing import NamedTuple

from live.domain import RegimeChange, RiskEvent
from live.stores.record.statements import (
    Batch,
    BucketTally,
    Copy,
    LatencyBuckets,
    Query,
    Row,
    column_list,
    insert_sql,
    le_bucket_sql,
    rows_of,
)

RISK_EVENT_COLUMNS = ("id", "timestamp", "code", "detail", "symbol", "halts_trading", "recorded_at")

REGIME_CHANGE_COLUMNS = ("id", "timestamp", "previous", "current", "model")

API_REQUEST_COLUMNS = ("id", "timestamp", "method", "path", "status", "latency_ms")

_RISK_EVENT_WRITTEN = RISK_EVENT_COLUMNS[1:-1]
_REGIME_CHANGE_WRITTEN = REGIME_CHANGE_COLUMNS[1:]
_API_REQUEST_WRITTEN = API_REQUEST_COLUMNS[1:]

# One access-log record, in API_REQUEST_COLUMNS order: kept a plain tuple because a request only appends it.
ApiRequestRow = tuple[datetime, str, str, int, float]


def risk_event_params(event: RiskEvent) -> Row:
    return (event.timestamp, event.code, event.detail, event.symbol, event.halts_trading)


def insert_risk_events(events: Iterable[RiskEvent]) -> Batch:
    """The events' rows, each returning its id (`fetch_many`), for their ledger entries (record.audit)."""
    return Batch(
        sql=insert_sql("risk_events", _RISK_EVENT_WRITTEN, " RETURNING id"),
        rows=[risk_event_params(e) for e in events],
    )


def regime_change_params(change: RegimeChange) -> Row:
    return (change.timestamp, change.previous, change.current, change.model)


def insert_regime_changes(changes: Iterable[RegimeChange]) -> Batch:
    return Batch(
        sql=insert_sql("regime_changes", _REGIME_CHANGE_WRITTEN),
        rows=[regime_change_params(c) for c in changes],
    )


def copy_api_requests(rows: Iterable[ApiRequestRow]) -> Copy:
    """The access log's records, in API_REQUEST_COLUMNS order without the id."""
    return Copy(sql=f"COPY api_requests ({column_list(_API_REQUEST_WRITTEN)}) FROM STDIN", rows=rows)


class RecordedRiskEvent(NamedTuple):
    """A risk event as recorded (`recorded_at` left out: the engine clock is what an operator reads)."""

    id: int
    timestamp: datetime
    code: str
    detail: str
    symbol: str | None
    halts_trading: bool


_risk_events = rows_of(RecordedRiskEvent._make)


def recent_risk_events(*, limit: int) -> Query[list[RecordedRiskEvent]]:
    """Risk events, newest first."""
    return Query(
        sql=f"SELECT {column_list(RecordedRiskEvent._fields)} FROM risk_events"
        " ORDER BY timestamp DESC, id DESC LIMIT %(limit)s",
        params={"limit": limit},
        decode=_risk_events,
    )


class BreakerTrips(NamedTuple):
    """One circuit breaker's history: how often it halted trading, and when last."""

    code: str
    trips: int
    last_trip: datetime


_breaker_trips = rows_of(BreakerTrips._make)


def breaker_trips() -> Query[list[BreakerTrips]]:
    """Every risk event code that halted trading, with its count and last time, most recent first."""
    return Query(
        sql="SELECT code, count(*), max(timestamp) FROM risk_events WHERE halts_trading"
        " GROUP BY code ORDER BY max(timestamp) DESC",
        decode=_breaker_trips,
    )


class RecordedRegimeChange(NamedTuple):
    id: int
    timestamp: datetime
    previous: str | None
    current: str
    model: str


_regime_changes = rows_of(RecordedRegimeChange._make)


def recent_regime_changes(*, limit: int) -> Query[list[RecordedRegimeChange]]:
    """Regime changes, newest first."""
    return Query(
        sql=f"SELECT {column_list(REGIME_CHANGE_COLUMNS)} FROM regime_changes"
        " ORDER BY timestamp DESC, id DESC LIMIT %(limit)s",
        params={"limit": limit},
        decode=_regime_changes,
    )


def _latest_regime(rows: list[Row]) -> tuple[str, datetime] | None:
    return (rows[0][0], rows[0][1]) if rows else None


def latest_regime() -> Query[tuple[str, datetime] | None]:
    """(regime, since) of the last regime change on record; None before any."""
    return Query(
        sql='SELECT "current", timestamp FROM regime_changes ORDER BY timestamp DESC, id DESC LIMIT 1',
        decode=_latest_regime,
    )


def _risk_event_tally(rows: list[Row]) -> dict[tuple[str, bool], int]:
    return {(code, bool(halts)): int(count) for code, halts, count in rows}


def risk_event_tally() -> Query[dict[tuple[str, bool], int]]:
    """Risk events on record counted by (code, whether it halted trading)."""
    return Query(
        sql="SELECT code, halts_trading, count(*) FROM risk_events GROUP BY 1, 2",
        decode=_risk_event_tally,
    )


def _latency_by_route(bounds: Sequence[float], rows: list[Row]) -> dict[tuple[str, str], LatencyBuckets]:
    tallies: dict[tuple[str, str], BucketTally] = {}
    for method, route, bucket, requests, total_ms in rows:
        tallies.setdefault((method, route), BucketTally(bounds)).add(bucket, int(requests), total_ms)
    return {key: tally.buckets() for key, tally in tallies.items()}


def api_latency_by_route(
    *, routes: Sequence[str], methods: Sequence[str], bounds_ms: Sequence[float]
) -> Query[dict[tuple[str, str], LatencyBuckets]]:
    """The operator API's recorded request latencies as a cumulative histogram (ms) per (method, route). Anyone
    chooses the path they request: a path that is not one of `routes`, or a method not in `methods`, counts as
    `other`, so the labels stay a bounded set."""
    return Query(
        sql="SELECT CASE WHEN method = ANY(%(methods)s) THEN method ELSE 'other' END,"
        " CASE WHEN path = ANY(%(routes)s) THEN path ELSE 'other' END,"
        f" {le_bucket_sql('latency_ms', bounds_ms)}, count(*), sum(latency_ms) FROM api_requests GROUP BY 1, 2, 3",
        params={"routes": list(routes), "methods": list(methods)},
        decode=partial(_latency_by_route, tuple(bounds_ms)),
    )
