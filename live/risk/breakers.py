"""Circuit breakers evaluated on the marked book; each trip is a risk event that halts trading."""

from __future__ import annotations

from collections import deque
from datetime import datetime, timedelta
from decimal import Decimal

from live.profiles import Profile

DAILY_LOSS_LIMIT = "DAILY_LOSS_LIMIT"
DRAWDOWN_HALT = "DRAWDOWN_HALT"
REJECT_STORM = "REJECT_STORM"
STALE_FEED = "STALE_FEED"
STRATEGY_FAULT = "STRATEGY_FAULT"  # the strategy broke its contract (live/engine.py): trading halts
# The stored custom profile the engine trades under no longer matches its hash (live/service/control.py).
PROFILE_HASH_MISMATCH = "PROFILE_HASH_MISMATCH"
POSTGRES_UNREACHABLE = "POSTGRES_UNREACHABLE"
REDIS_UNREACHABLE = "REDIS_UNREACHABLE"
AUDIT_CHAIN_BROKEN = "AUDIT_CHAIN_BROKEN"  # the audit ledger does not verify (live/service/ledger_watch.py)


def check_book(
    *, value: Decimal, start_of_day_value: Decimal, drawdown: Decimal, profile: Profile
) -> tuple[str, str] | None:
    """(code, detail) of the breaker the book trips, or None. Drawdown halts at twice the profile's limit."""
    if start_of_day_value > 0:
        day_return = value / start_of_day_value - 1
        if day_return <= -profile.daily_loss_limit:
            return DAILY_LOSS_LIMIT, (
                f"day P&L {day_return:.2%} breaches the daily loss limit {profile.daily_loss_limit:.2%}"
            )
    if drawdown >= 2 * profile.drawdown_limit:
        return DRAWDOWN_HALT, f"drawdown {drawdown:.2%} reached twice the limit {profile.drawdown_limit:.2%}"
    return None


class RejectStorm:
    """Counts rejections in a sliding engine-clock minute."""

    def __init__(self) -> None:
        self._times: deque[datetime] = deque()

    def record(self, timestamp: datetime) -> None:
        self._times.append(timestamp)

    def count(self, now: datetime) -> int:
        horizon = now - timedelta(minutes=1)
        while self._times and self._times[0] <= horizon:
            self._times.popleft()
        return len(self._times)

    def clear(self) -> None:
        self._times.clear()
