"""The exit manager: per open position, a stop at the profile's maximum loss per trade, an ATR trailing stop, a
take-profit and a maximum hold; pure, one call per bar of the position's symbol.

Each rule is judged on the bar's close (the engine decides on closes; its exit order fills on the next bar's
open, like every order). Stops are levels fixed when the position opens (the loss stop) or ratcheted as the
close moves in the position's favour (the trailing stop, `atr_multiple` ATRs behind the best close since entry);
of the two, the tighter one (the nearer the price) is the stop in force and names the reason. A rule fires on the
first bar whose close reaches it, never earlier, and a position exits once: the engine sends one closing order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from decimal import Decimal
from enum import StrEnum


class ExitReason(StrEnum):
    STOP_LOSS = "STOP_LOSS"
    TRAILING_STOP = "TRAILING_STOP"
    TAKE_PROFIT = "TAKE_PROFIT"
    MAX_HOLD = "MAX_HOLD"
    SIGNAL_EXIT = "SIGNAL_EXIT"


@dataclass(frozen=True, slots=True, kw_only=True)
class ExitRules:
    """A profile's exit rules. `max_loss_per_trade`: the loss, as a fraction of equity at entry, at which the loss
    stop sits; `atr_multiple`: the trailing stop's distance in ATRs (0: none); `take_profit`: the gain, as a
    fraction of the entry price, that takes profit (0: none); `max_hold_bars`: the symbol's own bars a position
    may be held (0: no limit)."""

    max_loss_per_trade: Decimal
    atr_multiple: float
    take_profit: float
    max_hold_bars: int


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenTrade:
    """What the exit manager keeps of one open position."""

    direction: int  # +1 long, -1 short
    entry_price: float
    loss_stop: float  # fixed at entry
    best_close: float  # the most favourable close since entry
    trailing_stop: float | None  # None until an ATR is known (and with no trailing rule)
    bars_held: int


class WilderAtr:
    """Average true range over `period` bars, Wilder's smoothing, O(1) per bar. None until `period` bars."""

    __slots__ = ("_count", "_previous_close", "_sum", "period", "value")

    def __init__(self, period: int = 14) -> None:
        if period < 1:
            raise ValueError("the ATR period is at least one bar")
        self.period = period
        self.value: float | None = None
        self._previous_close: float | None = None
        self._count = 0
        self._sum = 0.0

    def update(self, high: float, low: float, close: float) -> float | None:
        previous = self._previous_close
        true_range = high - low if previous is None else max(high, previous) - min(low, previous)
        self._previous_close = close
        if self.value is not None:
            self.value += (true_range - self.value) / self.period
        else:
            self._count += 1
            self._sum += true_range
            if self._count == self.period:
                self.value = self._sum / self.period
        return self.value


def open_trade(
    *, direction: int, entry_price: float, quantity: Decimal, equity: Decimal, rules: ExitRules
) -> OpenTrade:
    """The trade as it opens: its loss stop sits where the position would lose `max_loss_per_trade` of equity."""
    if direction not in (1, -1):
        raise ValueError(f"direction is +1 or -1, got {direction}")
    size = abs(float(quantity))
    distance = float(rules.max_loss_per_trade * equity) / size if size else math.inf
    return OpenTrade(
        direction=direction,
        entry_price=entry_price,
        loss_stop=entry_price - direction * distance,
        best_close=entry_price,
        trailing_stop=None,
        bars_held=0,
    )


def _tighter(direction: int, a: float, b: float | None) -> bool:
    """Whether stop `b` is tighter (nearer the price, on the losing side) than `a`."""
    return b is not None and (b > a if direction > 0 else b < a)


def on_bar(
    trade: OpenTrade, *, close: float, atr: float | None, rules: ExitRules
) -> tuple[OpenTrade, ExitReason | None]:
    """The trade after one more bar of its symbol (closing at `close`, with that bar's ATR), and the reason to exit
    on this bar, if any: a stop reached (the tighter of the loss and trailing stops names it), then the
    take-profit, then the maximum hold."""
    d = trade.direction
    best = max(trade.best_close, close) if d > 0 else min(trade.best_close, close)
    trailing = trade.trailing_stop
    if rules.atr_multiple > 0 and atr is not None:
        candidate = best - d * rules.atr_multiple * atr
        # A trailing stop only ever moves in the position's favour.
        if trailing is None or (candidate > trailing if d > 0 else candidate < trailing):
            trailing = candidate
    after = replace(trade, best_close=best, trailing_stop=trailing, bars_held=trade.bars_held + 1)
    stop, reason = trade.loss_stop, ExitReason.STOP_LOSS
    # The stop in force on this bar is the one set by the bars before it: a close cannot both raise and hit it.
    if _tighter(d, stop, trade.trailing_stop):
        assert trade.trailing_stop is not None
        stop, reason = trade.trailing_stop, ExitReason.TRAILING_STOP
    if (close <= stop) if d > 0 else (close >= stop):
        return after, reason
    if rules.take_profit > 0 and d * (close / trade.entry_price - 1.0) >= rules.take_profit:
        return after, ExitReason.TAKE_PROFIT
    if rules.max_hold_bars > 0 and after.bars_held >= rules.max_hold_bars:
        return after, ExitReason.MAX_HOLD
    return after, None
