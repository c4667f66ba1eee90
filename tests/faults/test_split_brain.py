"""Split brain: two engines against the same stores. The standby takes the book only once the lease has expired, and
the dead engine's late writes are fenced off by its stale token."""

from __future__ import annotations

import signal
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from live.domain import Bar
from live.engine import Outbox
from live.stores.postgres import FencedError, PostgresStore
from tests.faults.conftest import PrivateRedis
from tests.faults.desk import ENGINE_ONLY, rows, scalar
from tests.support import Service, eventually

pytestmark = pytest.mark.faults

LEASE_TTL = 2.0
ARGS = [*ENGINE_ONLY, "--speed", "600", "--profile", "aggressive", "--seed", "1"]


def _lease(url: str) -> tuple[str, int, datetime] | None:
    try:
        found = rows(url, "SELECT holder, token, expires_at FROM engine_lease WHERE id = 1")
    except psycopg.errors.UndefinedTable:
        return None
    return found[0] if found else None


def _log_time(output: str, marker: str) -> datetime:
    """The wall time the service logged `marker` at (its log lines start with the local time, UTC here)."""
    line = next(line for line in output.splitlines() if marker in line)
    return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").replace(tzinfo=UTC)


def _late_write(url: str, token: int, when: datetime) -> None:
    store = PostgresStore(url)
    try:
        outbox = Outbox()
        outbox.bars.append(
            Bar(timestamp=when, symbol="LATE", open=1.0, high=1.0, low=1.0, close=1.0, volume=1.0, spread=0.0)
        )
        outbox.last_bar_ts = when
        store.write_outbox(
            outbox,
            token=token,
            high_water_mark=Decimal("1"),
            profile="aggressive",
            trading_state="active",
            positions={},
        )
    finally:
        store.close()


def test_the_standby_takes_over_only_after_the_lease_expires_and_the_dead_engines_writes_are_fenced(
    tmp_path: Path, private_database_url: str, private_redis: PrivateRedis
) -> None:
    url = private_database_url
    env = {
        "TRADEOS_DATABASE_URL": url,
        "TRADEOS_REDIS_URL": private_redis.url,
        "TRADEOS_LEASE_TTL_SECONDS": str(LEASE_TTL),
    }
    with Service(tmp_path / "first", ARGS, env) as first:
        eventually(lambda: "holds the book" in first.output, what="the first engine to take the lease")
        with Service(tmp_path / "second", ARGS, env) as second:
            eventually(lambda: "stands by" in second.output, what="the second engine to stand by")
            eventually(
                lambda: scalar(url, "SELECT count(*) FROM orders"), timeout=60, what="first engine trading"
            )
            first.kill()
            killed_at = datetime.now(UTC)
            holder, old_token, expires_at = _lease(url) or ("", 0, killed_at)
            assert holder
            assert holder in first.output
            eventually(
                lambda: "holds the book (fencing" in second.output, timeout=LEASE_TTL * 5, what="the takeover"
            )
            took_over = _log_time(second.output, "holds the book (fencing")
            print(
                f"takeover {(took_over - expires_at).total_seconds():.2f}s after the lease expired, "
                f"{(took_over - killed_at).total_seconds():.2f}s after the kill -9 (TTL {LEASE_TTL}s)"
            )
            assert took_over >= expires_at, "the standby took the book before the lease expired"
            new_holder, new_token, _ = _lease(url) or ("", 0, killed_at)
            assert new_token == old_token + 1
            assert new_holder != holder

            # The dead engine's late write, with its old token: refused, and nothing of it lands.
            last_bar = scalar(url, "SELECT max(timestamp) FROM bars")
            with pytest.raises(FencedError):
                _late_write(url, old_token, last_bar + timedelta(days=365))
            assert scalar(url, "SELECT count(*) FROM bars WHERE symbol = 'LATE'") == 0

            # The new holder continues the same book: from the first one's last committed bar, none twice.
            committed = scalar(url, "SELECT count(*) FROM bars")
            eventually(
                lambda: scalar(url, "SELECT count(*) FROM bars") > committed + 80, what="second trading"
            )
            count, distinct, first_ts, last_ts = rows(
                url,
                "SELECT count(*), count(DISTINCT (timestamp, symbol)), min(timestamp), max(timestamp) FROM bars",
            )[0]
            assert count == distinct == 8 * (int((last_ts - first_ts) / timedelta(minutes=1)) + 1)
            assert second.stop(signal.SIGTERM) == 0


def test_a_frozen_engine_that_wakes_up_after_losing_the_lease_is_fenced_and_stops(
    tmp_path: Path, private_database_url: str, private_redis: PrivateRedis
) -> None:
    url = private_database_url
    env = {
        "TRADEOS_DATABASE_URL": url,
        "TRADEOS_REDIS_URL": private_redis.url,
        "TRADEOS_LEASE_TTL_SECONDS": str(LEASE_TTL),
    }
    with Service(tmp_path / "first", ARGS, env) as first:
        eventually(lambda: "holds the book" in first.output, what="the first engine to take the lease")
        with Service(tmp_path / "second", ARGS, env) as second:
            eventually(lambda: "stands by" in second.output, what="the second engine to stand by")
            eventually(
                lambda: scalar(url, "SELECT count(*) FROM orders"), timeout=60, what="first engine trading"
            )
            first.process.send_signal(signal.SIGSTOP)  # a GC pause, a VM migration: alive but silent
            try:
                eventually(
                    lambda: "holds the book (fencing" in second.output, timeout=LEASE_TTL * 5, what="takeover"
                )
            finally:
                first.process.send_signal(signal.SIGCONT)
            assert first.wait(30) == 0
            assert "lost the lease" in first.output
            eventually(lambda: (_lease(url) or ("",))[0] in second.output, what="the lease with the second")
            count, distinct = rows(url, "SELECT count(*), count(DISTINCT (timestamp, symbol)) FROM bars")[0]
            assert count == distinct
