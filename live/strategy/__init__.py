"""Strategies: the port (`Strategy`), the authors' API (`SignalStrategy`, docs/strategies.md), the loader that
resolves `--strategy SPEC`, and the built-in strategy."""

from __future__ import annotations

from live.strategy.api import (
    CrossSection,
    CrossSectionBars,
    CrossSectionSignal,
    SignalStrategy,
    StrategyParams,
)
from live.strategy.base import PortfolioView, SignalRecorder, SignalRow, Strategy, TargetPosition
from live.strategy.builtin import BuiltinStrategy

__all__ = [
    "BuiltinStrategy",
    "CrossSection",
    "CrossSectionBars",
    "CrossSectionSignal",
    "PortfolioView",
    "SignalRecorder",
    "SignalRow",
    "SignalStrategy",
    "Strategy",
    "StrategyParams",
    "TargetPosition",
]
