"""The trading core: one cross-section of bars in, every resulting event out. Pure: no I/O, no wall clock.

Per cross-section (one timestamp): orders decided on the previous bar fill at this bar's open (the broker); the
book is marked at the close; breakers are checked; the regime updates; the strategy records its signal values and
says which positions it wants; the engine sizes them into orders, checks them and submits them to the broker.
The engine is built from its ports by live/assembly.py; the service (live/service/) feeds it, persists its outbox
and moves commands in from operators (`Engine.apply`).

The strategy is not trusted. A signal value outside [-1, 1] (or NaN, or not a number), a target for a symbol not in
the cross-section, a direction other than -1, 0 or 1, or an exception raised by the strategy trips the
STRATEGY_FAULT breaker: the cross-section's signal values and targets are dropped (nothing of them is recorded or
acted on), a risk event says what was wrong, and trading halts until an operator resumes (or switches strategy).
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import overload

from live.control import Command, CommandAck, Flatten, Halt, Reduce, Resume, SetProfile, SetStrategy
from live.domain import (
    Bar,
    ControlAction,
    EquitySnapshot,
    Fill,
    Order,
    OrderStatus,
    RegimeChange,
    RiskEvent,
    Side,
    Signal,
    TradingState,
)
from live.execution.base import Broker, Execution
from live.instruments import Instrument, default_instruments
from live.portfolio import ZERO, Portfolio, to_decimal
from live.profiles import Profile, get_profile, stored_profile
from live.regime import DEFAULT_REGIME, RegimeClassifier, RegimeTracker, RuleBasedClassifier
from live.risk import breakers
from live.risk.checks import (
    DRAWDOWN_LIMIT_EXCEEDED,
    MARKET_RULE_REJECTIONS,
    POLICY_REJECTIONS,
    TRADING_HALTED,
    OrderCheck,
    pre_trade_check,
)
from live.risk.sizing import opening_quantity
from live.strategy.base import PortfolioView, SignalRecorder, SignalRow, Strategy, TargetPosition
from live.strategy.loading import StrategyChoice, StrategyLoadError

# A symbol whose entry was refused for drawdown is not retried for this many of its own bars (keeps the record
# readable).
_DRAWDOWN_RETRY_BARS = 15

Gate = Callable[[], str | None]

__all__ = ["ActionableSignals", "Engine", "Gate", "Outbox", "SignalRow"]


def _no_gate() -> str | None:
    return None


class ActionableSignals(Sequence[Signal]):
    """The actionable signal values of an outbox, read as `Signal` events. The engine keeps the rows it records
    anyway and builds an event only when one is read: most are never published, and a frozen event per value
    was a measurable share of a step (bench/README.md)."""

    __slots__ = ("_rows", "append_row")

    def __init__(self, rows: Iterable[SignalRow] = ()) -> None:
        self._rows: list[SignalRow] = list(rows)
        # The list's own append: recording a row costs no more than appending it to a list.
        self.append_row: Callable[[SignalRow], None] = self._rows.append

    def append(self, signal: Signal) -> None:
        self._rows.append(
            (
                signal.timestamp,
                signal.symbol,
                signal.signal_type,
                signal.strength,
                signal.horizon_bars,
                signal.regime,
                True,
            )
        )

    def __len__(self) -> int:
        return len(self._rows)

    @overload
    def __getitem__(self, index: int) -> Signal: ...

    @overload
    def __getitem__(self, index: slice) -> list[Signal]: ...

    def __getitem__(self, index: int | slice) -> Signal | list[Signal]:
        if isinstance(index, slice):
            return [_signal(row) for row in self._rows[index]]
        return _signal(self._rows[index])

    def __iter__(self) -> Iterator[Signal]:
        return map(_signal, self._rows)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ActionableSignals):
            return self._rows == other._rows
        if isinstance(other, Sequence):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"ActionableSignals({list(self)!r})"


def profile_of(command: SetProfile) -> Profile:
    """The profile a switch names: a built-in, or the custom version it carries, validated and matching the content
    hash it was stored with (ValueError saying why not)."""
    if not command.is_custom:
        return get_profile(command.profile)
    assert command.version is not None
    profile = stored_profile(name=command.profile, version=command.version, body_json=command.body_json)
    if profile.content_hash != command.content_hash:
        raise ValueError(
            f"profile {command.profile!r} version {command.version}: its content hashes to "
            f"{profile.content_hash}, not the {command.content_hash} it was stored with"
        )
    return profile


def _signal(row: SignalRow) -> Signal:
    timestamp, symbol, signal_type, strength, horizon_bars, regime, _ = row
    return Signal(
        timestamp=timestamp,
        symbol=symbol,
        signal_type=signal_type,
        strength=strength,
        horizon_bars=horizon_bars,
        regime=regime,
    )


@dataclass(slots=True)
class Outbox:
    """Everything the engine produced since the runner last took it, in order."""

    bars: list[Bar] = field(default_factory=list)
    signal_rows: list[SignalRow] = field(default_factory=list)
    actionable_signals: ActionableSignals = field(default_factory=ActionableSignals)
    orders: list[Order] = field(default_factory=list)
    order_updates: list[tuple[str, OrderStatus]] = field(default_factory=list)
    fills: list[Fill] = field(default_factory=list)
    risk_events: list[RiskEvent] = field(default_factory=list)
    regime_changes: list[RegimeChange] = field(default_factory=list)
    equity: list[EquitySnapshot] = field(default_factory=list)
    control_actions: list[ControlAction] = field(default_factory=list)
    latencies_us: dict[str, float] = field(default_factory=dict)
    last_bar_ts: datetime | None = None
    # What the strategy records its signal values through: this outbox's own appends.
    signal_recorder: SignalRecorder = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.signal_recorder = SignalRecorder(self.signal_rows.append, self.actionable_signals.append_row)

    def size(self) -> int:
        """How many events it holds (a gauge: read without the engine lock, it may be a step behind)."""
        return (
            len(self.bars)
            + len(self.signal_rows)
            + len(self.orders)
            + len(self.order_updates)
            + len(self.fills)
            + len(self.risk_events)
            + len(self.regime_changes)
            + len(self.equity)
            + len(self.control_actions)
        )

    def is_empty(self) -> bool:
        return not (
            self.bars
            or self.orders
            or self.order_updates
            or self.fills
            or self.risk_events
            or self.regime_changes
            or self.control_actions
        )


class Engine:
    """One book, one clock (the bars' timestamps). Built from its ports (live/assembly.py `build_engine`): the
    broker its orders go to and the strategy that decides them; risk, sizing and accounting are its own, under each
    symbol's market rules (`instruments`; default: whole shares, live/instruments.py `default_instrument`)."""

    def __init__(
        self,
        *,
        symbols: Sequence[str],
        profile: Profile,
        initial_cash: Decimal,
        broker: Broker,
        strategy: Strategy,
        classifier: RegimeClassifier | None = None,
        confirm_bars: int = 30,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        strategy_choice: StrategyChoice | None = None,
        allowed_strategies: Mapping[str, StrategyChoice] | None = None,
        instruments: Mapping[str, Instrument] | None = None,
    ) -> None:
        self.symbols = tuple(symbols)
        self.instruments: dict[str, Instrument] = default_instruments(self.symbols)
        if instruments is not None:
            missing = [symbol for symbol in self.symbols if symbol not in instruments]
            if missing:
                raise ValueError(f"no market rules (instrument) for {', '.join(missing)}")
            self.instruments = {symbol: instruments[symbol] for symbol in self.symbols}
        # Operators' actions are stamped with the wall clock; everything else with the bars' clock.
        self.wall_clock = wall_clock
        self.profile = profile
        self.portfolio = Portfolio(initial_cash=initial_cash)
        self.broker = broker
        self.strategy = strategy
        # What `strategy` was built from (None when built by hand), and what an operator may switch to, by name and
        # by spec: only choices resolved when the engine was assembled, never code named by a caller.
        self.strategy_choice = strategy_choice
        self.allowed_strategies: Mapping[str, StrategyChoice] = allowed_strategies or {}
        self.regime = RegimeTracker(classifier or RuleBasedClassifier(), confirm_bars=confirm_bars)
        self.state = TradingState.ACTIVE
        self.state_reason = ""
        self.state_actor = "startup"
        self.state_since: datetime | None = None
        self.last_timestamp: datetime | None = None
        # Closes stay floats; a Decimal is made only where money is at stake (marks of open positions, sizing,
        # checks). Converting every close was a fifth of a step.
        self._closes: dict[str, float] = {}
        self._previous_closes: dict[str, float] = {}
        self.opening_signal: dict[str, str] = {}
        self.opened_at: dict[str, datetime] = {}
        # Horizons are counted in each symbol's own bars, whatever the bar length or the gaps: how many bars of
        # each symbol the engine has seen, and that count at the bar an open position was opened on.
        self.bars_seen: dict[str, int] = dict.fromkeys(self.symbols, 0)
        self.opened_at_bar: dict[str, int] = {}
        self._book_view = self._view_of_book()
        self.outbox = Outbox()
        self._submitted: deque[datetime] = deque()
        self._rejections = breakers.RejectStorm()
        self._drawdown_refused: dict[str, int] = {}
        # Per symbol, the reason its orders are being refused for: the risk event is recorded once per
        # (symbol, reason) episode; every refused order is still recorded in `orders`.
        self._refusing: dict[str, str] = {}

    @property
    def last_close(self) -> dict[str, Decimal]:
        """The last close of every symbol seen, as the decimal a human would read."""
        return {symbol: to_decimal(close) for symbol, close in self._closes.items()}

    @property
    def previous_close(self) -> dict[str, Decimal]:
        """The close before the last one, for every symbol with two bars or more."""
        return {symbol: to_decimal(close) for symbol, close in self._previous_closes.items()}

    @property
    def current_regime(self) -> str:
        return self.regime.current or DEFAULT_REGIME

    def take_outbox(self) -> Outbox:
        """Hands the accumulated events to the runner and starts a new outbox."""
        outbox, self.outbox = self.outbox, Outbox()
        return outbox

    # -- operator and breaker state -------------------------------------------------------------------

    def set_state(
        self,
        state: TradingState,
        *,
        actor: str,
        reason: str = "",
        now: datetime | None = None,
        record: bool = True,
    ) -> bool:
        """Moves to `state` (idempotent); returns whether it changed. The change is recorded as a control action,
        stamped with the wall clock like every operator action (`now` defaults to it), unless the caller recorded
        it already (`record=False`: the API writes operators' actions itself)."""
        if state is self.state:
            return False
        self.state = state
        self.state_actor = actor
        self.state_reason = reason
        now = now or self.wall_clock()
        self.state_since = now
        if state is TradingState.ACTIVE:
            self._rejections.clear()
            self._refusing.clear()  # a resume starts every refusal episode afresh
        if not record:
            return True
        action = {"active": "resume", "halted": "halt", "reduce_only": "reduce"}[state.value]
        self.outbox.control_actions.append(
            ControlAction(
                timestamp=now,
                action=action,
                actor=actor,
                reason=reason,
            )
        )
        return True

    def apply(self, command: Command) -> CommandAck:
        """An operator's command, already recorded by the API (so not recorded again), applied between two steps
        and stamped with the wall clock; the answer says what is in force after it."""
        refusal = ""
        orders: tuple[str, ...] = ()
        match command:
            case Halt(actor=actor, reason=reason):
                self.set_state(TradingState.HALTED, actor=actor, reason=reason, record=False)
            case Resume(actor=actor, reason=reason):
                self.set_state(TradingState.ACTIVE, actor=actor, reason=reason, record=False)
            case Reduce(actor=actor, reason=reason):
                self.set_state(TradingState.REDUCE_ONLY, actor=actor, reason=reason, record=False)
            case Flatten():
                orders = tuple(order.id for order in self.flatten())
            case SetProfile():
                try:
                    self.set_profile(profile_of(command))
                except ValueError as exc:
                    refusal = str(exc)
            case SetStrategy():
                refusal = self.switch_strategy(command)
        return CommandAck(
            command_id=command.command_id,
            applied=not refusal,
            detail=refusal,
            state=self.state,
            profile=self.profile.name,
            profile_hash=self.profile.content_hash,
            orders=orders,
            strategy=(
                _described(self.strategy_choice, self.strategy)
                if isinstance(command, SetStrategy) and self.strategy_choice is not None
                else None
            ),
        )

    def switch_strategy(self, command: SetStrategy) -> str:
        """Trades the strategy `command` names from the next bar on, recorded as a control action; or the reason it
        cannot (returned, nothing changed). Only a choice allowed at start-up, only while halted with a flat book
        and no order in flight: the new strategy starts with cold signal models (they warm up on the bars that
        follow, while trading stays halted until an operator resumes), and no position is left to a strategy
        that did not open it."""
        allowed = self.allowed_strategies.get(command.strategy)
        if allowed is None:
            names = ", ".join(sorted(self.allowed_strategies)) or "none"
            return f"strategy {command.strategy!r} was not allowed at start-up; allowed: {names}"
        if self.state is not TradingState.HALTED:
            return "trading must be halted to switch strategy (POST /trading/halt, then flatten)"
        open_symbols = sorted(s for s, p in self.portfolio.positions.items() if p.quantity != 0)
        if open_symbols or any(self.broker.pending.values()):
            held = ", ".join(open_symbols) or "orders in flight"
            return f"the book must be flat to switch strategy (open: {held}); flatten first"
        try:
            choice = allowed.with_params(json.loads(command.params_json))
        except (StrategyLoadError, ValueError) as exc:
            return str(exc)
        previous, replaced = self.strategy_choice, self.strategy
        self.strategy = choice.build(self.symbols)
        self.strategy_choice = choice
        self.outbox.control_actions.append(
            ControlAction(
                timestamp=self.wall_clock(),
                action="strategy",
                actor=command.actor,
                reason=command.reason,
                value=json.dumps(
                    {
                        "from": _described(previous, replaced),
                        "to": _described(choice, self.strategy),
                    },
                    sort_keys=True,
                ),
            )
        )
        return ""

    def restore_state(self, state: TradingState, *, actor: str, reason: str, since: datetime | None) -> None:
        """Sets the state found in the record at start-up, without recording it again."""
        self.state, self.state_actor, self.state_reason, self.state_since = state, actor, reason, since

    def set_profile(self, profile: Profile) -> None:
        """Applies to the next decision."""
        self.profile = profile

    def set_classifier(self, classifier: RegimeClassifier) -> None:
        self.regime.set_classifier(classifier)

    def flatten(self) -> list[Order]:
        """Closing market orders for every open position, submitted even while halted (they fill on the next bar)."""
        if self.last_timestamp is None:
            return []
        orders = []
        for symbol, position in sorted(self.portfolio.positions.items()):
            if position.quantity == 0 or self.broker.pending.get(symbol):
                continue
            order = Order(
                id=f"{self.last_timestamp:%Y%m%dT%H%M%S}-{symbol}-flatten",
                timestamp=self.last_timestamp,
                symbol=symbol,
                side=Side.SELL if position.quantity > 0 else Side.BUY,
                quantity=abs(position.quantity),
                signal_type=self.opening_signal.get(symbol, "manual"),
                reduces_position=True,
                reason="flatten",
            )
            if self.broker.submit(order):
                self._refusing.pop(order.symbol, None)  # an order of this symbol passed: the episode is over
                self.outbox.orders.append(order)
                orders.append(order)
        return orders

    # -- the loop -------------------------------------------------------------------------------------

    def warm_up(self, bars: Sequence[Bar]) -> None:
        """Advances signals, regime and marks over a bar already processed before a restart; trades nothing."""
        timestamp = bars[0].timestamp
        self.strategy.warm_up(bars)
        self._mark(bars)
        self.regime.update(timestamp, bars)
        self.last_timestamp = timestamp

    def step(self, bars: Sequence[Bar], *, gate: Gate = _no_gate) -> None:
        """Processes one cross-section. `gate` is asked once, right before the first order is submitted:
        it returns a rejection reason (kill switch set or unreachable) or None."""
        started = time.perf_counter_ns()
        timestamp = bars[0].timestamp
        book = self.portfolio
        book.roll_day(timestamp)
        self.last_timestamp = timestamp
        out = self.outbox
        out.bars.extend(bars)
        out.last_bar_ts = timestamp

        broker = self.broker
        if broker.pending:
            for bar in bars:
                for execution in broker.take_fills(bar):
                    self._fill(execution, bar)
        self._mark(bars)
        value = book.update_high_water_mark()
        out.equity.append(EquitySnapshot(timestamp=timestamp, total_value=value, cash=book.cash))
        drawdown = book.drawdown()
        if self.state is not TradingState.HALTED:
            tripped = breakers.check_book(
                value=value,
                start_of_day_value=book.start_of_day_value,
                drawdown=drawdown,
                profile=self.profile,
            )
            if tripped:
                self._trip(timestamp, *tripped)

        change = self.regime.update(timestamp, bars)
        if change is not None:
            out.regime_changes.append(change)
        profile = self.profile
        rows, actionable = out.signal_rows, out.actionable_signals._rows
        recorded, published = len(rows), len(actionable)
        try:
            self.strategy.observe(
                bars, regime=self.current_regime, profile=profile, signals=out.signal_recorder
            )
        except Exception as exc:
            self._strategy_fault(timestamp, f"observe() raised {_exception(exc)}", recorded, published)
            return
        try:  # every value recorded on this cross-section is in [-1, 1] (and a number: NaN fails too)
            for row in rows[recorded:]:
                if not -1.0 <= row[3] <= 1.0:
                    raise TypeError(f"signal strength {row[3]!r} outside [-1, 1]")
            for row in actionable[published:]:
                if not -1.0 <= row[3] <= 1.0:
                    raise TypeError(f"signal strength {row[3]!r} outside [-1, 1]")
        except TypeError as exc:
            self._strategy_fault(timestamp, str(exc), recorded, published)
            return

        if self.state is TradingState.HALTED:
            return
        try:
            targets = self.strategy.decide(profile=profile, book=self._book_view)
        except Exception as exc:
            self._strategy_fault(timestamp, f"decide() raised {_exception(exc)}", recorded, published)
            return
        if not targets:
            return
        refusal = self._refusal_of(targets, bars)
        if refusal:
            self._strategy_fault(timestamp, refusal, recorded, published)
            return
        proposals = self._orders_for(timestamp, targets, value)
        if proposals:
            self._submit(timestamp, proposals, value, drawdown, gate, started)

    # -- internals ------------------------------------------------------------------------------------

    def _refusal_of(self, targets: Sequence[TargetPosition], bars: Sequence[Bar]) -> str:
        """Why the strategy's targets break its contract ("" when they do not)."""
        present = {bar.symbol for bar in bars}
        for target in targets:
            if not isinstance(target, TargetPosition):
                return f"decide() returned {target!r}, not a TargetPosition"
            if target.symbol not in present:
                return f"a target for {target.symbol!r}, which is not in the cross-section"
            if target.direction not in (-1, 0, 1) or isinstance(target.direction, bool):
                return f"a target direction {target.direction!r} for {target.symbol} (must be -1, 0 or 1)"
            if not isinstance(target.signal_type, str) or not target.signal_type:
                return f"a target for {target.symbol} without a signal type"
        return ""

    def _strategy_fault(self, timestamp: datetime, detail: str, recorded: int, published: int) -> None:
        """Fails closed: drops what the strategy said on this cross-section and halts (one risk event per halt)."""
        del self.outbox.signal_rows[recorded:]
        del self.outbox.actionable_signals._rows[published:]
        if self.state is TradingState.HALTED:
            return
        name = self.strategy_choice.name if self.strategy_choice else getattr(self.strategy, "name", "?")
        self._trip(timestamp, breakers.STRATEGY_FAULT, f"strategy {name}: {detail}")

    def _view_of_book(self) -> PortfolioView:
        """The strategy's read-only view of the book: made again whenever the book is rebuilt."""
        return PortfolioView(
            positions=self.portfolio.positions,
            pending=self.broker.pending,
            opening_signal=self.opening_signal,
            bars_seen=self.bars_seen,
            opened_at_bar=self.opened_at_bar,
        )

    def _mark(self, bars: Sequence[Bar]) -> None:
        """Records the closes and counts each symbol's bars; re-marks the book only where a position is open (the
        others' marks are unused)."""
        closes = self._closes
        previous_closes = self._previous_closes
        seen = self.bars_seen
        positions = self.portfolio.positions
        marks = self.portfolio.marks
        for bar in bars:
            symbol = bar.symbol
            previous = closes.get(symbol)
            if previous is not None:
                previous_closes[symbol] = previous
            closes[symbol] = bar.close
            seen[symbol] += 1
            position = positions.get(symbol)
            if position is not None and position.quantity:
                marks[symbol] = to_decimal(bar.close)
                if symbol not in self.opened_at_bar:
                    # The bar the position was opened on (its opening fill's bar; after a restart, the first bar
                    # at or after that fill, or the first bar seen when the feed does not go back that far).
                    opened = self.opened_at.get(symbol)
                    if opened is None or bar.timestamp >= opened:
                        self.opened_at_bar[symbol] = seen[symbol]

    def _fill(self, execution: Execution, bar: Bar) -> None:
        order, price, fee = execution.order, execution.price, execution.fee
        fill = self.portfolio.apply_fill(
            fill_id=f"{order.id}-F",
            order_id=order.id,
            timestamp=bar.timestamp,
            symbol=order.symbol,
            side=order.side,
            quantity=order.quantity,
            price=price,
            fee=fee,
            signal_type=order.signal_type,
        )
        self.outbox.fills.append(fill)
        self.outbox.order_updates.append((order.id, OrderStatus.FILLED))
        if self.portfolio.quantity(order.symbol) == 0:
            self.opening_signal.pop(order.symbol, None)
            self.opened_at.pop(order.symbol, None)
            self.opened_at_bar.pop(order.symbol, None)
        elif not order.reduces_position:
            self.opening_signal[order.symbol] = order.signal_type
            self.opened_at[order.symbol] = bar.timestamp
            self.opened_at_bar.pop(order.symbol, None)  # counted from this bar, when it is marked

    def _orders_for(
        self, timestamp: datetime, targets: Sequence[TargetPosition], equity: Decimal
    ) -> list[Order]:
        """The orders that move the book towards the strategy's targets. A position is never reversed in one
        order: it is closed first, and may reopen on a later bar. An entry is sized to the room the profile's
        limits leave, or not made; none is made in reduce-only, nor for a symbol whose entry was refused for
        drawdown in its last few bars. A symbol with an order in flight gets no other."""
        profile = self.profile
        orders: list[Order] = []
        stamp = ""
        pending = self.broker.pending
        positions = self.portfolio.positions
        seen = self.bars_seen
        may_open = self.state is not TradingState.REDUCE_ONLY
        committed: Decimal | None = None  # gross exposure held and committed to open, once an entry needs it
        for target in targets:
            symbol = target.symbol
            if pending.get(symbol):
                continue
            position = positions.get(symbol)
            quantity = position.quantity if position is not None else ZERO
            direction = target.direction
            if quantity != 0:
                if direction * quantity > 0:
                    continue
                stamp = stamp or f"{timestamp:%Y%m%dT%H%M%S}"
                orders.append(
                    Order(
                        id=f"{stamp}-{symbol}-close",
                        timestamp=timestamp,
                        symbol=symbol,
                        side=Side.SELL if quantity > 0 else Side.BUY,
                        quantity=abs(quantity),
                        signal_type=target.signal_type,
                        reduces_position=True,
                    )
                )
                continue
            if direction == 0 or not may_open:
                continue
            refused_at = self._drawdown_refused.get(symbol)
            if refused_at is not None and seen[symbol] - refused_at < _DRAWDOWN_RETRY_BARS:
                continue
            price = to_decimal(self._closes[symbol])
            if committed is None:
                committed = self.portfolio.gross_exposure() + self._pending_openings()
            size = opening_quantity(
                price=price,
                equity=equity,
                position_quantity=quantity,
                gross_exposure=committed,
                profile=profile,
                instrument=self.instruments[symbol],
            )
            if size <= 0:
                continue
            committed += size * price
            stamp = stamp or f"{timestamp:%Y%m%dT%H%M%S}"
            orders.append(
                Order(
                    id=f"{stamp}-{symbol}-open",
                    timestamp=timestamp,
                    symbol=symbol,
                    side=Side.BUY if direction > 0 else Side.SELL,
                    quantity=size,
                    signal_type=target.signal_type,
                    reduces_position=False,
                )
            )
        return orders

    def _pending_openings(self) -> Decimal:
        """Notional, at the last closes, of opening orders still waiting for their symbol's next bar (on gappy
        data a symbol may have none in the cross-section that fills the others)."""
        total = Decimal(0)
        for symbol, orders in self.broker.pending.items():
            close = self._closes.get(symbol)  # none yet for an order resubmitted at a restart, before its bar
            if close is None:
                continue
            for order in orders:
                if not order.reduces_position:
                    total += order.quantity * to_decimal(close)
        return total

    def _submit(
        self,
        timestamp: datetime,
        proposals: list[Order],
        equity: Decimal,
        drawdown: Decimal,
        gate: Gate,
        started_ns: int,
    ) -> None:
        book = self.portfolio
        gross = book.gross_exposure()
        horizon = timestamp - timedelta(minutes=1)
        while self._submitted and self._submitted[0] <= horizon:
            self._submitted.popleft()
        gate_verdict: str | None = None
        gate_asked = False
        instruments = self.instruments
        for order in proposals:
            signed = order.quantity if order.side is Side.BUY else -order.quantity
            price = to_decimal(self._closes[order.symbol])
            previous = self._previous_closes.get(order.symbol)
            instrument = instruments[order.symbol]
            reason = pre_trade_check(
                OrderCheck(
                    signed_quantity=signed,
                    reduces_position=order.reduces_position,
                    price=price,
                    previous_price=None if previous is None else to_decimal(previous),
                    position_quantity=book.quantity(order.symbol),
                    equity=equity,
                    gross_exposure=gross,
                    drawdown=drawdown,
                    trading_state=self.state,
                    orders_last_minute=len(self._submitted),
                    min_quantity=instrument.min_quantity,
                    min_notional=instrument.min_notional,
                ),
                self.profile,
            )
            if reason is None:
                if not gate_asked:
                    gate_verdict, gate_asked = gate(), True
                    if gate_verdict == TRADING_HALTED:
                        self.set_state(
                            TradingState.HALTED, actor="kill_switch", reason="tradeos:kill_switch is set"
                        )
                reason = gate_verdict
            if reason is not None:
                self._reject(order, reason)
                continue
            if self.broker.submit(order):
                self._refusing.pop(order.symbol, None)  # an order of this symbol passed: the episode is over
                self.outbox.orders.append(order)
                self.outbox.latencies_us[order.id] = (time.perf_counter_ns() - started_ns) / 1000
                self._submitted.append(timestamp)
                if not order.reduces_position:
                    gross += order.quantity * price

    def _reject(self, order: Order, reason: str) -> None:
        timestamp = order.timestamp
        rejected = Order(
            id=order.id,
            timestamp=timestamp,
            symbol=order.symbol,
            side=order.side,
            quantity=order.quantity,
            signal_type=order.signal_type,
            reduces_position=order.reduces_position,
            status=OrderStatus.REJECTED,
            reason=reason,
        )
        self.outbox.orders.append(rejected)
        if self._refusing.get(order.symbol) != reason:
            # Once per (symbol, reason) episode: the same refusal on every bar told an operator nothing new. The
            # episode lasts until an order of the symbol passes (or trading resumes); `orders` keeps every one.
            self._refusing[order.symbol] = reason
            self.outbox.risk_events.append(
                RiskEvent(
                    timestamp=timestamp,
                    code=reason,
                    detail=(
                        f"{order.side} {order.quantity} {order.symbol} rejected: {reason}; further {reason}"
                        f" refusals of {order.symbol} are recorded in orders only, until one of its orders passes"
                    ),
                    symbol=order.symbol,
                )
            )
        if reason == DRAWDOWN_LIMIT_EXCEEDED:
            self._drawdown_refused[order.symbol] = self.bars_seen.get(order.symbol, 0)
        if reason in POLICY_REJECTIONS or reason in MARKET_RULE_REJECTIONS:
            return
        self._rejections.record(timestamp)
        count = self._rejections.count(timestamp)
        if count >= self.profile.reject_storm_count and self.state is not TradingState.HALTED:
            self._trip(timestamp, breakers.REJECT_STORM, f"{count} rejections within a minute")

    def _trip(self, timestamp: datetime, code: str, detail: str) -> None:
        self.outbox.risk_events.append(
            RiskEvent(timestamp=timestamp, code=code, detail=detail, halts_trading=True)
        )
        self.set_state(
            TradingState.HALTED,
            actor=f"circuit_breaker:{code}",
            reason=f"{detail} (bar {timestamp:%Y-%m-%dT%H:%M}Z)",
        )

    def restore_book(self, *, fills: Sequence[Fill], high_water_mark: Decimal) -> None:
        """Rebuilds the book from recorded fills (crash recovery); the last day's P&L is recomputed."""
        self.portfolio = Portfolio.from_fills(initial_cash=self.portfolio.initial_cash, fills=fills)
        self.portfolio.high_water_mark = max(high_water_mark, self.portfolio.initial_cash)
        self.opening_signal, self.opened_at = _openers(fills)
        self.opened_at_bar = {}  # found again while the bars before the restart are warmed up (`_mark`)
        self._book_view = self._view_of_book()


def _exception(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _described(choice: StrategyChoice | None, strategy: Strategy) -> dict[str, object]:
    """A strategy as recorded in a switch: name, version, parameters and their hash."""
    if choice is None:
        return {"name": getattr(strategy, "name", "?"), "version": getattr(strategy, "version", "")}
    return {
        "name": choice.name,
        "version": choice.version,
        "params": json.loads(choice.params_json),
        "params_hash": choice.params_hash,
    }


def _openers(fills: Iterable[Fill]) -> tuple[dict[str, str], dict[str, datetime]]:
    """For each open position, the signal type and time of the fill that opened it."""
    quantity: dict[str, Decimal] = {}
    opener: dict[str, tuple[str, datetime]] = {}
    for fill in fills:
        before = quantity.get(fill.symbol, ZERO)
        after = before + (fill.quantity if fill.side is Side.BUY else -fill.quantity)
        if before == 0 and after != 0:
            opener[fill.symbol] = (fill.signal_type, fill.timestamp)
        quantity[fill.symbol] = after
    open_symbols = [s for s, q in quantity.items() if q != 0 and s in opener]
    return {s: opener[s][0] for s in open_symbols}, {s: opener[s][1] for s in open_symbols}
