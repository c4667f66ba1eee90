"""Operators' side of the engine: commands on a thread of their own, and the housekeeping on another.

The command thread only reads the control channel, applies each command under the engine lock between two steps
and acknowledges it: it touches no PostgreSQL and nothing slow, so a halt is in force as soon as the thread gets
the message. The housekeeping thread polls the kill switch, writes the heartbeats, hot-loads a promoted regime
model, trips the stale-feed breaker, holds the custom profile traded to its stored hash (profile_watch.py),
reconciles the state when Redis comes back (PostgreSQL reads) and re-verifies the audit ledger (ledger_watch.py).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import redis

from live.control import (
    CommandAck,
    ControlMessageError,
    TradingStateRecord,
    command_name,
    decode_command,
    encode_ack,
    kill_switch_is_set,
)
from live.domain import RiskEvent, TradingState
from live.engine import Engine
from live.regime import RegimeClassifier
from live.risk import breakers
from live.risk.kill_switch import POLL_SECONDS, kill_switch_halt
from live.service.book import Book
from live.service.ledger_watch import LedgerWatch
from live.service.outages import Outages
from live.service.pacing import Pulse, StaleFeedWatch
from live.service.profile_watch import CHECK_SECONDS as PROFILE_CHECK_SECONDS
from live.service.profile_watch import ProfileWatch
from live.service.publisher import Publisher
from live.stores.postgres import PostgresStore
from live.stores.redis_store import RedisStore
from live.wire import EngineQueues

log = logging.getLogger("tradeos.engine")

ClassifierLoader = Callable[[Path], RegimeClassifier | None]

_LISTEN_SECONDS = 0.1  # a message wakes the thread at once; this only bounds how late it sees a stop
_HEARTBEAT_SECONDS = 0.5
_MODEL_CHECK_SECONDS = 5.0
_TICK_SECONDS = 0.05
_REDIS_RETRY_SECONDS = 0.5  # while Redis is down: how often to try to reconcile with it


def halt_by_kill_switch(engine: Engine, posted: TradingStateRecord | None) -> None:
    """The kill switch is set: halt, as the operator who set it (already recorded) or as the switch itself.
    Callers hold the engine lock (the gate runs inside a step)."""
    if engine.state is TradingState.HALTED:
        return
    halt = kill_switch_halt(posted)
    engine.set_state(
        TradingState.HALTED,
        actor=halt.actor,
        reason=halt.reason,
        now=datetime.now(UTC),
        record=not halt.recorded,
    )
    if not halt.recorded:
        log.warning("kill switch set in Redis: trading halted")


class CommandServer:
    """Serves `tradeos:<db>:control`, on a Redis connection of its own."""

    def __init__(
        self, *, redis_url: str, book: Book, publisher: Publisher, outages: Outages, stop: threading.Event
    ) -> None:
        self._redis_url = redis_url
        self._book = book
        self._publisher = publisher
        self._outages = outages
        self._stop = stop

    def run(self) -> None:
        """The thread: outlives any client error (the next pass subscribes again)."""
        store = RedisStore(self._redis_url)
        pubsub: Any = None
        try:
            while not self._stop.is_set():
                try:
                    if pubsub is None:
                        pubsub = store.client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
                        pubsub.subscribe(store.control_channel)
                    message = pubsub.get_message(timeout=_LISTEN_SECONDS)
                    if message and message.get("type") == "message":
                        self.serve(store, message["data"])
                except Exception as exc:
                    if not isinstance(exc, redis.RedisError):
                        log.exception("command thread: unexpected error talking to Redis; starting over")
                    if pubsub is not None:
                        with contextlib.suppress(Exception):
                            pubsub.close()
                    pubsub = None
                    self._outages.redis_lost()
                    self._stop.wait(0.5)
        finally:
            if pubsub is not None:
                with contextlib.suppress(Exception):
                    pubsub.close()
            store.close()

    def serve(self, store: RedisStore, raw: bytes) -> None:
        """Applies one command between two steps and acknowledges it; the API is waiting, so it answers first."""
        try:
            command = decode_command(raw)
        except ControlMessageError as exc:
            log.warning("refused a malformed control message: %s", exc)
            if exc.command_id is not None:
                engine = self._book.engine
                store.ack(
                    CommandAck(
                        command_id=exc.command_id,
                        applied=False,
                        detail=str(exc),
                        state=engine.state,
                        profile=engine.profile.name,
                    )
                )
            return
        with self._book.command_turn() as engine:
            ack = engine.apply(command)
        store.ack(ack)
        # The answer as sent, in the form the log has always shown it (tests read the profiles applied from it).
        log.info(
            "command %s from %s applied: %s",
            command_name(command),
            command.actor,
            json.loads(encode_ack(ack)),
        )
        # A refused command leaves Redis saying what the API asked for: put back what is in force.
        self._publisher.mirror_state(force=not ack.applied)


class Housekeeping:
    """Kill-switch poll, heartbeats, model hot-load, the stale-feed breaker, Redis's return, the audit ledger's
    re-verification."""

    def __init__(
        self,
        *,
        redis_url: str,
        database_url: str,
        book: Book,
        publisher: Publisher,
        outages: Outages,
        pulse: Pulse,
        stale_feed: StaleFeedWatch,
        models: ModelWatch,
        profiles: ProfileWatch,
        ledger: LedgerWatch,
        stop: threading.Event,
    ) -> None:
        self._redis_url = redis_url
        self._database_url = database_url
        self._profiles = profiles
        self._book = book
        self._publisher = publisher
        self._outages = outages
        self._pulse = pulse
        self._stale_feed = stale_feed
        self._models = models
        self._ledger = ledger
        self._stop = stop

    def run(self) -> None:
        """The thread: outlives any error."""
        store = RedisStore(self._redis_url)
        pg = PostgresStore(self._database_url)
        next_poll = next_beat = next_model = next_profile_check = 0.0
        next_redis_retry: float | None = None  # while Redis is down: when to try it again
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                try:
                    if not self._outages.redis_down:
                        next_redis_retry = None
                    elif next_redis_retry is None:
                        next_redis_retry = now + _REDIS_RETRY_SECONDS  # not at once: it has only just gone
                    elif now >= next_redis_retry:
                        next_redis_retry = now + _REDIS_RETRY_SECONDS
                        self._redis_back(pg)
                    if now >= next_poll:
                        next_poll = now + POLL_SECONDS
                        halted = (
                            self._book.engine.state is TradingState.HALTED
                        )  # the switch stays set while halted
                        if not halted and kill_switch_is_set(store.kill_switch()):
                            with self._book.command_turn() as engine:
                                halt_by_kill_switch(engine, store.trading_state())
                    if now >= next_beat:
                        next_beat = now + _HEARTBEAT_SECONDS
                        self._heartbeat(store)
                except Exception as exc:
                    if not isinstance(exc, redis.RedisError):
                        log.exception("housekeeping: unexpected error talking to Redis; going on")
                    self._outages.redis_lost()
                    self._stop.wait(0.5)
                try:
                    if now >= next_model:
                        next_model = now + _MODEL_CHECK_SECONDS
                        self._models.maybe_load(self._book)
                    if self._stale_feed.newly_stale():
                        self._trip_stale_feed()
                    self._ledger.maybe_check(pg)
                except Exception:
                    log.exception("housekeeping: unexpected error; going on")
                    self._stop.wait(0.2)
                try:
                    if now >= next_profile_check:
                        next_profile_check = now + PROFILE_CHECK_SECONDS
                        self._profiles.check(pg)
                except psycopg.Error:
                    with contextlib.suppress(psycopg.Error):
                        pg.reconnect()  # PostgreSQL is away: the recorder's outage handling halts orders
                except Exception:
                    log.exception("housekeeping: unexpected error; going on")
                    self._stop.wait(0.2)
                self._stop.wait(_TICK_SECONDS)
        finally:
            store.close()
            pg.close()

    def _heartbeat(self, store: RedisStore) -> None:
        if not self._pulse.alive():
            return
        services = ["signal_engine"]
        if not self._outages.postgres_down:
            services.append("execution")
        queues = EngineQueues(
            at=datetime.now(UTC),
            awaiting_commit=self._book.engine.outbox.size(),
            awaiting_publish=self._publisher.pending_count(),
            outage_events=self._outages.waiting(),
        )
        store.heartbeat(services, queues=queues.model_dump_json())

    def _redis_back(self, pg: PostgresStore) -> None:
        """Redis may answer again. A halt an operator asked for meanwhile reached only PostgreSQL: adopt it before
        re-asserting our state in Redis, and only then let orders through again (the gate refuses until then)."""
        try:
            recorded = pg.recorded_trading_state()
        except psycopg.Error:
            with contextlib.suppress(psycopg.Error):
                pg.reconnect()
            return  # stay closed: try again on the next pass
        if recorded and recorded[0] is TradingState.HALTED:
            with self._book.command_turn() as engine:
                if engine.state is not TradingState.HALTED:
                    engine.set_state(
                        TradingState.HALTED,
                        actor=recorded[1],
                        reason=recorded[2],
                        now=recorded[3],
                        record=False,
                    )
                    log.warning("a halt recorded while Redis was down (by %s) is now in force", recorded[1])
        if self._publisher.mirror_state(force=True):
            log.warning("Redis is reachable again; trading state and profile re-asserted")
            self._outages.redis_back()

    def _trip_stale_feed(self) -> None:
        engine = self._book.engine
        event = RiskEvent(
            timestamp=engine.last_timestamp or datetime.now(UTC),
            code=breakers.STALE_FEED,
            detail=f"no bar for {self._stale_feed.limit_seconds:.0f}s",
            halts_trading=True,
        )
        with self._book.lock:
            engine.outbox.risk_events.append(event)
            engine.set_state(TradingState.HALTED, actor="circuit_breaker:STALE_FEED", reason=event.detail)


class ModelWatch:
    """Hot-loads the regime model the retrain flow promoted (`current.json` in the models directory)."""

    def __init__(self, *, loader: ClassifierLoader | None, models_dir: Path) -> None:
        self._loader = loader
        self._models_dir = models_dir
        self._stamp: float | None = None

    def load(self) -> RegimeClassifier | None:
        """The promoted model, if any can be loaded; None keeps the one in use. The pointer it read is remembered,
        so `maybe_load` does not load the same model again: a swap makes the regime adopt the model's next label at
        once, which would make the regimes of a run depend on when housekeeping first looked."""
        if self._loader is None:
            return None
        try:
            self._stamp = (self._models_dir / "current.json").stat().st_mtime
        except FileNotFoundError:
            self._stamp = None
        try:
            return self._loader(self._models_dir)
        except Exception:
            log.exception("could not load the promoted regime model; keeping the current one")
            return None

    def maybe_load(self, book: Book) -> None:
        if self._loader is None:
            return
        try:
            stamp = (self._models_dir / "current.json").stat().st_mtime
        except FileNotFoundError:
            return
        if stamp == self._stamp:
            return
        self._stamp = stamp
        classifier = self.load()
        if classifier is not None:
            with book.lock:
                book.engine.set_classifier(classifier)
            log.info("regime model %s loaded; the engine now classifies with it", classifier.name)
