"""Halts that hold (README, the halt guarantees), inflicted while the engine trades as fast as it can.

The engine's clock is the bars' timestamps; a halt lands between two engine steps. From outside, the step the halt
landed on is bounded above by the second portfolio snapshot written after the acknowledgement (a snapshot is taken
under the engine lock after a commit, and the engine thread writes them one after the other), so "no order after the
halt" is checked as: no order submitted on any bar after that bound until the resume."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from live.stores import redis_keys as keys
from tests.faults.conftest import PrivateRedis
from tests.faults.desk import ENGINE_ONLY, ControlDesk, rows, scalar
from tests.support import Service, eventually

pytestmark = pytest.mark.faults

# Seed 1 trades a lot and trips no circuit breaker for days of sim time (a breaker's halt would mask ours).
FULL_SPEED = [*ENGINE_ONLY, "--speed", "0", "--profile", "aggressive", "--seed", "1"]
HALT_CYCLES = 8
HALTED_BARS = timedelta(minutes=120)  # bars (per symbol) the engine must process while halted in each cycle


def _env(database_url: str, redis_url: str, **extra: str) -> dict[str, str]:
    return {"TRADEOS_DATABASE_URL": database_url, "TRADEOS_REDIS_URL": redis_url, **extra}


def _submitted(url: str) -> int:
    """Orders that reached the broker (0 before the engine has created its tables)."""
    try:
        return int(scalar(url, "SELECT count(*) FROM orders WHERE status <> 'rejected'") or 0)
    except psycopg.errors.UndefinedTable:
        return 0


def _wait_for_trading(desk: ControlDesk, url: str) -> None:
    """Until new orders reach the broker; a circuit breaker that tripped meanwhile is resumed, as an operator would."""
    before = _submitted(url)

    def trading() -> bool:
        raw = desk.redis.get(keys.TRADING_STATE)
        if raw and json.loads(raw)["actor"].startswith("circuit_breaker:"):
            desk.resume(reason="breaker reviewed")
        return _submitted(url) > before

    eventually(trading, timeout=60, what="orders to flow")


def _committed_clock(url: str) -> datetime | None:
    return scalar(url, "SELECT last_bar_ts FROM engine_state WHERE id = 1")  # type: ignore[no-any-return]


def _parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def _engine_clock_bound_after(desk: ControlDesk) -> datetime:
    """An engine-clock time no earlier than the step the engine was at when this is called: the timestamp of the
    second portfolio snapshot that is written after now (see the module docstring)."""
    seen = [desk.redis.get(keys.PORTFOLIO)]
    for _ in range(2):
        seen.append(
            eventually(
                lambda: (value := desk.redis.get(keys.PORTFOLIO)) != seen[-1] and value,
                timeout=30,
                interval=0.005,
                what="a new portfolio snapshot",
            )
        )
    return _parse(json.loads(seen[-1])["timestamp"])


def _wait_clock_past(url: str, moment: datetime) -> datetime:
    return eventually(  # type: ignore[no-any-return]
        lambda: (clock := _committed_clock(url)) is not None and clock > moment and clock,
        timeout=60,
        what=f"the engine to commit bars past {moment}",
    )


def _orders_between(url: str, after: datetime, until: datetime) -> list[tuple[Any, ...]]:
    return rows(
        url,
        "SELECT id, timestamp, status, reason FROM orders WHERE timestamp > %s AND timestamp <= %s"
        " AND status <> 'rejected' ORDER BY timestamp",
        (after, until),
    )


def _late_fills(url: str, after: datetime, until: datetime) -> list[tuple[Any, ...]]:
    """Fills booked on bars after `after` whose order was decided after `after` too."""
    return rows(
        url,
        "SELECT f.id, f.timestamp, o.timestamp FROM fills f JOIN orders o ON o.id = f.order_id"
        " WHERE f.timestamp > %s AND f.timestamp <= %s AND o.timestamp > %s",
        (after, until, after),
    )


def test_halting_many_times_under_full_load_never_lets_an_order_through_after_the_acknowledgement(
    tmp_path: Path, private_database_url: str, private_redis: PrivateRedis
) -> None:
    url = private_database_url
    desk = ControlDesk(redis_url=private_redis.url, database_url=url)
    ack_ms: list[float] = []
    bound_bars: list[float] = []
    try:
        with Service(tmp_path / "home", FULL_SPEED, _env(url, private_redis.url)) as service:
            for cycle in range(HALT_CYCLES):
                _wait_for_trading(desk, url)
                committed_before = _committed_clock(url)
                assert committed_before is not None
                sent = time.monotonic()
                ack = desk.halt(reason=f"cycle {cycle}")
                ack_ms.append((time.monotonic() - sent) * 1000)
                assert ack["state"] == "halted"
                bound = _engine_clock_bound_after(desk)
                bound_bars.append((bound - committed_before) / timedelta(minutes=1))
                halted_until = _wait_clock_past(url, bound + HALTED_BARS)
                assert desk.trading_state() == "halted"
                assert _orders_between(url, bound, halted_until) == [], f"cycle {cycle}: orders while halted"
                assert _late_fills(url, bound, halted_until) == [], (
                    f"cycle {cycle}: fills of post-halt orders"
                )
                assert desk.resume(reason=f"cycle {cycle} over")["state"] == "active"
            assert service.process.poll() is None, service.output[-2000:]
    finally:
        desk.close()
    print(
        f"halt acknowledged in {min(ack_ms):.1f}..{max(ack_ms):.1f} ms; halt step bounded within "
        f"{min(bound_bars):.0f}..{max(bound_bars):.0f} bars of the last commit before it"
    )


def test_the_kill_switch_set_by_hand_halts_within_one_second_by_the_record_and_stays_until_resumed(
    tmp_path: Path, private_database_url: str, private_redis: PrivateRedis
) -> None:
    url = private_database_url
    desk = ControlDesk(redis_url=private_redis.url, database_url=url)
    try:
        with Service(tmp_path / "home", FULL_SPEED, _env(url, private_redis.url)):
            _wait_for_trading(desk, url)
            set_at = datetime.now(UTC)
            desk.redis.set(keys.KILL_SWITCH, "1")
            eventually(
                lambda: desk.trading_state() == "halted", timeout=10, what="the engine to report halted"
            )
            bound = _engine_clock_bound_after(desk)
            # When the halt took effect, by the record: the engine's own halt action (wall clock, when the control
            # thread's poll saw the key), or the insertion of the first order the gate refused for it.
            recorded = [
                ts
                for (ts,) in rows(
                    url,
                    "SELECT timestamp FROM control_actions WHERE actor = 'kill_switch' AND action = 'halt'",
                )
                if ts >= set_at - timedelta(seconds=5)
            ] + [
                ts
                for (ts,) in rows(url, "SELECT updated_at FROM orders WHERE reason = 'TRADING_HALTED'")
                if ts >= set_at - timedelta(seconds=5)
            ]
            assert recorded, (
                "the kill-switch halt left no record",
                set_at,
                rows(url, "SELECT * FROM control_actions"),
                rows(url, "SELECT id, updated_at FROM orders WHERE reason = 'TRADING_HALTED'"),
            )
            latency = min(recorded) - set_at
            print(f"kill switch: halt in force {latency.total_seconds() * 1000:.0f} ms after the key was set")
            assert latency < timedelta(seconds=1)

            desk.redis.delete(keys.KILL_SWITCH)
            halted_until = _wait_clock_past(url, bound + HALTED_BARS)
            assert desk.trading_state() == "halted", "deleting the key must not resume"
            assert _orders_between(url, bound, halted_until) == []
            desk.redis.set(keys.KILL_SWITCH, "0")
            halted_until = _wait_clock_past(url, halted_until + HALTED_BARS)
            assert desk.trading_state() == "halted", "setting the key to 0 must not resume"
            assert _orders_between(url, bound, halted_until) == []

            before = _submitted(url)
            desk.resume()
            eventually(
                lambda: _submitted(url) > before, timeout=60, what="trading to resume after the resume"
            )
    finally:
        desk.close()


def test_a_halt_survives_a_kill_9_and_an_orderly_restart_of_the_service(
    tmp_path: Path, private_database_url: str, private_redis: PrivateRedis
) -> None:
    url = private_database_url
    env = _env(url, private_redis.url, TRADEOS_LEASE_TTL_SECONDS="1")
    desk = ControlDesk(redis_url=private_redis.url, database_url=url)
    try:
        with Service(tmp_path / "home", FULL_SPEED, env) as service:
            _wait_for_trading(desk, url)
            desk.halt(reason="before a restart")
            bound = _engine_clock_bound_after(desk)
            service.kill()
        submitted = _submitted(url)
        # Orders decided before the halt may still be pending; none may be added after it.
        for how in ("kill -9", "SIGTERM"):
            with Service(tmp_path / "home", FULL_SPEED, env) as service:
                eventually(
                    lambda service=service: "recovered:" in service.output, timeout=30, what="recovery"
                )
                assert "state halted" in service.output.split("recovered:", 1)[1].splitlines()[0]
                halted_until = _wait_clock_past(url, (_committed_clock(url) or bound) + HALTED_BARS)
                assert desk.trading_state() == "halted", how
                assert desk.redis.get(keys.KILL_SWITCH) == b"1", how
                assert _submitted(url) == submitted, f"orders submitted after a restart ({how}) while halted"
                assert _orders_between(url, bound, halted_until) == []
                if how == "SIGTERM":
                    assert service.stop() == 0
                else:
                    service.kill()
        # Redis emptied between restarts (FLUSHALL): the halt comes back from PostgreSQL.
        desk.redis.flushall()
        with Service(tmp_path / "home", FULL_SPEED, env):
            eventually(
                lambda: desk.redis.get(keys.KILL_SWITCH) == b"1", timeout=30, what="the halt re-asserted"
            )
            _wait_clock_past(url, (_committed_clock(url) or bound) + HALTED_BARS)
            assert _submitted(url) == submitted
    finally:
        desk.close()


def test_a_halt_survives_a_redis_restart_that_loses_everything_while_the_engine_runs(
    tmp_path: Path, private_database_url: str, private_redis: PrivateRedis
) -> None:
    url = private_database_url
    desk = ControlDesk(redis_url=private_redis.url, database_url=url)
    try:
        with Service(tmp_path / "home", FULL_SPEED, _env(url, private_redis.url)) as service:
            _wait_for_trading(desk, url)
            desk.halt(reason="before Redis dies")
            _engine_clock_bound_after(desk)
            submitted = _submitted(url)
            for _ in range(2):
                private_redis.stop()
                private_redis.start()
                assert private_redis.client().get(keys.KILL_SWITCH) is None  # it really came back empty
                eventually(
                    lambda: desk.redis.get(keys.KILL_SWITCH) == b"1",
                    timeout=30,
                    what="the engine to re-assert",
                )
                assert desk.trading_state() == "halted"
                _wait_clock_past(url, (_committed_clock(url) or datetime.now(UTC)) + HALTED_BARS)
                assert _submitted(url) == submitted, "an order went through after Redis came back"
            assert service.process.poll() is None
    finally:
        desk.close()
