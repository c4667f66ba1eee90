"""Volatility-scaled trend: the N-bar log return over the move a trendless market of the same volatility makes."""

from __future__ import annotations

import math
from math import log as _log
from math import sqrt as _sqrt
from math import tanh as _tanh

from live.domain import Bar

_INF = math.inf


class VolTrend:
    """tanh(log(close_t / close_(t-N)) / (EW volatility of 1-bar returns x sqrt(N))).

    The N-bar-old close comes from a ring buffer, so each update is O(1). None until N + 1 bars have been seen.
    """

    __slots__ = ("_count", "_last", "_lookback", "_pos", "_ring", "_sqrt_n", "_var", "_vol_a", "horizon_bars")

    signal_type = "vol_trend"

    def __init__(self, *, lookback: int = 60, vol_halflife: int = 120, horizon_bars: int = 60) -> None:
        if lookback < 1:
            raise ValueError(f"lookback must be at least 1, got {lookback}")
        self._lookback = lookback
        self._sqrt_n = math.sqrt(lookback)
        self._vol_a = 1.0 - 0.5 ** (1.0 / vol_halflife)
        self.horizon_bars = horizon_bars
        self._ring = [0.0] * lookback
        self._pos = 0
        self._count = 0
        self._last = self._var = 0.0

    def update(self, bar: Bar) -> float | None:
        """Fold in one bar; return the strength in [-1, 1], or None while warming up."""
        close = bar.close
        if not 0.0 < close < _INF:
            return None
        x = _log(close)
        count = self._count
        self._count = count + 1
        if count:
            ret = x - self._last
            # Seeded with the first squared return, as an EW average without bias adjustment is.
            self._var = ret * ret if count == 1 else self._var + self._vol_a * (ret * ret - self._var)
        self._last = x
        ring = self._ring
        pos = self._pos
        then = ring[pos]
        ring[pos] = x
        pos += 1
        self._pos = 0 if pos == self._lookback else pos
        if count < self._lookback:
            return None
        scale = _sqrt(self._var) * self._sqrt_n
        if scale <= 0.0:
            return 0.0
        return _tanh((x - then) / scale)
