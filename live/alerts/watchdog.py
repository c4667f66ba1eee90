"""The dead-man's switch: a process of its own that halts trading when the engine's heartbeat stops.

It reads the engine's heartbeat (`tradeos:heartbeat:signal_engine`, written every 0.5 s while the engine thread
goes round its loop). Once it has seen the heartbeat fresh, it is armed; when the heartbeat is then older than
TRADEOS_WATCHDOG_TIMEOUT (or gone), it halts trading as an operator would (api/control.py's order): the kill
switch, the posted trading state and a halt command in one Redis transaction, then a `halt` control action with
actor `watchdog` in PostgreSQL, which the notifier alerts on. It fires once, and is armed again only by a fresh
heartbeat: an engine that comes back and goes silent again is halted again. It never resumes.

Already halted (the kill switch set): it only says so in its log. Redis unreachable: it says so loudly, at once
and every 10 s, and keeps trying; a heartbeat is judged only on time Redis was reachable, so an outage of Redis
itself is not taken for the engine's death. PostgreSQL unreachable: the halt is in force through the kill switch
and its record is written as soon as PostgreSQL answers.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import psycopg
import redis

from live.control import Halt, TradingStateRecord, kill_switch_is_set
from live.domain import ControlAction, TradingState
from live.stores import record
from live.stores.redis_store import RedisStore

log = logging.getLogger("tradeos.watchdog")

WATCHDOG_ACTOR = "watchdog"
ENGINE_HEARTBEAT = "signal_engine"
POLL_SECONDS = 0.25
ORPHAN_LIMIT_SECONDS = 120.0
_OUTAGE_LOG_SECONDS = 10.0


class DeadMansSwitch:
    """The policy, pure: armed by a fresh heartbeat, fires once when it goes stale, re-armed by a fresh one."""

    def __init__(self, *, timeout_seconds: float) -> None:
        self.timeout_seconds = timeout_seconds
        self.armed = False

    def observe(self, heartbeat_age: float | None, *, watched_for: float = float("inf")) -> bool:
        """True when trading must be halted now. `heartbeat_age`: seconds (None: no heartbeat at all);
        `watched_for`: seconds Redis has been reachable without a break. A heartbeat is stale only when it is older
        than the timeout and Redis was reachable all that time (the engine cannot beat into an unreachable Redis)."""
        if heartbeat_age is not None and heartbeat_age <= self.timeout_seconds:
            self.armed = True
            return False
        if self.armed and watched_for > self.timeout_seconds:
            self.armed = False
            return True
        return False


def halt_reason(*, age: float | None, timeout_seconds: float) -> str:
    silent = "no heartbeat" if age is None else f"no heartbeat for {age:.1f} s"
    return f"dead-man's switch: the engine is silent ({silent}; limit {timeout_seconds:g} s)"


class Watchdog:
    """The loop: one Redis read a poll, a halt when the switch fires, its record written until it is."""

    def __init__(
        self,
        *,
        redis_url: str,
        database_url: str,
        audit_key: bytes,
        timeout_seconds: float,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis_url = redis_url
        self._database_url = database_url
        self._audit_key = audit_key
        self._switch = DeadMansSwitch(timeout_seconds=timeout_seconds)
        self._wall_clock = wall_clock
        self._unrecorded: list[ControlAction] = []
        self._unrecorded_said_at = float("-inf")

    def run(self, stop: threading.Event, *, orphaned: Callable[[], bool] | None = None) -> None:
        """Until `stop`; outlives any outage. With `orphaned` (started by a `tradeos up`): once that has gone, goes
        on until it has halted trading for the engine's silence and recorded it (or has nothing to watch: not
        armed), at most ORPHAN_LIMIT_SECONDS, then exits: the next `tradeos up` starts its own."""
        store = RedisStore(self._redis_url)
        reachable_since: float | None = None
        down_said_at: float | None = None
        orphan_since: float | None = None
        log.info("watchdog: halting trading if the engine is silent for %g s", self._switch.timeout_seconds)
        try:
            while not stop.is_set():
                now = self._wall_clock()
                try:
                    age = store.heartbeat_ages([ENGINE_HEARTBEAT], now=now)[ENGINE_HEARTBEAT]
                    if reachable_since is None:
                        reachable_since = now
                        if down_said_at is not None:
                            log.warning("watchdog: Redis is reachable again; watching the heartbeat")
                        down_said_at = None
                    was_armed = self._switch.armed
                    if self._switch.observe(age, watched_for=now - reachable_since):
                        self._halt(store, age=age)
                    elif self._switch.armed and not was_armed:
                        log.info("watchdog: the engine's heartbeat is fresh; armed")
                except redis.RedisError as exc:
                    reachable_since = None
                    if down_said_at is None or now - down_said_at >= _OUTAGE_LOG_SECONDS:
                        log.error(
                            "watchdog: Redis is unreachable (%s): the dead-man's switch cannot see the engine's "
                            "heartbeat nor set the kill switch; retrying",
                            type(exc).__name__,
                        )
                        down_said_at = now
                self._record_pending()
                if orphaned is not None and orphaned():
                    orphan_since = now if orphan_since is None else orphan_since
                    done = not self._switch.armed and not self._unrecorded and reachable_since is not None
                    if done or now - orphan_since >= ORPHAN_LIMIT_SECONDS:
                        log.warning(
                            "watchdog: the `tradeos up` that started it is gone; its work done, exiting"
                        )
                        break
                stop.wait(POLL_SECONDS)
        finally:
            store.close()

    def _halt(self, store: RedisStore, *, age: float | None) -> None:
        if kill_switch_is_set(store.kill_switch()):
            posted = store.trading_state()
            log.warning(
                "watchdog: the engine is silent; trading is already halted (by %s)",
                posted.actor if posted else "the kill switch",
            )
            return
        now = datetime.now(UTC)
        reason = halt_reason(age=age, timeout_seconds=self._switch.timeout_seconds)
        halted = TradingStateRecord(state=TradingState.HALTED, since=now, reason=reason, actor=WATCHDOG_ACTOR)
        store.post_halt(halted, Halt(command_id=uuid.uuid4().hex, actor=WATCHDOG_ACTOR, reason=reason))
        log.error("watchdog: trading HALTED through the kill switch: %s", reason)
        self._unrecorded.append(
            ControlAction(
                timestamp=now, action="halt", actor=WATCHDOG_ACTOR, reason=reason, origin=WATCHDOG_ACTOR
            )
        )

    def _record_pending(self) -> None:
        """Writes the halts not yet on record; PostgreSQL down: tried again on the next poll."""
        if not self._unrecorded:
            return
        try:
            with psycopg.connect(self._database_url, autocommit=True, connect_timeout=3) as conn:
                for action in list(self._unrecorded):
                    record.audit.record_control_action(conn, action, key=self._audit_key)
                    self._unrecorded.remove(action)
        except psycopg.Error as exc:
            now = time.monotonic()
            if now - self._unrecorded_said_at >= _OUTAGE_LOG_SECONDS:
                self._unrecorded_said_at = now
                log.error(
                    "watchdog: the halt is in force but not yet recorded: PostgreSQL is unreachable (%s); retrying",
                    type(exc).__name__,
                )
