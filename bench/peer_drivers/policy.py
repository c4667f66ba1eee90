"""What every peer strategy does per bar, in the peers' own virtual environments: TRADEOS's own four signal models
(live/signals, imported from this checkout: the same incremental updates the engine runs), their composite with
the balanced profile's weights of the default regime, and the built-in strategy's threshold decision.

Only the decision is returned; each driver turns it into its framework's market order. No regime, no sizing
limits, no risk checks, no recording: the peers are given less to do per bar than TRADEOS's engine, not more.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from live.signals import HORIZONS, SIGNAL_MODELS  # noqa: E402

# The balanced profile's weights (live/profiles.py) in the "trending" regime: on the bench's sim they make about as
# many orders as the engine does (the default regime's weights make none: mean reversion alone rarely clears 0.65).
WEIGHTS = {"momentum": 1.0, "mean_reversion": 0.0, "breakout": 0.5, "vol_trend": 1.0}
SIGNAL_THRESHOLD = 0.65
EXIT_THRESHOLD = 0.1
NOTIONAL = 10_000.0  # per entry: a tenth of the 100,000 book


class PriceBar:
    """The three prices the signal models read, refilled from each framework's own bar object."""

    __slots__ = ("close", "high", "low")

    def __init__(self) -> None:
        self.close = self.high = self.low = 0.0


class SymbolPolicy:
    """One symbol's four models and its position as the strategy sees it (direction, bars held, opener)."""

    __slots__ = ("bar", "direction", "held", "horizon", "opener", "updates")

    def __init__(self) -> None:
        self.bar = PriceBar()
        self.updates = tuple(
            (name, factory().update, WEIGHTS[name]) for name, factory in SIGNAL_MODELS.items()
        )
        self.direction = 0
        self.held = 0
        self.horizon = 0
        self.opener = ""

    def on_bar(self, close: float, high: float, low: float) -> int | None:
        """Folds in one bar; returns the order to send: +1 buy, -1 sell to open, 0 to close, None for nothing."""
        bar = self.bar
        bar.close, bar.high, bar.low = close, high, low
        numerator = denominator = lead = 0.0
        lead_type = ""
        for name, update, weight in self.updates:
            strength = update(bar)
            if strength is None or weight <= 0.0:
                continue
            weighted = weight * strength
            numerator += weighted
            denominator += weight
            size = weighted if weighted >= 0.0 else -weighted
            if size > lead:
                lead, lead_type = size, name
        if self.direction:
            self.held += 1
        if denominator <= 0.0:
            return None
        composite = numerator / denominator
        if self.direction:
            if self.held >= self.horizon and composite * self.direction < EXIT_THRESHOLD:
                self.direction = 0
                return 0
            return None
        if -SIGNAL_THRESHOLD < composite < SIGNAL_THRESHOLD:
            return None
        self.direction = 1 if composite > 0 else -1
        self.held = 0
        self.opener = lead_type
        self.horizon = HORIZONS.get(lead_type, 0)
        return self.direction
