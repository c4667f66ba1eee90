"""The JSON shapes of events as the WebSocket and the REST API carry them (CONTRACT.md §3, §4)."""

from __future__ import annotations

from typing import Any

from live.domain import Fill, RegimeChange, RiskEvent, Signal
from live.stores.redis_store import iso


def fill_json(fill: Fill) -> dict[str, Any]:
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


def signal_json(signal: Signal) -> dict[str, Any]:
    return {
        "timestamp": iso(signal.timestamp),
        "symbol": signal.symbol,
        "signal_type": signal.signal_type,
        "strength": signal.strength,
        "horizon_bars": signal.horizon_bars,
        "regime": signal.regime,
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
