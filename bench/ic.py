"""IC analysis: ours (`analytics.ic.information_coefficient`) against alphalens-reloaded's
`factor_information_coefficient`, on the same 500 symbols x 2,520 daily bars, in this process.

Two signal types (horizons 1 and 5 bars). The values are checked equal (rel 1e-9, same timestamps) before
anything is timed. Ours starts from the bars and signals frames and computes the forward returns itself;
alphalens is handed its factor frame with the forward returns already in it (its own pipeline would spend more),
so the ratio is, if anything, in alphalens' favour.
"""

from __future__ import annotations

import math
import time
import warnings

import numpy as np
import pandas as pd
import polars as pl
from harness import Figure, emit, figure, stub

SYMBOLS = 500
DAYS = 2520
HORIZONS = {"momentum": 1, "mean_reversion": 5}
RUNS = 3


def market(seed: int = 11) -> tuple[pl.DataFrame, pl.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    stamps = np.arange(np.datetime64("2016-01-04"), np.datetime64("2016-01-04") + DAYS, dtype="datetime64[D]")
    names = [f"S{i:03d}" for i in range(SYMBOLS)]
    closes = 50.0 * np.exp(np.cumsum(rng.normal(0.0, 0.02, size=(DAYS, SYMBOLS)), axis=0))
    bars = pl.DataFrame(
        {
            "timestamp": np.repeat(stamps.astype("datetime64[us]"), SYMBOLS),
            "symbol": names * DAYS,
            "close": closes.ravel(),
        }
    ).with_columns(pl.col("timestamp").dt.replace_time_zone("UTC"))
    frames = []
    for signal_type, horizon in HORIZONS.items():
        ahead = np.vstack([closes[horizon:] / closes[:-horizon] - 1.0, np.full((horizon, SYMBOLS), np.nan)])
        strength = np.tanh(np.nan_to_num(ahead) * 5 + rng.normal(0, 1.0, ahead.shape))
        strength[rng.random(strength.shape) < 0.01] = np.nan  # a few missing values, as in a live record
        frames.append(
            bars.select("timestamp", "symbol").with_columns(
                pl.lit(signal_type).alias("signal_type"),
                pl.Series("strength", strength.ravel()),
                pl.lit(horizon).alias("horizon_bars"),
            )
        )
    return bars, pl.concat(frames), closes


def alphalens_input(bars: pl.DataFrame, signals: pl.DataFrame, signal_type: str) -> pd.DataFrame:
    """alphalens' factor frame: (date, asset) index, the forward-return column and `factor`, NaNs dropped."""
    horizon = HORIZONS[signal_type]
    column = f"{horizon}D"
    long = bars.to_pandas().sort_values(["symbol", "timestamp"]).set_index(["timestamp", "symbol"])["close"]
    ahead = long.groupby(level="symbol").shift(-horizon) / long - 1.0
    own = signals.filter(pl.col("signal_type") == signal_type).to_pandas()
    factor = own.set_index(["timestamp", "symbol"])["strength"]
    frame = pd.DataFrame({column: ahead.reindex(factor.index), "factor": factor}).dropna()
    frame.index = frame.index.set_names(["date", "asset"])
    return frame


def measure() -> dict[str, Figure]:
    try:
        from analytics.ic import information_coefficient
    except ImportError as exc:
        return {"ic_analysis_speedup": stub("x faster than alphalens", ">= 20", f"analytics/ic.py ({exc})")}
    from alphalens.performance import factor_information_coefficient

    bars, signals, _ = market()
    inputs = {t: alphalens_input(bars, signals, t) for t in HORIZONS}

    def reference() -> dict[str, pd.Series]:
        out = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for signal_type, frame in inputs.items():
                out[signal_type] = factor_information_coefficient(frame)[frame.columns[0]].dropna()
        return out

    ours = information_coefficient(signals, bars)
    theirs = reference()
    worst = 0.0
    for signal_type, series in theirs.items():
        mine = ours.filter(pl.col("signal_type") == signal_type)
        if [ts.to_pydatetime() for ts in series.index] != mine["timestamp"].to_list():
            raise AssertionError(f"{signal_type}: the timestamps with an IC differ from alphalens'")
        a, b = mine["ic"].to_numpy(), series.to_numpy()
        rel = np.abs(a - b) / np.maximum(np.abs(b), 1e-300)
        worst = max(worst, float(rel.max()))
        if not np.allclose(a, b, rtol=1e-9, atol=0.0):
            raise AssertionError(f"{signal_type}: IC differs from alphalens' (max rel {rel.max():.3g})")

    def timed(call) -> float:  # type: ignore[no-untyped-def]
        t = time.perf_counter()
        call()
        return time.perf_counter() - t

    ours_s = min(timed(lambda: information_coefficient(signals, bars)) for _ in range(RUNS))
    theirs_s = min(timed(reference) for _ in range(2))
    ratio = theirs_s / ours_s
    return {
        "ic_analysis_speedup": figure(
            round(ratio, 1),
            "x faster than alphalens",
            ">= 20",
            ratio >= 20,
            ours_s=round(ours_s, 3),
            alphalens_s=round(theirs_s, 3),
            symbols=SYMBOLS,
            days=DAYS,
            signal_types=len(HORIZONS),
            equal_to_rel=1e-9,
            max_rel_difference=worst if math.isfinite(worst) else None,
            timestamps_with_ic=ours.height,
        )
    }


if __name__ == "__main__":
    emit(measure())
