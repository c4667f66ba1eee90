"""Paper broker: market orders fill at the next bar's open (never a price the engine could not have known)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_HALF_EVEN, Decimal

from live.domain import Bar, Order, Side
from live.execution.base import Execution
from live.instruments import Instrument, default_instrument
from live.portfolio import CENT, to_decimal

_BPS = Decimal(10_000)


class PaperBroker:
    """Holds submitted orders until their symbol's next bar; fills them at its open, crossing half the spread,
    plus slippage, at a price on the instrument's tick, with a commission on notional. A client order id it has
    seen before is ignored. A symbol without an instrument trades under `default_instrument`'s rules."""

    def __init__(
        self,
        *,
        commission_bps: Decimal,
        slippage_bps: Decimal,
        instruments: Mapping[str, Instrument] | None = None,
    ) -> None:
        self.commission = commission_bps / _BPS
        self.slippage = slippage_bps / _BPS
        self.instruments: Mapping[str, Instrument] = instruments or {}
        self.pending: dict[str, list[Order]] = {}
        self._seen: set[str] = set()

    def submit(self, order: Order) -> bool:
        """Queues the order; False when its id was already submitted (a harmless resubmission)."""
        if order.id in self._seen:
            return False
        self._seen.add(order.id)
        self.pending.setdefault(order.symbol, []).append(order)
        return True

    def fill_price(self, bar: Bar, side: Side) -> Decimal:
        """Open, crossing half the spread, moved against us by the slippage, on the instrument's tick."""
        half_spread = to_decimal(bar.spread) / 2
        open_ = to_decimal(bar.open)
        if side is Side.BUY:
            price = (open_ + half_spread) * (1 + self.slippage)
        else:
            price = (open_ - half_spread) * (1 - self.slippage)
        instrument = self.instruments.get(bar.symbol) or default_instrument(bar.symbol)
        return instrument.price_on_tick(price)

    def fee(self, quantity: Decimal, price: Decimal) -> Decimal:
        """The commission on the fill's notional, to the cent."""
        return (quantity * price * self.commission).quantize(CENT, ROUND_HALF_EVEN)

    def take_fills(self, bar: Bar) -> list[Execution]:
        """Every order waiting for this symbol's next bar fills on it, in submission order."""
        orders = self.pending.pop(bar.symbol, None)
        if not orders:
            return []
        executions = []
        for order in orders:
            price = self.fill_price(bar, order.side)
            executions.append(Execution(order=order, price=price, fee=self.fee(order.quantity, price)))
        return executions
