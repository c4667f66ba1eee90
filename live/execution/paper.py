"""Paper broker: market orders fill at the next bar's open (never a price the engine could not have known)."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

from live.domain import Bar, Order, Side
from live.execution.base import Execution
from live.portfolio import CENT, PRICE_QUANTUM, to_decimal

_BPS = Decimal(10_000)


class PaperBroker:
    """Holds submitted orders until their symbol's next bar; fills them at its open, crossing half the spread,
    plus slippage, with a commission on notional. A client order id it has seen before is ignored."""

    def __init__(self, *, commission_bps: Decimal, slippage_bps: Decimal) -> None:
        self.commission = commission_bps / _BPS
        self.slippage = slippage_bps / _BPS
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
        """Open, crossing half the spread, moved against us by the slippage."""
        half_spread = to_decimal(bar.spread) / 2
        open_ = to_decimal(bar.open)
        if side is Side.BUY:
            price = (open_ + half_spread) * (1 + self.slippage)
        else:
            price = (open_ - half_spread) * (1 - self.slippage)
        return price.quantize(PRICE_QUANTUM, ROUND_HALF_EVEN)

    def fee(self, quantity: int, price: Decimal) -> Decimal:
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
