"""Strategies: the port (`Strategy`) and its adapters, the built-in one first (live/strategy/_template.py shows
how to write the next)."""

from __future__ import annotations

from live.strategy.base import PortfolioView, SignalRecorder, SignalRow, Strategy, TargetPosition
from live.strategy.builtin import BuiltinStrategy

__all__ = ["BuiltinStrategy", "PortfolioView", "SignalRecorder", "SignalRow", "Strategy", "TargetPosition"]
