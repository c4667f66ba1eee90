"""Breakout: where the close sits in the Donchian channel of the last `window` bars."""

from __future__ import annotations

import math
from collections import deque

from live.domain import Bar

_INF = math.inf


class Breakout:
    """2 x (close - lowest low) / (highest high - lowest low) - 1 over the last `window` bars, this one included.

    +1 at the top of the channel (an upside breakout), -1 at the bottom. The rolling extremes come from
    monotonic deques, so each update is amortised O(1). None until `window` bars have been seen.
    """

    __slots__ = ("_count", "_highs", "_lows", "_window", "horizon_bars")

    signal_type = "breakout"

    def __init__(self, *, window: int = 20, horizon_bars: int = 20) -> None:
        if window < 2:
            raise ValueError(f"window must be at least 2, got {window}")
        self._window = window
        self.horizon_bars = horizon_bars
        self._count = 0
        # (bar number, value), values decreasing (highs) / increasing (lows) from the left; the left is the extreme.
        self._highs: deque[tuple[int, float]] = deque()
        self._lows: deque[tuple[int, float]] = deque()

    def update(self, bar: Bar) -> float | None:
        """Fold in one bar; return the strength in [-1, 1], or None while warming up."""
        close = bar.close
        high = bar.high
        low = bar.low
        if not (0.0 < close < _INF and 0.0 < low <= high < _INF):
            return None
        n = self._count
        self._count = n + 1
        highs = self._highs
        while highs and highs[-1][1] <= high:
            highs.pop()
        highs.append((n, high))
        lows = self._lows
        while lows and lows[-1][1] >= low:
            lows.pop()
        lows.append((n, low))
        oldest = n - self._window
        if highs[0][0] <= oldest:
            highs.popleft()
        if lows[0][0] <= oldest:
            lows.popleft()
        if n < self._window - 1:
            return None
        bottom = lows[0][1]
        width = highs[0][1] - bottom
        if width <= 0.0:
            return 0.0
        # A bar whose close lies outside its own high/low still maps into [-1, 1] (inputs are finite: no NaN).
        strength = 2.0 * ((close - bottom) / width) - 1.0
        return 1.0 if strength > 1.0 else -1.0 if strength < -1.0 else strength
