"""Breakout: where the close sits in the Donchian channel of the last `window` bars."""

from __future__ import annotations

import math
from collections import deque

from live.domain import Bar


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
        close, high, low = bar.close, bar.high, bar.low
        if not (0.0 < close < math.inf and 0.0 < low <= high < math.inf):
            return None
        n = self._count
        self._count = n + 1
        highs, lows = self._highs, self._lows
        while highs and highs[-1][1] <= high:
            highs.pop()
        highs.append((n, high))
        while lows and lows[-1][1] >= low:
            lows.pop()
        lows.append((n, low))
        oldest = n - self._window
        if highs[0][0] <= oldest:
            highs.popleft()
        if lows[0][0] <= oldest:
            lows.popleft()
        if n + 1 < self._window:
            return None
        top = highs[0][1]
        bottom = lows[0][1]
        width = top - bottom
        if width <= 0.0:
            return 0.0
        # A bar whose close lies outside its own high/low still maps into [-1, 1].
        position = (close - bottom) / width
        return min(1.0, max(-1.0, 2.0 * position - 1.0))
