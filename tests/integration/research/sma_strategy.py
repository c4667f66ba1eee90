"""A parameterised strategy for the walk-forward tests and bench: long when the fast simple moving average of a
symbol's closes is above the slow one, short when below. Its two windows are what the walk-forward searches."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence

from pydantic import model_validator

from live.domain import Bar
from live.profiles import Profile
from live.strategy.api import StrategyParams
from live.strategy.base import PortfolioView, SignalRecorder, TargetPosition

SIGNAL = "sma_cross"


class _Mean:
    """A running mean of the last `window` values, O(1) per update."""

    def __init__(self, window: int) -> None:
        self.window = window
        self.values: deque[float] = deque()
        self.total = 0.0

    def update(self, value: float) -> float | None:
        self.values.append(value)
        self.total += value
        if len(self.values) > self.window:
            self.total -= self.values.popleft()
        return self.total / self.window if len(self.values) == self.window else None


class SmaParams(StrategyParams):
    fast: int = 10
    slow: int = 30
    band: float = 5.0

    @model_validator(mode="after")
    def _windows_and_band(self) -> SmaParams:
        if not 0 < self.fast < self.slow:
            raise ValueError(f"fast ({self.fast}) must be positive and below slow ({self.slow})")
        if not self.band > 0:
            raise ValueError(f"band ({self.band}) must be positive")
        return self


class SmaCrossover:
    name = "sma-crossover"
    version = "1"
    Params = SmaParams

    def __init__(self, *, symbols: Iterable[str], params: SmaParams) -> None:
        self.fast, self.slow, self.band = params.fast, params.slow, params.band
        self.means = {symbol: (_Mean(self.fast), _Mean(self.slow)) for symbol in symbols}
        self.wanted: list[TargetPosition] = []

    def _strength(self, bar: Bar) -> float | None:
        fast, slow = self.means[bar.symbol]
        quick, slow_mean = fast.update(bar.close), slow.update(bar.close)
        if quick is None or slow_mean is None:
            return None
        return math.tanh((quick - slow_mean) / slow_mean * 10_000.0 / self.band)

    def warm_up(self, bars: Sequence[Bar]) -> None:
        for bar in bars:
            self._strength(bar)

    def observe(self, bars: Sequence[Bar], *, regime: str, profile: Profile, signals: SignalRecorder) -> None:
        self.wanted = []
        for bar in bars:
            strength = self._strength(bar)
            if strength is None:
                continue
            actionable = abs(strength) >= profile.signal_threshold
            row = (bar.timestamp, bar.symbol, SIGNAL, strength, self.slow, regime, actionable)
            signals.record(row)
            if actionable:
                signals.record_actionable(row)
                self.wanted.append(
                    TargetPosition(symbol=bar.symbol, direction=1 if strength > 0 else -1, signal_type=SIGNAL)
                )

    def decide(self, *, profile: Profile, book: PortfolioView) -> Sequence[TargetPosition]:
        return self.wanted
