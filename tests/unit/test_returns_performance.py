"""Daily returns and performance figures equal empyrical-reloaded's on the same returns (docs/metrics.md)."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

import empyrical
import numpy as np
import polars as pl
import pytest

from analytics.performance import (
    PerformanceSummary,
    annualized_return,
    max_drawdown,
    performance_summary,
    sharpe_ratio,
    sortino_ratio,
    total_return,
)
from analytics.returns import daily_equity, daily_returns, drawdown_series
from analytics.trades import closed_trades

INITIAL_CAPITAL = 100_000.0


def _equity_history(n_days: int = 400, seed: int = 11) -> pl.DataFrame:
    """Several snapshots a day over n_days, with a bull run, a deep drawdown and a recovery."""
    rng = np.random.default_rng(seed)
    drift = np.concatenate(
        [
            np.full(n_days // 3, 0.0015),
            np.full(n_days // 4, -0.004),
            np.full(n_days - n_days // 3 - n_days // 4, 0.002),
        ]
    )
    daily = drift + rng.normal(0.0, 0.012, n_days)
    timestamps: list[datetime] = []
    values: list[float] = []
    value = INITIAL_CAPITAL
    start = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)
    timestamps.append(start - timedelta(hours=1))
    values.append(INITIAL_CAPITAL)  # the first snapshot is the initial capital, on day one
    for day, day_return in enumerate(daily):
        intraday = rng.normal(0.0, 0.003, 5)
        steps = np.append(intraday, np.log1p(day_return) - intraday.sum())
        for k, step in enumerate(steps):
            value *= math.exp(step)
            timestamps.append(start + timedelta(days=day, hours=k))
            values.append(value)
    return pl.DataFrame({"timestamp": timestamps, "total_value": values})


def _returns() -> np.ndarray:
    return daily_returns(_equity_history(), initial_capital=INITIAL_CAPITAL)["return"].to_numpy()


def test_daily_equity_is_the_last_value_of_each_utc_day() -> None:
    equity = pl.DataFrame(
        {
            "timestamp": [
                datetime(2024, 5, 1, 9, tzinfo=UTC),
                datetime(2024, 5, 1, 23, 59, tzinfo=UTC),
                datetime(2024, 5, 3, 0, 0, tzinfo=UTC),
                datetime(2024, 5, 2, 12, tzinfo=UTC),
            ],
            "total_value": [100.0, 104.0, 99.0, 110.0],
        }
    )

    days = daily_equity(equity, initial_capital=100.0)

    assert days.to_dict(as_series=False) == {
        "date": [date(2024, 5, 1), date(2024, 5, 2), date(2024, 5, 3)],
        "equity": [104.0, 110.0, 99.0],
    }


def test_daily_equity_uses_the_utc_day_of_a_non_utc_timestamp() -> None:
    equity = pl.DataFrame(
        {
            "timestamp": [datetime(2024, 5, 1, 22, tzinfo=UTC), datetime(2024, 5, 2, 1, tzinfo=UTC)],
            "total_value": [1.0, 2.0],
        }
    ).with_columns(pl.col("timestamp").dt.convert_time_zone("America/New_York"))

    days = daily_equity(equity, initial_capital=1.0)

    assert days["date"].to_list() == [date(2024, 5, 1), date(2024, 5, 2)]


def test_first_day_return_is_measured_from_the_initial_capital() -> None:
    equity = pl.DataFrame(
        {
            "timestamp": [datetime(2024, 5, 1, h, tzinfo=UTC) for h in (9, 17)]
            + [datetime(2024, 5, 2, 17, tzinfo=UTC)],
            "total_value": [1_000.0, 1_050.0, 1_029.0],
        }
    )

    days = daily_returns(equity, initial_capital=1_000.0)

    assert days.columns == ["date", "equity", "return"]
    assert days["return"].to_list() == pytest.approx([0.05, -0.02])


def test_naive_timestamps_are_refused() -> None:
    equity = pl.DataFrame({"timestamp": [datetime(2024, 5, 1, 9)], "total_value": [1.0]})

    with pytest.raises(ValueError, match="timezone"):
        daily_returns(equity, initial_capital=1.0)


def test_drawdown_is_the_fraction_below_the_high_water_mark() -> None:
    drawdown = drawdown_series(pl.Series([100.0, 120.0, 90.0, 130.0, 117.0]))

    assert drawdown.tolist() == pytest.approx([0.0, 0.0, 0.25, 0.0, 0.1])


def test_returns_have_both_signs_and_a_real_drawdown() -> None:
    returns = _returns()

    assert returns.size == 400
    assert (returns > 0).sum() > 100
    assert (returns < 0).sum() > 100
    assert max_drawdown(returns) > 0.2


@pytest.mark.parametrize("annualization", [252, 365])
def test_statistics_equal_empyrical(annualization: int) -> None:
    returns = _returns()

    assert sharpe_ratio(returns, annualization=annualization) == pytest.approx(
        empyrical.sharpe_ratio(returns, risk_free=0, annualization=annualization), rel=1e-9
    )
    assert sortino_ratio(returns, annualization=annualization) == pytest.approx(
        empyrical.sortino_ratio(returns, required_return=0, annualization=annualization), rel=1e-9
    )
    assert annualized_return(returns, annualization=annualization) == pytest.approx(
        empyrical.annual_return(returns, annualization=annualization), rel=1e-9
    )
    assert max_drawdown(returns) == pytest.approx(-empyrical.max_drawdown(returns), rel=1e-9)
    assert total_return(returns) == pytest.approx(empyrical.cum_returns_final(returns), rel=1e-9)


def test_a_loss_on_day_one_counts_as_drawdown_from_the_initial_capital() -> None:
    returns = np.array([-0.1, 0.05, 0.02])

    assert max_drawdown(returns) == pytest.approx(0.1)
    assert max_drawdown(returns) == pytest.approx(-empyrical.max_drawdown(returns), rel=1e-9)


@pytest.mark.parametrize(
    "returns",
    [
        np.array([]),
        np.array([0.01]),
        np.array([0.01, 0.01, 0.01]),
        np.array([0.0, 0.0]),
        np.array([0.01, 0.02, 0.03]),
    ],
    ids=["empty", "one", "constant", "all-zero", "no-losing-day"],
)
def test_edge_cases_follow_empyrical(returns: np.ndarray) -> None:
    pairs = [
        (sharpe_ratio(returns), empyrical.sharpe_ratio(returns)),
        (sortino_ratio(returns), empyrical.sortino_ratio(returns)),
        (annualized_return(returns), empyrical.annual_return(returns)),
        (max_drawdown(returns), -empyrical.max_drawdown(returns) if returns.size else math.nan),
        (total_return(returns), empyrical.cum_returns_final(returns)),
    ]
    for ours, reference in pairs:
        if math.isnan(reference):
            assert math.isnan(ours)
        elif math.isinf(reference):
            assert ours == reference
        else:
            assert ours == pytest.approx(reference, rel=1e-9, abs=1e-15)


def test_summary_combines_returns_and_closed_trades() -> None:
    daily = daily_returns(_equity_history(), initial_capital=INITIAL_CAPITAL)
    t0 = datetime(2024, 3, 1, tzinfo=UTC)
    fills = pl.DataFrame(
        {
            "id": ["f1", "f2", "f3", "f4", "f5", "f6"],
            "order_id": ["o1", "o2", "o3", "o4", "o5", "o6"],
            "timestamp": [
                t0,
                t0 + timedelta(hours=2),
                t0,
                t0 + timedelta(hours=4),
                t0,
                t0 + timedelta(hours=6),
            ],
            "symbol": ["AAA", "AAA", "BBB", "BBB", "CCC", "CCC"],
            "side": ["buy", "sell", "sell", "buy", "buy", "sell"],
            "quantity": [10, 10, 5, 5, 3, 3],
            "price": [100.0, 110.0, 50.0, 52.0, 10.0, 12.0],
            "fee": [1.0, 1.0, 0.5, 0.5, 0.1, 0.1],
            "signal_type": ["momentum", "momentum", "breakout", "breakout", "momentum", "momentum"],
            "realized_pnl": [0.0, 100.0, 0.0, -10.0, 0.0, 6.0],
        }
    )

    summary = performance_summary(daily=daily, trades=closed_trades(fills), annualization=252)

    returns = daily["return"].to_numpy()
    assert summary.sharpe_ratio == pytest.approx(empyrical.sharpe_ratio(returns), rel=1e-9)
    assert summary.max_drawdown == pytest.approx(-empyrical.max_drawdown(returns), rel=1e-9)
    assert summary.total_trades == 3
    assert summary.win_rate == pytest.approx(2 / 3)
    assert summary.average_trade_duration_seconds == pytest.approx(4 * 3600)
    assert summary.profit_factor == pytest.approx((98.0 + 5.8) / 11.0)
    assert summary.annualization == 252


def test_summary_renders_undefined_figures_as_null() -> None:
    summary = performance_summary(
        daily=daily_returns(
            pl.DataFrame(
                {"timestamp": [], "total_value": []},
                schema={"timestamp": pl.Datetime("us", "UTC"), "total_value": pl.Float64},
            ),
            initial_capital=1.0,
        ),
        trades=closed_trades(pl.DataFrame()),
    )

    payload = summary.as_json()

    assert isinstance(summary, PerformanceSummary)
    assert payload["total_trades"] == 0
    assert payload["annualization"] == 252
    assert all(payload[name] is None for name in payload if name not in {"total_trades", "annualization"})
