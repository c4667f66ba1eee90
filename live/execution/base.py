"""The broker port: where the engine's orders go and where their fills come from."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol, runtime_checkable

from live.domain import Bar, Order


@dataclass(frozen=True, slots=True, kw_only=True)
class Execution:
    """An order filled on a bar, at `price` (on the instrument's tick, live/instruments.py) with `fee` (to the
    cent). The engine turns it into the book's `Fill` (realized P&L, average cost): the accounting stays the
    engine's."""

    order: Order
    price: Decimal
    fee: Decimal


@runtime_checkable
class Broker(Protocol):
    """Takes the engine's checked orders and reports their executions on the bars that fill them.

    The engine submits only orders its risk checks passed, at most one order in flight per symbol, and asks for
    executions once per bar of the symbol before anything else happens on that bar, so a fill never uses a price
    the engine could not have known when it decided."""

    @property
    def pending(self) -> Mapping[str, Sequence[Order]]:
        """Orders submitted and not yet filled, per symbol, in submission order; empty (falsy) when none wait.
        The engine reads it on every cross-section: it must be cheap."""
        ...

    def submit(self, order: Order) -> bool:
        """Accepts `order`; False when an order with its client order id (`order.id`) was submitted before (a
        resubmission after a restart is harmless and changes nothing)."""
        ...

    def take_fills(self, bar: Bar) -> list[Execution]:
        """The executions of `bar.symbol`'s pending orders on this bar, in submission order; they are no longer
        pending afterwards. An empty list when nothing of the symbol fills."""
        ...
