"""Daily equity, daily returns and drawdown: the one definition of each (docs/metrics.md)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import polars as pl

FloatArray = npt.NDArray[np.float64]


def _require_positive_capital(initial_capital: float) -> None:
    if not np.isfinite(initial_capital) or initial_capital <= 0:
        raise ValueError(f"initial_capital must be a positive number, got {initial_capital!r}")


def _utc_timestamps(equity: pl.DataFrame) -> pl.Expr:
    dtype = equity.schema["timestamp"]
    if not isinstance(dtype, pl.Datetime) or dtype.time_zone is None:
        # A naive timestamp has no UTC day; guessing one would shift returns between days.
        raise ValueError(f"equity.timestamp must be a timezone-aware Datetime, got {dtype}")
    return pl.col("timestamp").dt.convert_time_zone("UTC")


def daily_equity(equity: pl.DataFrame, *, initial_capital: float) -> pl.DataFrame:
    """Last recorded `total_value` of each UTC day, as columns `date` (pl.Date) and `equity`, sorted by date."""
    _require_positive_capital(initial_capital)
    if equity.height == 0:
        return pl.DataFrame(schema={"date": pl.Date, "equity": pl.Float64})
    return (
        equity.select(_utc_timestamps(equity).alias("timestamp"), pl.col("total_value").cast(pl.Float64))
        # A stable sort keeps the recorded order of snapshots that share a timestamp: the later row wins.
        .sort("timestamp", maintain_order=True)
        .group_by(pl.col("timestamp").dt.date().alias("date"), maintain_order=True)
        .agg(pl.col("total_value").last().alias("equity"))
        .sort("date")
    )


def daily_returns(equity: pl.DataFrame, *, initial_capital: float) -> pl.DataFrame:
    """Columns `date, equity, return` with r_d = E_d / E_(d-1) - 1 and E_0 = initial capital, so day one counts."""
    days = daily_equity(equity, initial_capital=initial_capital)
    previous = pl.col("equity").shift(1, fill_value=float(initial_capital))
    return days.with_columns((pl.col("equity") / previous - 1.0).alias("return"))


def drawdown_series(values: pl.Series | np.ndarray) -> FloatArray:
    """Positive fraction of each value below its running high-water mark (0 at a new high)."""
    array = values.cast(pl.Float64).to_numpy() if isinstance(values, pl.Series) else np.asarray(values)
    array = array.astype(np.float64, copy=False)
    if array.size == 0:
        return np.empty(0, dtype=np.float64)
    # fmax skips NaN, so one missing value does not erase the high-water mark that came before it.
    high_water_mark = np.fmax.accumulate(array)
    with np.errstate(divide="ignore", invalid="ignore"):
        drawdown: FloatArray = (high_water_mark - array) / high_water_mark
    return drawdown
