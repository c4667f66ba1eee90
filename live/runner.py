"""The engine's I/O shell: paces the feed, holds the lease, persists the outbox, talks to operators via Redis.

Three threads: the engine thread (feed → Engine.step → PostgreSQL → Redis), the control thread (commands, the
kill-switch poll, heartbeats, model hot-loading) and the lease thread (renewal, on a connection of its own so a
slow commit never delays a command). A lock around each engine step makes a command take effect between two
steps, so a halt acknowledged to the API is in force for every later order.
"""

from __future__ import annotations

import contextlib
import json
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
from typing import Any

import psycopg
import redis

from live.assembly import build_engine
from live.domain import RiskEvent, TradingState, iso_utc
from live.engine import Engine, Outbox
from live.feeds.base import Feed
from live.feeds.replay import ReplayFeed
from live.profiles import get_profile
from live.regime import RegimeClassifier
from live.risk import breakers
from live.risk.breakers import POSTGRES_UNREACHABLE
from live.risk.checks import KILL_SWITCH_UNREACHABLE, TRADING_HALTED
from live.settings import Settings
from live.stores.postgres import FencedError, PostgresStore, apply_migrations
from live.stores.redis_store import RedisStore
from live.wire import (
    fill_message,
    portfolio_json,
    portfolio_message,
    regime_change_message,
    risk_event_message,
    signal_message,
)

log = logging.getLogger("tradeos.engine")

LEASE_LOST = "LEASE_LOST"
_FLUSH_SECONDS = 0.25
_FLUSH_BARS = 20_000
_SNAPSHOT_SECONDS = 0.25
_FRESH_RUN = "use a fresh TRADEOS_HOME (or a fresh database in TRADEOS_DATABASE_URL) to start a fresh run"
_MAX_SIGNALS_PUBLISHED = 50  # per flush: the WebSocket wants the latest actionable ones, not a firehose


@dataclass
class RunnerOptions:
    speed: float = 60.0  # simulated seconds per wall-clock second; 0 = as fast as possible
    holder: str = ""


class EngineRunner:
    """Runs one engine against PostgreSQL and Redis until `stop` is set."""

    def __init__(
        self,
        *,
        settings: Settings,
        feed: Feed,
        database_url: str,
        redis_url: str,
        options: RunnerOptions | None = None,
        classifier_loader: Callable[[Path], RegimeClassifier | None] | None = None,
    ) -> None:
        self.settings = settings
        self.feed = feed
        self.database_url = database_url
        self.redis_url = redis_url
        self.options = options or RunnerOptions()
        self.holder = self.options.holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.classifier_loader = classifier_loader
        self.lock = threading.Lock()
        self.engine: Engine | None = None
        self.token: int | None = None
        self.stop_event = threading.Event()
        self.ready = threading.Event()  # recovered, control thread running (bench/engine.py times from here)
        self.feed_done = threading.Event()  # a finite feed is exhausted and everything is committed
        self.lease_lost = threading.Event()
        self._command_waiting = threading.Event()
        self.redis_down = False
        self.postgres_down = False
        self.last_loop_wall = time.monotonic()
        self.last_commit = 0.0
        self.lease_valid_until = 0.0
        self.waiting_for_feed_since: float | None = None
        self.pending_publish: list[str] = []
        self.bars_processed = 0
        self._said_nothing_to_trade = False
        self._last_snapshot = 0.0
        self._snapshot_of: tuple[datetime | None, TradingState, str] | None = None  # what the last one showed
        self._written_state: tuple[str, str] | None = None
        self._model_stamp: float | None = None
        self._pg: PostgresStore | None = None
        self._redis: RedisStore | None = None

    # -- lifecycle ------------------------------------------------------------------------------------

    def run(self, stop: threading.Event | None = None) -> None:
        """Blocks until stopped. Waits (standby) while another engine holds the lease."""
        if stop is not None:
            self.stop_event = stop
        pg = PostgresStore(self.database_url)
        apply_migrations(pg.conn)
        self._pg = pg
        self._redis = RedisStore(self.redis_url)
        try:
            if not self._acquire_lease(pg):
                return
            self._recover(pg)
            self._say_what_was_committed_before()
            control = threading.Thread(target=self._control_loop, name="tradeos-control", daemon=True)
            lease = threading.Thread(target=self._lease_loop, name="tradeos-lease", daemon=True)
            control.start()
            lease.start()
            self.ready.set()
            try:
                self._engine_loop(pg)
            finally:
                self.stop_event.set()
                control.join(timeout=5)
                lease.join(timeout=5)  # no renewal may land after the release below
                self._final_flush(pg)
                if self.token is not None and not self.lease_lost.is_set():
                    try:
                        pg.release_lease(holder=self.holder, token=self.token)
                    except psycopg.Error:
                        log.warning("could not release the lease (it expires by itself)")
        finally:
            self._redis.close()
            pg.close()

    def _acquire_lease(self, pg: PostgresStore) -> bool:
        announced = False
        while not self.stop_event.is_set():
            token = pg.acquire_lease(holder=self.holder, ttl_seconds=self.settings.lease_ttl_seconds)
            if token is not None:
                self.token = token
                self.lease_valid_until = time.monotonic() + self.settings.lease_ttl_seconds
                log.info("engine %s holds the book (fencing token %s)", self.holder, token)
                return True
            if not announced:
                current = pg.lease_holder()
                log.warning(
                    "the book is leased to another engine (%s) until %s; this one stands by and will not trade",
                    current[0] if current else "?",
                    current[1].isoformat() if current else "?",
                )
                announced = True
            self.stop_event.wait(min(1.0, self.settings.lease_ttl_seconds / 3))
        return False

    def _recover(self, pg: PostgresStore) -> None:
        """Rebuilds the book and the operator state from the record, then re-asserts them in Redis."""
        settings = self.settings
        record = pg.load_engine_record(initial_cash=settings.initial_cash, default_profile=settings.profile)
        classifier = self._load_classifier()
        engine = build_engine(
            settings,
            symbols=self.feed.symbols,
            profile=get_profile(record.profile),
            initial_cash=record.initial_cash,
            classifier=classifier,
        )
        engine.restore_state(
            record.trading_state,
            actor=record.state_actor,
            reason=record.state_reason,
            since=record.state_since,
        )
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
        self.last_bar_ts = record.last_bar_ts
        self.engine = engine
        log.info(
            "recovered: %d fills, last bar %s, state %s, profile %s",
            len(fills),
            iso_utc(record.last_bar_ts),
            engine.state.value,
            engine.profile.name,
        )
        try:
            assert self._redis is not None
            if engine.state is not TradingState.HALTED and self._redis.kill_switch_set():
                engine.set_state(
                    TradingState.HALTED, actor="kill_switch", reason="tradeos:kill_switch is set"
                )
            self._sync_redis_state(force=True)
        except redis.RedisError:
            self._redis_outage()

    # -- engine thread --------------------------------------------------------------------------------

    def _engine_loop(self, pg: PostgresStore) -> None:
        engine = self.engine
        assert engine is not None
        speed = self.options.speed
        wall_start: float | None = None
        sim_start: datetime | None = None
        last_flush = time.monotonic()
        pending_bars = 0
        batches = iter(self.feed.batches())
        while not self.stop_event.is_set():
            self.waiting_for_feed_since = time.monotonic()
            batch = next(batches, None)
            self.waiting_for_feed_since = None
            if batch is None:
                break
            timestamp = batch[0].timestamp
            if self.last_bar_ts is not None and timestamp <= self.last_bar_ts:
                engine.warm_up(batch)
                continue
            if speed > 0:
                if wall_start is None or sim_start is None:
                    wall_start, sim_start = time.monotonic(), timestamp
                due = wall_start + (timestamp - sim_start).total_seconds() / speed
                while not self.stop_event.is_set():
                    self.last_loop_wall = time.monotonic()
                    remaining = due - time.monotonic()
                    if remaining <= 0:
                        break
                    if not engine.outbox.is_empty() or self.pending_publish:
                        self._flush(pg)
                        last_flush = time.monotonic()
                    self.stop_event.wait(min(remaining, 0.1))
                if self.stop_event.is_set():
                    break
            with self.lock:
                engine.step(batch, gate=self._gate)
            if self._command_waiting.is_set():
                self._let_command_in()
            self.bars_processed += len(batch)
            pending_bars += len(batch)
            self.last_loop_wall = time.monotonic()
            # Fills wait for the next batch commit (at most _FLUSH_SECONDS): a crash before it loses the bars too,
            # and recovery replays them into the same fills.
            now = time.monotonic()
            if pending_bars >= _FLUSH_BARS or now - last_flush >= _FLUSH_SECONDS:
                self._flush(pg)
                last_flush = time.monotonic()
                pending_bars = 0
        if not engine.outbox.is_empty():
            self._flush(pg)
        self.feed_done.set()
        if not self.stop_event.is_set():
            if self.bars_processed == 0 and self.last_bar_ts is not None and not self._said_nothing_to_trade:
                log.warning(
                    "the feed ended without a bar after the last committed bar %s of this home: nothing was"
                    " traded; %s",
                    self.last_bar_ts.isoformat(),
                    _FRESH_RUN,
                )
            log.info("feed finished after %d bars; the service stays up", self.bars_processed)
        while not self.stop_event.is_set():
            self.last_loop_wall = time.monotonic()
            if not engine.outbox.is_empty() or self.pending_publish:
                self._flush(pg)
            self._publish_snapshot_if_behind()
            self.stop_event.wait(0.1)

    def _say_what_was_committed_before(self) -> None:
        """A replay is matched against the record: bars up to the last committed one only warm the engine up
        (that is how a restart resumes), so a replay that ends before it would trade nothing, silently."""
        self._said_nothing_to_trade = False
        committed = self.last_bar_ts
        feed = self.feed
        if committed is None or not isinstance(feed, ReplayFeed):
            return
        first, last = feed.first_timestamp, feed.last_timestamp
        if last is not None and last <= committed:
            self._said_nothing_to_trade = True
            log.warning(
                "replay data ends at %s, before the last committed bar %s of this home: nothing to trade; %s",
                last.isoformat(),
                committed.isoformat(),
                _FRESH_RUN,
            )
        elif first is not None and first <= committed:
            log.info(
                "replay data starts at %s; bars up to the last committed one (%s) only warm the engine up, and"
                " trading resumes after it",
                first.isoformat(),
                committed.isoformat(),
            )

    def _gate(self) -> str | None:
        """Asked right before an order is submitted: the lease must be valid by our own clock, PostgreSQL
        reachable (pinged if nothing was committed lately), and the kill switch readable and clear."""
        if self.lease_lost.is_set() or time.monotonic() > self.lease_valid_until:
            return LEASE_LOST
        if self.postgres_down or not self._postgres_alive():
            return POSTGRES_UNREACHABLE
        assert self._redis is not None
        if self.redis_down:
            return (
                KILL_SWITCH_UNREACHABLE  # until the control thread has reconciled the state after an outage
            )
        try:
            if not self._redis.kill_switch_set():
                return None
            self._halt_by_kill_switch(self._redis)
        except (
            Exception
        ):  # a RedisError, or anything else the client raises: the switch is unreadable, fail closed
            self._redis_outage()
            return KILL_SWITCH_UNREACHABLE
        return TRADING_HALTED

    def _postgres_alive(self) -> bool:
        if time.monotonic() - self.last_commit < _FLUSH_SECONDS:
            return True
        assert self._pg is not None
        try:
            self._pg.conn.execute("SELECT 1")
        except psycopg.Error:
            return False
        self.last_commit = time.monotonic()
        return True

    def _flush(self, pg: PostgresStore) -> None:
        """Commits the outbox (retrying through a PostgreSQL outage, trading nothing meanwhile), then publishes."""
        engine = self.engine
        assert engine is not None
        with self.lock:
            outbox = engine.take_outbox()
            positions = {
                f.symbol: (
                    engine.portfolio.quantity(f.symbol),
                    engine.portfolio.positions[f.symbol].avg_price,
                    engine.portfolio.positions[f.symbol].realized_pnl,
                )
                for f in outbox.fills
            }
            hwm = engine.portfolio.high_water_mark
            profile = engine.profile.name
            state = engine.state.value
        give_up_at: float | None = None
        while True:
            try:
                pg.write_outbox(
                    outbox,
                    token=self._token(),
                    high_water_mark=hwm,
                    profile=profile,
                    trading_state=state,
                    positions=positions,
                )
                self.last_commit = time.monotonic()
                if self.postgres_down:
                    self.postgres_down = False
                    log.warning("PostgreSQL is reachable again; trading resumes its normal course")
                break
            except FencedError:
                self.lease_lost.set()
                log.error("this engine lost the lease: its writes are fenced off; stopping")
                self.stop_event.set()
                return
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                if not self.postgres_down:
                    self.postgres_down = True
                    log.error("PostgreSQL unreachable (%s); no order is submitted until it is back", exc)
                    now = outbox.last_bar_ts or engine.last_timestamp or datetime.now(UTC)
                    event = RiskEvent(
                        timestamp=now,
                        code=breakers.POSTGRES_UNREACHABLE,
                        detail=f"PostgreSQL unreachable: {str(exc).strip()[:200]}",
                        halts_trading=False,
                    )
                    outbox.risk_events.append(event)
                    self._publish([risk_event_message(event)])
                if self.stop_event.is_set():
                    give_up_at = give_up_at or time.monotonic() + 10
                    if time.monotonic() > give_up_at:
                        log.error("stopping with %d unwritten bars (PostgreSQL still down)", len(outbox.bars))
                        return
                time.sleep(0.5)
                try:
                    pg.reconnect()
                except psycopg.Error:
                    continue
            except psycopg.Error as exc:
                # Not an outage: the record refuses this batch. Trading stops loudly rather than retrying forever.
                log.critical(
                    "PostgreSQL refused a batch (%s: %s); halting and stopping the engine",
                    type(exc).__name__,
                    exc,
                )
                refused = RiskEvent(
                    timestamp=outbox.last_bar_ts or engine.last_timestamp or datetime.now(UTC),
                    code="RECORD_REFUSED",
                    detail=f"PostgreSQL refused a batch: {type(exc).__name__}",
                    halts_trading=True,
                )
                self._publish([risk_event_message(refused)])
                self.stop_event.set()
                raise
        self._after_commit(outbox)

    def _after_commit(self, outbox: Outbox) -> None:
        engine = self.engine
        assert engine is not None
        messages = self.pending_publish
        self.pending_publish = []
        messages += [fill_message(f) for f in outbox.fills]
        messages += [risk_event_message(e) for e in outbox.risk_events]
        for event in outbox.risk_events:
            if event.halts_trading:
                log.warning("circuit breaker %s halted trading: %s", event.code, event.detail)
        messages += [regime_change_message(c) for c in outbox.regime_changes]
        messages += self._signal_messages(outbox)
        snapshot = None
        if outbox.fills or time.monotonic() - self._last_snapshot >= _SNAPSHOT_SECONDS:
            snapshot = self._snapshot(messages)
        self._publish(messages, snapshot=snapshot)
        self._sync_redis_state()

    def _signal_messages(self, outbox: Outbox) -> list[str]:
        """The latest actionable signals of a committed batch, each with its id in the record (a `signal` message
        carries exactly the `/signals` item). If the ids cannot be read, this batch's signals are not published:
        the record has them, and the next batch publishes its own."""
        signals = outbox.actionable_signals[-_MAX_SIGNALS_PUBLISHED:]
        if not signals:
            return []
        assert self._pg is not None
        try:
            ids = self._pg.actionable_signal_ids(since=signals[0].timestamp, until=signals[-1].timestamp)
        except psycopg.Error as exc:
            log.warning("signal ids unreadable (%s); this batch's signals are not published", exc)
            return []
        return [
            signal_message(s, signal_id=signal_id)
            for s in signals
            if (signal_id := ids.get((s.timestamp, s.symbol, s.signal_type))) is not None
        ]

    def _snapshot(self, messages: list[str]) -> str:
        """The portfolio snapshot as JSON (for the Redis key); its `portfolio_update` is appended to `messages`."""
        engine = self.engine
        assert engine is not None
        with self.lock:
            marked_at = engine.last_timestamp
            data = portfolio_json(
                engine.portfolio.snapshot(marked_at),
                trading_state=engine.state.value,
                profile=engine.profile.name,
                regime=engine.current_regime,
            )
            self._snapshot_of = (marked_at, engine.state, engine.profile.name)
        messages.append(portfolio_message(data, timestamp=marked_at))
        self._last_snapshot = time.monotonic()
        return json.dumps(data)

    def _publish_snapshot_if_behind(self) -> None:
        """Idle (the feed has ended): the last bars' snapshot may have fallen inside the coalescing window, and a
        command may have changed the state since. Publish what is in force, so /portfolio is not left behind."""
        engine = self.engine
        assert engine is not None
        current = (engine.last_timestamp, engine.state, engine.profile.name)
        if current != self._snapshot_of and time.monotonic() - self._last_snapshot >= _SNAPSHOT_SECONDS:
            messages: list[str] = []
            snapshot = self._snapshot(messages)
            self._publish(messages, snapshot=snapshot)

    def _publish(self, messages: list[str], *, snapshot: str | None = None) -> None:
        assert self._redis is not None
        if self.redis_down:
            self.pending_publish = (self.pending_publish + [m for m in messages if '"risk_event"' in m])[
                -1000:
            ]
            self._snapshot_of = None  # not delivered: publish it again once Redis is back
            return
        try:
            self._redis.publish(messages, snapshot=snapshot)
        except redis.RedisError:
            self._redis_outage()
            self.pending_publish = [m for m in messages if '"risk_event"' in m][-1000:]
            self._snapshot_of = None

    def _sync_redis_state(self, *, force: bool = False) -> None:
        """Mirrors the engine's trading state and profile into Redis when they changed (or after an outage)."""
        engine = self.engine
        assert engine is not None
        assert self._redis is not None
        current = (engine.state.value, engine.profile.name)
        if not force and current == self._written_state:
            return
        try:
            self._redis.write_trading_state(
                state=engine.state.value,
                actor=engine.state_actor,
                reason=engine.state_reason,
                since=engine.state_since,
            )
            self._redis.write_profile(engine.profile.name)
            self._written_state = current
        except redis.RedisError:
            self._redis_outage()

    def _redis_outage(self) -> None:
        if self.redis_down:
            return
        self.redis_down = True
        engine = self.engine
        log.error("Redis unreachable: the kill switch cannot be checked, no order is submitted")
        if engine is not None:
            event = RiskEvent(
                timestamp=engine.last_timestamp or datetime.now(UTC),
                code=breakers.REDIS_UNREACHABLE,
                detail="Redis unreachable: kill switch cannot be checked; orders are refused",
            )
            with_lock = not self.lock.locked()
            if with_lock:
                with self.lock:
                    engine.outbox.risk_events.append(event)
            else:
                engine.outbox.risk_events.append(event)

    def _final_flush(self, pg: PostgresStore) -> None:
        if self.engine is None or self.lease_lost.is_set():
            return
        try:
            self._flush(pg)
        except Exception:
            log.exception("final flush failed")

    def _token(self) -> int:
        assert self.token is not None
        return self.token

    # -- control thread -------------------------------------------------------------------------------

    def _lease_loop(self) -> None:
        """Renews the lease every TTL/3 on a connection of its own. A renewal is a commit, and at full speed a
        commit waits behind the engine's COPY batches (measured: up to 270 ms): in the control thread, operator
        commands waited behind it (halt p99 ~130 ms). Survives any error: without renewals the engine stops."""
        lease_pg: PostgresStore | None = None
        try:
            while not self.stop_event.is_set():
                try:
                    if lease_pg is None:
                        lease_pg = PostgresStore(self.database_url)
                    self._renew_lease(lease_pg)
                except psycopg.Error:
                    pass  # PostgreSQL unreachable: the next pass reconnects; the gate fails closed meanwhile
                except Exception:
                    log.exception("lease renewal: unexpected error; going on")
                self.stop_event.wait(self.settings.lease_ttl_seconds / 3)
        finally:
            if lease_pg is not None:
                with contextlib.suppress(psycopg.Error):
                    lease_pg.close()

    def _control_loop(self) -> None:
        """Commands from operators, the kill-switch poll, heartbeats and model hot-loading."""
        control_pg = PostgresStore(self.database_url)
        store = RedisStore(self.redis_url)
        pubsub = None
        next_poll = next_beat = next_model = 0.0
        try:
            while not self.stop_event.is_set():
                now = time.monotonic()
                try:
                    if pubsub is None:
                        pubsub = store.client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
                        pubsub.subscribe(store.control_channel)
                    if self.redis_down:
                        self._redis_back(control_pg)
                    message = pubsub.get_message(timeout=0.05)
                    if message and message.get("type") == "message":
                        self._handle_command(store, message["data"])
                    if now >= next_poll:
                        next_poll = now + 0.2
                        if store.kill_switch_set():
                            with self._command_turn():
                                self._halt_by_kill_switch(store)
                    if now >= next_beat:
                        next_beat = now + 0.5
                        alive = time.monotonic() - self.last_loop_wall < 2.0
                        services = []
                        if alive:
                            services.append("signal_engine")
                            if not self.postgres_down:
                                services.append("execution")
                        if services:
                            store.heartbeat(services)
                except Exception as exc:
                    # This thread writes the heartbeats and applies commands: it must outlive any client error.
                    if not isinstance(exc, redis.RedisError):
                        log.exception("control loop: unexpected error talking to Redis; starting over")
                    if pubsub is not None:
                        with contextlib.suppress(Exception):
                            pubsub.close()
                    pubsub = None
                    self._redis_outage()
                    self.stop_event.wait(0.5)
                try:
                    if now >= next_model:
                        next_model = now + 5.0
                        self._maybe_load_model()
                    self._check_stale_feed()
                except Exception:
                    log.exception("control loop: unexpected error; going on")
                    self.stop_event.wait(0.2)
        finally:
            if pubsub is not None:
                try:
                    pubsub.close()
                except redis.RedisError:
                    pass
            store.close()
            control_pg.close()

    def _redis_back(self, pg: PostgresStore) -> None:
        """Redis answers again. A halt an operator asked for meanwhile reached only PostgreSQL: adopt it before
        re-asserting our state in Redis, and only then let orders through again (the gate refuses until then)."""
        engine = self.engine
        assert engine is not None
        assert self._redis is not None
        try:
            recorded = pg.recorded_trading_state()
        except psycopg.Error:
            with contextlib.suppress(psycopg.Error):
                pg.reconnect()
            return  # stay closed: try again on the next pass
        if recorded and recorded[0] is TradingState.HALTED and engine.state is not TradingState.HALTED:
            with self._command_turn():
                engine.set_state(
                    TradingState.HALTED, actor=recorded[1], reason=recorded[2], now=recorded[3], record=False
                )
            log.warning("a halt recorded while Redis was down (by %s) is now in force", recorded[1])
        self._written_state = None
        self._sync_redis_state(force=True)
        if self._written_state is not None:
            log.warning("Redis is reachable again; trading state and profile re-asserted")
            self.redis_down = False

    def _halt_by_kill_switch(self, store: RedisStore) -> None:
        """The key is set: halt. When the API set it (its trading_state says halted), the halt is the operator's,
        already recorded: adopt it. Set by hand, the halt is recorded here under the actor `kill_switch`.
        Callers hold the engine lock (the gate runs inside a step)."""
        engine = self.engine
        assert engine is not None
        if engine.state is TradingState.HALTED:
            return
        posted = store.trading_state()
        if (
            posted
            and posted.get("state") == "halted"
            and posted.get("actor") not in (None, "", "kill_switch")
        ):
            engine.set_state(
                TradingState.HALTED,
                actor=str(posted["actor"]),
                reason=str(posted.get("reason") or ""),
                now=datetime.now(UTC),
                record=False,
            )
        else:
            engine.set_state(
                TradingState.HALTED,
                actor="kill_switch",
                reason="tradeos:kill_switch is set",
                now=datetime.now(UTC),
            )
            log.warning("kill switch set in Redis: trading halted")

    def _handle_command(self, store: RedisStore, raw: bytes) -> None:
        engine = self.engine
        assert engine is not None
        try:
            command = json.loads(raw)
            command_id = str(command["id"])
            name = str(command["command"])
        except (ValueError, KeyError, TypeError):
            log.warning("ignored a malformed control message")
            return
        actor = str(command.get("actor") or "api")
        reason = str(command.get("reason") or "")
        reply: dict[str, Any] = {"ok": True}
        states = {
            "halt": TradingState.HALTED,
            "resume": TradingState.ACTIVE,
            "reduce": TradingState.REDUCE_ONLY,
        }
        with self._command_turn():
            if name in states:
                engine.set_state(
                    states[name], actor=actor, reason=reason, record=False, now=datetime.now(UTC)
                )
            elif name == "flatten":
                reply["orders"] = [o.id for o in engine.flatten()]
            elif name == "profile":
                try:
                    engine.set_profile(get_profile(str(command.get("value"))))
                except ValueError as exc:
                    reply = {"ok": False, "detail": str(exc)}
            else:
                reply = {"ok": False, "detail": f"unknown command {name!r}"}
            reply.update(state=engine.state.value, profile=engine.profile.name)
        store.ack(command_id, reply)  # the API is waiting: answer first, then log
        log.info("command %s from %s applied: %s", name, actor, reply)
        # A refused command leaves Redis saying what the API asked for: put back what is in force.
        self._sync_redis_state(force=not reply["ok"])

    @contextlib.contextmanager
    def _command_turn(self) -> Iterator[None]:
        """The engine lock for an operator command, taken between two steps without waiting for a flush: the
        engine thread sees the flag after its step and stands aside (a plain lock would let it retake at once)."""
        self._command_waiting.set()
        try:
            with self.lock:
                self._command_waiting.clear()
                yield
        finally:
            self._command_waiting.clear()

    def _let_command_in(self) -> None:
        deadline = time.monotonic() + 0.05
        while self._command_waiting.is_set() and time.monotonic() < deadline:
            time.sleep(0.0001)

    def _renew_lease(self, pg: PostgresStore) -> None:
        if self.token is None:
            return
        asked_at = time.monotonic()
        try:
            if pg.renew_lease(
                holder=self.holder, token=self.token, ttl_seconds=self.settings.lease_ttl_seconds
            ):
                # Valid until the TTL from when we asked, by our own clock: a frozen engine wakes up expired.
                self.lease_valid_until = asked_at + self.settings.lease_ttl_seconds
            else:
                log.error("lease lost to another engine: no further order is submitted")
                self.lease_lost.set()
        except psycopg.Error:
            try:
                pg.reconnect()
            except psycopg.Error:
                pass

    def _maybe_load_model(self) -> None:
        if self.classifier_loader is None:
            return
        pointer = self.settings.models_dir / "current.json"
        try:
            stamp = pointer.stat().st_mtime
        except FileNotFoundError:
            return
        if stamp == self._model_stamp:
            return
        self._model_stamp = stamp
        classifier = self._load_classifier()
        if classifier is not None and self.engine is not None:
            with self.lock:
                self.engine.set_classifier(classifier)
            log.info("regime model %s loaded; the engine now classifies with it", classifier.name)

    def _load_classifier(self) -> RegimeClassifier | None:
        if self.classifier_loader is None:
            return None
        try:
            return self.classifier_loader(self.settings.models_dir)
        except Exception:
            log.exception("could not load the promoted regime model; keeping the current one")
            return None

    def _check_stale_feed(self) -> None:
        since = self.waiting_for_feed_since
        speed = self.options.speed
        if since is None or speed <= 0 or self.engine is None:
            return
        limit = self.feed.bar_seconds / speed * 5 + self.settings.stale_feed_seconds
        if time.monotonic() - since > limit and not getattr(self, "_stale_reported", False):
            self._stale_reported = True
            event = RiskEvent(
                timestamp=self.engine.last_timestamp or datetime.now(UTC),
                code=breakers.STALE_FEED,
                detail=f"no bar for {limit:.0f}s",
                halts_trading=True,
            )
            with self.lock:
                self.engine.outbox.risk_events.append(event)
                self.engine.set_state(
                    TradingState.HALTED, actor="circuit_breaker:STALE_FEED", reason=event.detail
                )
