"""The system of record: every statement on the tables the engine owns, with its row mapping, written once.

One module per group of tables (`lease`: engine_lease and engine_state; `decisions`: control_actions; `book`:
orders, fills, positions, equity; `market`: bars, signals; `events`: risk_events, regime_changes, api_requests;
`strategies`: strategy_runs; `alerts`: the notifier's reads and its alert_deliveries, alert_dead_letters and
alert_cursors; `profiles`: profile_versions; `audit`: audit_ledger, whose entries every writer of orders, fills,
risk_events and control_actions appends in the same transaction).
Each statement is a value built by a function with keyword-only arguments; the engine runs it on its psycopg
connection (`fetch`, `execute`, `execute_many`, `copy`) and the API awaits the very same value on a pooled
`AsyncConnection` (`fetch_async`, ...), so both run the same SQL text with the same row mapping:

    fills = record.fetch(conn, record.book.all_fills())                 # engine
    fills = await record.fetch_async(conn, record.book.all_fills())     # API

The API writes no SQL of its own on these tables (tests/unit/test_record_ownership.py, which also checks that the
analysts' DuckDB copy in analytics/warehouse.py names the same columns).
"""

from live.stores.record import alerts, audit, book, decisions, events, lease, market, profiles, strategies
from live.stores.record.statements import (
    Batch,
    Copy,
    Query,
    Statement,
    copy,
    copy_async,
    execute,
    execute_async,
    execute_many,
    execute_many_async,
    execute_unflushed_async,
    fetch,
    fetch_async,
    fetch_many,
)

# The columns of each table with a row mapping, in the order the migrations define them (checked by
# tests/integration/live/test_record.py); engine_lease and engine_state are single rows read by name.
COLUMNS: dict[str, tuple[str, ...]] = {
    "bars": market.BAR_COLUMNS,
    "signals": market.SIGNAL_COLUMNS,
    "orders": book.ORDER_COLUMNS,
    "fills": book.FILL_COLUMNS,
    "positions": book.POSITION_COLUMNS,
    "equity": book.EQUITY_COLUMNS,
    "risk_events": events.RISK_EVENT_COLUMNS,
    "regime_changes": events.REGIME_CHANGE_COLUMNS,
    "control_actions": decisions.CONTROL_ACTION_COLUMNS,
    "api_requests": events.API_REQUEST_COLUMNS,
    "strategy_runs": strategies.STRATEGY_RUN_COLUMNS,
    "alert_deliveries": alerts.DELIVERY_COLUMNS,
    "alert_dead_letters": alerts.DEAD_LETTER_COLUMNS,
    "alert_cursors": alerts.CURSOR_COLUMNS,
    "profile_versions": profiles.PROFILE_VERSION_COLUMNS,
    "audit_ledger": audit.LEDGER_COLUMNS,
}

__all__ = [
    "COLUMNS",
    "Batch",
    "Copy",
    "Query",
    "Statement",
    "alerts",
    "audit",
    "book",
    "copy",
    "copy_async",
    "decisions",
    "events",
    "execute",
    "execute_async",
    "execute_many",
    "execute_many_async",
    "execute_unflushed_async",
    "fetch",
    "fetch_async",
    "fetch_many",
    "lease",
    "market",
    "profiles",
    "strategies",
]
