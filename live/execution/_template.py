"""Template for a new broker: copy this file to live/execution/<name>.py, fill in the methods, register a factory
in live/assembly.py `BROKERS` and choose it with `TRADEOS_BROKER=<name>`. The paper broker
(live/execution/paper.py) is the worked example.
"""

from __future__ import annotations

from decimal import Decimal

from live.domain import Bar, Order
from live.execution.base import Execution


class TemplateBroker:
    """Sends the engine's orders to <the venue> and reports their executions.

    The engine calls every method from its own thread, between two bars: none may block for long (a venue's
    network calls belong on a thread of the adapter's own, with `take_fills` handing over what has arrived).
    """

    def __init__(self, *, commission_bps: Decimal) -> None:
        self.commission_bps = commission_bps
        # Per symbol, orders submitted and not filled yet, in submission order. Remove a symbol's key when its
        # last order fills (the engine reads `if broker.pending:` on every bar to skip the fill pass).
        self.pending: dict[str, list[Order]] = {}
        self._submitted: set[str] = set()

    def submit(self, order: Order) -> bool:
        """Must accept the order (already checked by the engine's risk checks) and return True, or return False
        without doing anything when `order.id` was submitted before: after a restart the engine resubmits the
        orders the record shows unfilled, and the venue must not get them twice (use the id as the venue's
        client order id)."""
        if order.id in self._submitted:
            return False
        self._submitted.add(order.id)
        self.pending.setdefault(order.symbol, []).append(order)
        return True

    def take_fills(self, bar: Bar) -> list[Execution]:
        """Must return the executions of `bar.symbol`'s pending orders known by this bar, in submission order,
        each at most once, and stop listing them as pending. An execution's price is what the venue paid
        (on the instrument's price tick), its fee what it charged (to the cent). Never a price later than `bar`."""
        raise NotImplementedError("TemplateBroker is a template: copy it and fill in take_fills()")
