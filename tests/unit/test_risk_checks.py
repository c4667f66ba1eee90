"""Each pre-trade rule rejects what it should, and lets exits through where the contract says so."""

import dataclasses
from decimal import Decimal

import pytest

from live.domain import TradingState
from live.instruments import default_instrument
from live.profiles import get_profile
from live.risk import checks, sizing
from live.risk.checks import OrderCheck, pre_trade_check

BALANCED = get_profile("balanced")  # 10% position, 100% gross, 12% order notional, 10% drawdown
SHARES = default_instrument("AAPL")  # whole shares, as the sim and replay trade


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


# -- sizing an entry to the room the limits leave (live/risk/sizing.py) --------------------------------------

AGGRESSIVE = get_profile("aggressive")  # 20% position, 150% gross, 25% order notional


@pytest.mark.parametrize(
    ("profile", "held", "gross", "expected", "reason"),
    [
        # 7 x 20% held: 10% of equity left under the 150% cap, at $100 a share.
        (AGGRESSIVE, 0, Decimal("140000"), 100, checks.GROSS_EXPOSURE),
        # A position limit narrower than the order cap: topping up 50 shares to the 10% limit of 100.
        (BALANCED, 50, Decimal("5000"), 50, checks.POSITION_LIMIT),
        # An order-notional cap narrower than the position limit.
        (dataclasses.replace(BALANCED, max_order_notional_fraction=Decimal("0.07")), 0, Decimal(0), 70, None),
    ],
)
def test_an_entry_is_sized_to_the_room_left_and_one_share_more_is_refused_by_the_guard(
    profile, held, gross, expected, reason
):
    size = sizing.opening_quantity(
        instrument=SHARES,
        price=Decimal("100"),
        equity=Decimal("100000"),
        position_quantity=held,
        gross_exposure=gross,
        profile=profile,
    )

    assert size == expected
    sized = _check(signed_quantity=size, position_quantity=held, gross_exposure=gross)
    assert pre_trade_check(sized, profile) is None
    one_more = pre_trade_check(dataclasses.replace(sized, signed_quantity=size + 1), profile)
    assert one_more == (reason or checks.MAX_ORDER_NOTIONAL)


def test_an_entry_too_small_to_be_worth_it_is_not_made():
    # 149% held under the 150% cap leaves 1% of equity: a twentieth of a 20% position, below the quarter that is
    # worth its spread and commission.
    below = sizing.opening_quantity(
        instrument=SHARES,
        price=Decimal("100"),
        equity=Decimal("100000"),
        position_quantity=0,
        gross_exposure=Decimal("149000"),
        profile=AGGRESSIVE,
    )
    at_the_floor = sizing.opening_quantity(
        instrument=SHARES,
        price=Decimal("100"),
        equity=Decimal("100000"),
        position_quantity=0,
        gross_exposure=Decimal("150000") - sizing.MIN_OPENING_FRACTION * Decimal("20000"),
        profile=AGGRESSIVE,
    )
    a_share_worth_more_than_the_room = sizing.opening_quantity(
        instrument=SHARES,
        price=Decimal("30000"),
        equity=Decimal("100000"),
        position_quantity=0,
        gross_exposure=Decimal("130000"),
        profile=AGGRESSIVE,
    )

    assert below == 0
    assert at_the_floor == 50
    assert a_share_worth_more_than_the_room == 0


def test_a_full_position_is_sized_as_before_when_the_limits_leave_room():
    size = sizing.opening_quantity(
        instrument=SHARES,
        price=Decimal("97.31"),
        equity=Decimal("100523.17"),
        position_quantity=0,
        gross_exposure=Decimal("40000"),
        profile=BALANCED,
    )
    assert size == int(BALANCED.max_position_fraction * Decimal("100523.17") / Decimal("97.31"))
