"""Assembles the engine service and runs it: the engine thread (feed → Engine.step → PostgreSQL → Redis) here,
commands and housekeeping (control.py) and the lease renewal (lease.py) on threads of their own.

Every part is built once, fully initialised, after the lease is held and the book recovered from the record.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import redis

from live.assembly import build_engine, strategy_from_settings
from live.control import kill_switch_is_set
from live.domain import Bar, TradingState, iso_utc
from live.engine import Engine
from live.feeds.base import Feed, LiveFeed, VenueFeed
from live.feeds.replay import ReplayFeed
from live.regime import RegimeClassifier
from live.risk.kill_switch import KILL_SWITCH_ACTOR, KILL_SWITCH_REASON, KillSwitchGate
from live.service.book import Book
from live.service.control import CommandServer, Housekeeping, ModelWatch, halt_by_kill_switch
from live.service.lease import Lease
from live.service.ledger_watch import LedgerWatch
from live.service.outages import Outages
from live.service.pacing import Pacer, Pulse, StaleFeedWatch
from live.service.profile_watch import ProfileWatch, halt_for_mismatch, load_profile
from live.service.publisher import Publisher
from live.service.recorder import Recorder, take_batch
from live.settings import EngineSettings
from live.stores.postgres import PostgresStore, apply_migrations
from live.stores.redis_store import RedisStore
from live.strategy.loading import StrategyChoice

log = logging.getLogger("tradeos.engine")

_FLUSH_SECONDS = 0.25
_FLUSH_BARS = 20_000
_IDLE_SECONDS = 0.1
_THREAD_JOIN_SECONDS = 5.0
_FRESH_RUN = "use a fresh TRADEOS_HOME (or a fresh database in TRADEOS_DATABASE_URL) to start a fresh run"


@dataclass(frozen=True, slots=True, kw_only=True)
class RunnerOptions:
    speed: float = 60.0  # simulated seconds per wall-clock second; 0 = as fast as possible
    holder: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Recovered:
    """The book rebuilt from the record, and the last bar it had committed (later bars are traded)."""

    engine: Engine
    last_bar_ts: datetime | None


class EngineRunner:
    """Runs one engine against PostgreSQL and Redis until `stop` is set."""

    def __init__(
        self,
        *,
        settings: EngineSettings,
        models_dir: Path,
        feed: Feed,
        database_url: str,
        redis_url: str,
        audit_key: bytes,
        options: RunnerOptions | None = None,
        classifier_loader: Callable[[Path], RegimeClassifier | None] | None = None,
        strategy: StrategyChoice | None = None,
    ) -> None:
        self.settings = settings
        # What the run trades: resolved by the caller at start-up (`tradeos up --strategy`), else from the settings.
        self.strategy = strategy or strategy_from_settings(settings)
        self.feed = feed
        self.database_url = database_url
        self.redis_url = redis_url
        self.audit_key = audit_key
        self.options = options or RunnerOptions()
        self.holder = self.options.holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.models = ModelWatch(loader=classifier_loader, models_dir=models_dir)
        self.stop_event = threading.Event()
        self.ready = threading.Event()  # recovered, command thread running (bench/engine.py times from here)
        self.feed_done = threading.Event()  # a finite feed is exhausted and everything is committed
        self.progress = Progress()

    @property
    def bars_processed(self) -> int:
        return self.progress.bars

    def run(self, stop: threading.Event | None = None) -> None:
        """Blocks until stopped. Waits (standby) while another engine holds the lease."""
        if stop is not None:
            self.stop_event = stop
        pg = PostgresStore(self.database_url, audit_key=self.audit_key)
        store = RedisStore(self.redis_url)
        try:
            apply_migrations(pg.conn)
            lease = Lease.acquire(
                pg, holder=self.holder, ttl_seconds=self.settings.lease_ttl_seconds, stop=self.stop_event
            )
            if lease is None:
                return
            recovered = recover(
                pg,
                settings=self.settings,
                feed=self.feed,
                classifier=self.models.load(),
                strategy=self.strategy,
                holder=self.holder,
            )
            _Service(runner=self, pg=pg, store=store, lease=lease, recovered=recovered).run()
        finally:
            if isinstance(self.feed, LiveFeed):
                self.feed.close()
            store.close()
            pg.close()


class Progress:
    """Bars traded by this run (bars the record had before only warm the engine up)."""

    def __init__(self) -> None:
        self.bars = 0


def recover(
    pg: PostgresStore,
    *,
    settings: EngineSettings,
    feed: Feed,
    classifier: RegimeClassifier | None,
    strategy: StrategyChoice | None = None,
    holder: str = "",
) -> Recovered:
    """Rebuilds the book and the operator state from the record, and records the run's strategy. The strategy is
    the one this start-up names (a switch made in an earlier run does not outlive it: docs/strategies.md)."""
    record = pg.load_engine_record(initial_cash=settings.initial_cash, default_profile=settings.profile)
    profile, untrusted = load_profile(
        pg, name=record.profile, version=record.profile_version, recorded_hash=record.profile_hash
    )
    engine = build_engine(
        settings,
        symbols=feed.symbols,
        profile=profile,
        initial_cash=record.initial_cash,
        classifier=classifier,
        strategy=strategy,
        instruments=feed.instruments if isinstance(feed, VenueFeed) else None,
    )
    if engine.strategy_choice is not None:
        pg.record_strategy_run(engine.strategy_choice, holder=holder)
    engine.restore_state(
        record.trading_state, actor=record.state_actor, reason=record.state_reason, since=record.state_since
    )
    if untrusted is not None:
        halt_for_mismatch(engine, untrusted, at=record.last_bar_ts)
    fills = pg.load_fills()
    if fills:
        engine.restore_book(fills=fills, high_water_mark=record.high_water_mark)
    else:
        engine.portfolio.high_water_mark = max(record.high_water_mark, record.initial_cash)
    for order in pg.load_pending_orders():
        engine.broker.submit(order)
    if record.last_bar_ts is not None:
        day_start = record.last_bar_ts.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        engine.portfolio.day = day_start.date()
        engine.portfolio.start_of_day_value = pg.start_of_day_value(
            before=day_start, initial_cash=record.initial_cash
        )
    log.info(
        "recovered: %d fills, last bar %s, state %s, profile %s version %d (sha256 %s)",
        len(fills),
        iso_utc(record.last_bar_ts),
        engine.state.value,
        engine.profile.name,
        engine.profile.version,
        engine.profile.content_hash,
    )
    return Recovered(engine=engine, last_bar_ts=record.last_bar_ts)


class _Service:
    """One run's parts, wired together; `run` is the engine thread."""

    def __init__(
        self,
        *,
        runner: EngineRunner,
        pg: PostgresStore,
        store: RedisStore,
        lease: Lease,
        recovered: Recovered,
    ) -> None:
        settings = runner.settings
        engine = recovered.engine
        self.runner = runner
        self.feed = runner.feed
        self.stop = runner.stop_event
        self.progress = runner.progress
        self.last_bar_ts = recovered.last_bar_ts
        self.lease = lease
        self.pg = pg
        self.store = store
        self.last_commit = 0.0
        self.book = Book(engine)
        self.pulse = Pulse()
        live = isinstance(self.feed, LiveFeed)
        # A live market is never held back: its bars are due when they come.
        self.pacer = Pacer(speed=0.0 if live else runner.options.speed, pulse=self.pulse)
        self.outages = Outages(clock=lambda: engine.last_timestamp)
        self.publisher = Publisher(store=store, book=self.book, outages=self.outages)
        self.recorder = Recorder(
            pg=pg,
            lease=lease,
            outages=self.outages,
            publisher=self.publisher,
            engine_clock=lambda: engine.last_timestamp,
            stop=self.stop,
        )
        self.gate = KillSwitchGate(
            lease_valid=lease.valid,
            record_reachable=self.recorder.reachable,
            redis_reachable=lambda: not self.outages.redis_down,
            read_kill_switch=store.kill_switch,
            halt=lambda: halt_by_kill_switch(engine, store.trading_state()),
            kill_switch_unreadable=self.outages.redis_lost,
        )
        self.commands = CommandServer(
            redis_url=runner.redis_url,
            book=self.book,
            publisher=self.publisher,
            outages=self.outages,
            stop=self.stop,
        )
        self.housekeeping = Housekeeping(
            redis_url=runner.redis_url,
            database_url=runner.database_url,
            book=self.book,
            publisher=self.publisher,
            outages=self.outages,
            pulse=self.pulse,
            stale_feed=StaleFeedWatch(
                pulse=self.pulse,
                bar_seconds=self.feed.bar_seconds,
                speed=runner.options.speed,
                grace_seconds=settings.stale_feed_seconds,
                live=live,
            ),
            models=runner.models,
            profiles=ProfileWatch(book=self.book),
            ledger=LedgerWatch(key=runner.audit_key, book=self.book),
            stop=self.stop,
        )
        self.nothing_to_trade = _say_what_was_committed_before(self.feed, recovered.last_bar_ts)

    def run(self) -> None:
        self._reassert_state()
        threads = [
            threading.Thread(target=self.commands.run, name="tradeos-commands", daemon=True),
            threading.Thread(target=self.housekeeping.run, name="tradeos-housekeeping", daemon=True),
            threading.Thread(
                target=self.lease.keep,
                args=(self.runner.database_url, self.stop),
                name="tradeos-lease",
                daemon=True,
            ),
        ]
        for thread in threads:
            thread.start()
        self.runner.ready.set()
        try:
            self._trade()
        finally:
            self.stop.set()
            for thread in threads:
                thread.join(timeout=_THREAD_JOIN_SECONDS)  # no renewal may land after the release below
            if not self.lease.lost.is_set():
                try:
                    self._commit()
                except Exception:
                    log.exception("final commit failed")
                self.lease.release(self.pg)

    def _reassert_state(self) -> None:
        """A kill switch set while no engine ran halts this one; then the state in force is posted in Redis."""
        engine = self.book.engine
        try:
            if engine.state is not TradingState.HALTED and kill_switch_is_set(self.store.kill_switch()):
                engine.set_state(TradingState.HALTED, actor=KILL_SWITCH_ACTOR, reason=KILL_SWITCH_REASON)
            self.publisher.mirror_state(force=True)
        except redis.RedisError:
            self.outages.redis_lost()

    def _trade(self) -> None:
        """The engine thread: paces the feed, steps the engine, commits every `_FLUSH_SECONDS` (or `_FLUSH_BARS`).
        Fills wait for the next commit: a crash before it loses the bars too, and recovery replays them into the
        same fills."""
        engine = self.book.engine
        book = self.book
        pulse = self.pulse
        self.last_commit = time.monotonic()
        pending_bars = 0
        batches = (
            self._live_batches(self.feed) if isinstance(self.feed, LiveFeed) else iter(self.feed.batches())
        )
        while not self.stop.is_set():
            pulse.waiting_for_feed_since = time.monotonic()
            batch = next(batches, None)
            pulse.waiting_for_feed_since = None
            if batch is None:
                break
            timestamp = batch[0].timestamp
            if self.last_bar_ts is not None and timestamp <= self.last_bar_ts:
                engine.warm_up(batch)
                continue
            if not self.pacer.wait_for(timestamp, stop=self.stop, idle=self._commit_if_pending):
                break
            with book.lock:
                engine.step(batch, gate=self.gate)
            book.let_command_in()
            self.progress.bars += len(batch)
            pending_bars += len(batch)
            pulse.beat()
            now = time.monotonic()
            if pending_bars >= _FLUSH_BARS or now - self.last_commit >= _FLUSH_SECONDS:
                self._commit()
                pending_bars = 0
        if not engine.outbox.is_empty():
            self._commit()
        self.runner.feed_done.set()
        if not self.stop.is_set():
            self._say_the_feed_ended()
        while not self.stop.is_set():
            pulse.beat()
            self._commit_if_pending()
            self.publisher.publish_snapshot_if_behind()
            self.stop.wait(_IDLE_SECONDS)

    def _live_batches(self, feed: LiveFeed) -> Iterator[list[Bar]]:
        """A live feed's bars; while a minute forms the engine thread keeps beating and commits what is pending
        (the stale-feed watch sees it waiting for the feed all along). Ends when stopped."""
        while not self.stop.is_set():
            batch = feed.next_batch(_IDLE_SECONDS)
            if batch:
                yield batch
                continue
            self.pulse.beat()
            self._commit_if_pending()
            self.publisher.publish_snapshot_if_behind()

    def _commit_if_pending(self) -> None:
        if not self.book.engine.outbox.is_empty() or self.publisher.has_pending():
            self._commit()

    def _commit(self) -> None:
        """Commits the outbox (retrying through a PostgreSQL outage, trading nothing meanwhile), then publishes."""
        batch = take_batch(self.book, self.outages)
        committed = self.recorder.commit(batch)
        self.last_commit = time.monotonic()
        if not committed:
            return
        for event in batch.outbox.risk_events:
            if event.halts_trading:
                log.warning("circuit breaker %s halted trading: %s", event.code, event.detail)
        self.publisher.after_commit(batch.outbox, self.recorder.published_signals(batch.outbox))

    def _say_the_feed_ended(self) -> None:
        if self.progress.bars == 0 and self.last_bar_ts is not None and not self.nothing_to_trade:
            log.warning(
                "the feed ended without a bar after the last committed bar %s of this home: nothing was"
                " traded; %s",
                self.last_bar_ts.isoformat(),
                _FRESH_RUN,
            )
        log.info("feed finished after %d bars; the service stays up", self.progress.bars)


def _say_what_was_committed_before(feed: Feed, committed: datetime | None) -> bool:
    """A replay is matched against the record: bars up to the last committed one only warm the engine up (that is
    how a restart resumes), so a replay that ends before it would trade nothing, silently. True when it does."""
    if committed is None or not isinstance(feed, ReplayFeed):
        return False
    first, last = feed.first_timestamp, feed.last_timestamp
    if last is not None and last <= committed:
        log.warning(
            "replay data ends at %s, before the last committed bar %s of this home: nothing to trade; %s",
            last.isoformat(),
            committed.isoformat(),
            _FRESH_RUN,
        )
        return True
    if first is not None and first <= committed:
        log.info(
            "replay data starts at %s; bars up to the last committed one (%s) only warm the engine up, and"
            " trading resumes after it",
            first.isoformat(),
            committed.isoformat(),
        )
    return False
