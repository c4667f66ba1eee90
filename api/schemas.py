"""The operator API's models (docs/api.md), whose examples document `/docs`.

The resources the engine also publishes (portfolio, positions, trades, signals, risk events, regime changes), the
trading status and the WebSocket messages are the wire contract in `live/wire.py`, re-exported here; this module
adds what only the API has: health, the command bodies and answers, errors.
"""

from __future__ import annotations

import contextlib
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from live.profiles import PROFILE_NAME_PATTERN, PROFILE_NAME_RULE, PROFILES, ProfileBody, check_profile_name
from live.wire import (
    Event,
    EventType,
    Portfolio,
    Position,
    ProfileSaved,
    ProfileVersion,
    RegimeChange,
    RiskEvent,
    Signal,
    StrategyStatus,
    Trade,
    TradingStateName,
    TradingStatus,
    UtcDatetime,
)

__all__ = [
    "ErrorResponse",
    "Event",
    "EventType",
    "FlattenRequest",
    "Health",
    "PlainText",
    "Portfolio",
    "Position",
    "ProfileBody",
    "ProfileName",
    "ProfileRequest",
    "ProfileResponse",
    "ProfileSaved",
    "ProfileVersion",
    "ReasonRequest",
    "RegimeChange",
    "RiskEvent",
    "ServiceHealth",
    "Signal",
    "StrategyRequest",
    "StrategyResponse",
    "StrategyStatus",
    "Trade",
    "TradingStateName",
    "TradingStatus",
    "UtcDatetime",
]


def _no_control_characters(value: str) -> str:
    # PostgreSQL refuses NUL in text; other control characters have no business in a reason or a symbol either.
    if any(ord(ch) < 32 and ch not in "\t" for ch in value):
        raise ValueError("must not contain control characters (such as NUL)")
    return value


PlainText = Annotated[str, AfterValidator(_no_control_characters)]
"""Text that is stored or used as a filter: printable, no NUL."""

ServiceHealth = Literal["healthy", "unhealthy"]


def _examples(*examples: dict[str, Any]) -> ConfigDict:
    return ConfigDict(json_schema_extra={"examples": list(examples)})


class Health(BaseModel):
    """`healthy` when every service is; `unhealthy` when Redis or PostgreSQL is down; else `degraded`."""

    model_config = _examples(
        {
            "status": "degraded",
            "services": {
                "redis": "healthy",
                "postgres": "healthy",
                "signal_engine": "unhealthy",
                "execution": "unhealthy",
            },
            "timestamp": "2024-03-01T14:30:00Z",
        }
    )

    status: Literal["healthy", "degraded", "unhealthy"]
    services: dict[Literal["redis", "postgres", "signal_engine", "execution"], ServiceHealth]
    timestamp: UtcDatetime


class ReasonRequest(BaseModel):
    """Optional body of halt, resume and reduce: why, for the record."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"reason": "news pending"}]})

    reason: PlainText = Field(default="", max_length=500)


class FlattenRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"confirm": True, "reason": "end of day"}]}
    )

    confirm: Literal[True] = Field(description="Must be true: flatten closes every position at market.")
    reason: PlainText = Field(default="", max_length=500)


def _profile_name(value: object) -> str:
    # Anything that cannot name a profile is refused here, naming the built-ins; a well-formed name that names no
    # stored profile is refused by the handler, naming the stored ones too.
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return check_profile_name(value)
    raise ValueError(f"must be one of {', '.join(PROFILES)} or a custom profile's name ({PROFILE_NAME_RULE})")


ProfileName = Annotated[
    str,
    BeforeValidator(_profile_name),
    Field(
        description=f"{', '.join(PROFILES)}, or a custom profile's name ({PROFILE_NAME_RULE}).",
        json_schema_extra={"pattern": PROFILE_NAME_PATTERN},
    ),
]


class ProfileRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"profile": "conservative"}]})

    profile: ProfileName
    reason: PlainText = Field(default="", max_length=500)


class ProfileResponse(BaseModel):
    model_config = _examples({"profile": "conservative", "engine_acknowledged": True})

    profile: str
    engine_acknowledged: bool | None = None


ParamValue = str | int | float | bool | None


class StrategyRequest(BaseModel):
    """Body of `POST /trading/strategy`: a strategy the engine was allowed at start-up, by name or spec, with its
    parameters (validated by the engine against the strategy's parameter model; unset ones take defaults)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"strategy": "builtin", "params": {}, "reason": "back to the built-in strategy"}]
        },
    )

    strategy: PlainText = Field(min_length=1, max_length=500)
    params: dict[Annotated[str, Field(max_length=100)], ParamValue] = Field(
        default_factory=dict, max_length=100
    )
    reason: PlainText = Field(default="", max_length=500)


class StrategyResponse(BaseModel):
    model_config = _examples(
        {
            "strategy": {
                "name": "builtin",
                "version": "1",
                "params": {},
                "params_hash": "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
            },
            "engine_acknowledged": True,
        }
    )

    strategy: StrategyStatus
    engine_acknowledged: bool


class ErrorResponse(BaseModel):
    """Every error: `detail` is a sentence, or for 422 the list of offending fields."""

    model_config = _examples({"detail": "missing or invalid bearer token"})

    detail: Any
