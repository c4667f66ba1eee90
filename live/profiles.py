"""Strategy profiles as data: limits, breakers, thresholds and signal weights per regime.

A profile's content is validated data (`ProfileBody`: every field bounded, weights for every regime and signal
type), with one canonical JSON form and its sha256, the content hash the engine records and checks. The three
built-ins are that same data, read-only; custom profiles are stored, one row per version, in PostgreSQL
(`profile_versions`, live/stores/record/profiles.py).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType
from typing import Annotated, Any, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from live.domain import REGIMES, SIGNAL_TYPES

BUILTIN_VERSION = (
    1  # the built-ins are version 1 for ever: a change to them is a new release, not a new version
)
PROFILE_NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,39}$"
_PROFILE_NAME = re.compile(PROFILE_NAME_PATTERN)
PROFILE_NAME_RULE = "a lowercase letter, then up to 39 lowercase letters, digits, '_' or '-'"


@dataclass(frozen=True, slots=True, kw_only=True)
class Profile:
    """One risk appetite. Fractions are of current equity unless said otherwise. `content_hash` is the sha256 of
    the canonical JSON of everything but the name and version (`canonical_json`), computed on construction."""

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
    version: int = BUILTIN_VERSION
    content_hash: str = field(init=False, compare=False, default="")

    def __post_init__(self) -> None:
        object.__setattr__(self, "content_hash", content_hash(canonical_json(self)))

    def weights_for(self, regime: str) -> Mapping[str, float]:
        """Signal weights in `regime` (unknown regimes trade nothing)."""
        return self.regime_weights.get(regime, _ZERO_WEIGHTS)

    @property
    def is_builtin(self) -> bool:
        """One of the three shipped with TRADEOS (read-only, never stored)."""
        return PROFILES.get(self.name) == self


_ZERO_WEIGHTS: Mapping[str, float] = MappingProxyType(dict.fromkeys(SIGNAL_TYPES, 0.0))
_DECIMAL_FIELDS = (
    "max_position_fraction",
    "max_gross_exposure",
    "max_order_notional_fraction",
    "daily_loss_limit",
    "drawdown_limit",
)
_FLOAT_FIELDS = ("signal_threshold", "exit_threshold", "price_band")
_INT_FIELDS = ("max_orders_per_minute", "reject_storm_count")


def canonical_json(profile: Profile) -> str:
    """The content of `profile` (not its name or version) as canonical JSON: keys sorted, no spaces, every regime
    and signal type spelled out, numbers as JSON numbers in their shortest form (0.1, not 0.10)."""
    content: dict[str, Any] = {name: float(getattr(profile, name)) for name in _DECIMAL_FIELDS}
    content.update({name: float(getattr(profile, name)) for name in _FLOAT_FIELDS})
    content.update({name: int(getattr(profile, name)) for name in _INT_FIELDS})
    content["regime_weights"] = {
        regime: {signal: float(profile.weights_for(regime).get(signal, 0.0)) for signal in SIGNAL_TYPES}
        for regime in REGIMES
    }
    return json.dumps(content, sort_keys=True, separators=(",", ":"), allow_nan=False)


def content_hash(canonical: str) -> str:
    """sha256 (hex) of a canonical JSON text."""
    return hashlib.sha256(canonical.encode()).hexdigest()


def _six_decimals_at_most(value: float) -> float:
    # Money limits become Decimals (`to_profile`): beyond a millionth of equity a limit is noise, and a short
    # decimal keeps the canonical form (and so the hash) exact.
    if round(value, 6) != value:
        raise ValueError("at most 6 decimal places")
    return value


Fraction = Annotated[float, Field(gt=0, le=1, allow_inf_nan=False), AfterValidator(_six_decimals_at_most)]
Threshold = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
Weight = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]


class ProfileBody(BaseModel):
    """A profile's content as validated data (the body of `PUT /profiles/{name}`): bounds that refuse unsafe
    values, and weights for every regime and every signal type. Fractions are of equity; numbers are JSON
    numbers."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={
            "examples": [
                {
                    "max_position_fraction": 0.04,
                    "max_gross_exposure": 0.4,
                    "max_order_notional_fraction": 0.05,
                    "daily_loss_limit": 0.01,
                    "drawdown_limit": 0.04,
                    "signal_threshold": 0.8,
                    "exit_threshold": 0.15,
                    "price_band": 0.05,
                    "max_orders_per_minute": 10,
                    "reject_storm_count": 10,
                    "regime_weights": {
                        regime: dict.fromkeys(SIGNAL_TYPES, 0.0 if regime == "crisis" else 0.5)
                        for regime in REGIMES
                    },
                }
            ]
        },
    )

    max_position_fraction: Fraction = Field(description="Largest |position value| per symbol, in (0, 1].")
    max_gross_exposure: Annotated[
        float, Field(gt=0, le=3, allow_inf_nan=False), AfterValidator(_six_decimals_at_most)
    ] = Field(description="Sum of |position values|, in (0, 3] (3 = 300 % of equity).")
    max_order_notional_fraction: Fraction = Field(description="Largest order notional, in (0, 1].")
    daily_loss_limit: Fraction = Field(description="Day's loss that halts trading, in (0, 1].")
    drawdown_limit: Annotated[
        float, Field(gt=0, le=0.5, allow_inf_nan=False), AfterValidator(_six_decimals_at_most)
    ] = Field(description="Drawdown at which no new exposure is taken, in (0, 0.5]; twice it halts.")
    signal_threshold: Threshold = Field(description="|Composite strength| needed to open, in [0, 1].")
    exit_threshold: Threshold = Field(
        description="A position closes when the composite in its direction falls below this, in [0, 1]; "
        "at most signal_threshold."
    )
    price_band: float = Field(
        gt=0, le=1, allow_inf_nan=False, description="Largest |close / previous close - 1| an order accepts."
    )
    max_orders_per_minute: int = Field(ge=1, le=1000, description="Order throttle (engine-clock minute).")
    reject_storm_count: int = Field(
        ge=1, le=1000, description="Rejections within a minute that halt trading."
    )
    regime_weights: dict[str, dict[str, Weight]] = Field(
        description="Weight in [0, 1] of every signal type ("
        + ", ".join(SIGNAL_TYPES)
        + ") in every regime ("
        + ", ".join(REGIMES)
        + ")."
    )

    @field_validator("regime_weights")
    @classmethod
    def _every_regime_and_signal_type(cls, table: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        missing, unknown = sorted(set(REGIMES) - set(table)), sorted(set(table) - set(REGIMES))
        if missing or unknown:
            raise ValueError(_mismatch("regime", missing, unknown, REGIMES))
        for regime, weights in table.items():
            missing, unknown = (
                sorted(set(SIGNAL_TYPES) - set(weights)),
                sorted(set(weights) - set(SIGNAL_TYPES)),
            )
            if missing or unknown:
                raise ValueError(f"{regime}: " + _mismatch("signal type", missing, unknown, SIGNAL_TYPES))
        return table

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.exit_threshold > self.signal_threshold:
            raise ValueError(
                "exit_threshold must not exceed signal_threshold (a position would close on the signal that "
                "opened it)"
            )
        if self.max_position_fraction > self.max_gross_exposure:
            raise ValueError("max_position_fraction must not exceed max_gross_exposure")
        return self

    def to_profile(self, *, name: str, version: int) -> Profile:
        """The engine's profile of this content."""
        return Profile(
            name=name,
            version=version,
            max_position_fraction=_decimal(self.max_position_fraction),
            max_gross_exposure=_decimal(self.max_gross_exposure),
            max_order_notional_fraction=_decimal(self.max_order_notional_fraction),
            daily_loss_limit=_decimal(self.daily_loss_limit),
            drawdown_limit=_decimal(self.drawdown_limit),
            signal_threshold=self.signal_threshold,
            exit_threshold=self.exit_threshold,
            price_band=self.price_band,
            max_orders_per_minute=self.max_orders_per_minute,
            reject_storm_count=self.reject_storm_count,
            regime_weights=MappingProxyType(
                {r: MappingProxyType({s: self.regime_weights[r][s] for s in SIGNAL_TYPES}) for r in REGIMES}
            ),
        )

    @classmethod
    def of(cls, profile: Profile) -> ProfileBody:
        """The content of a profile, as data (what `GET /profiles` shows)."""
        return cls.model_validate_json(canonical_json(profile))


def _decimal(value: float) -> Decimal:
    """The decimal a human reads in the number (0.1, not 0.1000000000000000055511151231257827)."""
    return Decimal(repr(value))


def _mismatch(what: str, missing: list[str], unknown: list[str], valid: tuple[str, ...]) -> str:
    parts = []
    if missing:
        parts.append(f"missing {what}s {', '.join(missing)}")
    if unknown:
        parts.append(f"unknown {what}s {', '.join(unknown)}")
    return "; ".join(parts) + f" (every one of {', '.join(valid)} is needed)"


def check_profile_name(name: str) -> str:
    """`name` if it can name a custom profile; ValueError saying the rule otherwise."""
    if not _PROFILE_NAME.fullmatch(name):
        raise ValueError(f"a profile name is {PROFILE_NAME_RULE}; {name[:60]!r} is not")
    return name


def stored_profile(*, name: str, version: int, body_json: str) -> Profile:
    """A stored custom profile's version, validated as when it was saved (ValueError if it no longer is)."""
    return ProfileBody.model_validate_json(body_json).to_profile(name=name, version=version)


def tampering(profile: Profile, *, stored_body: str | None, stored_hash: str | None) -> str | None:
    """Why the stored row of the custom profile version the engine trades under no longer matches what it loaded
    (row gone, hash or body changed behind its back); None while it matches."""
    where = f"profile {profile.name!r} version {profile.version}"
    if stored_body is None or stored_hash is None:
        return f"{where} is no longer stored; the engine trades under {profile.content_hash}"
    if stored_hash != profile.content_hash:
        return f"{where}: stored hash {stored_hash} differs from {profile.content_hash}, which the engine trades under"
    if content_hash(stored_body) != profile.content_hash:
        return f"{where}: the stored body no longer hashes to {profile.content_hash}, which the engine trades under"
    return None


def _weights(table: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    return {regime: {s: table.get(regime, {}).get(s, 0.0) for s in SIGNAL_TYPES} for regime in REGIMES}


_BASE_WEIGHTS = {
    "trending": {"momentum": 1.0, "vol_trend": 1.0, "breakout": 0.5, "mean_reversion": 0.0},
    "mean_reverting": {"momentum": 0.1, "vol_trend": 0.1, "breakout": 0.1, "mean_reversion": 1.0},
    "high_volatility_breakout": {"momentum": 0.5, "vol_trend": 0.3, "breakout": 1.0, "mean_reversion": 0.0},
    "low_volatility_compression": {"momentum": 0.2, "vol_trend": 0.2, "breakout": 0.6, "mean_reversion": 0.7},
    "crisis": {},
}

_BUILTIN_BODIES: dict[str, dict[str, Any]] = {
    "conservative": {
        "max_position_fraction": "0.05",
        "max_gross_exposure": "0.50",
        "max_order_notional_fraction": "0.06",
        "daily_loss_limit": "0.01",
        "drawdown_limit": "0.05",
        "signal_threshold": 0.8,
        "exit_threshold": 0.15,
        "price_band": 0.05,
        "max_orders_per_minute": 20,
        "reject_storm_count": 20,
        "regime_weights": _weights(_BASE_WEIGHTS),
    },
    "balanced": {
        "max_position_fraction": "0.10",
        "max_gross_exposure": "1.00",
        "max_order_notional_fraction": "0.12",
        "daily_loss_limit": "0.03",
        "drawdown_limit": "0.10",
        "signal_threshold": 0.65,
        "exit_threshold": 0.1,
        "price_band": 0.10,
        "max_orders_per_minute": 40,
        "reject_storm_count": 30,
        "regime_weights": _weights(_BASE_WEIGHTS),
    },
    "aggressive": {
        "max_position_fraction": "0.20",
        "max_gross_exposure": "1.50",
        "max_order_notional_fraction": "0.25",
        "daily_loss_limit": "0.06",
        "drawdown_limit": "0.20",
        "signal_threshold": 0.5,
        "exit_threshold": 0.05,
        "price_band": 0.15,
        "max_orders_per_minute": 80,
        "reject_storm_count": 50,
        "regime_weights": _weights(
            {**_BASE_WEIGHTS, "crisis": {"momentum": 0.3, "vol_trend": 0.3, "breakout": 0.0}}
        ),
    },
}

PROFILES: Mapping[str, Profile] = MappingProxyType(
    {
        name: ProfileBody.model_validate(body).to_profile(name=name, version=BUILTIN_VERSION)
        for name, body in _BUILTIN_BODIES.items()
    }
)


def get_profile(name: str) -> Profile:
    """The built-in profile called `name`; ValueError naming the valid ones otherwise."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}; valid: {', '.join(PROFILES)}") from None
