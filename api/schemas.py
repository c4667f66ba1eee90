"""The operator API's models (docs/api.md), whose examples document `/docs`.

The resources the engine also publishes (portfolio, positions, trades, signals, risk events, regime changes), the
trading status and the WebSocket messages are the wire contract in `live/wire.py`, re-exported here; this module
adds what only the API has: health, the command bodies and answers, errors.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from live.settings import ProfileName
from live.wire import (
    Event,
    EventType,
    Portfolio,
    Position,
    RegimeChange,
    RiskEvent,
    Signal,
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
    "ProfileRequest",
    "ProfileResponse",
    "ReasonRequest",
    "RegimeChange",
    "RiskEvent",
    "ServiceHealth",
    "Signal",
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


class ProfileRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"profile": "conservative"}]})

    profile: ProfileName
    reason: PlainText = Field(default="", max_length=500)


class ProfileResponse(BaseModel):
    model_config = _examples({"profile": "conservative", "engine_acknowledged": True})

    profile: ProfileName
    engine_acknowledged: bool | None = None


class ErrorResponse(BaseModel):
    """Every error: `detail` is a sentence, or for 422 the list of offending fields."""

    model_config = _examples({"detail": "missing or invalid bearer token"})

    detail: Any
