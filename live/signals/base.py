"""The signal port: one incremental model per (signal type, symbol)."""

from __future__ import annotations

from typing import Protocol

from live.domain import Bar


class SignalModel(Protocol):
    """Updated once per bar in O(1); returns a strength in [-1, 1], or None while warming up."""

    signal_type: str
    horizon_bars: int

    def update(self, bar: Bar) -> float | None: ...
