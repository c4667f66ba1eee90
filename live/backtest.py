"""The engine on a replay file, in-process at full speed, with nothing persisted: the live half of `tradeos backtest`.

The engine is assembled by `build_engine` from the same settings, profile and regime classifier `tradeos up` would
use, and each cross-section is stepped as the runner steps it (live/service/runner.py). The runner's only extra is
the kill-switch gate, which lets every order through while the switch is unset and the stores are reachable; a
backtest has no switch to set and no store to lose, so it steps without one. That is why a backtest's orders, fills
and equity equal those of `tradeos up --feed replay --speed 0` on the same file, to the cent.

Everything the engine produced is kept in a `BacktestRecord`, turned into frames (the analytics tables' columns)
only at the end: a step costs what it costs in the live engine.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Literal

import polars as pl

from live.assembly import build_engine
from live.domain import Bar, Fill, Order, OrderStatus, RegimeChange, RiskEvent
from live.engine import Engine
from live.feeds.base import FeedError
from live.feeds.replay import ReplayFeed
from live.profiles import Profile, get_profile
from live.regime import RegimeClassifier
from live.settings import EngineSettings
from live.strategy.base import PortfolioView, SignalRecorder, SignalRow, Strategy, TargetPosition
from live.strategy.loading import StrategyChoice, StrategyLoadError, load_strategy

__all__ = [
    "BacktestRecord",
    "Decision",
    "FeedError",
    "ReplayFeed",
    "StrategyChoice",
    "StrategyError",
    "choose_strategy",
    "load_replay",
    "replay",
]

# Money columns are exchanged as DECIMAL(24, 8), the system of record's type (analytics/warehouse.py MONEY).
MONEY = pl.Decimal(24, 8)
# Quantities as DECIMAL(38, 18) (analytics/warehouse.py QUANTITY): whole shares and 0.0013 BTC alike, exactly.
QUANTITY = pl.Decimal(38, 18)
UTC_TIME = pl.Datetime("us", "UTC")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
# Cross-sections stepped between two calls of a progress callback.
_PROGRESS_EVERY = 2_000


class StrategyError(ValueError):
    """A strategy spec or parameter that cannot be used; the message is the one line shown to the user."""


def choose_strategy(settings: EngineSettings, spec: str, params: Mapping[str, object]) -> StrategyChoice:
    """`--strategy SPEC --param k=v` as a strategy with validated parameters (StrategyError when they cannot be):
    the loader `tradeos up` uses (live/strategy/loading.py), its message prefixed with the flag it is about."""
    try:
        return load_strategy(spec, params)
    except StrategyLoadError as exc:
        raise StrategyError(f"{'--param' if exc.about == 'params' else '--strategy'}: {exc}") from None


def load_replay(path: Path) -> ReplayFeed:
    """The replay file, validated as `tradeos up --feed replay` validates it (FeedError naming line and reason)."""
    return ReplayFeed.from_path(Path(path))


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """One target position the strategy asked for after the cross-section at `timestamp`."""

    timestamp: datetime
    symbol: str
    direction: Literal[-1, 0, 1]
    signal_type: str


class DecisionTap:
    """The strategy, with every target it returns written down (the look-ahead check compares them)."""

    def __init__(self, strategy: Strategy, decisions: list[Decision]) -> None:
        self.inner = strategy
        self.name = strategy.name
        self.version = strategy.version
        self._decisions = decisions
        self._timestamp: datetime | None = None

    def warm_up(self, bars: Sequence[Bar]) -> None:
        self.inner.warm_up(bars)

    def observe(self, bars: Sequence[Bar], *, regime: str, profile: Profile, signals: SignalRecorder) -> None:
        self._timestamp = bars[0].timestamp
        self.inner.observe(bars, regime=regime, profile=profile, signals=signals)

    def decide(self, *, profile: Profile, book: PortfolioView) -> Sequence[TargetPosition]:
        targets = self.inner.decide(profile=profile, book=book)
        timestamp = self._timestamp
        assert timestamp is not None, "decide is called after observe"
        self._decisions.extend(
            Decision(timestamp=timestamp, symbol=t.symbol, direction=t.direction, signal_type=t.signal_type)
            for t in targets
        )
        return targets


@dataclass(slots=True, kw_only=True)
class BacktestRecord:
    """Everything one run produced, in the order the engine produced it."""

    strategy: str
    profile: str
    regime_model: str
    initial_cash: Decimal
    symbols: tuple[str, ...]
    bars: int = 0
    first_bar: datetime | None = None
    last_bar: datetime | None = None
    orders: list[Order] = field(default_factory=list)
    order_status: dict[str, tuple[OrderStatus, datetime]] = field(default_factory=dict)
    latencies_us: dict[str, float] = field(default_factory=dict)
    fills: list[Fill] = field(default_factory=list)
    # (timestamp, total value, cash, high-water mark after the step): the mark per row, not per batch.
    equity: list[tuple[datetime, Decimal, Decimal, Decimal]] = field(default_factory=list)
    signal_rows: list[SignalRow] = field(default_factory=list)
    risk_events: list[RiskEvent] = field(default_factory=list)
    regime_changes: list[RegimeChange] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)

    def frames(self) -> dict[str, pl.DataFrame]:
        """The run as the analytics tables' columns (analytics/warehouse.py SYNCED_TABLES), money as exact
        DECIMAL(24, 8), times UTC: orders, fills, equity, signals, risk_events, regime_changes."""
        return {
            "orders": self._orders_frame(),
            "fills": _fills_frame(self.fills),
            "equity": _equity_frame(self.equity),
            "signals": _signals_frame(self.signal_rows),
            "risk_events": _risk_events_frame(self.risk_events),
            "regime_changes": _regime_changes_frame(self.regime_changes),
        }

    def _orders_frame(self) -> pl.DataFrame:
        orders = self.orders
        final = [self.order_status.get(o.id, (o.status, o.timestamp)) for o in orders]
        return pl.DataFrame(
            {
                "id": [o.id for o in orders],
                "timestamp": [o.timestamp for o in orders],
                "symbol": [o.symbol for o in orders],
                "side": [o.side.value for o in orders],
                "quantity": _quantities([o.quantity for o in orders]),
                "signal_type": [o.signal_type for o in orders],
                "reduces_position": [o.reduces_position for o in orders],
                "status": [status.value for status, _ in final],
                "reason": [o.reason for o in orders],
                "tick_to_order_us": [self.latencies_us.get(o.id) for o in orders],
                "updated_at": [at for _, at in final],
            },
            schema={
                "id": pl.String,
                "timestamp": UTC_TIME,
                "symbol": pl.String,
                "side": pl.String,
                "quantity": QUANTITY,
                "signal_type": pl.String,
                "reduces_position": pl.Boolean,
                "status": pl.String,
                "reason": pl.String,
                "tick_to_order_us": pl.Float64,
                "updated_at": UTC_TIME,
            },
        )


def _utc_times(stamps: Iterable[datetime]) -> pl.Series:
    """Aware datetimes as a UTC column. Through integer microseconds, converting each distinct object once: the
    rows of one cross-section share its timestamp object, and polars takes a list of datetimes at ~4 µs each."""
    micros: list[int] = []
    append = micros.append
    last: datetime | None = None
    value = 0
    for stamp in stamps:
        if stamp is not last:
            last, value = stamp, (stamp - _EPOCH) // _MICROSECOND
        append(value)
    return pl.Series(micros, dtype=pl.Int64).cast(UTC_TIME)


def _money(values: Sequence[Decimal]) -> pl.Series:
    # Through text: exact whatever the Decimal's exponent, and polars parses a column of them in one call.
    return pl.Series([str(v) for v in values], dtype=pl.String).cast(MONEY)


def _quantities(values: Sequence[Decimal]) -> pl.Series:
    return pl.Series([str(v) for v in values], dtype=pl.String).cast(QUANTITY)


def _fills_frame(fills: Sequence[Fill]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "id": pl.Series([f.id for f in fills], dtype=pl.String),
            "order_id": pl.Series([f.order_id for f in fills], dtype=pl.String),
            "timestamp": pl.Series([f.timestamp for f in fills], dtype=UTC_TIME),
            "symbol": pl.Series([f.symbol for f in fills], dtype=pl.String),
            "side": pl.Series([f.side.value for f in fills], dtype=pl.String),
            "quantity": _quantities([f.quantity for f in fills]),
            "price": _money([f.price for f in fills]),
            "fee": _money([f.fee for f in fills]),
            "signal_type": pl.Series([f.signal_type for f in fills], dtype=pl.String),
            "realized_pnl": _money([f.realized_pnl for f in fills]),
        }
    )


def _equity_frame(rows: Sequence[tuple[datetime, Decimal, Decimal, Decimal]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "timestamp": _utc_times(r[0] for r in rows),
            "total_value": _money([r[1] for r in rows]),
            "cash": _money([r[2] for r in rows]),
            "high_water_mark": _money([r[3] for r in rows]),
        }
    )


def _signals_frame(rows: Sequence[SignalRow]) -> pl.DataFrame:
    # A comprehension per column: `zip(*rows)` over a million rows was seconds of garbage-collector scans.
    return pl.DataFrame(
        {
            "id": pl.int_range(1, len(rows) + 1, dtype=pl.Int64, eager=True),
            "timestamp": _utc_times(r[0] for r in rows),
            "symbol": pl.Series([r[1] for r in rows], dtype=pl.String),
            "signal_type": pl.Series([r[2] for r in rows], dtype=pl.String),
            "strength": pl.Series([r[3] for r in rows], dtype=pl.Float64),
            "horizon_bars": pl.Series([r[4] for r in rows], dtype=pl.Int32),
            "regime": pl.Series([r[5] for r in rows], dtype=pl.String),
            "actionable": pl.Series([r[6] for r in rows], dtype=pl.Boolean),
        }
    )


def _risk_events_frame(events: Sequence[RiskEvent]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "id": pl.Series(range(1, len(events) + 1), dtype=pl.Int64),
            "timestamp": pl.Series([e.timestamp for e in events], dtype=UTC_TIME),
            "code": pl.Series([e.code for e in events], dtype=pl.String),
            "detail": pl.Series([e.detail for e in events], dtype=pl.String),
            "symbol": pl.Series([e.symbol for e in events], dtype=pl.String),
            "halts_trading": pl.Series([e.halts_trading for e in events], dtype=pl.Boolean),
            # A backtest records an event when it happens: on the bars' clock.
            "recorded_at": pl.Series([e.timestamp for e in events], dtype=UTC_TIME),
        }
    )


def _regime_changes_frame(changes: Sequence[RegimeChange]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "id": pl.Series(range(1, len(changes) + 1), dtype=pl.Int64),
            "timestamp": pl.Series([c.timestamp for c in changes], dtype=UTC_TIME),
            "previous": pl.Series([c.previous for c in changes], dtype=pl.String),
            "current": pl.Series([c.current for c in changes], dtype=pl.String),
            "model": pl.Series([c.model for c in changes], dtype=pl.String),
        }
    )


def replay(
    settings: EngineSettings,
    feed: ReplayFeed,
    *,
    strategy: StrategyChoice,
    profile: str,
    classifier: RegimeClassifier | None = None,
    record_decisions: bool = False,
    progress: Callable[[int], None] | None = None,
) -> BacktestRecord:
    """Steps an engine built as `tradeos up` builds it, under the profile called `profile`, over every cross-section
    of `feed`; `progress(bars)` is called every few thousand cross-sections with the bars stepped so far."""
    symbols = feed.symbols
    book_profile = get_profile(profile)
    decisions: list[Decision] = []
    engine = build_engine(
        settings, symbols=symbols, profile=book_profile, classifier=classifier, strategy=strategy
    )
    if record_decisions:
        engine.strategy = DecisionTap(engine.strategy, decisions)
    record = BacktestRecord(
        strategy=strategy.name,
        profile=book_profile.name,
        regime_model=engine.regime.classifier.name,
        initial_cash=engine.portfolio.initial_cash,
        symbols=symbols,
        decisions=decisions,
    )
    portfolio_marks = record.equity
    step = engine.step
    bars = 0
    for count, batch in enumerate(feed.batches(), start=1):
        step(batch)
        bars += len(batch)
        # One snapshot per step: the high-water mark in force right after it is the book's.
        snapshot = engine.outbox.equity[-1]
        portfolio_marks.append(
            (snapshot.timestamp, snapshot.total_value, snapshot.cash, engine.portfolio.high_water_mark)
        )
        if count % _PROGRESS_EVERY == 0:
            _collect(record, engine)
            if progress is not None:
                progress(bars)
    _collect(record, engine)
    record.bars = bars
    record.first_bar, record.last_bar = feed.first_timestamp, feed.last_timestamp
    if progress is not None:
        progress(bars)
    return record


def _collect(record: BacktestRecord, engine: Engine) -> None:
    """Moves the engine's outbox into the record (the runner takes it as often, so memory stays bounded)."""
    out = engine.take_outbox()
    record.orders.extend(out.orders)
    record.latencies_us.update(out.latencies_us)
    record.fills.extend(out.fills)
    # An order's status changes when it fills: on that fill's bar.
    fill_times = {fill.order_id: fill.timestamp for fill in out.fills}
    for order_id, status in out.order_updates:
        changed_at = fill_times.get(order_id, out.last_bar_ts)
        if changed_at is not None:
            record.order_status[order_id] = (status, changed_at)
    record.signal_rows.extend(out.signal_rows)
    record.risk_events.extend(out.risk_events)
    record.regime_changes.extend(out.regime_changes)
