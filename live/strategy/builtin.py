"""The built-in strategy: four signal models per symbol, weighted by the profile in the current regime.

Entries when the regime-weighted composite clears the profile's threshold; exits when it fades, once the position
has been held for the opening signal's horizon, counted in the symbol's own bars (its forecast needs that long to
play out).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from live.domain import Bar
from live.profiles import Profile
from live.signals import HORIZONS, make_signal_models
from live.strategy.api import StrategyParams
from live.strategy.base import PortfolioView, SignalRecorder, TargetPosition

Update = Callable[[Bar], float | None]  # a signal model's bound update
# Per symbol: (signal type, update, horizon in bars, weight in the current regime) of each of its models.
Plan = dict[str, tuple[tuple[str, Update, int, float], ...]]


class BuiltinParams(StrategyParams):
    """None: the built-in strategy is tuned through the risk profile (thresholds, weights per regime)."""


class BuiltinStrategy:
    """Momentum, mean reversion, breakout and volatility-scaled trend on every symbol (live/signals/).

    It implements the strategy port directly rather than through `SignalStrategy`: its step is the engine's
    hot path, hand-tuned (bench/README.md), and its output is the reference the API was checked against."""

    name = "builtin"
    version = "1"
    Params = BuiltinParams
    warm_up_bars = 61  # vol_trend's first value; the others need 20 to 40 bars

    def __init__(self, *, symbols: Iterable[str], params: BuiltinParams | None = None) -> None:
        self.params = params or BuiltinParams()
        self.models = make_signal_models(symbols)
        # Per symbol, (signal type, bound update, horizon) of its models, so a step does no per-model lookups.
        self._updates = {
            symbol: tuple((name, model.update, model.horizon_bars) for name, model in models.items())
            for symbol, models in self.models.items()
        }
        self._plan_for: tuple[Profile, str, Plan] | None = None
        # Per symbol of the last cross-section: (composite, the signal type weighing most in it).
        self._composites: dict[str, tuple[float, str]] = {}

    def warm_up(self, bars: Sequence[Bar]) -> None:
        updates = self._updates
        for bar in bars:
            for _, update, _ in updates[bar.symbol]:
                update(bar)

    def observe(self, bars: Sequence[Bar], *, regime: str, profile: Profile, signals: SignalRecorder) -> None:
        """A value is actionable when its type weighs in this regime and it clears the profile's threshold."""
        timestamp = bars[0].timestamp
        plan = self._plan(profile, regime)
        threshold = profile.signal_threshold
        composites: dict[str, tuple[float, str]] = {}
        record = signals.record
        record_actionable = signals.record_actionable
        for bar in bars:
            symbol = bar.symbol
            numerator = 0.0
            denominator = 0.0
            lead_type = ""
            lead = 0.0
            for signal_type, update, horizon_bars, weight in plan[symbol]:
                strength = update(bar)
                if strength is None:
                    continue
                if weight > 0.0:
                    actionable = strength >= threshold or strength <= -threshold
                    row = (timestamp, symbol, signal_type, strength, horizon_bars, regime, actionable)
                    record(row)
                    if actionable:
                        record_actionable(row)
                    weighted = weight * strength
                    numerator += weighted
                    denominator += weight
                    size = weighted if weighted >= 0.0 else -weighted
                    if size > lead:
                        lead, lead_type = size, signal_type
                else:
                    record((timestamp, symbol, signal_type, strength, horizon_bars, regime, False))
            if denominator > 0:
                composites[symbol] = (numerator / denominator, lead_type)
        self._composites = composites

    def decide(self, *, profile: Profile, book: PortfolioView) -> list[TargetPosition]:
        """A symbol with an order in flight waits for its fill. An open position is closed when the composite in
        its direction falls below `exit_threshold`, once held for its opening signal's horizon; a flat symbol
        is opened in the composite's direction when the composite clears `signal_threshold`."""
        targets: list[TargetPosition] = []
        pending = book.pending
        positions = book.positions
        opening_signal = book.opening_signal
        for symbol, (composite, lead_type) in self._composites.items():
            if pending.get(symbol):
                continue
            position = positions.get(symbol)
            quantity = position.quantity if position is not None else 0
            if quantity != 0:
                opener = opening_signal.get(symbol, lead_type)
                if book.bars_held(symbol) < HORIZONS.get(opener, 0):
                    continue
                direction = 1 if quantity > 0 else -1
                if composite * direction < profile.exit_threshold:
                    targets.append(TargetPosition(symbol=symbol, direction=0, signal_type=opener))
                continue
            if abs(composite) < profile.signal_threshold:
                continue
            targets.append(
                TargetPosition(symbol=symbol, direction=1 if composite > 0 else -1, signal_type=lead_type)
            )
        return targets

    def _plan(self, profile: Profile, regime: str) -> Plan:
        """Per symbol, (signal type, bound update, horizon, the profile's weight in `regime`) of its models.
        Remade only when the profile or the regime changes."""
        cached = self._plan_for
        if cached is not None and cached[0] is profile and cached[1] == regime:
            return cached[2]
        weights = profile.weights_for(regime)
        plan: Plan = {
            symbol: tuple(
                (name, update, horizon, float(weights.get(name, 0.0))) for name, update, horizon in updates
            )
            for symbol, updates in self._updates.items()
        }
        self._plan_for = (profile, regime, plan)
        return plan
