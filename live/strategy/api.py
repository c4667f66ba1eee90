"""The strategy API for authors (docs/strategies.md): typed parameters, signal models, a decision on the cross-section.

`SignalStrategy` implements the engine's `Strategy` port (live/strategy/base.py) for you: it keeps the signal
models a subclass declares, updates them with every bar, records every value they compute (as the built-in strategy
does) and hands the decision step the cross-section of values and the regime. A subclass declares:

- `name`, `version` and `Params` (a `StrategyParams` model: typed, defaulted, validated, frozen);
- `warm_up_bars`: how many of a symbol's own bars its signals need before they say anything;
- its signal models: per symbol (`symbol_signals`, each a `live.signals.SignalModel`, updated with one bar) and/or
  over the whole cross-section at once (`cross_section_signals`, each a `CrossSectionSignal` updated with numpy
  arrays over the symbols present, which is what keeps a universe of hundreds of symbols fast);
- `targets`: the positions wanted, given the cross-section of signal values, the regime, the profile and the book.

The engine still sizes, checks and submits every order and refuses what a strategy says outside its contract
(a strength outside [-1, 1], a target for a symbol not in the cross-section): see live/engine.py.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar, Generic, TypeVar

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict

from live.domain import Bar
from live.profiles import Profile
from live.signals.base import SignalModel
from live.strategy.base import PortfolioView, SignalRecorder, TargetPosition

FloatArray = npt.NDArray[np.float64]
IndexArray = npt.NDArray[np.intp]


class StrategyParams(BaseModel):
    """Base of every strategy's parameter model: unknown names refused, instances frozen (a running strategy's
    parameters are what was recorded for its run)."""

    model_config = ConfigDict(frozen=True, extra="forbid")


P = TypeVar("P", bound=StrategyParams)


@dataclass(frozen=True, slots=True, kw_only=True)
class CrossSectionBars:
    """One cross-section as arrays over the symbols present in it, in the strategy's symbol order: `index` holds
    each row's position in `SignalStrategy.symbols`, so a model keeps its state in arrays over all symbols and
    updates only the rows present (a symbol's horizon counts its own bars, whatever the gaps)."""

    timestamp: datetime
    index: IndexArray
    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    volume: FloatArray


class CrossSectionSignal(ABC):
    """A signal model over every symbol at once. `update` is O(1) per symbol and bar, vectorised; it returns one
    strength in [-1, 1] per row of `bars` (NaN while that symbol is still warming up)."""

    signal_type: ClassVar[str]
    horizon_bars: int

    def __init__(self, *, symbols: Sequence[str]) -> None:
        self.symbols = tuple(symbols)

    @abstractmethod
    def update(self, bars: CrossSectionBars) -> FloatArray:
        """Strengths for the rows of `bars`, NaN where there is no value yet."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CrossSection:
    """What the decision step sees: the last cross-section's bars and every signal value computed on it."""

    timestamp: datetime
    regime: str
    bars: Mapping[str, Bar]
    signals: Mapping[str, Mapping[str, float]]  # symbol -> signal type -> strength (only types with a value)

    def strength(self, symbol: str, signal_type: str) -> float | None:
        return self.signals.get(symbol, {}).get(signal_type)


class SignalStrategy(ABC, Generic[P]):
    """A strategy written against the API: see the module docstring and docs/examples/sma_crossover.py."""

    name: ClassVar[str]
    version: ClassVar[str] = "1"
    Params: ClassVar[type[StrategyParams]] = StrategyParams

    def __init__(self, *, symbols: Sequence[str], params: P | None = None) -> None:
        self.symbols = tuple(symbols)
        self.params: P = params if params is not None else self.Params()  # type: ignore[assignment]
        self._position = {symbol: i for i, symbol in enumerate(self.symbols)}
        self._per_symbol = {symbol: tuple(self.symbol_signals(symbol)) for symbol in self.symbols}
        self._over_symbols = tuple(self.cross_section_signals())
        self._last: CrossSection | None = None

    # -- what a subclass declares ---------------------------------------------------------------------

    @property
    def warm_up_bars(self) -> int:
        """Bars of a symbol its signals need before they give a value (documentation and warm-up planning)."""
        return 0

    def symbol_signals(self, symbol: str) -> Iterable[SignalModel]:
        """Fresh per-symbol signal models for `symbol` (none by default)."""
        return ()

    def cross_section_signals(self) -> Iterable[CrossSectionSignal]:
        """Signal models over all of `self.symbols` at once (none by default)."""
        return ()

    @abstractmethod
    def targets(
        self, cross_section: CrossSection, *, profile: Profile, book: PortfolioView
    ) -> Iterable[TargetPosition]:
        """The positions wanted after `cross_section`, in the order to act on them; only its symbols. Not called
        while trading is halted; a symbol left out keeps what it holds."""

    # -- the engine's port ----------------------------------------------------------------------------

    def warm_up(self, bars: Sequence[Bar]) -> None:
        self._update(bars)

    def observe(self, bars: Sequence[Bar], *, regime: str, profile: Profile, signals: SignalRecorder) -> None:
        """Every value computed is recorded; those clearing the profile's `signal_threshold` as actionable."""
        values = self._update(bars)
        timestamp = bars[0].timestamp
        threshold = profile.signal_threshold
        record, record_actionable = signals.record, signals.record_actionable
        by_symbol: dict[str, dict[str, float]] = {}
        for symbol, signal_type, horizon_bars, strength in values:
            actionable = abs(strength) >= threshold
            row = (timestamp, symbol, signal_type, strength, horizon_bars, regime, actionable)
            record(row)
            if actionable:
                record_actionable(row)
            by_symbol.setdefault(symbol, {})[signal_type] = strength
        self._last = CrossSection(
            timestamp=timestamp, regime=regime, bars={bar.symbol: bar for bar in bars}, signals=by_symbol
        )

    def decide(self, *, profile: Profile, book: PortfolioView) -> list[TargetPosition]:
        if self._last is None:
            return []
        return list(self.targets(self._last, profile=profile, book=book))

    def _update(self, bars: Sequence[Bar]) -> list[tuple[str, str, int, float]]:
        """(symbol, signal type, horizon, strength) of every value the models give on `bars`."""
        values: list[tuple[str, str, int, float]] = []
        per_symbol = self._per_symbol
        for bar in bars:
            for model in per_symbol[bar.symbol]:
                strength = model.update(bar)
                if strength is not None:
                    values.append((bar.symbol, model.signal_type, model.horizon_bars, float(strength)))
        if self._over_symbols:
            arrays = self._arrays(bars)
            names = [self.symbols[i] for i in arrays.index]
            for vectorised in self._over_symbols:
                strengths = vectorised.update(arrays)
                for symbol, strength in zip(names, strengths.tolist(), strict=True):
                    if not math.isnan(strength):
                        values.append((symbol, vectorised.signal_type, vectorised.horizon_bars, strength))
        return values

    def _arrays(self, bars: Sequence[Bar]) -> CrossSectionBars:
        position = self._position
        return CrossSectionBars(
            timestamp=bars[0].timestamp,
            index=np.fromiter((position[bar.symbol] for bar in bars), dtype=np.intp, count=len(bars)),
            open=np.fromiter((bar.open for bar in bars), dtype=np.float64, count=len(bars)),
            high=np.fromiter((bar.high for bar in bars), dtype=np.float64, count=len(bars)),
            low=np.fromiter((bar.low for bar in bars), dtype=np.float64, count=len(bars)),
            close=np.fromiter((bar.close for bar in bars), dtype=np.float64, count=len(bars)),
            volume=np.fromiter((bar.volume for bar in bars), dtype=np.float64, count=len(bars)),
        )
