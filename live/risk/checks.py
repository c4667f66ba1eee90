"""Pre-trade checks: pure functions from an order and the book's state to a rejection reason (or None)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from live.domain import TradingState
from live.profiles import Profile

# Rejection reasons (also the `code` of the risk_event each rejection records).
TRADING_HALTED = "TRADING_HALTED"
KILL_SWITCH_UNREACHABLE = "KILL_SWITCH_UNREACHABLE"
REDUCE_ONLY = "REDUCE_ONLY"
DRAWDOWN_LIMIT_EXCEEDED = "DRAWDOWN_LIMIT_EXCEEDED"
MAX_ORDER_NOTIONAL = "MAX_ORDER_NOTIONAL"
POSITION_LIMIT = "POSITION_LIMIT"
GROSS_EXPOSURE = "GROSS_EXPOSURE"
PRICE_BAND = "PRICE_BAND"
ORDER_RATE_THROTTLE = "ORDER_RATE_THROTTLE"
BELOW_MIN_QUANTITY = "BELOW_MIN_QUANTITY"
BELOW_MIN_NOTIONAL = "BELOW_MIN_NOTIONAL"

# Rejections that follow from a state the operator or a breaker chose; they do not count towards a reject storm.
POLICY_REJECTIONS = frozenset({TRADING_HALTED, REDUCE_ONLY, DRAWDOWN_LIMIT_EXCEEDED})

# Orders the venue's market rules would refuse. Not a malfunction either: a position left under the minimum (after
# a fall in price) is refused on every bar its strategy wants out, and that must not halt trading as a storm.
MARKET_RULE_REJECTIONS = frozenset({BELOW_MIN_QUANTITY, BELOW_MIN_NOTIONAL})

# Sizing floors quantities, so a limit is breached only by more than this relative slack.
_SLACK = Decimal("1.0001")


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderCheck:
    """What the checks need to know about one proposed order."""

    signed_quantity: Decimal
    reduces_position: bool
    price: Decimal  # last close: the reference for notional and limits
    previous_price: Decimal | None  # the close before it, for the price band
    position_quantity: Decimal
    equity: Decimal
    gross_exposure: Decimal
    drawdown: Decimal
    trading_state: TradingState
    orders_last_minute: int
    bypass_state: bool = False  # closing orders of an explicit flatten
    min_quantity: Decimal = Decimal(0)  # the instrument's (live/instruments.py): smaller orders are refused
    min_notional: Decimal = Decimal(0)


def pre_trade_check(check: OrderCheck, profile: Profile) -> str | None:
    """The first rule the order breaks, in order of precedence, or None if it may be submitted."""
    if not check.bypass_state:
        if check.trading_state is TradingState.HALTED:
            return TRADING_HALTED
        if check.trading_state is TradingState.REDUCE_ONLY and not check.reduces_position:
            return REDUCE_ONLY
    quantity = abs(check.signed_quantity)
    if quantity < check.min_quantity:
        return BELOW_MIN_QUANTITY
    notional = quantity * check.price
    if notional < check.min_notional:
        return BELOW_MIN_NOTIONAL
    if check.previous_price is not None and check.previous_price > 0:
        move = abs(check.price / check.previous_price - 1)
        if move > Decimal(repr(profile.price_band)):
            return PRICE_BAND
    if check.orders_last_minute >= profile.max_orders_per_minute:
        return ORDER_RATE_THROTTLE
    if check.reduces_position:
        return None
    if check.drawdown >= profile.drawdown_limit:
        return DRAWDOWN_LIMIT_EXCEEDED
    if notional > profile.max_order_notional_fraction * check.equity * _SLACK:
        return MAX_ORDER_NOTIONAL
    after = abs(check.position_quantity + check.signed_quantity) * check.price
    if after > profile.max_position_fraction * check.equity * _SLACK:
        return POSITION_LIMIT
    if check.gross_exposure + notional > profile.max_gross_exposure * check.equity * _SLACK:
        return GROSS_EXPOSURE
    return None
