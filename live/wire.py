"""The wire contract of the engine's events (docs/api.md): one JSON shape per resource, REST and WebSocket alike.

A `fill` carries exactly a `GET /trades` item, a `signal` exactly a `GET /signals` item and a `portfolio_update`
exactly `GET /portfolio`; the operator API's models (api/schemas.py) are checked against these functions by the tests.
Every message is `{"type", "data", "timestamp"}` and its `timestamp` is the engine's clock of the event -- the time
of the bar it happened on, the same as `data["timestamp"]` -- never the wall clock: a replay at full speed and a live
run publish the same messages, and a client orders and joins them on one clock.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from live.domain import Fill, RegimeChange, RiskEvent, Signal
from live.stores.redis_store import iso

EventType = Literal["portfolio_update", "signal", "fill", "risk_event", "regime_change"]
EVENT_TYPES: tuple[EventType, ...] = ("portfolio_update", "signal", "fill", "risk_event", "regime_change")


def envelope(event_type: EventType, data: Mapping[str, Any], *, timestamp: datetime | None) -> str:
    """One WebSocket message. `timestamp` is the engine's clock of the event (None only before the engine's
    first bar, for a book that has never been marked)."""
    return json.dumps({"type": event_type, "data": data, "timestamp": iso(timestamp)})


def fill_json(fill: Fill) -> dict[str, Any]:
    """A fill as a `GET /trades` item."""
    return {
        "id": fill.id,
        "order_id": fill.order_id,
        "symbol": fill.symbol,
        "side": fill.side.value,
        "quantity": fill.quantity,
        "price": float(fill.price),
        "fee": float(fill.fee),
        "timestamp": iso(fill.timestamp),
        "signal_type": fill.signal_type,
        "realized_pnl": float(fill.realized_pnl),
    }


def signal_json(signal: Signal, *, signal_id: int, actionable: bool) -> dict[str, Any]:
    """A signal value as a `GET /signals` item; `signal_id` is its row id in the record."""
    return {
        "id": signal_id,
        "timestamp": iso(signal.timestamp),
        "symbol": signal.symbol,
        "signal_type": signal.signal_type,
        "strength": signal.strength,
        "horizon_bars": signal.horizon_bars,
        "regime": signal.regime,
        "actionable": actionable,
    }


def risk_event_json(event: RiskEvent) -> dict[str, Any]:
    return {
        "timestamp": iso(event.timestamp),
        "code": event.code,
        "detail": event.detail,
        "symbol": event.symbol,
        "halts_trading": event.halts_trading,
    }


def regime_change_json(change: RegimeChange) -> dict[str, Any]:
    return {
        "timestamp": iso(change.timestamp),
        "previous": change.previous,
        "current": change.current,
        "model": change.model,
    }


def portfolio_json(
    book: Mapping[str, Any], *, trading_state: str, profile: str, regime: str | None
) -> dict[str, Any]:
    """The book (`live.portfolio.Portfolio.snapshot`) with the state it is traded under, as `GET /portfolio`."""
    return {**book, "trading_state": trading_state, "profile": profile, "regime": regime}


def fill_message(fill: Fill) -> str:
    return envelope("fill", fill_json(fill), timestamp=fill.timestamp)


def signal_message(signal: Signal, *, signal_id: int) -> str:
    """Only actionable signals are published."""
    return envelope(
        "signal", signal_json(signal, signal_id=signal_id, actionable=True), timestamp=signal.timestamp
    )


def risk_event_message(event: RiskEvent) -> str:
    return envelope("risk_event", risk_event_json(event), timestamp=event.timestamp)


def regime_change_message(change: RegimeChange) -> str:
    return envelope("regime_change", regime_change_json(change), timestamp=change.timestamp)


def portfolio_message(portfolio: Mapping[str, Any], *, timestamp: datetime | None) -> str:
    """`portfolio` in the `GET /portfolio` shape, stamped with the engine clock it was marked at."""
    return envelope("portfolio_update", portfolio, timestamp=timestamp)
