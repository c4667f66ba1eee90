"""The engine's wire functions (live/wire.py) produce exactly the operator API's REST models (api/schemas.py): the
same keys, and values that survive the REST model unchanged, so a WebSocket resource equals its REST item."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from pydantic import BaseModel

from api.schemas import Portfolio, Signal, Trade
from live import wire
from live.domain import Fill, RegimeChange, RiskEvent, Side
from live.domain import Signal as SignalEvent
from live.portfolio import Portfolio as Book

AT = datetime(2026, 1, 5, 14, 30, 0, 250000, tzinfo=UTC)
FILL = Fill(
    id="f-1",
    order_id="o-1",
    timestamp=AT,
    symbol="AAPL",
    side=Side.SELL,
    quantity=40,
    price=Decimal("187.2500"),
    fee=Decimal("0.75"),
    signal_type="momentum",
    realized_pnl=Decimal("12.50000000"),
)
SIGNAL = SignalEvent(
    timestamp=AT, symbol="AAPL", signal_type="momentum", strength=-0.62, horizon_bars=30, regime="trending"
)


def _book() -> dict[str, object]:
    book = Book(initial_cash=Decimal("100000"))
    book.apply_fill(
        fill_id="f-0",
        order_id="o-0",
        timestamp=AT,
        symbol="AAPL",
        side=Side.BUY,
        quantity=40,
        price=Decimal("187.2500"),
        fee=Decimal("0.75"),
        signal_type="momentum",
    )
    book.mark("AAPL", Decimal("186.10"))
    return wire.portfolio_json(
        book.snapshot(AT), trading_state="active", profile="balanced", regime="trending"
    )


def _as_rest(model: type[BaseModel], data: dict[str, object]) -> dict[str, object]:
    return model.model_validate(data).model_dump(mode="json")


@pytest.mark.parametrize(
    ("model", "data"),
    [
        (Trade, wire.fill_json(FILL)),
        (Signal, wire.signal_json(SIGNAL, signal_id=9812, actionable=True)),
        (Portfolio, _book()),
    ],
    ids=["fill is a /trades item", "signal is a /signals item", "portfolio_update is /portfolio"],
)
def test_each_websocket_resource_has_exactly_the_shape_of_its_rest_model(
    model: type[BaseModel], data: dict[str, object]
) -> None:
    assert set(data) == set(model.model_fields)
    assert _as_rest(model, data) == data


@pytest.mark.parametrize(
    ("message", "data_timestamp"),
    [
        (wire.fill_message(FILL), AT),
        (wire.signal_message(SIGNAL, signal_id=1), AT),
        (wire.risk_event_message(RiskEvent(timestamp=AT, code="GROSS_EXPOSURE", detail="over")), AT),
        (
            wire.regime_change_message(
                RegimeChange(timestamp=AT, previous=None, current="crisis", model="rules")
            ),
            AT,
        ),
        (wire.portfolio_message(_book(), timestamp=AT), AT),
    ],
    ids=["fill", "signal", "risk_event", "regime_change", "portfolio_update"],
)
def test_every_message_is_stamped_with_the_engine_time_of_its_event(
    message: str, data_timestamp: datetime
) -> None:
    envelope = json.loads(message)

    assert set(envelope) == {"type", "data", "timestamp"}
    assert envelope["type"] in wire.EVENT_TYPES
    assert envelope["timestamp"] == envelope["data"]["timestamp"] == "2026-01-05T14:30:00.250000Z"
