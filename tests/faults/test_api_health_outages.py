"""The operator API of a real `tradeos up` while its private Redis, then its private PostgreSQL, are down
(docs/api.md): `/healthz` is 503 and names the store that is down, and is healthy again once it is back; a halt
asked for while Redis is down still holds once Redis is back; the engine survives Redis coming back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from live.stores import redis_keys as keys
from tests.faults.api_support import FULL_SPEED, Desk, start_desk
from tests.faults.conftest import PrivatePostgres, PrivateRedis
from tests.faults.desk import scalar, wait_feed_done
from tests.support import eventually

pytestmark = pytest.mark.faults

ENV = {"TRADEOS_LEASE_TTL_SECONDS": "2"}
# The feed runs to its end first (the engine stays up, heartbeats fresh, idle): what is tested is the API's view.
# test_the_engine_survives_redis_restarts_while_trading_at_full_speed covers an engine that trades.
IDLE = ["--speed", "0", "--sim-days", "0.25", "--seed", "1", "--profile", "aggressive"]


def _health_when(desk: Desk, status_code: int, **services: str) -> dict[str, Any]:
    def matches() -> dict[str, Any] | None:
        if desk.service.process.poll() is not None:
            return {"died": desk.service.output[-3000:]}
        response = desk.health()
        body: dict[str, Any] = response.json()
        ok = response.status_code == status_code and all(
            body["services"][k] == v for k, v in services.items()
        )
        return body if ok else None

    body = eventually(matches, timeout=60, interval=0.1, what=f"/healthz {status_code} with {services}")
    assert "died" not in body, f"the service stopped: {body.get('died')}"
    return body


def test_healthz_is_503_naming_redis_then_postgres_while_each_is_down_and_healthy_once_back(
    tmp_path: Path, private_database_url: str, private_postgres: PrivatePostgres, private_redis: PrivateRedis
) -> None:
    desk = start_desk(
        tmp_path / "home",
        database_url=private_database_url,
        redis_url=private_redis.url,
        args=IDLE,
        env=ENV,
    )
    with desk.service:
        wait_feed_done(desk.service)
        _health_when(desk, 200)

        private_redis.stop()
        body = _health_when(desk, 503, redis="unhealthy")
        assert body["status"] == "unhealthy"
        assert body["services"]["postgres"] == "healthy"
        private_redis.start()
        assert _health_when(desk, 200)["status"] == "healthy"

        private_postgres.stop()
        body = _health_when(desk, 503, postgres="unhealthy")
        assert body["status"] == "unhealthy"
        assert body["services"]["redis"] == "healthy"
        assert desk.get(f"{desk.api_url}/trades").status_code == 503  # documented, with Retry-After
        private_postgres.start()
        assert _health_when(desk, 200)["status"] == "healthy"
        assert desk.get(f"{desk.api_url}/trades").status_code == 200
        assert desk.service.process.poll() is None


def test_a_halt_asked_for_while_redis_is_down_still_holds_once_redis_is_back(
    tmp_path: Path, private_database_url: str, private_redis: PrivateRedis
) -> None:
    url = private_database_url
    desk = start_desk(tmp_path / "home", database_url=url, redis_url=private_redis.url, args=IDLE, env=ENV)
    with desk.service:
        _halt_with_redis_down(desk, private_redis, reason="Redis is down")
        assert scalar(url, "SELECT action FROM control_actions ORDER BY id DESC LIMIT 1") == "halt"
        private_redis.start()
        _health_when(desk, 200)
        eventually(
            lambda: private_redis.client().get(keys.TRADING_STATE), timeout=30, what="the engine to re-assert"
        )
        status = desk.get(f"{desk.api_url}/trading/status").json()
        assert status["status"] == "halted", status
        assert private_redis.client().get(keys.KILL_SWITCH) == b"1"


def test_a_halt_answered_while_redis_is_down_is_on_record_even_if_postgresql_crashes_right_after(
    tmp_path: Path, private_database_url: str, private_postgres: PrivatePostgres, private_redis: PrivateRedis
) -> None:
    """With Redis down the record is all that holds the halt: its commit must be durable when the API answers,
    not a moment later (a halt made while the kill switch is set may commit without waiting for the flush)."""
    url = private_database_url
    # The WAL writer flushes an unflushed commit within 3 x wal_writer_delay (and at once on an idle server): at
    # its longest, a commit that did not wait for the flush is still only in PostgreSQL's memory at the crash.
    _set_wal_writer_delay(private_postgres, "10s")
    desk = start_desk(tmp_path / "home", database_url=url, redis_url=private_redis.url, args=IDLE, env=ENV)
    try:
        _halt_then_crash(desk, url, private_postgres, private_redis)
    finally:
        private_postgres.ensure_running()
        _set_wal_writer_delay(private_postgres, None)


def _halt_with_redis_down(desk: Desk, private_redis: PrivateRedis, *, reason: str) -> None:
    """Stops Redis under a running service and halts through the API: documented, the halt is then stored in
    PostgreSQL and the API answers 503 saying so."""
    wait_feed_done(desk.service)
    _health_when(desk, 200)
    private_redis.stop()
    _health_when(desk, 503, redis="unhealthy")
    response = httpx.post(
        f"{desk.api_url}/trading/halt", json={"reason": reason}, headers=desk.auth, timeout=30
    )
    assert response.status_code == 503, response.text
    assert "recorded in PostgreSQL" in response.text


def _set_wal_writer_delay(cluster: PrivatePostgres, value: str | None) -> None:
    with psycopg.connect(cluster.admin_url, autocommit=True) as conn:
        if value is None:
            conn.execute("ALTER SYSTEM RESET wal_writer_delay")
        else:
            conn.execute(f"ALTER SYSTEM SET wal_writer_delay = '{value}'")
        conn.execute("SELECT pg_reload_conf()")


def _halt_then_crash(
    desk: Desk, url: str, private_postgres: PrivatePostgres, private_redis: PrivateRedis
) -> None:
    with desk.service:
        _halt_with_redis_down(desk, private_redis, reason="both down")
        private_postgres.stop()  # immediate: what was not yet flushed is gone
        private_postgres.start()
        recorded = scalar(url, "SELECT action || ':' || reason FROM control_actions ORDER BY id DESC LIMIT 1")
        assert recorded == "halt:both down"


def test_the_engine_survives_redis_restarts_while_trading_at_full_speed(
    tmp_path: Path, private_database_url: str, private_redis: PrivateRedis
) -> None:
    desk = start_desk(
        tmp_path / "home",
        database_url=private_database_url,
        redis_url=private_redis.url,
        args=FULL_SPEED,
        env=ENV,
    )
    with desk.service:
        _health_when(desk, 200)
        for _ in range(5):
            private_redis.stop()
            _health_when(desk, 503, redis="unhealthy")
            private_redis.start()
            _health_when(desk, 200)
        assert desk.service.process.poll() is None
