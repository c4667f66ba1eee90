"""Strategy profiles as data: limits, breakers, thresholds and signal weights per regime."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType

from live.domain import REGIMES, SIGNAL_TYPES


@dataclass(frozen=True, slots=True, kw_only=True)
class Profile:
    """One risk appetite. Fractions are of current equity unless said otherwise."""

    name: str
    max_position_fraction: Decimal  # |position value| per symbol
    max_gross_exposure: Decimal  # sum of |position values|
    max_order_notional_fraction: Decimal
    daily_loss_limit: Decimal  # of start-of-day equity; breaker halts
    drawdown_limit: Decimal  # at 1x: no new exposure; at 2x: halt
    signal_threshold: float  # |composite strength| needed to open
    exit_threshold: float  # position closed when composite in its direction falls below this
    price_band: float  # max |last close / previous close - 1| accepted for an order
    max_orders_per_minute: int  # engine-clock sliding minute
    reject_storm_count: int  # this many rejections within a minute halts trading
    regime_weights: Mapping[str, Mapping[str, float]]

    def weights_for(self, regime: str) -> Mapping[str, float]:
        """Signal weights in `regime` (unknown regimes trade nothing)."""
        return self.regime_weights.get(regime, _ZERO_WEIGHTS)


_ZERO_WEIGHTS: Mapping[str, float] = MappingProxyType(dict.fromkeys(SIGNAL_TYPES, 0.0))


def _weights(table: dict[str, dict[str, float]]) -> Mapping[str, Mapping[str, float]]:
    assert set(table) == set(REGIMES), "every regime needs weights"
    return MappingProxyType(
        {r: MappingProxyType({s: table[r].get(s, 0.0) for s in SIGNAL_TYPES}) for r in REGIMES}
    )


_BASE_WEIGHTS = {
    "trending": {"momentum": 1.0, "vol_trend": 1.0, "breakout": 0.5, "mean_reversion": 0.0},
    "mean_reverting": {"momentum": 0.1, "vol_trend": 0.1, "breakout": 0.1, "mean_reversion": 1.0},
    "high_volatility_breakout": {"momentum": 0.5, "vol_trend": 0.3, "breakout": 1.0, "mean_reversion": 0.0},
    "low_volatility_compression": {"momentum": 0.2, "vol_trend": 0.2, "breakout": 0.6, "mean_reversion": 0.7},
    "crisis": {},
}

PROFILES: Mapping[str, Profile] = MappingProxyType(
    {
        "conservative": Profile(
            name="conservative",
            max_position_fraction=Decimal("0.05"),
            max_gross_exposure=Decimal("0.50"),
            max_order_notional_fraction=Decimal("0.06"),
            daily_loss_limit=Decimal("0.01"),
            drawdown_limit=Decimal("0.05"),
            signal_threshold=0.8,
            exit_threshold=0.15,
            price_band=0.05,
            max_orders_per_minute=20,
            reject_storm_count=20,
            regime_weights=_weights(_BASE_WEIGHTS),
        ),
        "balanced": Profile(
            name="balanced",
            max_position_fraction=Decimal("0.10"),
            max_gross_exposure=Decimal("1.00"),
            max_order_notional_fraction=Decimal("0.12"),
            daily_loss_limit=Decimal("0.03"),
            drawdown_limit=Decimal("0.10"),
            signal_threshold=0.65,
            exit_threshold=0.1,
            price_band=0.10,
            max_orders_per_minute=40,
            reject_storm_count=30,
            regime_weights=_weights(_BASE_WEIGHTS),
        ),
        "aggressive": Profile(
            name="aggressive",
            max_position_fraction=Decimal("0.20"),
            max_gross_exposure=Decimal("1.50"),
            max_order_notional_fraction=Decimal("0.25"),
            daily_loss_limit=Decimal("0.06"),
            drawdown_limit=Decimal("0.20"),
            signal_threshold=0.5,
            exit_threshold=0.05,
            price_band=0.15,
            max_orders_per_minute=80,
            reject_storm_count=50,
            regime_weights=_weights(
                {**_BASE_WEIGHTS, "crisis": {"momentum": 0.3, "vol_trend": 0.3, "breakout": 0.0}}
            ),
        ),
    }
)


def get_profile(name: str) -> Profile:
    """The profile called `name`; ValueError naming the valid ones otherwise."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}; valid: {', '.join(PROFILES)}") from None
