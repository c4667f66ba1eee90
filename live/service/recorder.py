"""Persistence: each batch the engine produced, committed to PostgreSQL in one transaction fenced by the lease.

The outage policy lives here. While PostgreSQL cannot be reached the batch is retried (the gate refuses every order
meanwhile, and a `POSTGRES_UNREACHABLE` risk event is published at once and recorded once the record is back); a
batch PostgreSQL refuses (not an outage) halts the engine loudly instead of being retried forever; a write fenced
off by a newer lease stops this engine.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import psycopg

from live.domain import RiskEvent
from live.engine import Outbox
from live.risk import breakers
from live.service.book import Book
from live.service.lease import Lease
from live.service.outages import Outages
from live.service.publisher import PublishedSignal, Publisher
from live.stores.postgres import FencedError, PostgresStore

log = logging.getLogger("tradeos.engine")

FRESH_SECONDS = 0.25  # a commit this recent vouches for PostgreSQL; older, the gate pings it
_GIVE_UP_SECONDS = 10.0  # stopping with PostgreSQL still down: how long the last batch is retried
_MAX_SIGNALS_PUBLISHED = 50  # per batch: the WebSocket wants the latest actionable ones, not a firehose


@dataclass(frozen=True, slots=True, kw_only=True)
class Batch:
    """An outbox and the book figures that go with it, taken together under the engine lock."""

    outbox: Outbox
    positions: dict[
        str, tuple[Decimal, Decimal, Decimal]
    ]  # (quantity, avg_price, realized_pnl) of the filled symbols
    high_water_mark: Decimal
    profile: str
    trading_state: str


def take_batch(book: Book, outages: Outages) -> Batch:
    """The engine's outbox so far, with the outage events met since the last batch ahead of its own."""
    engine = book.engine
    with book.lock:
        outbox = engine.take_outbox()
        outbox.risk_events[:0] = outages.take_events()
        portfolio = engine.portfolio
        positions = {
            fill.symbol: (
                portfolio.quantity(fill.symbol),
                portfolio.positions[fill.symbol].avg_price,
                portfolio.positions[fill.symbol].realized_pnl,
            )
            for fill in outbox.fills
        }
        return Batch(
            outbox=outbox,
            positions=positions,
            high_water_mark=portfolio.high_water_mark,
            profile=engine.profile.name,
            trading_state=engine.state.value,
        )


class Recorder:
    """The engine thread's connection to the record."""

    def __init__(
        self,
        *,
        pg: PostgresStore,
        lease: Lease,
        outages: Outages,
        publisher: Publisher,
        engine_clock: Callable[[], datetime | None],
        stop: threading.Event,
    ) -> None:
        self._pg = pg
        self._engine_clock = engine_clock
        self._lease = lease
        self._outages = outages
        self._publisher = publisher
        self._stop = stop
        self._last_commit = 0.0

    def reachable(self) -> bool:
        """For the gate: not in an outage, and (if nothing was committed lately) answering a ping."""
        if self._outages.postgres_down:
            return False
        if time.monotonic() - self._last_commit < FRESH_SECONDS:
            return True
        try:
            self._pg.conn.execute("SELECT 1")
        except psycopg.Error:
            return False
        self._last_commit = time.monotonic()
        return True

    def commit(self, batch: Batch) -> bool:
        """Commits the batch, retrying through an outage; False when it was not (and will never be) committed."""
        outbox = batch.outbox
        give_up_at: float | None = None
        while True:
            try:
                self._pg.write_outbox(
                    outbox,
                    token=self._lease.token,
                    high_water_mark=batch.high_water_mark,
                    profile=batch.profile,
                    trading_state=batch.trading_state,
                    positions=batch.positions,
                )
            except FencedError:
                self._lease.fenced_off()
                log.error("this engine lost the lease: its writes are fenced off; stopping")
                self._stop.set()
                return False
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                if not self._outages.postgres_down:
                    self._postgres_lost(batch, exc)
                if self._stop.is_set():
                    give_up_at = give_up_at or time.monotonic() + _GIVE_UP_SECONDS
                    if time.monotonic() > give_up_at:
                        log.error("stopping with %d unwritten bars (PostgreSQL still down)", len(outbox.bars))
                        return False
                time.sleep(0.5)
                try:
                    self._pg.reconnect()
                except psycopg.Error:
                    continue
            except psycopg.Error as exc:
                self._refused(batch, exc)
                raise
            else:
                self._last_commit = time.monotonic()
                if self._outages.postgres_down:
                    self._outages.postgres_down = False
                    log.warning("PostgreSQL is reachable again; trading resumes its normal course")
                return True

    def published_signals(self, outbox: Outbox) -> list[PublishedSignal]:
        """The latest actionable signals of a committed batch with their ids in the record. If the ids cannot be
        read, this batch's signals are not published: the record has them, and the next batch publishes its own."""
        signals = outbox.actionable_signals[-_MAX_SIGNALS_PUBLISHED:]
        if not signals:
            return []
        try:
            ids = self._pg.actionable_signal_ids(since=signals[0].timestamp, until=signals[-1].timestamp)
        except psycopg.Error as exc:
            log.warning("signal ids unreadable (%s); this batch's signals are not published", exc)
            return []
        return [
            PublishedSignal(signal=signal, signal_id=signal_id)
            for signal in signals
            if (signal_id := ids.get((signal.timestamp, signal.symbol, signal.signal_type))) is not None
        ]

    def _postgres_lost(self, batch: Batch, exc: Exception) -> None:
        self._outages.postgres_down = True
        log.error("PostgreSQL unreachable (%s); no order is submitted until it is back", exc)
        event = RiskEvent(
            timestamp=self._clock(batch),
            code=breakers.POSTGRES_UNREACHABLE,
            detail=f"PostgreSQL unreachable: {str(exc).strip()[:200]}",
            halts_trading=False,
        )
        batch.outbox.risk_events.append(event)  # recorded with the batch once PostgreSQL is back
        self._publisher.publish([event])

    def _refused(self, batch: Batch, exc: psycopg.Error) -> None:
        """Not an outage: the record refuses this batch. Trading stops loudly rather than retrying forever."""
        log.critical(
            "PostgreSQL refused a batch (%s: %s); halting and stopping the engine", type(exc).__name__, exc
        )
        self._publisher.publish(
            [
                RiskEvent(
                    timestamp=self._clock(batch),
                    code="RECORD_REFUSED",
                    detail=f"PostgreSQL refused a batch: {type(exc).__name__}",
                    halts_trading=True,
                )
            ]
        )
        self._stop.set()

    def _clock(self, batch: Batch) -> datetime:
        return batch.outbox.last_bar_ts or self._engine_clock() or datetime.now(UTC)
