"""Template for a strategy implementing the port directly: copy this file, fill in the methods, and choose it with
`tradeos up --strategy path/to/file.py:TemplateStrategy` (or register it by name in live/strategy/loading.py
`STRATEGIES`). Most strategies are shorter written with live/strategy/api.py `SignalStrategy`
(docs/strategies.md); the built-in strategy (live/strategy/builtin.py) implements the port directly.

A strategy says which positions it wants; the engine sizes them to the profile's limits, runs the pre-trade
checks and the kill switch, submits to the broker and keeps the book. It cannot bypass any of that.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from live.domain import Bar
from live.profiles import Profile
from live.signals import SIGNAL_MODELS, SignalModel
from live.strategy.api import StrategyParams
from live.strategy.base import PortfolioView, SignalRecorder, TargetPosition


class TemplateParams(StrategyParams):
    """<Its parameters, each with a default and bounds, e.g. `lookback: int = Field(default=20, ge=2)`.>"""


class TemplateStrategy:
    """<What it trades on, in one sentence.>"""

    name = "template"
    version = "1"
    Params = TemplateParams

    def __init__(self, *, symbols: Iterable[str], params: TemplateParams | None = None) -> None:
        self.params = params or TemplateParams()
        # One set of incremental signal models per symbol (live/signals/ holds the built-in ones).
        self.models: dict[str, SignalModel] = {symbol: SIGNAL_MODELS["momentum"]() for symbol in symbols}
        self._last: dict[str, float] = {}

    def warm_up(self, bars: Sequence[Bar]) -> None:
        """Must advance the models exactly as `observe` does, recording nothing: after a restart the engine
        warms the strategy up over the bars it processed before, and the models must end where they were."""
        for bar in bars:
            self.models[bar.symbol].update(bar)

    def observe(self, bars: Sequence[Bar], *, regime: str, profile: Profile, signals: SignalRecorder) -> None:
        """Must update the models with every bar of the cross-section and record every value computed with
        `signals.record` (and with `signals.record_actionable` too when the decision may act on it), as
        (bars' timestamp, symbol, signal type, strength in [-1, 1], horizon in bars, `regime`, actionable)."""
        self._last = {}
        for bar in bars:
            model = self.models[bar.symbol]
            strength = model.update(bar)
            if strength is None:
                continue  # still warming up
            actionable = abs(strength) >= profile.signal_threshold
            row = (
                bar.timestamp,
                bar.symbol,
                model.signal_type,
                strength,
                model.horizon_bars,
                regime,
                actionable,
            )
            signals.record(row)
            if actionable:
                signals.record_actionable(row)
            self._last[bar.symbol] = strength

    def decide(self, *, profile: Profile, book: PortfolioView) -> list[TargetPosition]:
        """Must return the positions wanted after the last cross-section observed, only for its symbols, in the
        order the engine should act on them. Say nothing about a symbol to leave it as it is. Not called while
        trading is halted; the engine ignores a target for a symbol with an order in flight."""
        raise NotImplementedError("TemplateStrategy is a template: copy it and fill in decide()")
