"""Mean reversion: how far the close has strayed from its EMA, in EW standard deviations, faded."""

from __future__ import annotations

import math
from math import log as _log
from math import sqrt as _sqrt
from math import tanh as _tanh

from live.domain import Bar

_INF = math.inf


class MeanReversion:
    """-tanh(z / 2), z = (log close - its EMA) / EW root mean square of that deviation (same span).

    A close two deviations above its mean gives about -0.76. None until `span` bars have been seen.
    """

    __slots__ = ("_alpha", "_count", "_ema", "_var", "_warmup", "horizon_bars")

    signal_type = "mean_reversion"

    def __init__(self, *, span: int = 20, horizon_bars: int = 10) -> None:
        if span < 2:
            raise ValueError(f"span must be at least 2, got {span}")
        self._alpha = 2.0 / (span + 1.0)
        self._warmup = span
        self.horizon_bars = horizon_bars
        self._count = 0
        self._ema = self._var = 0.0

    def update(self, bar: Bar) -> float | None:
        """Fold in one bar; return the strength in [-1, 1], or None while warming up."""
        close = bar.close
        if not 0.0 < close < _INF:
            return None
        x = _log(close)
        count = self._count = self._count + 1
        if count == 1:
            self._ema = x
            return None
        alpha = self._alpha
        ema = self._ema = self._ema + alpha * (x - self._ema)
        deviation = x - ema
        var = self._var = self._var + alpha * (deviation * deviation - self._var)
        if count < self._warmup:
            return None
        if var <= 0.0:
            return 0.0
        return -_tanh(0.5 * deviation / _sqrt(var))
