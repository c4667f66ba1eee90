"""Each market's trading rules as data: the quantity step, the price tick and the minimum order a venue accepts.

The engine sizes an order down to its instrument's step and refuses one under the minimum quantity or notional
before it is sent (live/risk/checks.py); the paper broker fills at a price on the instrument's tick. The sim and
replay feeds trade whole shares at prices to 4 decimals (`default_instrument`); a venue's rules come from its
market list (`instruments_from_ccxt_markets`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

from live.portfolio import PRICE_QUANTUM

ZERO = Decimal(0)
ONE = Decimal(1)

# ccxt's precision modes (ccxt.base.decimal_to_precision): what a market's `precision` numbers mean.
DECIMAL_PLACES = 2  # precision 8 means 8 decimals
SIGNIFICANT_DIGITS = 3
TICK_SIZE = 4  # precision 0.00001 is the step itself (Binance, Kraken, Coinbase, ...)


@dataclass(frozen=True, slots=True, kw_only=True)
class Instrument:
    """One market's rules. A quantity is a multiple of `quantity_step`, a price a multiple of `price_tick`; an order
    under `min_quantity` or worth less than `min_notional` (quantity x price) is refused before it is sent."""

    symbol: str
    quantity_step: Decimal
    price_tick: Decimal
    min_quantity: Decimal = ZERO
    min_notional: Decimal = ZERO

    def __post_init__(self) -> None:
        for name in ("quantity_step", "price_tick", "min_quantity", "min_notional"):
            value = getattr(self, name)
            if not isinstance(value, Decimal) or not value.is_finite():
                raise ValueError(f"{self.symbol}: {name} must be a finite Decimal, not {value!r}")
        if self.quantity_step <= 0 or self.price_tick <= 0:
            raise ValueError(f"{self.symbol}: quantity_step and price_tick must be positive")
        if self.min_quantity < 0 or self.min_notional < 0:
            raise ValueError(f"{self.symbol}: min_quantity and min_notional must not be negative")

    def quantity_down(self, quantity: Decimal) -> Decimal:
        """`quantity` rounded down to the step: an order never exceeds the room it was sized to."""
        return _to_multiple(quantity, self.quantity_step, ROUND_DOWN)

    def price_on_tick(self, price: Decimal) -> Decimal:
        """`price` rounded to the nearest tick (half to even): a venue only prints prices on its tick."""
        return _to_multiple(price, self.price_tick, ROUND_HALF_EVEN)


def _to_multiple(value: Decimal, step: Decimal, rounding: str) -> Decimal:
    """`value` as a whole number of `step`s, written with the step's decimals (never in exponent form)."""
    exponent = step.as_tuple().exponent
    places = ONE.scaleb(min(exponent, 0)) if isinstance(exponent, int) else ONE
    return ((value / step).to_integral_value(rounding) * step).quantize(places)


def default_instrument(symbol: str) -> Instrument:
    """The sim's and replay's rules: whole shares (at least one), prices to 4 decimals, no minimum notional."""
    return Instrument(symbol=symbol, quantity_step=ONE, price_tick=PRICE_QUANTUM, min_quantity=ONE)


def default_instruments(symbols: Iterable[str]) -> dict[str, Instrument]:
    """`default_instrument` for every symbol."""
    return {symbol: default_instrument(symbol) for symbol in symbols}


def instruments_from_ccxt_markets(
    markets: Mapping[str, Mapping[str, Any]], symbols: Iterable[str], *, precision_mode: int = TICK_SIZE
) -> dict[str, Instrument]:
    """The rules of `symbols` from a ccxt exchange's `markets` (`precision.amount`/`price`, `limits.amount.min`,
    `limits.cost.min`), read as `precision_mode` says (the exchange's `precisionMode`). ValueError naming the
    symbol and the field for a market that is missing, inactive or has no usable precision."""
    instruments = {}
    for symbol in symbols:
        market = markets.get(symbol)
        if market is None:
            raise ValueError(f"{symbol}: no such market on this exchange")
        if market.get("active") is False:
            raise ValueError(f"{symbol}: the market is not active")
        precision = market.get("precision") or {}
        limits = market.get("limits") or {}
        step = _precision(symbol, "amount", precision.get("amount"), precision_mode)
        tick = _precision(symbol, "price", precision.get("price"), precision_mode)
        min_quantity = _limit(symbol, "amount", limits)
        min_notional = _limit(symbol, "cost", limits)
        instruments[symbol] = Instrument(
            symbol=symbol,
            quantity_step=step,
            price_tick=tick,
            min_quantity=step if min_quantity is None else max(min_quantity, step),
            min_notional=min_notional or ZERO,
        )
    return instruments


def _number(symbol: str, field: str, value: object) -> Decimal | None:
    """A ccxt number (float, int or string; None when the venue does not say) as the decimal a human reads."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise ValueError(f"{symbol}: {field} is {value!r}, not a number")
    try:
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except InvalidOperation:
        raise ValueError(f"{symbol}: {field} is {value!r}, not a number") from None
    if not number.is_finite() or number < 0:
        raise ValueError(f"{symbol}: {field} is {value!r}, not a finite non-negative number")
    return number.normalize()


def _precision(symbol: str, field: str, value: object, precision_mode: int) -> Decimal:
    number = _number(symbol, f"precision.{field}", value)
    if number is None:
        raise ValueError(f"{symbol}: the market gives no precision.{field}")
    if precision_mode == TICK_SIZE:
        if number == 0:
            raise ValueError(f"{symbol}: precision.{field} is 0, not a step")
        return number
    if precision_mode == DECIMAL_PLACES:
        if number != number.to_integral_value():
            raise ValueError(f"{symbol}: precision.{field} {value!r} is not a number of decimal places")
        return ONE.scaleb(-int(number))
    raise ValueError(
        f"{symbol}: ccxt precision mode {precision_mode} is not supported (tick size or decimal places)"
    )


def _limit(symbol: str, field: str, limits: Mapping[str, Any]) -> Decimal | None:
    bounds = limits.get(field) or {}
    return _number(symbol, f"limits.{field}.min", bounds.get("min"))
