"""Custom profiles against the real engine (`tradeos up --no-api --speed 0` in a child process) and the real
operator API over HTTP: the engine enforces the custom limits it is switched to, follows a new version of the
active profile, halts with PROFILE_HASH_MISMATCH when the stored row is edited behind its back, keeps the custom
profile across a restart, and takes one from TRADEOS_PROFILE."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import redis
from operator_api_support import eventually

from live.profiles import PROFILES, canonical_json
from live.stores import redis_keys
from tests.support import Service, run_cli

ENGINE = ["up", "--no-api", "--no-flows", "--speed", "0", "--profile", "aggressive", "--seed", "1"]
MISMATCH = "PROFILE_HASH_MISMATCH"


def _env(pg_url: str, redis_url: str) -> dict[str, str]:
    return {"TRADEOS_DATABASE_URL": pg_url, "TRADEOS_REDIS_URL": redis_url}


@pytest.fixture
def engine(tmp_path: Path, pg_url: str, redis_url: str) -> Iterator[Service]:
    with Service(tmp_path / "engine", ENGINE, _env(pg_url, redis_url)) as service:
        yield service


def _body(**changes: Any) -> dict[str, Any]:
    """The aggressive built-in's content (which trades a lot on seed 1) with `changes`; never a reject storm."""
    return {**json.loads(canonical_json(PROFILES["aggressive"])), "reject_storm_count": 1000, **changes}


def _sha256(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _committed_clock(pg: psycopg.Connection) -> Any:
    row = pg.execute("SELECT last_bar_ts FROM engine_state WHERE id = 1").fetchone()
    return row[0] if row else None


def _throttled(pg: psycopg.Connection, *, after: Any = None) -> int:
    return pg.execute(
        "SELECT count(*) FROM orders WHERE reason = 'ORDER_RATE_THROTTLE' AND timestamp > %s",
        (after or "-infinity",),
    ).fetchone()[0]


def _mismatches(pg: psycopg.Connection) -> list[tuple[Any, ...]]:
    return pg.execute(
        "SELECT detail, halts_trading FROM risk_events WHERE code = %s ORDER BY id", (MISMATCH,)
    ).fetchall()


async def _halted_by_mismatch(client: httpx.AsyncClient) -> bool:
    status = (await client.get("/trading/status")).json()
    return (status["status"], status["actor"]) == ("halted", f"circuit_breaker:{MISMATCH}")


async def _switch_to(client: httpx.AsyncClient, name: str, body: dict[str, Any]) -> None:
    saved = await client.put(f"/profiles/{name}", json=body)
    assert saved.status_code in (200, 201), saved.text
    switched = await client.post("/profile", json={"profile": name})
    assert switched.json() == {"profile": name, "engine_acknowledged": True}, switched.text


async def test_switching_to_a_custom_profile_changes_the_limits_the_engine_enforces(
    engine: Service, client: httpx.AsyncClient, pg: psycopg.Connection
) -> None:
    await eventually(lambda: pg.execute("SELECT count(*) FROM orders").fetchone()[0] > 0, within=60)
    # Under aggressive (80 orders a minute) eight symbols cannot be throttled; one a minute is, at the first bar
    # with two orders.
    assert _throttled(pg) == 0
    body = _body(max_orders_per_minute=1)

    await _switch_to(client, "one-a-minute", body)

    status = (await client.get("/trading/status")).json()
    assert (status["profile"], status["profile_hash"]) == ("one-a-minute", _sha256(body))
    await eventually(lambda: _throttled(pg) > 0, within=60)
    # The engine logs its acknowledgement of the switch once it has sent it.
    await eventually(lambda: f"'profile_hash': '{_sha256(body)}'" in engine.output, within=10)


async def test_an_sql_update_of_the_active_profile_row_halts_trading_with_profile_hash_mismatch(
    engine: Service, client: httpx.AsyncClient, pg: psycopg.Connection
) -> None:
    await eventually(lambda: _committed_clock(pg), within=60)
    await _switch_to(client, "cautious", _body())
    assert (await client.get("/trading/status")).json()["status"] == "active"

    pg.execute("ALTER TABLE profile_versions DISABLE TRIGGER profile_versions_append_only")
    pg.execute(
        "UPDATE profile_versions SET body = replace(body, '\"max_position_fraction\":0.2',"
        " '\"max_position_fraction\":0.9') WHERE name = 'cautious'"
    )

    (detail, halts), *_ = await eventually(lambda: _mismatches(pg), within=30)
    assert halts is True
    assert "'cautious' version 1" in detail
    await eventually(lambda: _halted_by_mismatch(client), within=10)
    # A resume does not outlast the next check while the row still differs.
    assert (await client.post("/trading/resume")).status_code == 200
    await eventually(lambda: len(_mismatches(pg)) == 2, within=30)
    # The engine posts its state right after the batch with the risk event commits.
    await eventually(lambda: _halted_by_mismatch(client), within=10)


async def test_the_engine_follows_a_new_version_of_the_active_profile_and_keeps_it_across_a_restart(
    tmp_path: Path,
    client: httpx.AsyncClient,
    pg: psycopg.Connection,
    rds: redis.Redis,
    pg_url: str,
    redis_url: str,
) -> None:
    first, second = _body(max_orders_per_minute=40), _body(max_orders_per_minute=1)
    with Service(tmp_path / "first", ENGINE, _env(pg_url, redis_url)) as engine:
        await eventually(lambda: _committed_clock(pg), within=60)
        await _switch_to(client, "cautious", first)

        updated = await client.put("/profiles/cautious", json=second)

        assert (updated.json()["version"], updated.json()["engine_acknowledged"]) == (2, True)
        assert (await client.get("/trading/status")).json()["profile_hash"] == _sha256(second)
        await eventually(lambda: f"'profile_hash': '{_sha256(second)}'" in engine.output, within=10)
        assert engine.stop() == 0
    stopped_at = _committed_clock(pg)
    rds.delete(redis_keys.PROFILE, redis_keys.PROFILE_HASH)  # what the restarted engine posts, it posts anew
    switches = [
        json.loads(v) for (v,) in pg.execute("SELECT value FROM control_actions WHERE action = 'profile'")
    ]
    assert switches == [
        {"name": "cautious", "version": 1, "content_hash": _sha256(first)},
        {"name": "cautious", "version": 2, "content_hash": _sha256(second)},
    ]

    with Service(tmp_path / "second", ENGINE, _env(pg_url, redis_url)) as restarted:  # --profile aggressive
        await eventually(lambda: rds.get(redis_keys.PROFILE_HASH) == _sha256(second).encode(), within=60)
        assert rds.get(redis_keys.PROFILE) == b"cautious"
        assert f"profile cautious version 2 (sha256 {_sha256(second)})" in restarted.output
        await eventually(lambda: _throttled(pg, after=stopped_at) > 0, within=60)


async def test_tradeos_profile_may_name_a_stored_custom_profile_and_an_unknown_one_stops_startup(
    tmp_path: Path, client: httpx.AsyncClient, rds: redis.Redis, pg_url: str, redis_url: str
) -> None:
    body = _body(max_orders_per_minute=2)
    assert (await client.put("/profiles/cautious", json=body)).status_code == 201
    env = _env(pg_url, redis_url)

    code, output = run_cli(
        tmp_path / "unknown", [*ENGINE[:-4], "--seed", "1"], {**env, "TRADEOS_PROFILE": "reckless"}
    )

    assert code == 2
    assert len(output.strip().splitlines()) == 1
    assert "TRADEOS_PROFILE" in output
    assert "'reckless'" in output
    assert "cautious" in output  # the valid ones, stored custom profiles included
    with Service(tmp_path / "home", ENGINE[:-4], {**env, "TRADEOS_PROFILE": "cautious"}) as engine:
        await eventually(
            lambda: f"profile cautious version 1 (sha256 {_sha256(body)})" in engine.output, within=60
        )
        await eventually(lambda: rds.get(redis_keys.PROFILE_HASH) == _sha256(body).encode(), within=30)
        status = (await client.get("/trading/status")).json()
        assert (status["profile"], status["profile_hash"]) == ("cautious", _sha256(body))


async def test_an_engine_started_on_an_edited_profile_row_trades_nothing_under_it_and_starts_halted(
    tmp_path: Path,
    client: httpx.AsyncClient,
    pg: psycopg.Connection,
    rds: redis.Redis,
    pg_url: str,
    redis_url: str,
) -> None:
    body = _body(max_orders_per_minute=1)
    assert (await client.put("/profiles/cautious", json=body)).status_code == 201
    switched = await client.post(
        "/profile", json={"profile": "cautious"}
    )  # no engine yet: applied at its start
    assert switched.json() == {"profile": "cautious", "engine_acknowledged": False}
    pg.execute("ALTER TABLE profile_versions DISABLE TRIGGER profile_versions_append_only")
    # Body and hash rewritten together: the row is consistent, but not what the switch recorded.
    edited = _body(max_orders_per_minute=80)
    pg.execute(
        "UPDATE profile_versions SET body = %s, content_hash = %s WHERE name = 'cautious'",
        (json.dumps(edited, sort_keys=True, separators=(",", ":")), _sha256(edited)),
    )

    with Service(tmp_path / "home", ENGINE, _env(pg_url, redis_url)):
        (detail, halts), *_ = await eventually(lambda: _mismatches(pg), within=60)
        await eventually(lambda: rds.get(redis_keys.PROFILE) == b"conservative", within=30)
        status = (await client.get("/trading/status")).json()

    assert halts is True
    assert f"not the {_sha256(body)} recorded" in detail
    assert (status["status"], status["actor"]) == ("halted", f"circuit_breaker:{MISMATCH}")
    assert status["profile_hash"] == PROFILES["conservative"].content_hash
    assert pg.execute("SELECT count(*) FROM orders").fetchone() == (0,)
