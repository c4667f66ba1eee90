"""The operator API's wire shapes (docs/api.md): pydantic models whose examples document `/docs`.

The WebSocket carries the same shapes (`live/wire.py` builds them on the engine's side; the tests hold the two equal).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from live.settings import ProfileName
from live.wire import EventType


def _as_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_as_utc)]
"""An aware timestamp normalised to UTC, so it serialises with a trailing `Z`."""


def _no_control_characters(value: str) -> str:
    # PostgreSQL refuses NUL in text; other control characters have no business in a reason or a symbol either.
    if any(ord(ch) < 32 and ch not in "\t" for ch in value):
        raise ValueError("must not contain control characters (such as NUL)")
    return value


PlainText = Annotated[str, AfterValidator(_no_control_characters)]
"""Text that is stored or used as a filter: printable, no NUL."""

ServiceHealth = Literal["healthy", "unhealthy"]
TradingStateName = Literal["active", "reduce_only", "halted"]


_POSITION_EXAMPLE: dict[str, Any] = {
    "symbol": "AAPL",
    "quantity": -40,
    "avg_price": 187.25,
    "market_price": 186.1,
    "market_value": -7444.0,
    "unrealized_pnl": 46.0,
}
_TRADE_EXAMPLE: dict[str, Any] = {
    "id": "f-000123",
    "order_id": "o-000123",
    "symbol": "AAPL",
    "side": "sell",
    "quantity": 40,
    "price": 187.25,
    "fee": 0.75,
    "timestamp": "2024-03-01T14:29:00Z",
    "signal_type": "momentum",
    "realized_pnl": 0.0,
}


def _examples(*examples: dict[str, Any]) -> ConfigDict:
    return ConfigDict(json_schema_extra={"examples": list(examples)})


class Position(BaseModel):
    """One open position; `quantity` is signed (negative is short)."""

    model_config = _examples(_POSITION_EXAMPLE)

    symbol: str
    quantity: int
    avg_price: float
    market_price: float
    market_value: float
    unrealized_pnl: float


class Portfolio(BaseModel):
    """The book as the engine last marked it. `drawdown` is a positive fraction below the high-water mark."""

    model_config = _examples(
        {
            "total_value": 101234.56,
            "cash": 93790.56,
            "unrealized_pnl": 46.0,
            "realized_pnl_today": -12.4,
            "drawdown": 0.0042,
            "positions": [_POSITION_EXAMPLE],
            "high_water_mark": 101660.0,
            "timestamp": "2024-03-01T14:30:00Z",
            "realized_pnl": 310.25,
            "trading_state": "active",
            "profile": "balanced",
            "regime": "trending",
        }
    )

    total_value: float
    cash: float
    unrealized_pnl: float
    realized_pnl_today: float
    drawdown: float = Field(ge=0)
    positions: list[Position]
    high_water_mark: float | None = Field(default=None, description="Highest total value marked so far.")
    timestamp: UtcDatetime | None = Field(default=None, description="Engine clock of the snapshot.")
    realized_pnl: float | None = Field(
        default=None,
        description="Realized P&L since the first fill, gross (average cost, fees not deducted).",
    )
    trading_state: TradingStateName | None = Field(
        default=None, description="State the book is traded under; null when rebuilt from the record."
    )
    profile: str | None = Field(
        default=None, description="Active risk profile; null when rebuilt from the record."
    )
    regime: str | None = Field(
        default=None, description="Current market regime; null when rebuilt from the record."
    )


class Trade(BaseModel):
    """One fill. `realized_pnl` is gross (average cost, price only); `fee` is separate."""

    model_config = _examples(_TRADE_EXAMPLE)

    id: str
    order_id: str
    symbol: str
    side: Literal["buy", "sell"]
    quantity: int = Field(gt=0)
    price: float
    fee: float
    timestamp: UtcDatetime
    signal_type: str
    realized_pnl: float


class Signal(BaseModel):
    """One computed signal value; `actionable` ones are those the engine acted on (and sends over /ws)."""

    model_config = _examples(
        {
            "id": 9812,
            "timestamp": "2024-03-01T14:29:00Z",
            "symbol": "AAPL",
            "signal_type": "momentum",
            "strength": -0.62,
            "horizon_bars": 20,
            "regime": "trending",
            "actionable": True,
        }
    )

    id: int
    timestamp: UtcDatetime
    symbol: str
    signal_type: str
    strength: float = Field(ge=-1, le=1)
    horizon_bars: int
    regime: str
    actionable: bool


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


class TradingStatus(BaseModel):
    """Where trading stands: active, reduce-only (no new exposure) or halted; since when, why, by whom."""

    model_config = _examples(
        {
            "status": "halted",
            "since": "2024-03-01T14:30:00Z",
            "reason": "news pending",
            "actor": "api",
            "profile": "balanced",
            "engine_acknowledged": True,
        }
    )

    status: TradingStateName
    since: UtcDatetime | None = None
    reason: str = ""
    actor: str = ""
    profile: str | None = Field(default=None, description="Active risk profile.")
    engine_acknowledged: bool | None = Field(
        default=None,
        description="On a command: true when a running engine confirmed it; false when no engine was running "
        "(the state is stored and applied when the engine starts). Absent on GET.",
    )


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


class Event(BaseModel):
    """One WebSocket message: `data` is the resource exactly as REST returns it (a `fill` is a `/trades` item, a
    `signal` a `/signals` item, a `portfolio_update` is `/portfolio`); `timestamp` is the engine's clock of the
    event (the bar's time, equal to `data.timestamp`), never the wall clock."""

    model_config = _examples(
        {
            "type": "fill",
            "data": _TRADE_EXAMPLE,
            "timestamp": "2024-03-01T14:29:00Z",
        }
    )

    type: EventType
    data: dict[str, Any]
    timestamp: UtcDatetime | None = None
