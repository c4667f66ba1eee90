"""What is recorded for audit and the batch side: `risk_events`, `regime_changes` and the operator API's access log
(`api_requests`)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from live.domain import RegimeChange, RiskEvent
from live.stores.record.statements import (
    Batch,
    Copy,
    Row,
    column_list,
    insert_sql,
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
    return Batch(
        sql=insert_sql("risk_events", _RISK_EVENT_WRITTEN), rows=[risk_event_params(e) for e in events]
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
