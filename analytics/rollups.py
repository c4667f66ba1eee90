"""Rollup tables built from the synced DuckDB tables with the one definition of each number in `analytics/`.

Every rollup recomputes its tables from all synced history and replaces them in one transaction, so a re-run is
idempotent and a reader never sees half a rollup. Money stays exact: DECIMAL(24, 8) as in the system of record
(ratios and returns are DOUBLE).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import duckdb
import numpy as np
import polars as pl

from analytics.ic import daily_ic, ic_summary, information_coefficient
from analytics.performance import PerformanceSummary, performance_summary
from analytics.returns import daily_returns, drawdown_series
from analytics.trades import closed_trades, pnl_by_signal_type
from analytics.warehouse import MONEY, record_rollup, scalar

PERFORMANCE = "performance"
SYSTEM = "system"
SIGNALS = "signals"
REGIMES = "regimes"

# Money is exchanged with polars as DECIMAL(38, 8) (its arithmetic's width) and stored as the source's type.
_POLARS_MONEY = pl.Decimal(38, 8)
# Fill money travels into `closed_trades` (which sums in float64) as whole units of 10^-8, the source's scale:
# float64 holds whole numbers exactly up to 2^53, so a trade's sums are exact while under ~90 million.
_UNITS_PER_MONEY = 100_000_000

DAILY_PERFORMANCE_DDL = f"""
CREATE OR REPLACE TABLE daily_performance (
    date DATE PRIMARY KEY,
    equity {MONEY} NOT NULL,
    "return" DOUBLE NOT NULL,
    cumulative_return DOUBLE NOT NULL,
    drawdown DOUBLE NOT NULL,
    trades_closed BIGINT NOT NULL,
    trade_pnl {MONEY} NOT NULL,
    trade_fees {MONEY} NOT NULL,
    as_of TIMESTAMPTZ NOT NULL
)
"""

PERFORMANCE_SUMMARY_DDL = f"""
CREATE OR REPLACE TABLE performance_summary (
    sharpe_ratio DOUBLE,
    sortino_ratio DOUBLE,
    max_drawdown DOUBLE,
    total_return DOUBLE,
    annualized_return DOUBLE,
    win_rate DOUBLE,
    average_trade_duration_seconds DOUBLE,
    total_trades BIGINT NOT NULL,
    profit_factor DOUBLE,
    annualization INTEGER NOT NULL,
    initial_capital {MONEY},
    first_day DATE,
    last_day DATE,
    as_of TIMESTAMPTZ NOT NULL
)
"""

CLOSED_TRADES_DDL = f"""
CREATE OR REPLACE TABLE closed_trades (
    symbol VARCHAR NOT NULL,
    opened_at TIMESTAMPTZ NOT NULL,
    closed_at TIMESTAMPTZ NOT NULL,
    duration_seconds DOUBLE NOT NULL,
    pnl {MONEY} NOT NULL,
    fees {MONEY} NOT NULL,
    signal_type VARCHAR NOT NULL,
    n_fills BIGINT NOT NULL
)
"""

SYSTEM_METRICS_DDL = """
CREATE OR REPLACE TABLE system_metrics (
    tick_to_order_p50_ms DOUBLE,
    tick_to_order_p95_ms DOUBLE,
    tick_to_order_p99_ms DOUBLE,
    api_p50_ms DOUBLE,
    api_p95_ms DOUBLE,
    api_p99_ms DOUBLE,
    api_requests BIGINT NOT NULL,
    orders_submitted BIGINT NOT NULL,
    orders_rejected BIGINT NOT NULL,
    rejection_rate DOUBLE,
    circuit_breaker_activations BIGINT NOT NULL,
    as_of TIMESTAMPTZ NOT NULL
)
"""

REJECTIONS_DDL = """
CREATE OR REPLACE TABLE rejections_by_reason (
    reason VARCHAR NOT NULL,
    orders BIGINT NOT NULL,
    as_of TIMESTAMPTZ NOT NULL
)
"""

SIGNAL_IC_PERIODS_DDL = """
CREATE OR REPLACE TABLE signal_ic_periods (
    signal_type VARCHAR NOT NULL,
    timestamp TIMESTAMPTZ NOT NULL,
    ic DOUBLE NOT NULL,
    n_symbols BIGINT NOT NULL
)
"""

SIGNAL_IC_DDL = f"""
CREATE OR REPLACE TABLE signal_ic (
    signal_type VARCHAR NOT NULL,
    date DATE NOT NULL,
    ic_mean DOUBLE,
    n_periods BIGINT NOT NULL,
    trades_closed BIGINT NOT NULL,
    win_rate DOUBLE,
    pnl_contribution {MONEY} NOT NULL,
    as_of TIMESTAMPTZ NOT NULL
)
"""

SIGNAL_SUMMARY_DDL = f"""
CREATE OR REPLACE TABLE signal_summary (
    signal_type VARCHAR NOT NULL,
    ic_mean DOUBLE,
    ic_std DOUBLE,
    ic_ir DOUBLE,
    ic_t_stat DOUBLE,
    n_periods BIGINT NOT NULL,
    trades_closed BIGINT NOT NULL,
    win_rate DOUBLE,
    pnl_contribution {MONEY} NOT NULL,
    as_of TIMESTAMPTZ NOT NULL
)
"""

REGIMES_DDL = """
CREATE OR REPLACE TABLE regimes (
    started_at TIMESTAMPTZ NOT NULL,
    ended_at TIMESTAMPTZ,
    regime VARCHAR NOT NULL,
    previous VARCHAR,
    model VARCHAR NOT NULL,
    duration_seconds DOUBLE
)
"""


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _replace(conn: duckdb.DuckDBPyConnection, ddl: str, table: str, frame: pl.DataFrame) -> None:
    """Recreate `table` from its DDL and fill it from `frame` (same column order); caller holds the transaction."""
    conn.execute(ddl)
    if frame.height:
        conn.register("_rollup_frame", frame.to_arrow())
        try:
            conn.execute(f"INSERT INTO {table} SELECT * FROM _rollup_frame")
        finally:
            conn.unregister("_rollup_frame")


def load_equity(conn: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Synced equity snapshots as `timestamp, total_value, cash` (floats), in time order."""
    return conn.sql(
        "SELECT timestamp, total_value::DOUBLE AS total_value, cash::DOUBLE AS cash FROM equity ORDER BY timestamp"
    ).pl()


def load_fills(conn: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Synced fills with money as floats, in the order they were recorded."""
    return conn.sql(
        "SELECT id, order_id, timestamp, symbol, side, quantity, price::DOUBLE AS price, fee::DOUBLE AS fee,"
        " signal_type, realized_pnl::DOUBLE AS realized_pnl FROM fills ORDER BY timestamp, id"
    ).pl()


def _money_from_units(column: str) -> pl.Expr:
    unit = pl.lit(Decimal(1) / _UNITS_PER_MONEY, dtype=_POLARS_MONEY)
    return (pl.col(column).round(0).cast(pl.Int64).cast(pl.Decimal(38, 0)) * unit).cast(_POLARS_MONEY)


def load_closed_trades(conn: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Closed trades from the synced fills (`analytics.trades.closed_trades`), `pnl` and `fees` exact decimals."""
    # Only the columns a closed trade is made of, in `load_fills`' order: fetching ten million order ids and
    # prices that nothing reads was a fifth of the load.
    trades = closed_trades(
        conn.sql(
            f"SELECT id, timestamp, symbol, side, quantity, CAST(fee * {_UNITS_PER_MONEY} AS BIGINT) AS fee,"
            f" signal_type, CAST(realized_pnl * {_UNITS_PER_MONEY} AS BIGINT) AS realized_pnl"
            " FROM fills ORDER BY timestamp, id"
        ).pl()
    )
    return trades.with_columns(_money_from_units("pnl"), _money_from_units("fees"))


def daily_closing_equity(conn: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """`date, equity`: each UTC day's last equity snapshot as the exact decimal recorded (the value
    `analytics.returns.daily_equity` picks; snapshot timestamps are unique, the table's key)."""
    return conn.sql(
        "SELECT (timestamp AT TIME ZONE 'UTC')::DATE AS date, arg_max(total_value, timestamp) AS equity"
        " FROM equity GROUP BY ALL ORDER BY date"
    ).pl()


def initial_capital_exact(conn: duckdb.DuckDBPyConnection) -> Decimal | None:
    """E_0 as recorded: the first equity snapshot's exact total value, or None before any."""
    value = scalar(conn, "SELECT total_value FROM equity ORDER BY timestamp LIMIT 1")
    return value if isinstance(value, Decimal) else None


def initial_capital(equity: pl.DataFrame) -> float | None:
    """E_0: the first equity value recorded (docs/metrics.md), or None before any."""
    return None if equity.height == 0 else float(equity.get_column("total_value")[0])


def daily_performance_frame(equity: pl.DataFrame, trades: pl.DataFrame) -> pl.DataFrame:
    """One row per UTC day: equity, return, cumulative return, drawdown and the closed trades of that day."""
    capital = initial_capital(equity)
    if capital is None:
        return pl.DataFrame()
    daily = daily_returns(equity, initial_capital=capital)
    # The initial capital is the first high-water mark, so a loss on day one is a drawdown.
    values = np.concatenate(([capital], daily.get_column("equity").to_numpy()))
    per_day = trades.group_by(pl.col("closed_at").dt.date().alias("date")).agg(
        pl.len().cast(pl.Int64).alias("trades_closed"),
        pl.col("pnl").sum().alias("trade_pnl"),
        pl.col("fees").sum().alias("trade_fees"),
    )
    zero = pl.lit(0, dtype=trades.schema["pnl"])
    return (
        daily.with_columns(
            (pl.col("equity") / capital - 1.0).alias("cumulative_return"),
            pl.Series("drawdown", drawdown_series(values)[1:]),
        )
        .join(per_day, on="date", how="left")
        .with_columns(
            pl.col("trades_closed").fill_null(0),
            pl.col("trade_pnl").fill_null(zero),
            pl.col("trade_fees").fill_null(zero),
        )
        .sort("date")
    )


@dataclass(frozen=True, slots=True)
class PerformanceRollup:
    """What `build_performance` wrote: the summary and the number of days."""

    summary: PerformanceSummary
    days: int


def build_performance(
    conn: duckdb.DuckDBPyConnection, *, annualization: int, as_of: datetime
) -> PerformanceRollup:
    """Replace `daily_performance`, `performance_summary` and `closed_trades` from the synced equity and fills."""
    equity = load_equity(conn)
    trades = load_closed_trades(conn)
    daily = daily_performance_frame(equity, trades)
    returns = daily.select("date", "return") if daily.height else pl.DataFrame(schema={"return": pl.Float64})
    summary = performance_summary(daily=returns, trades=trades, annualization=annualization)
    day_frame = (
        daily.drop("equity")
        .join(daily_closing_equity(conn).with_columns(pl.col("equity").cast(_POLARS_MONEY)), on="date")
        .select(
            "date",
            "equity",
            "return",
            "cumulative_return",
            "drawdown",
            "trades_closed",
            "trade_pnl",
            "trade_fees",
        )
        .with_columns(pl.lit(as_of).alias("as_of"))
        if daily.height
        else pl.DataFrame()
    )
    figures = summary.as_json()
    summary_frame = pl.DataFrame(
        [
            {
                **{k: figures[k] for k in figures if k not in ("total_trades", "annualization")},
                "total_trades": summary.total_trades,
                "annualization": summary.annualization,
                "initial_capital": initial_capital_exact(conn),
                "first_day": daily.get_column("date").min() if daily.height else None,
                "last_day": daily.get_column("date").max() if daily.height else None,
                "as_of": as_of,
            }
        ],
        schema={
            "sharpe_ratio": pl.Float64,
            "sortino_ratio": pl.Float64,
            "max_drawdown": pl.Float64,
            "total_return": pl.Float64,
            "annualized_return": pl.Float64,
            "win_rate": pl.Float64,
            "average_trade_duration_seconds": pl.Float64,
            "profit_factor": pl.Float64,
            "total_trades": pl.Int64,
            "annualization": pl.Int32,
            "initial_capital": _POLARS_MONEY,
            "first_day": pl.Date,
            "last_day": pl.Date,
            "as_of": pl.Datetime("us", "UTC"),
        },
    ).select(
        "sharpe_ratio",
        "sortino_ratio",
        "max_drawdown",
        "total_return",
        "annualized_return",
        "win_rate",
        "average_trade_duration_seconds",
        "total_trades",
        "profit_factor",
        "annualization",
        "initial_capital",
        "first_day",
        "last_day",
        "as_of",
    )
    conn.execute("BEGIN TRANSACTION")
    try:
        _replace(conn, DAILY_PERFORMANCE_DDL, "daily_performance", day_frame)
        _replace(conn, PERFORMANCE_SUMMARY_DDL, "performance_summary", summary_frame)
        _replace(conn, CLOSED_TRADES_DDL, "closed_trades", trades)
        record_rollup(conn, PERFORMANCE, as_of=as_of)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return PerformanceRollup(summary=summary, days=daily.height)


def build_system_metrics(
    conn: duckdb.DuckDBPyConnection, *, as_of: datetime
) -> dict[str, float | int | None]:
    """Replace `system_metrics` and `rejections_by_reason` over all synced orders, API requests and risk events.

    Latency percentiles interpolate linearly (numpy's default); tick-to-order latency is reported in ms.
    """
    conn.execute("BEGIN TRANSACTION")
    try:
        conn.execute(SYSTEM_METRICS_DDL)
        conn.execute(
            """
            INSERT INTO system_metrics
            WITH tick AS (
                SELECT quantile_cont(tick_to_order_us / 1000.0, [0.5, 0.95, 0.99]) AS q
                FROM orders WHERE tick_to_order_us IS NOT NULL AND isfinite(tick_to_order_us)
            ), api AS (
                SELECT quantile_cont(latency_ms, [0.5, 0.95, 0.99]) AS q, count(*) AS n
                FROM api_requests WHERE isfinite(latency_ms)
            ), o AS (
                SELECT count(*) AS submitted, count(*) FILTER (WHERE status = 'rejected') AS rejected FROM orders
            ), breakers AS (
                SELECT count(*) AS n FROM risk_events WHERE halts_trading
            )
            SELECT tick.q[1], tick.q[2], tick.q[3], api.q[1], api.q[2], api.q[3], api.n,
                   o.submitted, o.rejected,
                   CASE WHEN o.submitted > 0 THEN o.rejected / o.submitted END,
                   breakers.n, ?
            FROM tick, api, o, breakers
            """,
            [as_of],
        )
        conn.execute(REJECTIONS_DDL)
        conn.execute(
            """
            INSERT INTO rejections_by_reason
            SELECT CASE WHEN reason = '' THEN 'unspecified' ELSE reason END AS reason, count(*), ?
            FROM orders WHERE status = 'rejected' GROUP BY ALL ORDER BY 2 DESC, 1
            """,
            [as_of],
        )
        record_rollup(conn, SYSTEM, as_of=as_of)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    rows = conn.execute("SELECT * FROM system_metrics").fetchall()
    names = [d[0] for d in conn.execute("SELECT * FROM system_metrics LIMIT 0").description or []]
    return dict(zip(names, rows[0], strict=True)) if rows else {}


def load_signals(conn: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Synced signal values (every computed one) as `timestamp, symbol, signal_type, strength, horizon_bars`."""
    return conn.sql(
        "SELECT timestamp, symbol, signal_type, strength, horizon_bars FROM signals ORDER BY timestamp, symbol"
    ).pl()


def load_bars(conn: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Synced bars as `timestamp, symbol, open, high, low, close, volume`."""
    return conn.sql(
        "SELECT timestamp, symbol, open, high, low, close, volume FROM bars ORDER BY timestamp, symbol"
    ).pl()


def signal_ic_frames(
    signals: pl.DataFrame, bars: pl.DataFrame, trades: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Per-timestamp IC, per (signal type, day) figures and the per-signal-type summary.

    A closed trade counts for the signal type that opened it, on the UTC day it closed.
    """
    ic = information_coefficient(signals, bars)
    per_day_ic = daily_ic(ic)
    per_day_trades = (
        trades.with_columns(pl.col("closed_at").dt.date().alias("date"))
        .group_by("signal_type", "date")
        .agg(
            pl.len().cast(pl.Int64).alias("trades_closed"),
            (pl.col("pnl") > 0).mean().alias("win_rate"),
            pl.col("pnl").sum().alias("pnl_contribution"),
        )
    )
    zero = pl.lit(0, dtype=trades.schema["pnl"])
    daily = (
        per_day_ic.with_columns(pl.col("n_periods").cast(pl.Int64))
        .join(per_day_trades, on=["signal_type", "date"], how="full", coalesce=True)
        .with_columns(
            pl.col("n_periods").fill_null(0),
            pl.col("trades_closed").fill_null(0),
            pl.col("pnl_contribution").fill_null(zero),
        )
        .select(
            "signal_type", "date", "ic_mean", "n_periods", "trades_closed", "win_rate", "pnl_contribution"
        )
        .sort("signal_type", "date")
    )
    ic_rows = pl.DataFrame(
        [
            {
                "signal_type": s.signal_type,
                "ic_mean": _finite_or_none(s.ic_mean),
                "ic_std": _finite_or_none(s.ic_std),
                "ic_ir": _finite_or_none(s.ic_ir),
                "ic_t_stat": _finite_or_none(s.ic_t_stat),
                "n_periods": s.n_periods,
            }
            for s in ic_summary(ic)
        ],
        schema={
            "signal_type": pl.String,
            "ic_mean": pl.Float64,
            "ic_std": pl.Float64,
            "ic_ir": pl.Float64,
            "ic_t_stat": pl.Float64,
            "n_periods": pl.Int64,
        },
    )
    by_type = pnl_by_signal_type(trades).select(
        "signal_type",
        pl.col("n_trades").cast(pl.Int64).alias("trades_closed"),
        "win_rate",
        pl.col("pnl").alias("pnl_contribution"),
    )
    summary = (
        ic_rows.join(by_type, on="signal_type", how="full", coalesce=True)
        .with_columns(
            pl.col("n_periods").fill_null(0),
            pl.col("trades_closed").fill_null(0),
            pl.col("pnl_contribution").fill_null(zero),
        )
        .sort("signal_type")
    )
    return ic, daily, summary


def build_signal_ic(conn: duckdb.DuckDBPyConnection, *, as_of: datetime) -> int:
    """Replace `signal_ic_periods`, `signal_ic` and `signal_summary`; return the number of IC periods."""
    ic, daily, summary = signal_ic_frames(load_signals(conn), load_bars(conn), load_closed_trades(conn))
    stamp = pl.lit(as_of).alias("as_of")
    conn.execute("BEGIN TRANSACTION")
    try:
        _replace(conn, SIGNAL_IC_PERIODS_DDL, "signal_ic_periods", ic)
        _replace(conn, SIGNAL_IC_DDL, "signal_ic", daily.with_columns(stamp) if daily.height else daily)
        _replace(
            conn,
            SIGNAL_SUMMARY_DDL,
            "signal_summary",
            summary.with_columns(stamp) if summary.height else summary,
        )
        record_rollup(conn, SIGNALS, as_of=as_of)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return ic.height


def build_regimes(conn: duckdb.DuckDBPyConnection, *, as_of: datetime) -> int:
    """Replace `regimes`: the regime timeline, one row per spell, from the synced regime changes."""
    conn.execute("BEGIN TRANSACTION")
    try:
        conn.execute(REGIMES_DDL)
        conn.execute(
            """
            INSERT INTO regimes
            SELECT timestamp, lead(timestamp) OVER w, "current", previous, model,
                   epoch(lead(timestamp) OVER w) - epoch(timestamp)
            FROM regime_changes WINDOW w AS (ORDER BY timestamp, id)
            ORDER BY timestamp, id
            """
        )
        record_rollup(conn, REGIMES, as_of=as_of)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    count = scalar(conn, "SELECT count(*) FROM regimes")
    return int(count) if isinstance(count, int) else 0
