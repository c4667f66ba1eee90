"""An SMA crossover strategy written against the TRADEOS strategy API (docs/strategies.md).

Run it:  tradeos up --strategy docs/examples/sma_crossover.py:SmaCrossover --param fast=5 --param slow=20

One signal, `sma_cross`: the gap between a fast and a slow simple moving average of the close, relative to the slow
one, squashed into [-1, 1]. It is computed for every symbol at once on numpy arrays (a `CrossSectionSignal`), with
running sums, so a bar costs O(1) per symbol whatever the windows. The decision goes long (or short) when the
strength clears `entry` and closes when the averages cross back.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from pydantic import Field, model_validator

from live.profiles import Profile
from live.strategy import (
    CrossSection,
    CrossSectionBars,
    CrossSectionSignal,
    PortfolioView,
    SignalStrategy,
    StrategyParams,
    TargetPosition,
)
from live.strategy.api import FloatArray


class SmaCrossoverParams(StrategyParams):
    """Windows in each symbol's own bars; `entry` is the strength needed to open; `scale` the relative gap that
    reads as strength tanh(1) = 0.76."""

    fast: int = Field(default=10, ge=1, le=10_000)
    slow: int = Field(default=40, ge=2, le=10_000)
    entry: float = Field(default=0.3, gt=0, le=1)
    scale: float = Field(default=0.002, gt=0)
    allow_short: bool = True

    @model_validator(mode="after")
    def _fast_is_faster(self) -> SmaCrossoverParams:
        if self.fast >= self.slow:
            raise ValueError(f"fast ({self.fast}) must be shorter than slow ({self.slow})")
        return self


class SmaCross(CrossSectionSignal):
    """tanh((fast SMA / slow SMA - 1) / scale), per symbol; NaN until the symbol has `slow` bars."""

    signal_type = "sma_cross"

    def __init__(self, *, symbols: Sequence[str], fast: int, slow: int, scale: float) -> None:
        super().__init__(symbols=symbols)
        self.fast, self.slow, self.scale = fast, slow, scale
        self.horizon_bars = fast
        count = len(self.symbols)
        self._closes = np.zeros((slow, count))  # ring of the last `slow` closes of each symbol
        self._seen = np.zeros(count, dtype=np.int64)
        self._fast_sum = np.zeros(count)
        self._slow_sum = np.zeros(count)

    def update(self, bars: CrossSectionBars) -> FloatArray:
        rows, close = bars.index, bars.close
        seen = self._seen[rows]
        leaving_slow = np.where(seen >= self.slow, self._closes[seen % self.slow, rows], 0.0)
        leaving_fast = np.where(seen >= self.fast, self._closes[(seen - self.fast) % self.slow, rows], 0.0)
        self._slow_sum[rows] += close - leaving_slow
        self._fast_sum[rows] += close - leaving_fast
        self._closes[seen % self.slow, rows] = close
        self._seen[rows] = seen + 1
        gap = (self._fast_sum[rows] / self.fast) / (self._slow_sum[rows] / self.slow) - 1.0
        strength = np.tanh(gap / self.scale)
        return np.where(seen + 1 >= self.slow, strength, np.nan)


class SmaCrossover(SignalStrategy[SmaCrossoverParams]):
    """Long when the fast average is well above the slow one, short when well below; flat when they cross back."""

    name = "sma_crossover"
    version = "1"
    Params = SmaCrossoverParams

    @property
    def warm_up_bars(self) -> int:
        return self.params.slow

    def cross_section_signals(self) -> Iterable[CrossSectionSignal]:
        params = self.params
        return [SmaCross(symbols=self.symbols, fast=params.fast, slow=params.slow, scale=params.scale)]

    def targets(
        self, cross_section: CrossSection, *, profile: Profile, book: PortfolioView
    ) -> Iterable[TargetPosition]:
        params = self.params
        for symbol in cross_section.signals:
            strength = cross_section.strength(symbol, SmaCross.signal_type)
            if strength is None or book.pending.get(symbol):
                continue
            position = book.positions.get(symbol)
            held = position.quantity if position is not None else 0
            if held > 0 and strength < 0 or held < 0 and strength > 0:
                yield TargetPosition(symbol=symbol, direction=0, signal_type=SmaCross.signal_type)
            elif held == 0 and strength >= params.entry:
                yield TargetPosition(symbol=symbol, direction=1, signal_type=SmaCross.signal_type)
            elif held == 0 and strength <= -params.entry and params.allow_short:
                yield TargetPosition(symbol=symbol, direction=-1, signal_type=SmaCross.signal_type)
