"""What the service knows to be unreachable, and the risk events that say so, until the next commit records them.

The order gate reads these flags: while Redis is down (the kill switch cannot be read) or PostgreSQL is (nothing
can be recorded), no order is submitted. The flags are set by whichever thread first meets the outage; Redis is
declared back only by the housekeeping thread, once it has reconciled the trading state.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from live.domain import RiskEvent
from live.risk import breakers

log = logging.getLogger("tradeos.engine")


class Outages:
    def __init__(self, *, clock: Callable[[], datetime | None]) -> None:
        self._clock = clock  # the engine's: an outage is stamped with the bar it interrupted
        self._lock = threading.Lock()
        self._events: list[RiskEvent] = []
        self.redis_down = False
        self.postgres_down = False

    def redis_lost(self) -> None:
        """Redis did not answer: the kill switch cannot be checked. Said once per outage."""
        with self._lock:
            if self.redis_down:
                return
            self.redis_down = True
            self._events.append(
                RiskEvent(
                    timestamp=self._clock() or datetime.now(UTC),
                    code=breakers.REDIS_UNREACHABLE,
                    detail="Redis unreachable: kill switch cannot be checked; orders are refused",
                )
            )
        log.error("Redis unreachable: the kill switch cannot be checked, no order is submitted")

    def redis_back(self) -> None:
        self.redis_down = False

    def waiting(self) -> int:
        """Outage events met and not yet taken by the recorder."""
        return len(self._events)

    def take_events(self) -> list[RiskEvent]:
        """The outage events not yet handed to the recorder."""
        with self._lock:
            events, self._events = self._events, []
        return events
