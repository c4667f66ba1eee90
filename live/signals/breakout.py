"""Breakout: where the close sits in the Donchian channel of the last `window` bars."""

from __future__ import annotations

import math
from collections import deque

from live.domain import Bar

_INF = math.inf


class Breakout:
    """2 x (close - lowest low) / (highest high - lowest low) - 1 over the last `window` bars, this one included.

    +1 at the top of the channel (an upside breakout), -1 at the bottom. The rolling extremes come from
    monotonic deques, so each update is amortised O(1): each deque holds, oldest first, the values that may still
    become the extreme (ties kept), and the value leaving the window (read from a ring of the last `window` bars)
    is dropped from the front if it is there. None until `window` bars have been seen.
    """

    __slots__ = ("_count", "_highs", "_lows", "_pos", "_ring_highs", "_ring_lows", "_window", "horizon_bars")

    signal_type = "breakout"

    def __init__(self, *, window: int = 20, horizon_bars: int = 20) -> None:
        if window < 2:
            raise ValueError(f"window must be at least 2, got {window}")
        self._window = window
        self.horizon_bars = horizon_bars
        self._count = 0
        self._pos = 0
        self._ring_highs = [0.0] * window
        self._ring_lows = [0.0] * window
        self._highs: deque[float] = deque()
        self._lows: deque[float] = deque()

    def update(self, bar: Bar) -> float | None:
        """Fold in one bar; return the strength in [-1, 1], or None while warming up."""
        close = bar.close
        high = bar.high
        low = bar.low
        if not (0.0 < close < _INF and 0.0 < low <= high < _INF):
            return None
        highs = self._highs
        lows = self._lows
        window = self._window
        pos = self._pos
        count = self._count
        if count >= window:  # the bar `window` updates ago leaves the channel
            if highs[0] == self._ring_highs[pos]:
                highs.popleft()
            if lows[0] == self._ring_lows[pos]:
                lows.popleft()
        self._count = count + 1
        self._ring_highs[pos] = high
        self._ring_lows[pos] = low
        self._pos = 0 if pos + 1 == window else pos + 1
        while highs and highs[-1] < high:
            highs.pop()
        highs.append(high)
        while lows and lows[-1] > low:
            lows.pop()
        lows.append(low)
        if count < window - 1:
            return None
        bottom = lows[0]
        width = highs[0] - bottom
        if width <= 0.0:
            return 0.0
        strength = 2.0 * ((close - bottom) / width) - 1.0
        return 1.0 if strength > 1.0 else -1.0 if strength < -1.0 else strength
