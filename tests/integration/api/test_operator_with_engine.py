"""The operator API against the real engine (`tradeos up --no-api --speed 0` in a child process): events over the
WebSocket, a halt the engine confirms and holds, and two API processes relaying the same fills."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import redis
from operator_api_support import ServerThread, eventually
from websockets.asyncio.client import ClientConnection, connect

from live.settings import Settings
from live.stores import redis_keys
from tests.support import Service, free_port

# Seed 1 at full speed trades a lot and trips no circuit breaker for days of sim time.
ENGINE = ["up", "--no-api", "--no-flows", "--speed", "0", "--profile", "aggressive", "--seed", "1"]
EVENT_TYPES = {"portfolio_update", "signal", "fill", "risk_event", "regime_change"}


@pytest.fixture
def engine(tmp_path: Path, pg_url: str, redis_url: str) -> Iterator[Service]:
    env = {"TRADEOS_DATABASE_URL": pg_url, "TRADEOS_REDIS_URL": redis_url}
    with Service(tmp_path / "engine", ENGINE, env) as service:
        yield service


def _submitted_after(pg: psycopg.Connection, moment: datetime) -> list[tuple[Any, ...]]:
    return pg.execute(
        "SELECT id, timestamp FROM orders WHERE status <> 'rejected' AND timestamp > %s", (moment,)
    ).fetchall()


def _committed_clock(pg: psycopg.Connection) -> datetime | None:
    row = pg.execute("SELECT last_bar_ts FROM engine_state WHERE id = 1").fetchone()
    return row[0] if row else None


async def _types_until_all_seen(ws: ClientConnection) -> set[str]:
    seen: set[str] = set()
    while seen != EVENT_TYPES:
        seen.add(json.loads(await asyncio.wait_for(ws.recv(), 60))["type"])
    return seen


def _answers(port: int, token: str) -> bool:
    try:
        response = httpx.get(
            f"http://127.0.0.1:{port}/healthz", headers={"Authorization": f"Bearer {token}"}, timeout=2
        )
    except httpx.TransportError:
        return False
    return response.status_code in (200, 503)


async def _collect_fill_ids(ws: ClientConnection, ids: list[str], *, until: Callable[[], bool]) -> None:
    while not until():
        assert len(ids) < 10_000, "the two connections never saw the same fills"
        message = json.loads(await asyncio.wait_for(ws.recv(), 60))
        if message["type"] == "fill":
            ids.append(message["data"]["id"])


@pytest.mark.usefixtures("engine")
async def test_the_five_event_types_arrive_from_the_running_engine(api: ServerThread, token: str) -> None:
    async with connect(f"{api.ws_url}?token={token}", max_size=None) as ws:
        first = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert first["type"] == "portfolio_update"
        assert await asyncio.wait_for(_types_until_all_seen(ws), 120) == EVENT_TYPES


@pytest.mark.usefixtures("engine")
async def test_a_halt_is_confirmed_by_the_engine_and_no_order_follows_until_resumed(
    client: httpx.AsyncClient, pg: psycopg.Connection, rds: redis.Redis
) -> None:
    await eventually(lambda: pg.execute("SELECT count(*) FROM orders").fetchone()[0] > 0, within=60)

    halted = await client.post("/trading/halt", json={"reason": "e2e"})

    assert halted.status_code == 200
    assert halted.json()["engine_acknowledged"] is True
    assert (await client.get("/healthz")).json()["status"] == "healthy"
    # The engine's step when it applied the halt is no later than the second snapshot written after the ack.
    snapshots = [rds.get(redis_keys.PORTFOLIO)]
    for _ in range(2):
        snapshots.append(
            await eventually(lambda: (s := rds.get(redis_keys.PORTFOLIO)) != snapshots[-1] and s)
        )
    bound = datetime.fromisoformat(json.loads(snapshots[-1] or "{}")["timestamp"])
    await eventually(
        lambda: (clock := _committed_clock(pg)) is not None and clock > bound + timedelta(hours=2)
    )

    assert _submitted_after(pg, bound) == []

    resumed = await client.post("/trading/resume", json={"reason": "e2e over"})

    assert resumed.status_code == 200
    assert resumed.json()["engine_acknowledged"] is True
    await eventually(lambda: _submitted_after(pg, bound), within=60)
    actions = pg.execute("SELECT action, actor, reason FROM control_actions ORDER BY id").fetchall()
    assert [a for a in actions if a[1] == "api"] == [("halt", "api", "e2e"), ("resume", "api", "e2e over")]


@pytest.mark.usefixtures("engine")
async def test_a_halt_through_the_api_is_recorded_once_under_its_actor(
    client: httpx.AsyncClient, pg: psycopg.Connection
) -> None:
    await eventually(lambda: pg.execute("SELECT count(*) FROM orders").fetchone()[0] > 0, within=60)

    for n in range(5):
        assert (await client.post("/trading/halt", json={"reason": f"halt {n}"})).status_code == 200
        assert (await client.post("/trading/resume")).status_code == 200

    actors = {row[0] for row in pg.execute("SELECT actor FROM control_actions").fetchall()}
    assert actors == {"api"}


@pytest.mark.usefixtures("engine")
async def test_a_profile_switch_is_applied_by_the_engine_and_recorded(
    client: httpx.AsyncClient, pg: psycopg.Connection
) -> None:
    await eventually(lambda: _committed_clock(pg), within=60)

    response = await client.post("/profile", json={"profile": "conservative"})

    assert response.status_code == 200
    assert response.json() == {"profile": "conservative", "engine_acknowledged": True}
    assert (await client.get("/trading/status")).json()["profile"] == "conservative"
    switches = pg.execute("SELECT value FROM control_actions WHERE action = 'profile'").fetchall()
    assert [json.loads(value)["name"] for (value,) in switches] == ["conservative"]


def _profiles_applied_by_the_engine(engine: Service) -> list[str]:
    """The engine's profile after each profile command it applied, in the order it applied them (from its log)."""
    return re.findall(r"command profile from \S+ applied: .*?'profile': '(\w+)'", engine.output)


def _without_repeats(profiles: list[str], *, start: str) -> list[str]:
    changes: list[str] = []
    for profile in profiles:
        if profile != (changes[-1] if changes else start):
            changes.append(profile)
    return changes


async def test_concurrent_profile_switches_are_each_recorded_once_in_the_order_the_engine_applied_them(
    engine: Service, client: httpx.AsyncClient, pg: psycopg.Connection, rds: redis.Redis
) -> None:
    await eventually(lambda: _committed_clock(pg), within=60)
    profiles = ["conservative", "balanced", "aggressive"]
    asked = [profiles[n % 3] if n % 4 else profiles[(n + 1) % 3] for n in range(30)]

    responses = await asyncio.gather(*(client.post("/profile", json={"profile": p}) for p in asked))

    assert [r.status_code for r in responses] == [200] * 30, [
        r.text for r in responses if r.status_code != 200
    ]
    assert all(r.json()["engine_acknowledged"] for r in responses)
    recorded = [
        json.loads(row[0])["name"]
        for row in pg.execute("SELECT value FROM control_actions WHERE action = 'profile' ORDER BY id")
    ]
    repeats = [n for n in range(1, len(recorded)) if recorded[n] == recorded[n - 1]]
    assert repeats == [], f"{len(repeats)} of {len(recorded)} records repeat the one before: {recorded}"
    applied = await eventually(lambda: len(found := _profiles_applied_by_the_engine(engine)) >= 30 and found)
    assert len(applied) == 30
    # The engine started aggressive (ENGINE); the record is exactly the switches it made, in its order.
    assert recorded == _without_repeats(applied, start="aggressive")
    # The record replays to the state: its last profile is the one in force everywhere.
    in_force = recorded[-1] if recorded else "aggressive"
    assert applied[-1] == in_force
    await eventually(lambda: rds.get(redis_keys.PROFILE) == in_force.encode())
    assert (await client.get("/trading/status")).json()["profile"] == in_force


@pytest.mark.usefixtures("engine")
async def test_two_api_processes_deliver_the_same_fills(
    api: ServerThread, api_settings: Settings, token: str, tmp_path: Path
) -> None:
    # The replica is a separate OS process (`tradeos api`), with its own Redis subscription.
    port = free_port()
    env = {
        "TRADEOS_DATABASE_URL": api_settings.stores.database_url.get_secret_value(),
        "TRADEOS_REDIS_URL": api_settings.stores.redis_url.get_secret_value(),
        "TRADEOS_TOOL_TOKEN": token,
    }
    with Service(tmp_path / "replica", ["api", "--api-port", str(port)], env) as replica:
        await eventually(lambda: api.hub_subscribed and _answers(port, token), within=60)
        assert replica.process.poll() is None
        async with (
            connect(f"{api.ws_url}?token={token}", max_size=None) as first,
            connect(f"ws://127.0.0.1:{port}/ws?token={token}", max_size=None) as second,
        ):
            # At --speed 0, 30 fills can pass while the second handshake completes: the first connection reads
            # on until it has also seen 30 fills from the second's first one (both read all along, so neither
            # is dropped as a slow client).
            first_ids: list[str] = []
            second_ids: list[str] = []

            def first_caught_up() -> bool:
                if not second_ids or second_ids[0] not in first_ids:
                    return False
                return len(first_ids) - first_ids.index(second_ids[0]) >= 30

            await asyncio.gather(
                _collect_fill_ids(first, first_ids, until=first_caught_up),
                _collect_fill_ids(second, second_ids, until=lambda: len(second_ids) >= 30),
            )

    # The two connections opened a moment apart: compare from the first fill both saw.
    common = next(fill_id for fill_id in second_ids if fill_id in first_ids)
    first_tail = first_ids[first_ids.index(common) :]
    second_tail = second_ids[second_ids.index(common) :]
    length = min(len(first_tail), len(second_tail))
    assert length >= 20
    assert first_tail[:length] == second_tail[:length]
