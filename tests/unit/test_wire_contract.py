"""One wire contract (live/wire.py): the API's models are the engine's, every message it publishes reads back as
the typed event it is, and every time leaves the system in one format (`live.domain.iso_utc`)."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from pydantic import BaseModel, ValidationError

from api import schemas
from live import wire
from live.domain import Fill, RegimeChange, RiskEvent, Side, Signal, iso_utc

AT = datetime(2026, 1, 5, 14, 30, 0, 250000, tzinfo=UTC)
FILL = Fill(
    id="f-1",
    order_id="o-1",
    timestamp=AT,
    symbol="AAPL",
    side=Side.BUY,
    quantity=10,
    price=Decimal("187.2500"),
    fee=Decimal("0.75"),
    signal_type="momentum",
    realized_pnl=Decimal("0"),
)
BOOK = {
    "timestamp": "2026-01-05T14:30:00.250000Z",
    "total_value": 100000.0,
    "cash": 100000.0,
    "unrealized_pnl": 0.0,
    "realized_pnl_today": 0.0,
    "realized_pnl": 0.0,
    "drawdown": 0.0,
    "high_water_mark": 100000.0,
    "positions": [],
}


def _previous_format(ts: datetime) -> str:
    """How the eight hand-written formatters wrote a time before `iso_utc` replaced them."""
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def test_the_api_answers_with_the_engines_models() -> None:
    for name in ("Portfolio", "Position", "Trade", "Signal", "RiskEvent", "RegimeChange", "TradingStatus"):
        assert getattr(schemas, name) is getattr(wire, name), name


@pytest.mark.parametrize(
    "message",
    [
        wire.fill_message(FILL),
        wire.signal_message(
            Signal(
                timestamp=AT, symbol="AAPL", signal_type="momentum", strength=0.7, horizon_bars=20, regime="x"
            ),
            signal_id=7,
        ),
        wire.risk_event_message(
            RiskEvent(timestamp=AT, code="STALE_FEED", detail="no bar", halts_trading=True)
        ),
        wire.regime_change_message(
            RegimeChange(timestamp=AT, previous=None, current="crisis", model="rules-v1")
        ),
        wire.portfolio_message(
            wire.portfolio_json(BOOK, trading_state="active", profile="balanced", regime=None), timestamp=AT
        ),
    ],
    ids=["fill", "signal", "risk_event", "regime_change", "portfolio_update"],
)
def test_every_published_message_reads_back_as_the_typed_event_it_encodes(message: str) -> None:
    event = wire.EVENT.validate_json(message)

    assert event.type == json.loads(message)["type"]
    assert event.encode() == message


def test_a_message_with_a_field_the_contract_does_not_have_is_refused() -> None:
    message = json.loads(wire.fill_message(FILL))
    message["data"]["venue"] = "NYSE"

    with pytest.raises(ValidationError):
        wire.EVENT.validate_python(message)


def test_a_message_is_immutable() -> None:
    trade = wire.Trade.of(FILL)

    with pytest.raises(ValidationError):
        trade.price = 1.0  # type: ignore[misc]


def test_iso_utc_writes_every_instant_as_the_formatters_it_replaced() -> None:
    rng = random.Random(10)
    zones = [UTC, timezone(timedelta(hours=-5)), timezone(timedelta(hours=5, minutes=30))]
    instants = [AT, AT.replace(microsecond=0), AT.replace(microsecond=1), datetime(1970, 1, 1, tzinfo=UTC)]
    instants += [
        datetime(2000, 1, 1, tzinfo=UTC) + timedelta(microseconds=rng.randrange(10**16)) for _ in range(2000)
    ]
    for instant in instants:
        for zone in zones:
            assert iso_utc(instant.astimezone(zone)) == _previous_format(instant), instant
    assert iso_utc(None) is None


class _Stamped(BaseModel):
    at: wire.UtcDatetime


def test_a_wire_model_writes_its_times_as_iso_utc_does() -> None:
    for instant in (AT, AT.replace(microsecond=0), AT.astimezone(timezone(timedelta(hours=-5)))):
        written = json.loads(_Stamped(at=instant).model_dump_json())["at"]

        assert written == iso_utc(instant) == _previous_format(instant)


def test_an_event_the_wire_contract_refuses_is_left_out_and_the_others_are_published(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from live.service.publisher import PublishedSignal, _encoded

    at = datetime(2024, 1, 2, tzinfo=UTC)
    fields = {
        "timestamp": at,
        "symbol": "AAPL",
        "signal_type": "momentum",
        "horizon_bars": 30,
        "regime": "trending",
    }
    out_of_range = PublishedSignal(signal=Signal(strength=1.5, **fields), signal_id=1)
    fine = PublishedSignal(signal=Signal(strength=0.5, **fields), signal_id=2)

    messages = _encoded([out_of_range, fine])

    assert [json.loads(m)["data"]["id"] for m in messages] == [2]
    assert "refused by the wire contract" in caplog.text
