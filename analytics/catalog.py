"""What every table and column of the analysts' DuckDB file means, written into the file as DuckDB comments.

An analyst reads them with `SELECT table_name, comment FROM duckdb_tables()` and
`SELECT table_name, column_name, comment FROM duckdb_columns()`. Rollups recreate their tables (which drops the
comments), so the writer applies the missing ones before every publication (`analytics.warehouse.Warehouse`).
"""

from __future__ import annotations

from collections.abc import Mapping

import duckdb

_MONEY = "money in the account currency, exact (DECIMAL)"
_UTC = "UTC"

# table -> (what the table holds, {column: what it means}).
CATALOG: Mapping[str, tuple[str, Mapping[str, str]]] = {
    "bars": (
        "OHLCV bars the engine traded on, copied from PostgreSQL.",
        {
            "timestamp": f"bar open time ({_UTC})",
            "symbol": "instrument",
            "open": "first price of the bar",
            "high": "highest price of the bar",
            "low": "lowest price of the bar",
            "close": "last price of the bar",
            "volume": "traded volume in the bar",
            "spread": "bid-ask spread the paper broker assumed for the bar",
        },
    ),
    "signals": (
        "Every signal value the engine computed (actionable or not), copied from PostgreSQL.",
        {
            "id": "system-of-record id",
            "timestamp": f"bar time the value was computed at ({_UTC})",
            "symbol": "instrument",
            "signal_type": "signal model (momentum, mean_reversion, ...)",
            "strength": "signal value in [-1, 1]; positive means long",
            "horizon_bars": "holding horizon in the symbol's own bars; also the IC's forward-return horizon",
            "regime": "market regime in force when the value was computed",
            "actionable": "true when the value was strong enough to act on under the profile then in force",
        },
    ),
    "orders": (
        "Orders the engine submitted, with their latest status, copied from PostgreSQL.",
        {
            "id": "order id",
            "timestamp": f"submission time ({_UTC})",
            "symbol": "instrument",
            "side": "buy or sell",
            "quantity": "shares or units ordered (> 0; exact decimal, e.g. 0.0013 BTC)",
            "signal_type": "signal model the order serves",
            "reduces_position": "true for an order that only reduces or closes a position",
            "status": "latest status (filled, rejected, cancelled, ...)",
            "reason": "risk check that rejected the order ('' when not rejected)",
            "tick_to_order_us": "microseconds from the bar's arrival to the order's submission",
            "updated_at": f"last status change ({_UTC}); the sync follows it",
        },
    ),
    "fills": (
        "Executions, one row per fill; the same columns as PostgreSQL's fills table.",
        {
            "id": "fill id",
            "order_id": "order the fill executes",
            "timestamp": f"execution time ({_UTC})",
            "symbol": "instrument",
            "side": "buy or sell",
            "quantity": "shares or units filled (> 0; exact decimal, e.g. 0.0013 BTC)",
            "price": f"execution price, {_MONEY}",
            "fee": f"fee charged, {_MONEY}",
            "signal_type": "signal model the order served",
            "realized_pnl": f"gross realized P&L of the fill (average cost, price only; fee separate), {_MONEY}",
        },
    ),
    "equity": (
        "Portfolio value snapshots, copied from PostgreSQL; the first one is the initial capital.",
        {
            "timestamp": f"snapshot time ({_UTC})",
            "total_value": f"cash plus positions at market, {_MONEY}",
            "cash": f"cash, {_MONEY}",
            "high_water_mark": f"highest total value so far, {_MONEY}",
        },
    ),
    "risk_events": (
        "Risk events (limit breaches, circuit breakers, outages), copied from PostgreSQL.",
        {
            "id": "system-of-record id",
            "timestamp": f"when the event happened ({_UTC})",
            "code": "event code (e.g. DRAWDOWN_LIMIT_EXCEEDED)",
            "detail": "human-readable detail",
            "symbol": "instrument concerned, null for portfolio-wide events",
            "halts_trading": "true when the event halted trading (a circuit breaker)",
            "recorded_at": f"when the row was written ({_UTC}); late after an outage",
        },
    ),
    "regime_changes": (
        "Changes of the market regime, copied from PostgreSQL (none for the regime the engine starts in).",
        {
            "id": "system-of-record id",
            "timestamp": f"bar time of the change ({_UTC})",
            "previous": "regime before the change (null for the first classification)",
            "current": "regime from this change on",
            "model": "classifier that made the call",
        },
    ),
    "api_requests": (
        "Operator and Metrics API requests (the access log), copied from PostgreSQL.",
        {
            "id": "system-of-record id",
            "timestamp": f"request time ({_UTC})",
            "method": "HTTP method",
            "path": "request path (control characters escaped, length capped)",
            "status": "HTTP status answered",
            "latency_ms": "time to answer in milliseconds",
        },
    ),
    "control_actions": (
        "Operator actions (halt, resume, profile switch, ...), copied from PostgreSQL.",
        {
            "id": "system-of-record id",
            "timestamp": f"when the action was applied ({_UTC})",
            "action": "what was done",
            "actor": "who did it",
            "reason": "reason given",
            "value": "new value (e.g. the profile switched to)",
            "origin": "where it came from: the API client's address, or `engine` for the engine's own",
        },
    ),
    "audit_ledger": (
        "The tamper-evident audit ledger: one HMAC-SHA256 chained entry per order intent, fill, risk event and "
        "control action, copied from PostgreSQL (`tradeos audit verify` checks it there).",
        {
            "seq": "position in the chain, from 1, without gaps",
            "recorded_at": f"when the entry was sealed ({_UTC})",
            "kind": "order, fill, risk_event or control_action",
            "ref": "id of the covered row in its table (orders, fills, risk_events, control_actions)",
            "actor": "who: the operator for a control action, `engine` otherwise",
            "origin": "from where: the API client's address for an operator's action, `engine` otherwise",
            "payload": "the covered row as sealed, canonical JSON (e.g. a halt's reason is payload->>'reason')",
            "prev_hash": "hash of the entry before (64 zeros for the first)",
            "hash": "HMAC-SHA256 of the entry, hex (README, Verifying the audit ledger)",
        },
    ),
    "positions": (
        "The current book (replaced on every sync).",
        {
            "symbol": "instrument",
            "quantity": "signed position (negative is short; exact decimal)",
            "avg_price": f"average entry price, {_MONEY}",
            "realized_pnl": f"realized P&L of the symbol, {_MONEY}",
            "updated_at": f"last change ({_UTC})",
        },
    ),
    "sync_state": (
        "Per synced table: how far the PostgreSQL -> DuckDB sync has read.",
        {
            "table_name": "synced table",
            "watermark": f"newest watermark value held ({_UTC})",
            "rows_total": "rows held after the last sync",
            "rows_added": "rows the last sync added",
            "synced_at": f"when the last sync finished ({_UTC})",
        },
    ),
    "sync_log": (
        "One row per PostgreSQL -> DuckDB sync performed (flows starting together share one sync).",
        {
            "synced_at": f"when the sync finished ({_UTC})",
            "seconds": "how long it took",
            "rows_added": "rows added over all tables",
            "full_resync": "true for a full re-read (a repair)",
        },
    ),
    "rollup_runs": (
        "When each rollup was last made: the Metrics API's as_of.",
        {
            "rollup": "rollup name (performance, system, signals, regimes)",
            "as_of": f"when it was made ({_UTC})",
            "detail": "free-form detail",
        },
    ),
    "daily_performance": (
        "One row per UTC day: equity, return and drawdown of daily closes, and the trades closed that day.",
        {
            "date": "UTC day",
            "equity": f"the day's last equity snapshot, {_MONEY}",
            "return": "E_d / E_(d-1) - 1, E_0 the initial capital (so the first day counts)",
            "cumulative_return": "equity / initial capital - 1",
            "drawdown": "positive fraction of the day's close below the high-water mark of daily closes",
            "trades_closed": "closed trades (flat to flat) that ended this day",
            "trade_pnl": f"their P&L (realized P&L minus fees), {_MONEY}",
            "trade_fees": f"their fees, {_MONEY}",
            "as_of": f"when the rollup was made ({_UTC})",
        },
    ),
    "performance_summary": (
        "Risk and return over daily returns and closed-trade statistics; null where undefined.",
        {
            "sharpe_ratio": "annualised mean / sample std (ddof 1) of daily returns, risk-free 0",
            "sortino_ratio": "annualised mean / annualised downside deviation below 0",
            "max_drawdown": "largest fall of daily closes below their high-water mark, positive fraction",
            "total_return": "compounded return over all days",
            "annualized_return": "compound annual growth rate over days / annualization years",
            "win_rate": "share of closed trades with P&L > 0",
            "average_trade_duration_seconds": "mean flat-to-flat time of closed trades",
            "total_trades": "number of closed trades",
            "profit_factor": "gross profit / gross loss of closed trades",
            "annualization": "periods per year used to annualise (252 unless configured)",
            "initial_capital": f"E_0, the first equity snapshot, {_MONEY}",
            "first_day": "first UTC day with equity",
            "last_day": "last UTC day with equity",
            "as_of": f"when the rollup was made ({_UTC})",
        },
    ),
    "closed_trades": (
        "One row per closed trade: a symbol's position from flat to flat.",
        {
            "symbol": "instrument",
            "opened_at": f"first fill ({_UTC})",
            "closed_at": f"fill that made the position flat ({_UTC})",
            "duration_seconds": "closed_at - opened_at in seconds",
            "pnl": f"sum of the fills' realized P&L minus their fees, {_MONEY}",
            "fees": f"sum of the fills' fees, {_MONEY}",
            "signal_type": "signal model of the opening fill",
            "n_fills": "fills in the trade",
        },
    ),
    "system_metrics": (
        "Latency percentiles, order counts and breaker activations over all synced history.",
        {
            "tick_to_order_p50_ms": "median bar-to-order latency, ms",
            "tick_to_order_p95_ms": "95th percentile bar-to-order latency, ms",
            "tick_to_order_p99_ms": "99th percentile bar-to-order latency, ms",
            "api_p50_ms": "median API latency, ms",
            "api_p95_ms": "95th percentile API latency, ms",
            "api_p99_ms": "99th percentile API latency, ms",
            "api_requests": "API requests recorded",
            "orders_submitted": "orders submitted",
            "orders_rejected": "orders rejected",
            "rejection_rate": "orders_rejected / orders_submitted",
            "circuit_breaker_activations": "risk events that halted trading",
            "as_of": f"when the rollup was made ({_UTC})",
        },
    ),
    "rejections_by_reason": (
        "Rejected orders by the risk check that refused them.",
        {
            "reason": "risk check ('unspecified' when none was recorded)",
            "orders": "orders rejected for it",
            "as_of": f"when the rollup was made ({_UTC})",
        },
    ),
    "signal_ic_periods": (
        "Per signal type and timestamp: Spearman IC across symbols of strength vs forward return.",
        {
            "signal_type": "signal model",
            "timestamp": f"signal time ({_UTC})",
            "ic": "Spearman rank correlation across symbols of strength and the forward return over horizon_bars",
            "n_symbols": "symbols in the cross-section",
        },
    ),
    "signal_ic": (
        "Per signal type and UTC day: mean IC and the closed trades the signal type opened.",
        {
            "signal_type": "signal model",
            "date": "UTC day (trades count on the day they closed)",
            "ic_mean": "mean of the day's per-timestamp IC",
            "n_periods": "timestamps with an IC that day",
            "trades_closed": "closed trades opened by this signal type",
            "win_rate": "share of them with P&L > 0",
            "pnl_contribution": f"their P&L, {_MONEY}",
            "as_of": f"when the rollup was made ({_UTC})",
        },
    ),
    "signal_summary": (
        "Per signal type over all history: IC statistics and the closed trades it opened.",
        {
            "signal_type": "signal model",
            "ic_mean": "mean per-timestamp IC",
            "ic_std": "sample std (ddof 1) of the per-timestamp IC",
            "ic_ir": "ic_mean / ic_std",
            "ic_t_stat": "ic_mean / (ic_std / sqrt(n_periods))",
            "n_periods": "timestamps with an IC",
            "trades_closed": "closed trades opened by this signal type",
            "win_rate": "share of them with P&L > 0",
            "pnl_contribution": f"their P&L, {_MONEY}",
            "as_of": f"when the rollup was made ({_UTC})",
        },
    ),
    "regimes": (
        "The regime timeline from the recorded changes: one row per spell.",
        {
            "started_at": f"change that began the spell ({_UTC})",
            "ended_at": f"next change ({_UTC}); null for the current spell",
            "regime": "regime of the spell",
            "previous": "regime before it",
            "model": "classifier that made the call",
            "duration_seconds": "ended_at - started_at in seconds; null for the current spell",
        },
    ),
    "regime_models": (
        "Every regime-model retraining: its window, scores and validation verdict.",
        {
            "name": "model name (gmm-<UTC time>)",
            "created_at": f"when it was trained ({_UTC})",
            "training_start": f"first bar of the training window ({_UTC})",
            "training_end": f"last bar of the training window ({_UTC})",
            "n_train": "training samples",
            "n_holdout": "held-out samples",
            "features": "regime features used",
            "train_score": "median log-likelihood on the training samples, nats per sample",
            "validation_score": "median log-likelihood on the holdout, nats per sample",
            "holdout_persistence": "share of consecutive held-out bars keeping their regime",
            "current_model": "promoted model it was compared with",
            "current_score": "that model's validation score on the same holdout",
            "validated": "true when it passed validation",
            "promoted": "true when it became the promoted model",
            "reason": "why it was or was not promoted",
            "path": "artifact directory under models/",
        },
    ),
    "research_runs": (
        "Every walk-forward run (the walk-forward flow): what it searched, on which windows, and its mean figures.",
        {
            "run_id": "run id (UTC start time and a random suffix)",
            "started_at": f"when the run started ({_UTC})",
            "finished_at": f"when its last trial finished ({_UTC})",
            "data": "replay file walked over",
            "strategy": "strategy spec (builtin, package.module:Class or path/file.py:Class)",
            "profile": "risk profile every trial ran under",
            "objective": "figure the in-sample best was chosen on (higher wins)",
            "grid": "parameter grid as JSON: {parameter: [values, ...]}",
            "train_bars": "train window length, in timestamps of the file",
            "test_bars": "test window length, in timestamps of the file",
            "step_bars": "how far each fold moves on, in timestamps of the file",
            "folds": "folds run",
            "trials": "grid points tried on each train window",
            "is_objective_mean": "mean over the folds of the chosen parameters' in-sample objective",
            "oos_objective_mean": "mean over the folds of the chosen parameters' out-of-sample objective",
            "task_runner": "where the trials ran (threads, processes or a Dask scheduler's address)",
            "report": "path of the run's HTML report",
        },
    ),
    "research_trials": (
        "One row per walk-forward fold and grid point: in-sample figures on the train window and, for the chosen "
        "point, out-of-sample figures on the test window.",
        {
            "run_id": "research_runs.run_id",
            "fold": "fold number, from 1",
            "trial": "grid point number, from 0, in grid order (the last parameter varies fastest)",
            "params": "the grid point's parameters as JSON: {parameter: value}",
            "train_start": f"first timestamp of the train window ({_UTC})",
            "train_end": f"end of the train window, exclusive: the test window's first timestamp ({_UTC})",
            "test_start": f"first timestamp of the test window ({_UTC}); never before train_end",
            "test_end": f"end of the test window, exclusive ({_UTC}); null when it runs to the end of the file",
            "chosen": "true for the grid point with the best in-sample objective (earliest on a tie)",
            "is_objective": "the run's objective on the train window (null when undefined)",
            "oos_objective": "the run's objective on the test window; chosen point only",
            **{
                f"{side}_{name}": f"{meaning} on the {window} window{only}"
                for side, window, only in (("is", "train", ""), ("oos", "test", "; chosen point only"))
                for name, meaning in (
                    ("total_return", "total return (final / initial equity - 1)"),
                    ("annualized_return", "annualized return"),
                    ("sharpe_ratio", "annualized Sharpe ratio of daily returns"),
                    ("sortino_ratio", "annualized Sortino ratio of daily returns"),
                    ("max_drawdown", "maximum drawdown (<= 0)"),
                    ("win_rate", "share of closed trades with P&L > 0"),
                    ("profit_factor", "gross profit / gross loss of closed trades"),
                    ("net_pnl", f"net P&L, {_MONEY}"),
                    ("fees", f"fees paid, {_MONEY}"),
                    ("fills", "fills"),
                    ("total_trades", "closed trades"),
                    ("bars", "bars traded (all symbols)"),
                )
            },
        },
    ),
}


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def apply_comments(conn: duckdb.DuckDBPyConnection) -> None:
    """Write the catalog's comment on every table and column that lacks one (rollups recreate their tables)."""
    tables = conn.execute(
        "SELECT table_name FROM duckdb_tables() WHERE NOT internal AND NOT temporary AND schema_name = 'main'"
        " AND comment IS NULL"
    ).fetchall()
    columns = conn.execute(
        "SELECT c.table_name, c.column_name FROM duckdb_columns() c JOIN duckdb_tables() t USING (table_oid)"
        " WHERE NOT c.internal AND NOT t.temporary AND c.schema_name = 'main' AND c.comment IS NULL"
    ).fetchall()
    statements = [
        f"COMMENT ON TABLE {_identifier(table)} IS {_literal(CATALOG[table][0])}"
        for (table,) in tables
        if table in CATALOG
    ]
    for table, column in columns:
        described = CATALOG.get(table, ("", {}))[1].get(column)
        if described is not None:
            statements.append(
                f"COMMENT ON COLUMN {_identifier(table)}.{_identifier(column)} IS {_literal(described)}"
            )
    if not statements:
        return
    # One transaction: a commit per comment made documenting a fresh file take about a second.
    conn.execute("BEGIN TRANSACTION")
    try:
        for statement in statements:
            conn.execute(statement)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
