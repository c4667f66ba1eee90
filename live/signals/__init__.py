"""Signal models, one file per type, and the factory the engine uses to give every symbol its own set."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from live.signals.base import SignalModel
from live.signals.breakout import Breakout
from live.signals.mean_reversion import MeanReversion
from live.signals.momentum import Momentum
from live.signals.vol_trend import VolTrend

# Keyed by live.domain.SIGNAL_TYPES, in that order.
SIGNAL_MODELS: dict[str, Callable[[], SignalModel]] = {
    "momentum": Momentum,
    "mean_reversion": MeanReversion,
    "breakout": Breakout,
    "vol_trend": VolTrend,
}

HORIZONS: dict[str, int] = {name: factory().horizon_bars for name, factory in SIGNAL_MODELS.items()}


def make_signal_models(symbols: Iterable[str]) -> dict[str, dict[str, SignalModel]]:
    """Fresh models for every symbol: symbol -> signal type -> model."""
    return {symbol: {name: factory() for name, factory in SIGNAL_MODELS.items()} for symbol in symbols}


__all__ = ["HORIZONS", "SIGNAL_MODELS", "SignalModel", "make_signal_models"]
