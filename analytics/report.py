"""The daily HTML report (README, Reports): one self-contained file, charts inlined as SVG, no scripts, no network."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from html import escape

import duckdb
import polars as pl

from analytics.charts import bar_chart_svg, line_chart_svg, timeline_svg
from analytics.ic import daily_ic, ic_summary, information_coefficient
from analytics.performance import PerformanceSummary, performance_summary
from analytics.returns import daily_returns, drawdown_series
from analytics.rollups import initial_capital, load_bars, load_equity, load_fills, load_signals
from analytics.trades import closed_trades, pnl_by_signal_type

REPORT_CSS = """
body { font-family: sans-serif; margin: 2em auto; max-width: 860px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.5em 0; } td, th { padding: 3px 10px; border-bottom: 1px solid #eee; }
th { text-align: left; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.muted { color: #777; font-size: 0.9em; }
"""

# Annualised figures from fewer daily returns than about a trading month are noise dressed as a rate (five hours
# of gains compound to hundreds of percent a year): the report shows them as n/a, with this reason.
MIN_DAILY_RETURNS_TO_ANNUALIZE = 20
# The unit of every money figure: the account's cash is kept in it (TRADEOS_INITIAL_CASH).
ACCOUNT_CURRENCY = "USD"


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportData:
    """Everything the report shows, cut at the end of `through` (UTC)."""

    through: date
    generated_at: datetime
    summary: PerformanceSummary
    equity: pl.DataFrame
    drawdown: pl.DataFrame
    daily: pl.DataFrame
    pnl_by_signal: pl.DataFrame
    ic_by_signal: pl.DataFrame
    daily_ic: pl.DataFrame
    regimes: list[tuple[datetime, datetime, str]]
    period: tuple[datetime, datetime] | None


def latest_day(conn: duckdb.DuckDBPyConnection) -> date | None:
    """The last UTC day with an equity snapshot, or None before any."""
    rows = conn.execute("SELECT max(timestamp) FROM equity").fetchall()
    newest = rows[0][0] if rows else None
    return newest.astimezone(UTC).date() if isinstance(newest, datetime) else None


def _before(frame: pl.DataFrame, end: datetime, column: str = "timestamp") -> pl.DataFrame:
    return frame.filter(pl.col(column) < end) if frame.height else frame


def _period(conn: duckdb.DuckDBPyConnection, end: datetime) -> tuple[datetime, datetime] | None:
    """The first and last instants with a bar or an equity snapshot before `end`: the span the report covers."""
    rows = conn.execute(
        "SELECT least(min(b), min(e)), greatest(max(b), max(e)) FROM ("
        " SELECT min(timestamp) AS b, NULL::TIMESTAMPTZ AS e FROM bars WHERE timestamp < ?"
        " UNION ALL SELECT NULL, min(timestamp) FROM equity WHERE timestamp < ?"
        " UNION ALL SELECT max(timestamp), NULL FROM bars WHERE timestamp < ?"
        " UNION ALL SELECT NULL, max(timestamp) FROM equity WHERE timestamp < ?)",
        [end, end, end, end],
    ).fetchall()
    first, last = rows[0] if rows else (None, None)
    return (first, last) if isinstance(first, datetime) and isinstance(last, datetime) else None


def _regime_segments(
    conn: duckdb.DuckDBPyConnection, end: datetime, period: tuple[datetime, datetime] | None
) -> list[tuple[datetime, datetime, str]]:
    """The regime timeline over the period, from its first instant: the engine records no change for the regime
    it starts in, so that one is read from the first signals (each carries the regime in force), or else from the
    first change's `previous`."""
    changes = conn.execute(
        'SELECT timestamp, previous, "current" FROM regime_changes WHERE timestamp < ? ORDER BY timestamp, id',
        [end],
    ).fetchall()
    first_change = changes[0][0] if changes else end
    opening = conn.execute(
        "SELECT regime FROM signals WHERE timestamp < ? AND regime IS NOT NULL ORDER BY timestamp, id LIMIT 1",
        [first_change],
    ).fetchall()
    initial = opening[0][0] if opening else changes[0][1] if changes else None
    first_seen, last_seen = period if period is not None else (first_change, end)
    segments: list[tuple[datetime, datetime, str]] = []
    if initial is not None and first_seen < first_change:
        segments.append((first_seen, min(first_change, max(last_seen, first_seen)), str(initial)))
    for index, (start, _, regime) in enumerate(changes):
        stop = changes[index + 1][0] if index + 1 < len(changes) else max(last_seen, start)
        segments.append((start, stop, str(regime)))
    return segments


def equity_drawdown(equity: pl.DataFrame) -> pl.DataFrame:
    """`timestamp, drawdown`: the positive fraction of every equity snapshot below its high-water mark (the first
    snapshot, the initial capital, is the first mark). Both the report's drawdown chart and its max drawdown."""
    if equity.height == 0:
        return pl.DataFrame(schema={"timestamp": pl.Datetime("us", "UTC"), "drawdown": pl.Float64})
    return equity.select(
        "timestamp", pl.Series("drawdown", drawdown_series(equity.get_column("total_value")))
    )


def gather(
    conn: duckdb.DuckDBPyConnection, *, through: date, annualization: int, generated_at: datetime
) -> ReportData:
    """Compute the report's figures from the synced tables, using only rows up to the end of `through`."""
    end = datetime.combine(through + timedelta(days=1), time(), tzinfo=UTC)
    equity = _before(load_equity(conn), end)
    trades = closed_trades(_before(load_fills(conn), end))
    capital = initial_capital(equity)
    daily = (
        daily_returns(equity, initial_capital=capital)
        if capital is not None
        else pl.DataFrame(schema={"date": pl.Date, "equity": pl.Float64, "return": pl.Float64})
    )
    ic = information_coefficient(_before(load_signals(conn), end), _before(load_bars(conn), end))
    period = _period(conn, end)
    ic_rows = [
        {"signal_type": s.signal_type, "ic_mean": s.ic_mean, "ic_ir": s.ic_ir, "n_periods": s.n_periods}
        for s in ic_summary(ic)
    ]
    return ReportData(
        through=through,
        generated_at=generated_at,
        summary=performance_summary(daily=daily, trades=trades, annualization=annualization),
        equity=equity,
        drawdown=equity_drawdown(equity),
        daily=daily,
        pnl_by_signal=pnl_by_signal_type(trades),
        ic_by_signal=pl.DataFrame(
            ic_rows,
            schema={
                "signal_type": pl.String,
                "ic_mean": pl.Float64,
                "ic_ir": pl.Float64,
                "n_periods": pl.Int64,
            },
        ),
        daily_ic=daily_ic(ic),
        regimes=_regime_segments(conn, end, period),
        period=period,
    )


def _not_available(reason: str) -> str:
    return f'n/a <span class="muted">({escape(reason)})</span>'


def format_figure(
    value: float | int | None, *, percent: bool = False, digits: int = 2, undefined: str = "undefined"
) -> str:
    """A figure as the report prints it: grouped digits or a percentage, n/a with `undefined` as the reason."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return _not_available(undefined)
    if percent:
        return f"{value * 100:.{digits}f} %"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{digits}f}"


def html_table(header: list[str], rows: list[list[str]]) -> str:
    """A table of already-escaped cells, every column after the first right-aligned as numbers."""
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(f'<td class="num">{cell}</td>' if i else f"<td>{cell}</td>" for i, cell in enumerate(row))
        + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def render(
    data: ReportData,
    *,
    currency: str = ACCOUNT_CURRENCY,
    title: str | None = None,
    sections: Sequence[tuple[str, str]] = (),
) -> str:
    """The report as one HTML document; money in `currency`. `title` replaces the daily report's heading and
    `sections` (heading, HTML) are appended, so another report (a backtest's) shows the same figures and charts."""
    s = data.summary
    days = data.daily.height
    too_short = days < MIN_DAILY_RETURNS_TO_ANNUALIZE
    short_reason = f"needs at least {MIN_DAILY_RETURNS_TO_ANNUALIZE} daily returns; {days} so far"

    def annualized(value: float, *, percent: bool = False) -> str:
        return _not_available(short_reason) if too_short else format_figure(value, percent=percent)

    no_trades = "no closed trades yet"
    drawdowns = data.drawdown.get_column("drawdown").to_list() if data.drawdown.height else []
    max_drawdown = max((d for d in drawdowns if math.isfinite(d)), default=math.nan)
    key_figures = html_table(
        ["figure", "value"],
        [
            ["Total return", format_figure(s.total_return, percent=True, undefined="no equity recorded")],
            ["Annualized return", annualized(s.annualized_return, percent=True)],
            ["Sharpe ratio", annualized(s.sharpe_ratio)],
            ["Sortino ratio", annualized(s.sortino_ratio)],
            ["Max drawdown", format_figure(max_drawdown, percent=True, undefined="no equity recorded")],
            ["Closed trades", format_figure(s.total_trades)],
            ["Win rate", format_figure(s.win_rate, percent=True, digits=1, undefined=no_trades)],
            [
                "Profit factor",
                format_figure(s.profit_factor, undefined=no_trades if not s.total_trades else "no loss"),
            ],
            [
                "Average trade duration (min)",
                format_figure(s.average_trade_duration_seconds / 60.0, undefined=no_trades),
            ],
            ["Days", format_figure(days)],
            ["Annualization", format_figure(s.annualization)],
        ],
    )
    stamps = data.equity.get_column("timestamp").to_list() if data.equity.height else []
    values = data.equity.get_column("total_value").to_list() if data.equity.height else []
    drawdown = [-100.0 * d for d in drawdowns]
    signal_rows = data.pnl_by_signal.join(
        data.ic_by_signal, on="signal_type", how="full", coalesce=True
    ).sort("signal_type")
    per_signal = html_table(
        ["signal type", "closed trades", "win rate", f"P&L ({currency})", "mean IC", "IC IR", "IC periods"],
        [
            [
                escape(str(r["signal_type"])),
                format_figure(r["n_trades"]),
                format_figure(r["win_rate"], percent=True, digits=1, undefined=no_trades),
                format_figure(r["pnl"], undefined=no_trades),
                format_figure(r["ic_mean"], digits=4, undefined="no IC period yet"),
                format_figure(r["ic_ir"], digits=3, undefined="fewer than two IC periods"),
                format_figure(r["n_periods"]),
            ]
            for r in signal_rows.iter_rows(named=True)
        ],
    )
    ic_days = sorted(set(data.daily_ic.get_column("date").to_list())) if data.daily_ic.height else []
    ic_lines = {
        str(signal_type): [
            next(
                (
                    float(v)
                    for d, v in zip(group["date"].to_list(), group["ic_mean"].to_list(), strict=True)
                    if d == day
                ),
                math.nan,
            )
            for day in ic_days
        ]
        for (signal_type,), group in data.daily_ic.group_by("signal_type", maintain_order=True)
    }
    charts = [
        line_chart_svg(stamps, {"equity": values}, title="Equity", y_label=f"total value ({currency})"),
        line_chart_svg(
            stamps,
            {"drawdown": drawdown},
            title="Drawdown",
            y_label="% below high-water mark",
            mark_lowest=lambda lowest: f"max drawdown {-lowest:.2f} %",
        ),
        bar_chart_svg(
            data.pnl_by_signal.get_column("signal_type").to_list(),
            data.pnl_by_signal.get_column("pnl").to_list(),
            title="P&L of closed trades by signal type",
            y_label=f"P&L ({currency})",
        ),
        bar_chart_svg(
            data.ic_by_signal.get_column("signal_type").to_list(),
            [v if v is not None else math.nan for v in data.ic_by_signal.get_column("ic_mean").to_list()],
            title="Mean IC by signal type",
            y_label="Spearman IC",
        ),
        line_chart_svg(ic_days, ic_lines, title="Daily mean IC by signal type", y_label="IC"),
        timeline_svg(
            data.regimes,
            title="Market regime",
            start=data.period[0] if data.period else None,
            end=data.period[1] if data.period else None,
        ),
    ]
    generated = data.generated_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    heading = title or f"TRADEOS daily report — {data.through.isoformat()}"
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>{escape(title) if title else f'TRADEOS report {data.through.isoformat()}'}</title>",
            f"<style>{REPORT_CSS}</style></head><body>",
            f"<h1>{escape(heading)}</h1>",
            f'<p class="muted">All history through {data.through.isoformat()} (UTC); generated {generated}. '
            "Returns use each UTC day's last equity value; drawdown uses every equity snapshot; a closed trade is "
            f"a position from flat to flat. Money in {escape(currency)}. Annualized figures need at least "
            f"{MIN_DAILY_RETURNS_TO_ANNUALIZE} daily returns.</p>",
            "<h2>Key figures</h2>",
            key_figures,
            "<h2>Equity and drawdown</h2>",
            charts[0],
            charts[1],
            "<h2>Signals</h2>",
            charts[2],
            charts[3],
            charts[4],
            per_signal,
            "<h2>Regimes</h2>",
            charts[5],
            *(f"<h2>{escape(name)}</h2>\n{body}" for name, body in sections),
            "</body></html>",
        ]
    )


def build_report(
    conn: duckdb.DuckDBPyConnection, *, through: date, annualization: int, generated_at: datetime
) -> str:
    """Gather the figures through a day and render them."""
    return render(gather(conn, through=through, annualization=annualization, generated_at=generated_at))
