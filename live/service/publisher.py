"""The Redis fan-out of what the recorder committed: events on `tradeos:<db>:events`, the portfolio snapshot behind
`GET /portfolio`, and the trading state and profile in force.

Events stay typed until they are sent, and are encoded there with the wire contract's functions (live/wire.py).
While Redis is down only risk events are kept for later (a fill or a signal is in the record, and stale once Redis
is back; a risk event is what an operator must see).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis

from live.control import TradingStateRecord
from live.domain import Fill, RegimeChange, RiskEvent, Signal, TradingState
from live.engine import Outbox
from live.service.book import Book
from live.service.outages import Outages
from live.stores.redis_store import RedisStore
from live.wire import (
    fill_message,
    portfolio_json,
    portfolio_message,
    regime_change_message,
    risk_event_message,
    signal_message,
    strategy_status_json,
)

log = logging.getLogger("tradeos.engine")

SNAPSHOT_SECONDS = 0.25  # the snapshot is coalesced to a few a second, but follows every batch with fills
MAX_PENDING = 1000


@dataclass(frozen=True, slots=True, kw_only=True)
class PublishedSignal:
    """An actionable signal with its id in the record: a `signal` message carries exactly the `/signals` item."""

    signal: Signal
    signal_id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PortfolioUpdate:
    """The book in the `GET /portfolio` shape, stamped with the engine clock it was marked at."""

    portfolio: dict[str, Any]
    marked_at: datetime | None


Event = Fill | RiskEvent | RegimeChange | PublishedSignal | PortfolioUpdate


def encode(event: Event) -> str:
    """One WebSocket message."""
    match event:
        case Fill():
            return fill_message(event)
        case RiskEvent():
            return risk_event_message(event)
        case RegimeChange():
            return regime_change_message(event)
        case PublishedSignal(signal=signal, signal_id=signal_id):
            return signal_message(signal, signal_id=signal_id)
        case PortfolioUpdate(portfolio=portfolio, marked_at=marked_at):
            return portfolio_message(portfolio, timestamp=marked_at)


def _encoded(events: Sequence[Event]) -> list[str]:
    """The messages to send. An event the wire contract refuses (a value out of its range) is left out and logged:
    it is already committed, and one bad message must not stop the engine thread or the others."""
    messages = []
    for event in events:
        try:
            messages.append(encode(event))
        except ValueError as exc:  # pydantic's ValidationError
            log.error("not published, refused by the wire contract: %r (%s)", event, exc)
    return messages


class Publisher:
    """Used by the engine thread after each commit; the state mirror also by the command and housekeeping threads."""

    def __init__(self, *, store: RedisStore, book: Book, outages: Outages) -> None:
        self._store = store
        self._book = book
        self._outages = outages
        self._pending: list[RiskEvent] = []
        self._last_snapshot = 0.0
        self._snapshot_of: tuple[datetime | None, TradingState, str] | None = None  # what the last one showed
        self._mirrored: tuple[TradingState, str, str] | None = None

    def after_commit(self, outbox: Outbox, signals: Sequence[PublishedSignal]) -> None:
        """A committed batch: its fills, risk events, regime changes and signals, then the snapshot if due."""
        events: list[Event] = [*outbox.fills, *outbox.risk_events, *outbox.regime_changes, *signals]
        due = bool(outbox.fills) or time.monotonic() - self._last_snapshot >= SNAPSHOT_SECONDS
        self.publish(events, with_snapshot=due)
        self.mirror_state()

    def publish_snapshot_if_behind(self) -> None:
        """Idle (the feed has ended): the last bars' snapshot may have fallen inside the coalescing window, and a
        command may have changed the state since. Publish what is in force, so /portfolio is not left behind."""
        engine = self._book.engine
        current = (engine.last_timestamp, engine.state, engine.profile.name)
        if current != self._snapshot_of and time.monotonic() - self._last_snapshot >= SNAPSHOT_SECONDS:
            self.publish([], with_snapshot=True)

    def pending_count(self) -> int:
        """Risk events kept through a Redis outage (at most `MAX_PENDING`, the oldest dropped first)."""
        return len(self._pending)

    def has_pending(self) -> bool:
        """Risk events kept through a Redis outage, still to be delivered."""
        return bool(self._pending)

    def publish(self, events: Sequence[Event], *, with_snapshot: bool = False) -> None:
        """Sends what is pending from an outage, then `events` (and the snapshot, taken now)."""
        outgoing: list[Event] = [*self._pending, *events]
        snapshot: str | None = None
        if with_snapshot:
            update = self._snapshot()
            outgoing.append(update)
            snapshot = json.dumps(update.portfolio)
        if not self._outages.redis_down:
            try:
                self._store.publish(_encoded(outgoing), snapshot=snapshot)
            except redis.RedisError:
                self._outages.redis_lost()
            else:
                self._pending = []
                return
        self._pending = [event for event in outgoing if isinstance(event, RiskEvent)][-MAX_PENDING:]
        self._snapshot_of = None  # not delivered: publish it again once Redis is back

    def mirror_state(self, *, force: bool = False) -> bool:
        """Posts the engine's trading state, profile and strategy in Redis when they changed (or `force`: after an
        outage, or a refused command that left Redis saying what the API asked for). False if Redis did not take
        it."""
        engine = self._book.engine
        choice = engine.strategy_choice
        current = (
            engine.state,
            engine.profile.name + engine.profile.content_hash,
            choice.params_hash + choice.spec if choice else "",
        )
        if not force and current == self._mirrored:
            return True
        try:
            self._store.write_trading_state(
                TradingStateRecord(
                    state=engine.state,
                    since=engine.state_since,
                    reason=engine.state_reason,
                    actor=engine.state_actor,
                )
            )
            self._store.write_profile(engine.profile.name, engine.profile.content_hash)
            if choice is not None:
                self._store.write_strategy(
                    strategy_status_json(
                        name=choice.name,
                        version=choice.version,
                        params_json=choice.params_json,
                        params_hash=choice.params_hash,
                    )
                )
        except redis.RedisError:
            self._outages.redis_lost()
            return False
        self._mirrored = current
        return True

    def forget_mirrored_state(self) -> None:
        self._mirrored = None

    def _snapshot(self) -> PortfolioUpdate:
        engine = self._book.engine
        with self._book.lock:
            marked_at = engine.last_timestamp
            portfolio = portfolio_json(
                engine.portfolio.snapshot(marked_at),
                trading_state=engine.state.value,
                profile=engine.profile.name,
                regime=engine.current_regime,
            )
            self._snapshot_of = (marked_at, engine.state, engine.profile.name)
        self._last_snapshot = time.monotonic()
        return PortfolioUpdate(portfolio=portfolio, marked_at=marked_at)
