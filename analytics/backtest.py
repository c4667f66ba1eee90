"""A backtest's figures, its results file and its report, from the frames of one run (live/backtest.py).

The figures are the daily report's, computed by the same functions (returns, closed trades, performance, IC), so a
backtest and `tradeos up` on the same data say the same thing. The results file holds the analytics tables' columns
(analytics/warehouse.py) plus `summary`, so the daily report's code reads it as it reads the analytics DuckDB.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from html import escape
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from analytics.charts import bar_chart_svg
from analytics.ic import ic_summary, information_coefficient
from analytics.performance import performance_summary
from analytics.report import equity_drawdown, format_figure, gather, html_table, latest_day, render
from analytics.returns import daily_returns
from analytics.rollups import initial_capital, load_bars, load_fills, load_signals
from analytics.trades import closed_trades
from analytics.warehouse import SYNCED_TABLES, configure, table_ddl
from live.regime import DEFAULT_REGIME

RESULTS_NAME = "results.duckdb"
REPORT_NAME = "report.html"
# The tables of a results file with the analytics DuckDB's columns; `summary` is added beside them.
RESULT_TABLES: tuple[str, ...] = (
    "orders",
    "fills",
    "equity",
    "signals",
    "risk_events",
    "regime_changes",
    "bars",
)
_SCHEMAS = {table.name: table for table in SYNCED_TABLES if table.name in RESULT_TABLES}


@dataclass(frozen=True, slots=True, kw_only=True)
class BacktestSummary:
    """One run's key figures. Money exact (Decimal); ratios float, NaN where undefined (null in JSON)."""

    run_id: str
    data: str
    strategy: str
    params: Mapping[str, object]  # as the strategy took them
    profile: str
    regime_model: str
    first_bar: datetime | None
    last_bar: datetime | None
    bars: int
    symbols: int
    signals: int
    orders: int
    orders_rejected: int
    fills: int
    risk_events: int
    initial_cash: Decimal
    final_equity: Decimal
    net_pnl: Decimal  # final equity - initial cash: realized + unrealized - fees
    realized_pnl: Decimal  # gross, of every fill (average cost)
    fees: Decimal
    total_return: float
    annualized_return: float
    sharpe_ratio: float
    sortino_ratio: float
    max_drawdown: float  # over every equity snapshot, as the report's
    total_trades: int
    win_rate: float
    profit_factor: float
    average_trade_duration_seconds: float
    annualization: int
    seconds: float = field(compare=False)  # wall time of the engine run and the figures

    def as_json(self) -> dict[str, Any]:
        """JSON-ready: money as exact decimal strings, times ISO 8601 UTC, NaN and ±inf as null."""
        return {name: _json_value(value) for name, value in asdict(self).items()}

    def frame(self) -> pl.DataFrame:
        """The `summary` table's one row: money DECIMAL(24, 8), times UTC, params as JSON text."""
        row = asdict(self)
        row["params"] = json.dumps(dict(self.params), sort_keys=True)
        schema: dict[str, pl.DataType] = {}
        for name, value in row.items():
            if isinstance(value, Decimal):
                schema[name] = pl.Decimal(24, 8)
            elif isinstance(value, datetime) or name in ("first_bar", "last_bar"):
                schema[name] = pl.Datetime("us", "UTC")
            elif isinstance(value, bool):
                schema[name] = pl.Boolean()
            elif isinstance(value, int):
                schema[name] = pl.Int64()
            elif isinstance(value, float):
                schema[name] = pl.Float64()
            else:
                schema[name] = pl.String()
        return pl.DataFrame([row], schema=schema, orient="row")


def _json_value(value: object) -> object:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return dict(value)
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class Figures:
    """What `figures` computes from a run's frames (the rest of a summary is the run's own description)."""

    initial_cash: Decimal
    final_equity: Decimal
    realized_pnl: Decimal
    fees: Decimal
    total_return: float
    annualized_return: float
    sharpe_ratio: float
    sortino_ratio: float
    max_drawdown: float
    total_trades: int
    win_rate: float
    profit_factor: float
    average_trade_duration_seconds: float
    annualization: int


def float_equity(equity: pl.DataFrame) -> pl.DataFrame:
    """`timestamp, total_value, cash` as floats, in time order: what `analytics.rollups.load_equity` reads."""
    return equity.select(
        "timestamp", pl.col("total_value").cast(pl.Float64), pl.col("cash").cast(pl.Float64)
    ).sort("timestamp", maintain_order=True)


def float_fills(fills: pl.DataFrame) -> pl.DataFrame:
    """Fills with money as floats, in record order: what `analytics.rollups.load_fills` reads."""
    return fills.with_columns(pl.col("price", "fee", "realized_pnl").cast(pl.Float64)).sort(
        "timestamp", "id", maintain_order=True
    )


def figures(frames: Mapping[str, pl.DataFrame], *, initial_cash: Decimal, annualization: int) -> Figures:
    """The key figures of a run: performance as the daily report computes it, money summed exactly."""
    equity = float_equity(frames["equity"])
    trades = closed_trades(float_fills(frames["fills"]))
    capital = initial_capital(equity)
    daily = (
        daily_returns(equity, initial_capital=capital)
        if capital is not None
        else pl.DataFrame(schema={"date": pl.Date, "equity": pl.Float64, "return": pl.Float64})
    )
    performance = performance_summary(daily=daily, trades=trades, annualization=annualization)
    drawdowns = equity_drawdown(equity).get_column("drawdown")
    exact_equity = frames["equity"].get_column("total_value")
    fills = frames["fills"]
    return Figures(
        initial_cash=initial_cash,
        final_equity=_decimal(exact_equity[-1]) if exact_equity.len() else initial_cash,
        realized_pnl=_decimal(fills.get_column("realized_pnl").sum()),
        fees=_decimal(fills.get_column("fee").sum()),
        total_return=performance.total_return,
        annualized_return=performance.annualized_return,
        sharpe_ratio=performance.sharpe_ratio,
        sortino_ratio=performance.sortino_ratio,
        max_drawdown=float(drawdowns.max()) if drawdowns.len() else math.nan,  # type: ignore[arg-type]
        total_trades=performance.total_trades,
        win_rate=performance.win_rate,
        profit_factor=performance.profit_factor,
        average_trade_duration_seconds=performance.average_trade_duration_seconds,
        annualization=annualization,
    )


def _decimal(value: object) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(0)


def write_results(path: Path, frames: Mapping[str, pl.DataFrame], summary: BacktestSummary) -> None:
    """Writes the results file whole, or not at all: built beside `path` and renamed over it at the end."""
    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)
    conn = configure(duckdb.connect(str(partial)))
    try:
        conn.execute("BEGIN TRANSACTION")
        for name in RESULT_TABLES:
            table = _SCHEMAS[name]
            conn.execute(table_ddl(table))
            frame = frames[name].select(table.column_names)
            if frame.height:
                conn.register("_results_frame", frame.to_arrow())
                try:
                    conn.execute(f'INSERT INTO "{name}" SELECT * FROM _results_frame')
                finally:
                    conn.unregister("_results_frame")
        conn.register("_summary_frame", summary.frame().to_arrow())
        conn.execute("CREATE TABLE summary AS SELECT * FROM _summary_frame")
        conn.unregister("_summary_frame")
        conn.execute("COMMIT")
        conn.execute("CHECKPOINT")
    finally:
        conn.close()
    os.replace(partial, path)


def _regime_at(times: pl.DataFrame, regime_changes: pl.DataFrame, column: str) -> pl.DataFrame:
    """`times` with `regime`: the one in force at `column` (the engine's default before its first change)."""
    changes = regime_changes.select(pl.col("timestamp").alias("_at"), pl.col("current").alias("regime")).sort(
        "_at"
    )
    return (
        times.sort(column)
        .join_asof(changes, left_on=column, right_on="_at", strategy="backward")
        .drop("_at")
        .with_columns(pl.col("regime").fill_null(DEFAULT_REGIME))
    )


def by_regime(
    *, signals: pl.DataFrame, bars: pl.DataFrame, trades: pl.DataFrame, regime_changes: pl.DataFrame
) -> pl.DataFrame:
    """`regime, signal_type, n_trades, pnl, mean IC, IC IR, IC periods`: closed trades by the regime in force when
    they opened and the signal type that opened them; each timestamp's IC by the regime in force then."""
    trade_rows = _regime_at(trades.select("opened_at", "signal_type", "pnl"), regime_changes, "opened_at")
    pnl = trade_rows.group_by("regime", "signal_type").agg(
        pl.len().cast(pl.Int64).alias("n_trades"), pl.col("pnl").sum().cast(pl.Float64).alias("pnl")
    )
    ic = information_coefficient(signals, bars)
    ic_rows = _regime_at(ic, regime_changes, "timestamp")
    summaries = [
        {
            "regime": regime,
            "signal_type": s.signal_type,
            "ic_mean": s.ic_mean,
            "ic_ir": s.ic_ir,
            "n_periods": s.n_periods,
        }
        for (regime,), group in ic_rows.group_by("regime", maintain_order=True)
        for s in ic_summary(group)
    ]
    ic_frame = pl.DataFrame(
        summaries,
        schema={
            "regime": pl.String,
            "signal_type": pl.String,
            "ic_mean": pl.Float64,
            "ic_ir": pl.Float64,
            "n_periods": pl.Int64,
        },
    )
    return (
        pnl.join(ic_frame, on=["regime", "signal_type"], how="full", coalesce=True)
        .with_columns(pl.col("n_trades").fill_null(0), pl.col("n_periods").fill_null(0))
        .sort("regime", "signal_type")
    )


def _regime_section(table: pl.DataFrame, currency: str) -> str:
    totals = table.group_by("regime").agg(pl.col("pnl").sum()).sort("regime")
    chart = bar_chart_svg(
        totals.get_column("regime").to_list(),
        totals.get_column("pnl").fill_null(0.0).to_list(),
        title="P&L of closed trades by regime (at opening)",
        y_label=f"P&L ({currency})",
    )
    rows = [
        [
            escape(str(r["regime"])),
            escape(str(r["signal_type"])),
            format_figure(r["n_trades"]),
            format_figure(r["pnl"], undefined="no closed trades"),
            format_figure(r["ic_mean"], digits=4, undefined="no IC period"),
            format_figure(r["ic_ir"], digits=3, undefined="fewer than two IC periods"),
            format_figure(r["n_periods"]),
        ]
        for r in table.iter_rows(named=True)
    ]
    header = ["regime", "signal type", "closed trades", f"P&L ({currency})", "mean IC", "IC IR", "IC periods"]
    return "\n".join([chart, html_table(header, rows)])


def _run_section(summary: BacktestSummary) -> str:
    params = ", ".join(f"{k}={v}" for k, v in sorted(summary.params.items())) or "none"
    rows = [
        ["Data", escape(summary.data)],
        ["Strategy", escape(f"{summary.strategy} ({params})")],
        ["Profile", escape(summary.profile)],
        ["Regime model", escape(summary.regime_model)],
        ["Bars", format_figure(summary.bars)],
        ["Orders (rejected)", f"{summary.orders:,} ({summary.orders_rejected:,})"],
        ["Fills", format_figure(summary.fills)],
        ["Risk events", format_figure(summary.risk_events)],
        ["Initial cash", escape(f"{summary.initial_cash:,.2f}")],
        ["Final equity", escape(f"{summary.final_equity:,.2f}")],
        ["Net P&L", escape(f"{summary.net_pnl:,.2f}")],
        ["Fees", escape(f"{summary.fees:,.2f}")],
    ]
    return html_table(["run", escape(summary.run_id)], rows)


def write_report(
    results: Path, report: Path, summary: BacktestSummary, *, generated_at: datetime, currency: str = "USD"
) -> None:
    """The daily report's figures and charts over the whole run, with P&L and IC by regime and signal type."""
    conn = configure(duckdb.connect(str(results), read_only=True))
    try:
        through = latest_day(conn) or generated_at.astimezone(UTC).date()
        data = gather(conn, through=through, annualization=summary.annualization, generated_at=generated_at)
        table = by_regime(
            signals=load_signals(conn),
            bars=load_bars(conn),
            trades=closed_trades(load_fills(conn)),
            regime_changes=conn.sql(
                'SELECT timestamp, "current" FROM regime_changes ORDER BY timestamp, id'
            ).pl(),
        )
    finally:
        conn.close()
    html = render(
        data,
        currency=currency,
        title=f"TRADEOS backtest {summary.run_id}",
        sections=[
            ("Run", _run_section(summary)),
            ("By regime and signal type", _regime_section(table, currency)),
        ],
    )
    partial = report.with_name(report.name + ".partial")
    partial.write_text(html, encoding="utf-8")
    os.replace(partial, report)
