"""Each pre-trade rule rejects what it should, and lets exits through where the contract says so."""

import dataclasses
from decimal import Decimal

import pytest

from live.domain import TradingState
from live.profiles import get_profile
from live.risk import checks
from live.risk.checks import OrderCheck, pre_trade_check

BALANCED = get_profile("balanced")  # 10% position, 100% gross, 12% order notional, 10% drawdown


def _check(**changes) -> OrderCheck:
    base = OrderCheck(
        signed_quantity=50,
        reduces_position=False,
        price=Decimal("100"),
        previous_price=Decimal("100"),
        position_quantity=0,
        equity=Decimal("100000"),
        gross_exposure=Decimal("0"),
        drawdown=Decimal("0"),
        trading_state=TradingState.ACTIVE,
        orders_last_minute=0,
    )
    return dataclasses.replace(base, **changes)


def test_an_ordinary_entry_passes():
    assert pre_trade_check(_check(), BALANCED) is None


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"trading_state": TradingState.HALTED}, checks.TRADING_HALTED),
        ({"trading_state": TradingState.REDUCE_ONLY}, checks.REDUCE_ONLY),
        ({"drawdown": Decimal("0.10")}, checks.DRAWDOWN_LIMIT_EXCEEDED),
        ({"signed_quantity": 130}, checks.MAX_ORDER_NOTIONAL),
        ({"signed_quantity": 60, "position_quantity": 50}, checks.POSITION_LIMIT),
        ({"gross_exposure": Decimal("96000")}, checks.GROSS_EXPOSURE),
        ({"previous_price": Decimal("80")}, checks.PRICE_BAND),
        ({"orders_last_minute": BALANCED.max_orders_per_minute}, checks.ORDER_RATE_THROTTLE),
    ],
)
def test_each_rule_rejects_with_its_reason(changes, reason):
    assert pre_trade_check(_check(**changes), BALANCED) == reason


def test_exits_go_through_drawdown_reduce_only_and_exposure_limits():
    exit_order = _check(
        signed_quantity=-500,
        position_quantity=500,
        reduces_position=True,
        drawdown=Decimal("0.15"),
        gross_exposure=Decimal("200000"),
        trading_state=TradingState.REDUCE_ONLY,
    )
    assert pre_trade_check(exit_order, BALANCED) is None


def test_a_halt_refuses_exits_too_unless_they_are_an_explicit_flatten():
    exit_order = _check(
        signed_quantity=-5, position_quantity=5, reduces_position=True, trading_state=TradingState.HALTED
    )
    assert pre_trade_check(exit_order, BALANCED) == checks.TRADING_HALTED
    assert pre_trade_check(dataclasses.replace(exit_order, bypass_state=True), BALANCED) is None
