"""IC of a signal type equals alphalens-reloaded's factor_information_coefficient on the same data (docs/metrics.md)."""

from __future__ import annotations

import math
import warnings
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import polars as pl
import pytest
from alphalens.performance import factor_information_coefficient

from analytics.ic import daily_ic, forward_returns, ic_summary, information_coefficient

SYMBOLS = [f"S{i:02d}" for i in range(14)]
HORIZONS = {"momentum": 1, "mean_reversion": 5}
START = datetime(2024, 3, 1, tzinfo=UTC)


def _market(n_bars: int = 240, seed: int = 7) -> tuple[pl.DataFrame, pl.DataFrame]:
    rng = np.random.default_rng(seed)
    timestamps = [START + timedelta(hours=i) for i in range(n_bars)]
    log_returns = rng.normal(0.0, 0.01, size=(n_bars, len(SYMBOLS)))
    closes = 100.0 * np.exp(np.cumsum(log_returns, axis=0))
    bars = pl.DataFrame(
        {
            "timestamp": [t for t in timestamps for _ in SYMBOLS],
            "symbol": SYMBOLS * n_bars,
            "close": closes.ravel(),
            "volume": 1_000.0,
        }
    )
    rows = []
    for signal_type, horizon in HORIZONS.items():
        ahead = np.vstack(
            [closes[horizon:] / closes[:-horizon] - 1.0, np.full((horizon, len(SYMBOLS)), np.nan)]
        )
        # Partly informative, rounded to one decimal so many strengths tie.
        strength = np.clip(np.round(np.nan_to_num(ahead) * 30 + rng.normal(0, 0.5, ahead.shape), 1), -1, 1)
        strength[10, :] = 0.3  # constant ranks: no IC at this timestamp
        strength[11, 3:] = np.nan  # only three valid pairs left
        strength[12, 1:] = np.nan  # a single valid pair: no IC
        strength[13, [0, 5, 9]] = np.nan
        rows.extend(
            {
                "timestamp": t,
                "symbol": s,
                "signal_type": signal_type,
                "strength": float(strength[i, j]),
                "horizon_bars": horizon,
                "regime": "trending",
            }
            for i, t in enumerate(timestamps)
            for j, s in enumerate(SYMBOLS)
        )
    return bars, pl.DataFrame(rows)


def _alphalens_ic(bars: pl.DataFrame, signals: pl.DataFrame, signal_type: str) -> pd.Series:
    horizon = HORIZONS[signal_type]
    column = f"{horizon}D"
    # Each symbol's own next bars, whether or not other symbols traded in between.
    long = bars.to_pandas().sort_values(["symbol", "timestamp"]).set_index(["timestamp", "symbol"])["close"]
    ahead = long.groupby(level="symbol").shift(-horizon) / long - 1.0
    own = signals.filter(pl.col("signal_type") == signal_type).to_pandas()
    factor = own.set_index(["timestamp", "symbol"])["strength"]
    frame = pd.DataFrame({column: ahead.reindex(factor.index), "factor": factor})
    # alphalens' own pipeline (get_clean_factor_and_forward_returns) drops missing values before the IC.
    frame = frame.dropna()
    frame.index = frame.index.set_names(["date", "asset"])
    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore"
        )  # scipy warns on the constant-input date, which alphalens turns into NaN
        reference = factor_information_coefficient(frame)[column]
    return reference.dropna()


@pytest.mark.parametrize("signal_type", sorted(HORIZONS))
def test_ic_per_timestamp_equals_alphalens(signal_type: str) -> None:
    bars, signals = _market()
    ours = information_coefficient(signals, bars).filter(pl.col("signal_type") == signal_type)
    reference = _alphalens_ic(bars, signals, signal_type)

    assert [ts.to_pydatetime() for ts in reference.index] == ours["timestamp"].to_list()
    assert ours["ic"].to_list() == pytest.approx(reference.to_list(), rel=1e-9)
    assert ours["ic"].abs().max() > 0.3  # the data is not trivially uncorrelated


def test_a_symbol_with_missing_bars_looks_ahead_through_its_own_bars() -> None:
    bars, signals = _market()
    # S03 has no bars 16:00-23:59 of any day and S07 none after hour 200: forward returns skip the gaps.
    gaps = ((pl.col("symbol") == "S03") & (pl.col("timestamp").dt.hour().is_between(16, 23))) | (
        (pl.col("symbol") == "S07") & (pl.col("timestamp") > START + timedelta(hours=200))
    )
    bars = bars.filter(~gaps)

    for signal_type in HORIZONS:
        ours = information_coefficient(signals, bars).filter(pl.col("signal_type") == signal_type)
        reference = _alphalens_ic(bars, signals, signal_type)
        assert [ts.to_pydatetime() for ts in reference.index] == ours["timestamp"].to_list()
        assert ours["ic"].to_list() == pytest.approx(reference.to_list(), rel=1e-9)


def test_a_sparse_panel_gives_the_same_ic(monkeypatch: pytest.MonkeyPatch) -> None:
    bars, signals = _market()
    dense = information_coefficient(signals, bars)
    # Symbols that rarely share a timestamp take the grouped (polars) path; force it on the same data.
    monkeypatch.setattr("analytics.ic._DENSE_CELLS_PER_BAR", 0)
    monkeypatch.setattr("analytics.ic._DENSE_CELLS_SLACK", 0)

    grouped = information_coefficient(signals, bars)

    assert grouped.select("signal_type", "timestamp", "n_symbols").equals(
        dense.select("signal_type", "timestamp", "n_symbols")
    )
    assert grouped["ic"].to_list() == pytest.approx(dense["ic"].to_list(), rel=1e-9)


def test_duplicate_bars_are_refused() -> None:
    bars, signals = _market(n_bars=20)

    with pytest.raises(ValueError, match="S02"):
        information_coefficient(signals, pl.concat([bars, bars.filter(pl.col("symbol") == "S02").head(1)]))


def test_timestamps_without_a_defined_ic_are_dropped() -> None:
    bars, signals = _market()
    ic = information_coefficient(signals, bars).filter(pl.col("signal_type") == "momentum")
    by_time = dict(zip(ic["timestamp"].to_list(), ic["n_symbols"].to_list(), strict=True))

    assert START + timedelta(hours=10) not in by_time  # constant strengths
    assert START + timedelta(hours=12) not in by_time  # one valid pair
    assert by_time[START + timedelta(hours=11)] == 3
    assert by_time[START + timedelta(hours=13)] == len(SYMBOLS) - 3
    assert by_time[START] == len(SYMBOLS)
    assert START + timedelta(hours=239) not in by_time  # the forward return runs past the data


def test_forward_returns_look_h_bars_ahead_within_each_symbol() -> None:
    t = [START + timedelta(days=i) for i in range(4)]
    bars = pl.DataFrame(
        {
            "timestamp": [t[0], t[1], t[2], t[3], t[0], t[1], t[2], t[3]],
            "symbol": ["A"] * 4 + ["B"] * 4,
            "close": [100.0, 110.0, 99.0, 120.0, 10.0, 8.0, 12.0, 12.0],
        }
    ).sample(fraction=1.0, shuffle=True, seed=1)

    fwd = forward_returns(bars, horizons=[2, 1])

    assert fwd.columns == ["timestamp", "symbol", "fwd_1", "fwd_2"]
    a = fwd.filter(pl.col("symbol") == "A")
    assert a["fwd_1"].to_list() == pytest.approx([0.1, 99 / 110 - 1, 120 / 99 - 1, None])
    assert a["fwd_2"].to_list()[:2] == pytest.approx([-0.01, 120 / 110 - 1])
    assert a["fwd_2"].to_list()[2:] == [None, None]
    assert fwd.filter(pl.col("symbol") == "B")["fwd_2"].to_list()[:2] == pytest.approx([0.2, 0.5])


def test_ic_summary_reports_mean_std_ir_and_t_stat() -> None:
    bars, signals = _market()
    ic = information_coefficient(signals, bars)

    summaries = {s.signal_type: s for s in ic_summary(ic)}

    assert set(summaries) == set(HORIZONS)
    for signal_type, summary in summaries.items():
        values = ic.filter(pl.col("signal_type") == signal_type)["ic"].to_numpy()
        mean, std = values.mean(), values.std(ddof=1)
        assert summary.n_periods == values.size
        assert summary.ic_mean == pytest.approx(mean, rel=1e-12)
        assert summary.ic_std == pytest.approx(std, rel=1e-12)
        assert summary.ic_ir == pytest.approx(mean / std, rel=1e-12)
        assert summary.ic_t_stat == pytest.approx(mean / (std / math.sqrt(values.size)), rel=1e-12)


def test_ic_summary_of_a_single_period_has_no_dispersion_figures() -> None:
    ic = pl.DataFrame({"signal_type": ["breakout"], "timestamp": [START], "ic": [0.4], "n_symbols": [10]})

    [summary] = ic_summary(ic)

    assert summary.ic_mean == 0.4
    assert summary.n_periods == 1
    assert math.isnan(summary.ic_std)
    assert math.isnan(summary.ic_ir)
    assert math.isnan(summary.ic_t_stat)


def test_daily_ic_averages_each_utc_day() -> None:
    bars, signals = _market()
    ic = information_coefficient(signals, bars)

    daily = daily_ic(ic)

    assert daily.columns == ["signal_type", "date", "ic_mean", "n_periods"]
    assert daily["n_periods"].sum() == ic.height
    first_day = ic.filter(
        (pl.col("signal_type") == "momentum") & (pl.col("timestamp") < START + timedelta(days=1))
    )
    row = daily.filter((pl.col("signal_type") == "momentum") & (pl.col("date") == START.date())).row(
        0, named=True
    )
    assert row["n_periods"] == first_day.height
    assert row["ic_mean"] == pytest.approx(first_day["ic"].mean(), rel=1e-12)


def test_no_signals_give_an_empty_ic_frame() -> None:
    bars, signals = _market(n_bars=20)

    ic = information_coefficient(signals.clear(), bars)

    assert ic.height == 0
    assert ic.columns == ["signal_type", "timestamp", "ic", "n_symbols"]
    assert ic_summary(ic) == []
    assert daily_ic(ic).height == 0
