"""Risk and return statistics over daily returns, equal to empyrical-reloaded's with risk-free 0.

Edge cases follow empyrical so the reference tests hold everywhere:

- `sharpe_ratio` and `sortino_ratio` are NaN for fewer than two returns;
  `annualized_return`, `max_drawdown` and `total_return` are NaN for none.
- A ratio whose denominator is zero (constant returns for Sharpe, no losing day for Sortino)
  is +inf or -inf by the sign of the mean return, and NaN when that mean is zero too.
- NaN returns are skipped, as empyrical's nan-aware reductions do.

Callers that serialise to JSON render every non-finite value (NaN, +inf, -inf) as `null`;
`PerformanceSummary.as_json()` does exactly that.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import polars as pl

from analytics.returns import FloatArray, drawdown_series
from analytics.trades import average_trade_duration_seconds, profit_factor, win_rate

TRADING_DAYS_PER_YEAR = 252


def _as_returns(returns: np.ndarray | pl.Series) -> FloatArray:
    array = returns.cast(pl.Float64).to_numpy() if isinstance(returns, pl.Series) else np.asarray(returns)
    array = array.astype(np.float64, copy=False)
    if array.ndim != 1:
        raise ValueError(f"returns must be one-dimensional, got shape {array.shape}")
    return array


def _require_annualization(annualization: int) -> None:
    if annualization <= 0:
        raise ValueError(f"annualization must be a positive number of periods per year, got {annualization}")


def _divide(numerator: float, denominator: float) -> float:
    # x/0 is ±inf and 0/0 is NaN, as in numpy (and so in empyrical), without numpy's warning.
    if denominator == 0.0:
        return math.nan if numerator == 0.0 or math.isnan(numerator) else math.copysign(math.inf, numerator)
    return numerator / denominator


def sharpe_ratio(returns: np.ndarray, *, annualization: int = TRADING_DAYS_PER_YEAR) -> float:
    """Annualised mean over sample standard deviation (ddof 1) of the returns; NaN for fewer than two."""
    _require_annualization(annualization)
    values = _as_returns(returns)
    present = values[~np.isnan(values)]
    if present.size < 2:
        return math.nan
    # Identical values have a sample std of exactly zero; the floating-point residue must not become a huge ratio.
    std = 0.0 if present.max() == present.min() else float(np.std(present, ddof=1))
    return _divide(float(np.mean(present)), std) * math.sqrt(annualization)


def sortino_ratio(returns: np.ndarray, *, annualization: int = TRADING_DAYS_PER_YEAR) -> float:
    """Annualised mean return over annualised downside deviation below 0; NaN for fewer than two returns."""
    _require_annualization(annualization)
    values = _as_returns(returns)
    present = values[~np.isnan(values)]
    if values.size < 2 or present.size == 0:
        return math.nan
    downside = np.minimum(present, 0.0)
    downside_risk = math.sqrt(float(np.mean(downside * downside))) * math.sqrt(annualization)
    return _divide(float(np.mean(present)) * annualization, downside_risk)


def total_return(returns: np.ndarray) -> float:
    """Compounded return over the whole period; NaN for no returns."""
    values = _as_returns(returns)
    if values.size == 0:
        return math.nan
    return float(np.nanprod(values + 1.0)) - 1.0


def annualized_return(returns: np.ndarray, *, annualization: int = TRADING_DAYS_PER_YEAR) -> float:
    """Compound annual growth rate (CAGR) over len(returns)/annualization years; NaN for no returns."""
    _require_annualization(annualization)
    values = _as_returns(returns)
    if values.size == 0:
        return math.nan
    ending_value = float(np.nanprod(values + 1.0))
    years = values.size / annualization
    if ending_value < 0.0:
        # A loss beyond -100% has no real annual rate; numpy (and so empyrical) says NaN.
        return math.nan
    return float(ending_value ** (1.0 / years) - 1.0)


def max_drawdown(returns: np.ndarray) -> float:
    """Largest fall from a high-water mark of the compounded returns, as a positive fraction; NaN for none."""
    values = _as_returns(returns)
    if values.size == 0:
        return math.nan
    # The starting capital is the first high-water mark, so a loss on day one is a drawdown.
    growth = np.concatenate(([1.0], np.cumprod(np.nan_to_num(values, nan=0.0) + 1.0)))
    return float(np.nanmax(drawdown_series(growth)))


@dataclass(frozen=True)
class PerformanceSummary:
    """The figures of `GET /metrics/performance`; NaN or ±inf where a figure is undefined (rendered as null)."""

    sharpe_ratio: float
    sortino_ratio: float
    max_drawdown: float
    total_return: float
    annualized_return: float
    win_rate: float
    average_trade_duration_seconds: float
    total_trades: int
    profit_factor: float
    annualization: int

    def as_json(self) -> dict[str, float | int | None]:
        """The fields as a JSON-ready dict: NaN and ±inf become None (null)."""
        return {
            name: None if isinstance(value, float) and not math.isfinite(value) else value
            for name, value in asdict(self).items()
        }


def performance_summary(
    *, daily: pl.DataFrame, trades: pl.DataFrame, annualization: int = TRADING_DAYS_PER_YEAR
) -> PerformanceSummary:
    """All performance figures from `daily_returns` output and `closed_trades` output."""
    _require_annualization(annualization)
    returns = _as_returns(daily.get_column("return"))
    return PerformanceSummary(
        sharpe_ratio=sharpe_ratio(returns, annualization=annualization),
        sortino_ratio=sortino_ratio(returns, annualization=annualization),
        max_drawdown=max_drawdown(returns),
        total_return=total_return(returns),
        annualized_return=annualized_return(returns, annualization=annualization),
        win_rate=win_rate(trades),
        average_trade_duration_seconds=average_trade_duration_seconds(trades),
        total_trades=trades.height,
        profit_factor=profit_factor(trades),
        annualization=annualization,
    )
