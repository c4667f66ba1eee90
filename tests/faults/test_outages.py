"""Outages: the private Redis, then the private PostgreSQL, stopped while the engine trades at full speed.

Fail closed (no order reaches the broker while a store is down), a risk_event recorded, recovery when it is back,
nothing lost, and a halted engine stays halted through both."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from live.stores import redis_keys as keys
from tests.faults.conftest import PrivatePostgres, PrivateRedis
from tests.faults.desk import ENGINE_ONLY, ControlDesk, fills_in_order, recompute_book, rows, scalar
from tests.support import Service, eventually

pytestmark = pytest.mark.faults

FULL_SPEED = [*ENGINE_ONLY, "--speed", "0", "--profile", "aggressive", "--seed", "1"]
SYMBOLS = 8
# Engine clock the engine must cover while Redis is down. Kept short: positions cannot be closed during the outage,
# and a long one can let the daily-loss breaker halt trading, after which no order is expected to flow.
OUTAGE_BARS = timedelta(minutes=60)


def _env(database_url: str, redis_url: str) -> dict[str, str]:
    return {
        "TRADEOS_DATABASE_URL": database_url,
        "TRADEOS_REDIS_URL": redis_url,
        "TRADEOS_LEASE_TTL_SECONDS": "2",
    }


def _submitted(url: str) -> int:
    try:
        return int(scalar(url, "SELECT count(*) FROM orders WHERE status <> 'rejected'") or 0)
    except psycopg.errors.UndefinedTable:
        return 0


def _clock(url: str) -> datetime | None:
    try:
        return scalar(url, "SELECT last_bar_ts FROM engine_state WHERE id = 1")  # type: ignore[no-any-return]
    except psycopg.errors.UndefinedTable:
        return None


def _heartbeat_age(server: PrivateRedis, service: str) -> float:
    raw = server.client().get(keys.heartbeat_key(service))
    return time.time() - float(raw) if raw else float("inf")


def _after_outage(url: str, server: PrivateRedis, since: datetime) -> str:
    """What the engine did after `since` (engine clock): enough to tell which gate or risk check refused."""
    reasons = rows(
        url,
        "SELECT status, coalesce(reason, ''), count(*), min(timestamp), max(timestamp) FROM orders"
        " WHERE timestamp > %s GROUP BY 1, 2 ORDER BY 3 DESC",
        (since,),
    )
    events = rows(
        url,
        "SELECT code, count(*), min(timestamp), max(timestamp) FROM risk_events WHERE timestamp >= %s GROUP BY 1",
        (since,),
    )
    regimes = rows(
        url, "SELECT timestamp, current FROM regime_changes WHERE timestamp >= %s ORDER BY 1", (since,)
    )
    client = server.client()
    return (
        f"engine clock {_clock(url)}; orders since {since}: {reasons}; risk events: {events}; "
        f"regime changes: {regimes[-10:]}; trading state in Redis: {client.get(keys.TRADING_STATE)!r}; "
        f"kill switch: {client.get(keys.KILL_SWITCH)!r}"
    )


def _assert_nothing_lost(url: str) -> None:
    """Every bar from the first to the last, each symbol once; one fill per order; the book adds up."""
    first, last, count = rows(url, "SELECT min(timestamp), max(timestamp), count(*) FROM bars")[0]
    minutes = int((last - first) / timedelta(minutes=1)) + 1
    assert count == minutes * SYMBOLS, "bars missing or repeated"
    assert scalar(url, "SELECT count(DISTINCT (timestamp, symbol)) FROM bars") == count
    assert not rows(url, "SELECT order_id FROM fills GROUP BY order_id HAVING count(*) > 1")
    book = recompute_book(fills_in_order(url))
    for symbol, quantity in rows(url, "SELECT symbol, quantity FROM positions"):
        assert book.positions[symbol][0] == quantity, symbol


def test_with_redis_down_no_order_is_submitted_and_trading_recovers_when_it_is_back(
    tmp_path: Path, private_database_url: str, private_redis: PrivateRedis
) -> None:
    url = private_database_url
    with Service(tmp_path / "home", FULL_SPEED, _env(url, private_redis.url)) as service:
        eventually(lambda: _submitted(url) > 0, timeout=60, what="orders to flow")
        stopped_at = datetime.now(UTC)
        private_redis.stop()
        detected = eventually(
            lambda: rows(
                url, "SELECT timestamp, recorded_at FROM risk_events WHERE code = 'REDIS_UNREACHABLE'"
            ),
            timeout=10,
            what="the REDIS_UNREACHABLE risk event",
        )[0]
        # Engine clock when the engine found Redis gone: that step's gate may have read Redis just before it died.
        outage_start = detected[0]
        # The engine keeps consuming bars (and recording them) but submits nothing.
        down_until = eventually(
            lambda: (clock := _clock(url)) is not None and clock > outage_start + OUTAGE_BARS and clock,
            timeout=60,
            what="bars processed during the outage",
        )
        leaked = rows(
            url,
            "SELECT id, timestamp, status FROM orders WHERE timestamp > %s AND timestamp <= %s"
            " AND status <> 'rejected'",
            (outage_start, down_until),
        )
        assert leaked == [], "orders submitted while Redis was down"
        refused = scalar(
            url,
            "SELECT count(*) FROM orders WHERE reason = 'KILL_SWITCH_UNREACHABLE' AND timestamp <= %s",
            (down_until,),
        )
        assert refused > 0, "no order was even attempted during the outage: the test proved nothing"

        back_at = datetime.now(UTC)
        private_redis.start()
        eventually(
            lambda: _heartbeat_age(private_redis, "execution") < 2, timeout=20, what="heartbeats again"
        )
        desk = ControlDesk(redis_url=private_redis.url, database_url=url)
        # The heartbeats come from another thread than the commands: an operator's command needs the latter.
        eventually(desk.engine_listens, timeout=10, what="the engine to listen for commands again")
        breaker_resumes: list[tuple[str | None, str | None]] = []

        def trading_again() -> int:
            """Orders flow again. At full speed the outage lasts engine-hours in which positions cannot be
            managed, so a circuit breaker may rightly halt trading (seen: DAILY_LOSS_LIMIT): the operator then
            resumes, as one would, and orders must flow after that."""
            state = json.loads(private_redis.client().get(keys.TRADING_STATE) or b"{}")
            halt = (state.get("actor"), state.get("since"))
            if state.get("state") == "halted" and halt not in breaker_resumes:
                assert str(halt[0]).startswith("circuit_breaker:"), f"halted by {state}"
                assert len(breaker_resumes) < 3, f"breakers halt again and again: {breaker_resumes}"
                breaker_resumes.append(halt)
                desk.resume("resumed after a breaker tripped by the Redis outage")
            return int(
                scalar(
                    url,
                    "SELECT count(*) FROM orders WHERE timestamp > %s AND status <> 'rejected'",
                    (down_until,),
                )
            )

        try:
            eventually(trading_again, timeout=30, interval=0.2, what="orders to flow again")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{_after_outage(url, private_redis, outage_start)}") from None
        finally:
            desk.close()
        first_order_after = scalar(
            url,
            "SELECT min(updated_at) FROM orders WHERE timestamp > %s AND status <> 'rejected'",
            (down_until,),
        )
        print(
            f"Redis outage: risk_event recorded {(detected[1] - stopped_at).total_seconds():.2f}s after the stop; "
            f"first order recorded {(first_order_after - back_at).total_seconds():.2f}s after Redis was back"
            f"{f'; resumed after {[actor for actor, _ in breaker_resumes]}' if breaker_resumes else ''}"
        )
        assert service.process.poll() is None
    _assert_nothing_lost(url)


def test_with_postgres_down_no_order_is_submitted_nothing_is_lost_and_trading_recovers(
    tmp_path: Path, private_database_url: str, private_postgres: PrivatePostgres, private_redis: PrivateRedis
) -> None:
    url = private_database_url
    with Service(tmp_path / "home", FULL_SPEED, _env(url, private_redis.url)) as service:
        eventually(lambda: _submitted(url) > 0, timeout=60, what="orders to flow")
        private_postgres.stop()
        down_at = time.monotonic()
        # Fail closed: the engine stops stepping (no bar, so no order) — both heartbeats go stale — rather than
        # trading on without its system of record. Outlasting the lease TTL (2 s) on purpose.
        eventually(lambda: _heartbeat_age(private_redis, "execution") > 2, timeout=20, what="execution stale")
        eventually(
            lambda: _heartbeat_age(private_redis, "signal_engine") > 2, timeout=20, what="engine stale"
        )
        frozen = private_redis.client().get(keys.PORTFOLIO)
        eventually(lambda: time.monotonic() - down_at > 4, timeout=10, what="an outage longer than the lease")
        assert private_redis.client().get(keys.PORTFOLIO) == frozen, "the engine moved on without PostgreSQL"

        private_postgres.start()
        back_at = datetime.now(UTC)
        event = eventually(
            lambda: rows(
                url, "SELECT timestamp, recorded_at FROM risk_events WHERE code = 'POSTGRES_UNREACHABLE'"
            ),
            timeout=30,
            what="the POSTGRES_UNREACHABLE risk event",
        )[0]
        outage_clock = event[0]
        eventually(
            lambda: scalar(
                url,
                "SELECT count(*) FROM orders WHERE timestamp > %s AND status <> 'rejected'",
                (outage_clock,),
            ),
            timeout=30,
            what="orders to flow again",
        )
        recovered = scalar(
            url,
            "SELECT min(updated_at) FROM orders WHERE timestamp > %s AND status <> 'rejected'",
            (outage_clock,),
        )
        print(
            f"PostgreSQL outage: first order recorded {(recovered - back_at).total_seconds():.2f}s after it was back"
        )
        assert _heartbeat_age(private_redis, "execution") < 2
        assert service.process.poll() is None, "the engine gave up during the outage"
        assert "lost the lease" not in service.output
    _assert_nothing_lost(url)


def test_a_halted_engine_stays_halted_through_a_redis_and_a_postgres_outage(
    tmp_path: Path, private_database_url: str, private_postgres: PrivatePostgres, private_redis: PrivateRedis
) -> None:
    url = private_database_url
    desk = ControlDesk(redis_url=private_redis.url, database_url=url)
    try:
        with Service(tmp_path / "home", FULL_SPEED, _env(url, private_redis.url)) as service:
            eventually(lambda: _submitted(url) > 0, timeout=60, what="orders to flow")
            desk.halt(reason="before the outages")
            eventually(lambda: _heartbeat_age(private_redis, "execution") < 1, what="a fresh heartbeat")
            clock = eventually(lambda: _clock(url), what="a committed clock")
            eventually(lambda: (_clock(url) or clock) > clock + timedelta(minutes=60), what="halted progress")
            submitted = _submitted(url)

            private_redis.stop()
            eventually(
                lambda: scalar(url, "SELECT count(*) FROM risk_events WHERE code = 'REDIS_UNREACHABLE'"),
                timeout=10,
                what="the REDIS_UNREACHABLE risk event",
            )
            private_redis.start()
            desk.close()
            desk = ControlDesk(redis_url=private_redis.url, database_url=url)
            eventually(
                lambda: desk.redis.get(keys.KILL_SWITCH) == b"1", timeout=20, what="the halt re-asserted"
            )

            private_postgres.stop()
            eventually(
                lambda: _heartbeat_age(private_redis, "execution") > 2, timeout=20, what="execution stale"
            )
            private_postgres.start()
            eventually(
                lambda: scalar(url, "SELECT count(*) FROM risk_events WHERE code = 'POSTGRES_UNREACHABLE'"),
                timeout=30,
                what="the POSTGRES_UNREACHABLE risk event",
            )
            clock = eventually(lambda: _clock(url), what="a committed clock")
            eventually(
                lambda: (_clock(url) or clock) > clock + timedelta(minutes=300), what="progress after both"
            )
            assert json.loads(desk.redis.get(keys.TRADING_STATE))["state"] == "halted"
            assert desk.redis.get(keys.KILL_SWITCH) == b"1"
            assert _submitted(url) == submitted, "an order went through a halted engine after an outage"
            assert service.process.poll() is None
    finally:
        desk.close()
    _assert_nothing_lost(url)
