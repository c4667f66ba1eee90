"""The strategy port: signal models and the decision policy that turns their values into target positions.

A strategy sees each cross-section of bars (`observe`), records every signal value it computes, and, when trading
is not halted, says which positions it wants (`decide`). What it wants is all it says: the engine sizes an entry
to the room the profile's limits leave, runs the pre-trade checks and the kill switch, submits to the broker and
keeps the book. A strategy cannot bypass any of that.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol, runtime_checkable

from live.domain import Bar, Order
from live.portfolio import PositionState
from live.profiles import Profile

# One recorded signal value: (timestamp, symbol, signal type, strength, horizon in bars, regime, actionable).
SignalRow = tuple[datetime, str, str, float, int, str, bool]


@dataclass(frozen=True, slots=True)
class SignalRecorder:
    """Where a strategy records its signal values: `record` takes every value computed, `record_actionable`
    also takes those the decision acts on (they are published on the WebSocket). Bound list appends of the
    engine's outbox, so recording a value costs no more than appending it."""

    record: Callable[[SignalRow], None]
    record_actionable: Callable[[SignalRow], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetPosition:
    """The position a strategy wants in `symbol`: long (+1), short (-1) or flat (0), attributed to
    `signal_type`. The engine holds a position at most as big as the profile allows and never reverses one in
    a single order: a target against the position held closes it first."""

    symbol: str
    direction: Literal[-1, 0, 1]
    signal_type: str


class PortfolioView:
    """What a strategy may read of the book while it decides: live, read-only views of the engine's state,
    valid during the call (the engine rebuilds the view when it rebuilds the book)."""

    __slots__ = ("_bars_seen", "_opened_at_bar", "opening_signal", "pending", "positions")

    def __init__(
        self,
        *,
        positions: Mapping[str, PositionState],
        pending: Mapping[str, Sequence[Order]],
        opening_signal: Mapping[str, str],
        bars_seen: Mapping[str, int],
        opened_at_bar: Mapping[str, int],
    ) -> None:
        self.positions = positions  # per symbol; a closed position may stay with quantity 0
        self.pending = pending  # orders waiting for their symbol's next bar
        self.opening_signal = opening_signal  # the signal type of the fill that opened each open position
        self._bars_seen = bars_seen
        self._opened_at_bar = opened_at_bar

    def bars_held(self, symbol: str) -> int:
        """How many of the symbol's own bars its open position has been held (0 on the bar it was opened)."""
        seen = self._bars_seen[symbol]
        return seen - self._opened_at_bar.get(symbol, seen)


@runtime_checkable
class Strategy(Protocol):
    """Signal models plus a decision policy, for one set of symbols. Write one with live/strategy/api.py
    `SignalStrategy` (docs/strategies.md), or implement this port directly (live/strategy/_template.py).

    A class implementing it also has `version` (a string), `Params` (a pydantic model, its parameters) and is
    made as `Class(symbols=..., params=...)` (live/strategy/loading.py)."""

    name: str
    version: str

    def warm_up(self, bars: Sequence[Bar]) -> None:
        """Advances the signal models over a cross-section already processed before a restart; records nothing
        and decides nothing, so that after the warm-up the models hold what they held before the restart."""
        ...

    def observe(self, bars: Sequence[Bar], *, regime: str, profile: Profile, signals: SignalRecorder) -> None:
        """Updates the signal models with one cross-section (all bars share one timestamp) and records every
        value computed, stamped with the bars' timestamp and `regime`."""
        ...

    def decide(self, *, profile: Profile, book: PortfolioView) -> Sequence[TargetPosition]:
        """The positions wanted after the cross-section just observed, in the order the engine should act on
        them; only symbols of that cross-section. Not called while trading is halted."""
        ...
