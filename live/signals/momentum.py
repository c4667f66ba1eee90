"""Momentum: the gap between a fast and a slow EMA of log price, in units of its own typical size."""

from __future__ import annotations

import math
from math import log as _log
from math import sqrt as _sqrt
from math import tanh as _tanh

from live.domain import Bar

_INF = math.inf


def ema_gap_scale(fast_alpha: float, slow_alpha: float) -> float:
    """Long-run standard deviation of (fast EMA - slow EMA) of a random walk with unit steps."""
    qf = 1.0 - fast_alpha
    qs = 1.0 - slow_alpha
    variance = qs * qs / (1.0 - qs * qs) + qf * qf / (1.0 - qf * qf) - 2.0 * qs * qf / (1.0 - qs * qf)
    return math.sqrt(variance)


class Momentum:
    """tanh of (fast EMA - slow EMA of log close) over the gap a trendless market of the same EW volatility shows.

    Strength +-0.76 means a gap one standard deviation wide. None until `slow_span` bars have been seen.
    """

    __slots__ = (
        "_count",
        "_fast",
        "_fast_a",
        "_last",
        "_scale",
        "_slow",
        "_slow_a",
        "_var",
        "_vol_a",
        "_warmup",
        "horizon_bars",
    )

    signal_type = "momentum"

    def __init__(
        self, *, fast_span: int = 10, slow_span: int = 40, vol_halflife: int = 60, horizon_bars: int = 30
    ) -> None:
        if not 1 <= fast_span < slow_span:
            raise ValueError(f"need 1 <= fast_span < slow_span, got {fast_span} and {slow_span}")
        self._fast_a = 2.0 / (fast_span + 1.0)
        self._slow_a = 2.0 / (slow_span + 1.0)
        self._vol_a = 1.0 - 0.5 ** (1.0 / vol_halflife)
        self._scale = ema_gap_scale(self._fast_a, self._slow_a)
        self._warmup = slow_span
        self.horizon_bars = horizon_bars
        self._count = 0
        self._fast = self._slow = self._last = self._var = 0.0

    def update(self, bar: Bar) -> float | None:
        """Fold in one bar; return the strength in [-1, 1], or None while warming up."""
        close = bar.close
        if not 0.0 < close < _INF:
            return None
        x = _log(close)
        count = self._count = self._count + 1
        if count == 1:
            self._fast = self._slow = self._last = x
            return None
        ret = x - self._last
        self._last = x
        # Seeded with the first squared return, as an EW average without bias adjustment is.
        var = self._var = ret * ret if count == 2 else self._var + self._vol_a * (ret * ret - self._var)
        fast = self._fast = self._fast + self._fast_a * (x - self._fast)
        slow = self._slow = self._slow + self._slow_a * (x - self._slow)
        if count < self._warmup:
            return None
        gap_sd = self._scale * _sqrt(var)
        if gap_sd <= 0.0:
            return 0.0
        return _tanh((fast - slow) / gap_sd)
