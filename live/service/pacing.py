"""Feed pacing: bars are replayed at `speed` simulated seconds per wall-clock second (0: as fast as possible), and
the engine thread's pulse, which the heartbeats and the stale-feed breaker read."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime

_WAIT_SLICE_SECONDS = (
    0.1  # while waiting for a bar's time: how often to check for a stop and commit what is pending
)
_ALIVE_SECONDS = 2.0  # the engine thread counts as alive if it went round its loop this recently


class Pacer:
    """Holds each bar back until its time at `speed`, measured from the first bar paced."""

    def __init__(self, *, speed: float, pulse: Pulse) -> None:
        self.speed = speed
        self._pulse = pulse
        self._start: tuple[float, datetime] | None = None  # (wall, bar time) of the first bar paced

    def wait_for(self, timestamp: datetime, *, stop: threading.Event, idle: Callable[[], None]) -> bool:
        """Waits until the bar stamped `timestamp` is due, calling `idle` meanwhile; False if stopped."""
        if self.speed <= 0:
            return not stop.is_set()
        if self._start is None:
            self._start = (time.monotonic(), timestamp)
        wall_start, sim_start = self._start
        due = wall_start + (timestamp - sim_start).total_seconds() / self.speed
        while not stop.is_set():
            self._pulse.beat()
            remaining = due - time.monotonic()
            if remaining <= 0:
                return True
            idle()
            stop.wait(min(remaining, _WAIT_SLICE_SECONDS))
        return False


class Pulse:
    """When the engine thread last went round its loop, and since when it has been waiting for the feed."""

    def __init__(self) -> None:
        self.last_beat = time.monotonic()
        self.waiting_for_feed_since: float | None = None

    def beat(self) -> None:
        self.last_beat = time.monotonic()

    def alive(self) -> bool:
        return time.monotonic() - self.last_beat < _ALIVE_SECONDS


class StaleFeedWatch:
    """A feed that delivers no bar for five bars' time at `speed` plus the configured grace is stale: said once.
    A live feed (`live`) runs on the wall clock whatever `speed` says: stale after `grace_seconds` without a bar."""

    def __init__(
        self, *, pulse: Pulse, bar_seconds: float, speed: float, grace_seconds: float, live: bool = False
    ) -> None:
        self._pulse = pulse
        self.limit_seconds: float | None
        if live:
            self.limit_seconds = grace_seconds
        else:
            self.limit_seconds = bar_seconds / speed * 5 + grace_seconds if speed > 0 else None
        self._reported = False

    def newly_stale(self) -> bool:
        """True the first time the feed has been silent for longer than the limit (not paced: never)."""
        since = self._pulse.waiting_for_feed_since
        if self._reported or since is None or self.limit_seconds is None:
            return False
        if time.monotonic() - since > self.limit_seconds:
            self._reported = True
            return True
        return False
