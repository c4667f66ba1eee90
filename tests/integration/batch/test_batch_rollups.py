"""The rollup tables equal the reference libraries and an independent recomputation on the same synced data."""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from batch_records import BAR_SECONDS, SIGNAL_SPECS, SystemOfRecord

from analytics.warehouse import Warehouse
from flows.metrics_rollup import rollup_metrics
from flows.signal_ic import rollup_signal_ic
from flows.sync import sync

AS_OF = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)


@pytest.fixture
def rolled_up(loaded_database: str, tradeos_home: Path) -> Path:
    sync(tradeos_home, loaded_database)
    rollup_metrics(tradeos_home, annualization=252, as_of=AS_OF)
    rollup_signal_ic(tradeos_home, as_of=AS_OF)
    return tradeos_home


def _rows(home: Path, sql: str) -> list[dict[str, Any]]:
    with Warehouse(home).reader() as conn:
        cursor = conn.execute(sql)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _daily_returns(record: SystemOfRecord) -> pd.Series:
    """docs/metrics.md, computed here from the rows the factory wrote."""
    last: dict[Any, Decimal] = {}
    for snapshot in sorted(record.equity, key=lambda s: s["timestamp"]):
        last[snapshot["timestamp"].astimezone(UTC).date()] = snapshot["total_value"]
    days = sorted(last)
    values = [float(record.equity[0]["total_value"])] + [float(last[d]) for d in days]
    returns = [values[i] / values[i - 1] - 1.0 for i in range(1, len(values))]
    return pd.Series(returns, index=pd.DatetimeIndex([pd.Timestamp(d, tz="UTC") for d in days]))


def _closed_trades(record: SystemOfRecord) -> list[dict[str, Any]]:
    """Flat to flat per symbol, walked fill by fill."""
    open_trades: dict[str, dict[str, Any]] = {}
    position: dict[str, int] = defaultdict(int)
    closed = []
    for fill in sorted(record.fills, key=lambda f: (f["timestamp"], f["id"])):
        symbol = fill["symbol"]
        trade = open_trades.setdefault(
            symbol, {"opened_at": fill["timestamp"], "signal_type": fill["signal_type"], "pnl": Decimal(0)}
        )
        trade["pnl"] += fill["realized_pnl"] - fill["fee"]
        position[symbol] += fill["quantity"] if fill["side"] == "buy" else -fill["quantity"]
        if position[symbol] == 0:
            trade["closed_at"] = fill["timestamp"]
            trade["symbol"] = symbol
            closed.append(open_trades.pop(symbol))
    return closed


def test_performance_equals_empyrical_on_the_same_daily_returns(
    rolled_up: Path, system_of_record: SystemOfRecord
) -> None:
    import empyrical

    returns = _daily_returns(system_of_record)
    assert len(returns) >= 4
    [summary] = _rows(rolled_up, "SELECT * FROM performance_summary")

    assert summary["sharpe_ratio"] == pytest.approx(
        empyrical.sharpe_ratio(returns, risk_free=0.0, annualization=252), rel=1e-9
    )
    assert summary["sortino_ratio"] == pytest.approx(
        empyrical.sortino_ratio(returns, required_return=0.0, annualization=252), rel=1e-9
    )
    assert summary["annualized_return"] == pytest.approx(
        empyrical.annual_return(returns, annualization=252), rel=1e-9
    )
    assert summary["max_drawdown"] == pytest.approx(-empyrical.max_drawdown(returns), rel=1e-9)
    assert summary["total_return"] == pytest.approx(empyrical.cum_returns_final(returns), rel=1e-9)
    assert summary["annualization"] == 252
    assert summary["as_of"] == AS_OF

    daily = _rows(rolled_up, 'SELECT date, "return", drawdown FROM daily_performance ORDER BY date')
    assert [d["date"] for d in daily] == [ts.date() for ts in returns.index]
    assert [d["return"] for d in daily] == pytest.approx(list(returns), rel=1e-12)
    assert max(d["drawdown"] for d in daily) == pytest.approx(summary["max_drawdown"], rel=1e-9)


def test_trade_statistics_equal_a_walk_through_the_fills(
    rolled_up: Path, system_of_record: SystemOfRecord
) -> None:
    trades = _closed_trades(system_of_record)
    assert len(trades) > 50
    wins = [t for t in trades if t["pnl"] > 0]
    durations = [(t["closed_at"] - t["opened_at"]).total_seconds() for t in trades]
    [summary] = _rows(rolled_up, "SELECT * FROM performance_summary")

    assert summary["total_trades"] == len(trades)
    assert summary["win_rate"] == pytest.approx(len(wins) / len(trades), rel=1e-12)
    assert summary["average_trade_duration_seconds"] == pytest.approx(np.mean(durations), rel=1e-12)
    gross_profit = sum(float(t["pnl"]) for t in wins)
    gross_loss = -sum(float(t["pnl"]) for t in trades if t["pnl"] < 0)
    assert summary["profit_factor"] == pytest.approx(gross_profit / gross_loss, rel=1e-9)

    table = _rows(rolled_up, "SELECT * FROM closed_trades ORDER BY closed_at, symbol")
    expected = sorted(trades, key=lambda t: (t["closed_at"], t["symbol"]))
    assert [(t["symbol"], t["opened_at"], t["closed_at"], t["signal_type"]) for t in table] == [
        (t["symbol"], t["opened_at"], t["closed_at"], t["signal_type"]) for t in expected
    ]
    # Money is exact: the rollup's DECIMAL P&L equals the Decimal walk to the last digit.
    assert [t["pnl"] for t in table] == [t["pnl"] for t in expected]


def test_ic_per_timestamp_equals_alphalens(rolled_up: Path, system_of_record: SystemOfRecord) -> None:
    from alphalens.performance import factor_information_coefficient

    closes = pd.DataFrame(
        [(b.timestamp, b.symbol, b.close) for b in system_of_record.bars], columns=["date", "asset", "close"]
    ).pivot(index="date", columns="asset", values="close")
    signals = pd.DataFrame(system_of_record.signals)
    table = pd.DataFrame(_rows(rolled_up, "SELECT signal_type, timestamp, ic FROM signal_ic_periods"))
    for signal_type, (_, horizon) in SIGNAL_SPECS.items():
        forward = (closes.shift(-horizon) / closes - 1.0).stack().rename(f"{horizon * BAR_SECONDS // 60}m")
        factor = (
            signals[signals.signal_type == signal_type]
            .rename(columns={"timestamp": "date", "symbol": "asset", "strength": "factor"})
            .set_index(["date", "asset"])["factor"]
        )
        factor_data = pd.concat([forward, factor], axis=1, join="inner").dropna()
        reference = factor_information_coefficient(factor_data).iloc[:, 0].dropna()
        ours = table[table.signal_type == signal_type].set_index("timestamp")["ic"].sort_index()

        assert len(ours) == len(reference) > 500
        assert list(ours.index) == list(reference.index)
        np.testing.assert_allclose(ours.to_numpy(), reference.to_numpy(), rtol=1e-9, atol=1e-12)


def test_signal_summary_and_daily_rows_agree_with_their_definitions(
    rolled_up: Path, system_of_record: SystemOfRecord
) -> None:
    trades = _closed_trades(system_of_record)
    periods = pd.DataFrame(_rows(rolled_up, "SELECT signal_type, timestamp, ic FROM signal_ic_periods"))
    summary = {row["signal_type"]: row for row in _rows(rolled_up, "SELECT * FROM signal_summary")}
    assert set(summary) == set(SIGNAL_SPECS)
    for signal_type, row in summary.items():
        ic = periods[periods.signal_type == signal_type]["ic"].to_numpy()
        mean, std = ic.mean(), ic.std(ddof=1)
        assert row["n_periods"] == len(ic)
        assert row["ic_mean"] == pytest.approx(mean, rel=1e-9)
        assert row["ic_std"] == pytest.approx(std, rel=1e-9)
        assert row["ic_ir"] == pytest.approx(mean / std, rel=1e-9)
        assert row["ic_t_stat"] == pytest.approx(mean / (std / math.sqrt(len(ic))), rel=1e-9)
        opened = [t for t in trades if t["signal_type"] == signal_type]
        assert row["trades_closed"] == len(opened)
        assert row["pnl_contribution"] == sum((t["pnl"] for t in opened), Decimal(0))
        assert row["win_rate"] == pytest.approx(sum(t["pnl"] > 0 for t in opened) / len(opened))

    daily = _rows(rolled_up, "SELECT * FROM signal_ic ORDER BY signal_type, date")
    assert {(r["signal_type"], r["date"]) for r in daily} >= {
        (t["signal_type"], t["closed_at"].date()) for t in trades
    }
    assert sum(r["n_periods"] for r in daily) == len(periods)
    assert sum(r["trades_closed"] for r in daily) == len(trades)
    assert sum(r["pnl_contribution"] for r in daily) == sum((t["pnl"] for t in trades), Decimal(0))


def test_system_metrics_count_orders_rejections_breakers_and_latency(
    rolled_up: Path, system_of_record: SystemOfRecord
) -> None:
    [row] = _rows(rolled_up, "SELECT * FROM system_metrics")
    orders = system_of_record.orders
    rejected = [o for o in orders if o["status"] == "rejected"]
    assert rejected
    assert row["orders_submitted"] == len(orders)
    assert row["orders_rejected"] == len(rejected)
    assert row["rejection_rate"] == pytest.approx(len(rejected) / len(orders))
    assert row["circuit_breaker_activations"] == sum(e["halts_trading"] for e in system_of_record.risk_events)
    tick_ms = np.array([o["tick_to_order_us"] for o in orders]) / 1000.0
    api_ms = np.array([r["latency_ms"] for r in system_of_record.api_requests])
    assert [
        row["tick_to_order_p50_ms"],
        row["tick_to_order_p95_ms"],
        row["tick_to_order_p99_ms"],
    ] == pytest.approx(list(np.percentile(tick_ms, [50, 95, 99])), rel=1e-9)
    assert [row["api_p50_ms"], row["api_p95_ms"], row["api_p99_ms"]] == pytest.approx(
        list(np.percentile(api_ms, [50, 95, 99])), rel=1e-9
    )
    by_reason = {r["reason"]: r["orders"] for r in _rows(rolled_up, "SELECT * FROM rejections_by_reason")}
    expected: dict[str, int] = defaultdict(int)
    for order in rejected:
        expected[order["reason"]] += 1
    assert by_reason == expected


def test_regime_timeline_has_one_spell_per_change(rolled_up: Path, system_of_record: SystemOfRecord) -> None:
    spells = _rows(rolled_up, "SELECT * FROM regimes ORDER BY started_at")
    changes = system_of_record.regime_changes
    assert [s["regime"] for s in spells] == [c["current"] for c in changes]
    assert [s["started_at"] for s in spells] == [c["timestamp"] for c in changes]
    assert [s["ended_at"] for s in spells[:-1]] == [c["timestamp"] for c in changes[1:]]
    assert spells[-1]["ended_at"] is None
    assert (
        spells[0]["duration_seconds"] == (changes[1]["timestamp"] - changes[0]["timestamp"]).total_seconds()
    )


def test_rollups_on_an_empty_system_of_record_are_empty_not_errors(
    database_url: str, tradeos_home: Path
) -> None:
    from batch_records import apply_schema

    apply_schema(database_url)
    sync(tradeos_home, database_url)
    rollup_metrics(tradeos_home, annualization=252, as_of=AS_OF)
    rollup_signal_ic(tradeos_home, as_of=AS_OF)
    [summary] = _rows(tradeos_home, "SELECT * FROM performance_summary")
    assert summary["total_trades"] == 0
    assert summary["sharpe_ratio"] is None
    assert _rows(tradeos_home, "SELECT * FROM signal_summary") == []
    [system] = _rows(tradeos_home, "SELECT * FROM system_metrics")
    assert system["orders_submitted"] == 0
    assert system["rejection_rate"] is None


MONEY_COLUMNS = {
    "daily_performance": ("equity", "trade_pnl", "trade_fees"),
    "performance_summary": ("initial_capital",),
    "closed_trades": ("pnl", "fees"),
    "signal_ic": ("pnl_contribution",),
    "signal_summary": ("pnl_contribution",),
}


def test_money_in_the_rollups_is_exact_decimal(rolled_up: Path, system_of_record: SystemOfRecord) -> None:
    types = {
        (r["table_name"], r["column_name"]): r["data_type"]
        for r in _rows(
            rolled_up, "SELECT table_name, column_name, data_type FROM duckdb_columns() WHERE NOT internal"
        )
    }
    for table, columns in MONEY_COLUMNS.items():
        for column in columns:
            assert types[(table, column)] == "DECIMAL(24,8)", (table, column)
    assert types[("daily_performance", "return")] == "DOUBLE"  # ratios stay floating point

    last: dict[Any, Decimal] = {}
    for snapshot in sorted(system_of_record.equity, key=lambda s: s["timestamp"]):
        last[snapshot["timestamp"].astimezone(UTC).date()] = snapshot["total_value"]
    daily = _rows(
        rolled_up, "SELECT date, equity, trade_pnl, trade_fees FROM daily_performance ORDER BY date"
    )
    assert {d["date"]: d["equity"] for d in daily} == last
    trades = _closed_trades(system_of_record)
    assert sum(d["trade_pnl"] for d in daily) == sum((t["pnl"] for t in trades), Decimal(0))
    [summary] = _rows(rolled_up, "SELECT initial_capital FROM performance_summary")
    assert summary["initial_capital"] == system_of_record.equity[0]["total_value"]
