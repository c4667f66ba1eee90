"""Immutable domain events. Timestamps are timezone-aware UTC; money and quantities are Decimal."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import overload

from pydantic import TypeAdapter

REGIMES: tuple[str, ...] = (
    "trending",
    "mean_reverting",
    "high_volatility_breakout",
    "low_volatility_compression",
    "crisis",
)

SIGNAL_TYPES: tuple[str, ...] = ("momentum", "mean_reversion", "breakout", "vol_trend")


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderStatus(StrEnum):
    SUBMITTED = "submitted"
    FILLED = "filled"
    REJECTED = "rejected"
    CANCELLED = "cancelled"


class TradingState(StrEnum):
    ACTIVE = "active"
    REDUCE_ONLY = "reduce_only"
    HALTED = "halted"


def require_utc(ts: datetime) -> datetime:
    """Reject naive or non-UTC timestamps at the edge instead of guessing."""
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise ValueError(f"timestamp {ts.isoformat()} has no timezone")
    return ts.astimezone(UTC)


_WIRE_TIME: TypeAdapter[datetime] = TypeAdapter(datetime)


@overload
def iso_utc(ts: datetime) -> str: ...
@overload
def iso_utc(ts: None) -> None: ...
@overload
def iso_utc(ts: datetime | None) -> str | None: ...
def iso_utc(ts: datetime | None) -> str | None:
    """The one way a time leaves the system (API, WebSocket, Redis, files): ISO 8601 in UTC with a `Z`,
    microseconds only when there are some; None stays None (JSON null). It is pydantic's own datetime serialiser,
    so a time written by hand is written exactly as the wire models (live/wire.py) write theirs."""
    if ts is None:
        return None
    return str(_WIRE_TIME.dump_python(ts.astimezone(UTC), mode="json"))


@dataclass(frozen=True, slots=True, kw_only=True)
class Bar:
    """One OHLCV bar of one symbol; `timestamp` is the bar's open time. `spread` is ask - bid at the close."""

    timestamp: datetime
    symbol: str
    open: float
    high: float
    low: float
    close: float
    volume: float
    spread: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Signal:
    """A computed signal value; strength in [-1, 1], predicting `horizon_bars` ahead."""

    timestamp: datetime
    symbol: str
    signal_type: str
    strength: float
    horizon_bars: int
    regime: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Order:
    """A market order. `id` is the client order id: resubmitting the same id is harmless."""

    id: str
    timestamp: datetime
    symbol: str
    side: Side
    quantity: Decimal  # a whole number of the instrument's quantity step
    signal_type: str
    reduces_position: bool
    status: OrderStatus = OrderStatus.SUBMITTED
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Fill:
    """One execution. `realized_pnl` is gross (average cost, price only); `fee` is separate."""

    id: str
    order_id: str
    timestamp: datetime
    symbol: str
    side: Side
    quantity: Decimal
    price: Decimal
    fee: Decimal
    signal_type: str
    realized_pnl: Decimal


@dataclass(frozen=True, slots=True, kw_only=True)
class RiskEvent:
    """A rejection, a breaker trip or an outage; `code` is machine-readable (e.g. DRAWDOWN_LIMIT_EXCEEDED)."""

    timestamp: datetime
    code: str
    detail: str
    symbol: str | None = None
    halts_trading: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class RegimeChange:
    timestamp: datetime
    previous: str | None
    current: str
    model: str


@dataclass(frozen=True, slots=True, kw_only=True)
class EquitySnapshot:
    timestamp: datetime
    total_value: Decimal
    cash: Decimal


@dataclass(frozen=True, slots=True, kw_only=True)
class ControlAction:
    """An operator's action: halt, resume, reduce, flatten or a profile change; who, when, why, and from where
    (the client address of the API request; `engine` for the engine's own)."""

    timestamp: datetime
    action: str
    actor: str
    reason: str = ""
    value: str = ""
    origin: str = "engine"
    extra: dict[str, str] = field(default_factory=dict)
