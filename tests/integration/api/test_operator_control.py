"""Halt, resume, reduce-only, flatten and profile act through Redis and are recorded in PostgreSQL
(docs/api.md and the README's halt guarantees; live/stores/redis_keys.py for the protocol)."""

from __future__ import annotations

import argparse
import json

import httpx
import psycopg
import pytest
import redis
from operator_api_support import EngineStandIn, ServerThread

from api import cli_operator
from live.profiles import PROFILES
from live.stores import redis_keys

# `strategy` (issue 11): the strategy traded, null before an engine first started.
STATUS_FIELDS = {
    "status",
    "since",
    "reason",
    "actor",
    "profile",
    "profile_hash",
    "strategy",
    "engine_acknowledged",
}


def _actions(pg: psycopg.Connection) -> list[tuple[str, str, str, str]]:
    return pg.execute("SELECT action, actor, reason, value FROM control_actions ORDER BY id").fetchall()


async def test_halt_without_an_engine_sets_the_kill_switch_and_records_it(
    client: httpx.AsyncClient, rds: redis.Redis, pg: psycopg.Connection
) -> None:
    response = await client.post("/trading/halt", json={"reason": "news pending"})

    assert response.status_code == 200
    body = response.json()
    assert set(body) == STATUS_FIELDS
    assert body["status"] == "halted"
    assert body["reason"] == "news pending"
    assert body["actor"] == "api"
    assert body["since"].endswith("Z")
    assert body["engine_acknowledged"] is False
    assert rds.get(redis_keys.KILL_SWITCH) == b"1"
    assert json.loads(rds.get(redis_keys.TRADING_STATE) or "{}")["state"] == "halted"
    assert _actions(pg) == [("halt", "api", "news pending", "")]


async def test_halt_and_resume_are_idempotent(
    client: httpx.AsyncClient, rds: redis.Redis, pg: psycopg.Connection
) -> None:
    first = (await client.post("/trading/halt", json={"reason": "first"})).json()
    second = await client.post("/trading/halt", json={"reason": "second"})
    halt_without_body = await client.post("/trading/halt")

    assert second.status_code == halt_without_body.status_code == 200
    assert second.json()["status"] == "halted"
    assert second.json()["since"] == first["since"]
    assert second.json()["reason"] == "first"

    resumed = await client.post("/trading/resume", json={"reason": "all clear"})
    again = await client.post("/trading/resume")

    assert resumed.status_code == again.status_code == 200
    assert resumed.json()["status"] == again.json()["status"] == "active"
    assert rds.get(redis_keys.KILL_SWITCH) is None
    assert [a[0] for a in _actions(pg)] == ["halt", "resume"]


async def test_halt_returns_once_the_running_engine_confirms(
    client: httpx.AsyncClient, redis_url: str, pg: psycopg.Connection
) -> None:
    async with EngineStandIn(redis_url) as engine:
        response = await client.post(
            "/trading/halt", json={"reason": "vol spike"}, headers={"X-Actor": "alice"}
        )

    assert response.status_code == 200
    assert response.json()["engine_acknowledged"] is True
    assert response.json()["actor"] == "alice"
    (command,) = engine.commands
    assert {k: command[k] for k in ("command", "actor", "reason")} == {
        "command": "halt",
        "actor": "alice",
        "reason": "vol spike",
    }
    assert _actions(pg) == [("halt", "alice", "vol spike", "")]


async def test_a_halt_the_engine_does_not_confirm_is_503_and_stays_in_force(
    client: httpx.AsyncClient, redis_url: str, rds: redis.Redis, pg: psycopg.Connection
) -> None:
    async with EngineStandIn(redis_url, mode="silent"):
        response = await client.post("/trading/halt", json={"reason": "hung engine"})

    assert response.status_code == 503
    assert "did not confirm" in response.json()["detail"]
    assert rds.get(redis_keys.KILL_SWITCH) == b"1"
    assert _actions(pg) == [("halt", "api", "hung engine", "")]
    assert (await client.get("/trading/status")).json()["status"] == "halted"


async def test_a_kill_switch_set_by_hand_shows_as_halted(client: httpx.AsyncClient, rds: redis.Redis) -> None:
    rds.set(redis_keys.KILL_SWITCH, "1")

    body = (await client.get("/trading/status")).json()

    assert body["status"] == "halted"
    assert body["actor"] == "kill_switch"


async def test_status_survives_the_loss_of_redis_state_through_the_record(
    client: httpx.AsyncClient, rds: redis.Redis
) -> None:
    await client.post("/trading/halt", json={"reason": "before redis restart"})
    rds.flushdb()

    body = (await client.get("/trading/status")).json()

    assert body["status"] == "halted"
    assert body["reason"] == "before redis restart"
    assert body["since"].endswith("Z")


async def test_status_of_a_fresh_system_is_active_with_the_configured_profile(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/trading/status")

    assert response.status_code == 200
    assert response.json()["status"] == "active"
    assert response.json()["profile"] == "balanced"


async def test_reduce_only_is_recorded_and_refused_while_halted(
    client: httpx.AsyncClient, rds: redis.Redis, pg: psycopg.Connection
) -> None:
    reduced = await client.post("/trading/reduce", json={"reason": "wind down"})

    assert reduced.status_code == 200
    assert reduced.json()["status"] == "reduce_only"
    assert json.loads(rds.get(redis_keys.TRADING_STATE) or "{}")["state"] == "reduce_only"

    await client.post("/trading/halt")
    refused = await client.post("/trading/reduce")

    assert refused.status_code == 409
    assert "resume" in refused.json()["detail"]
    assert [a[0] for a in _actions(pg)] == ["reduce", "halt"]


@pytest.mark.parametrize(
    "body",
    [None, {}, {"confirm": False}, {"confirm": "yes"}, {"confirm": True, "extra": 1}],
    ids=["no body", "empty", "false", "string", "unknown field"],
)
async def test_flatten_needs_an_explicit_confirmation(client: httpx.AsyncClient, body: object) -> None:
    response = await client.post("/trading/flatten", json=body)

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][0] == "body"


async def test_flatten_without_a_running_engine_is_409(
    client: httpx.AsyncClient, pg: psycopg.Connection
) -> None:
    response = await client.post("/trading/flatten", json={"confirm": True})

    assert response.status_code == 409
    assert "no engine" in response.json()["detail"]
    assert _actions(pg) == []


async def test_flatten_while_halted_is_sent_to_the_engine_and_keeps_the_halt(
    client: httpx.AsyncClient, redis_url: str, pg: psycopg.Connection
) -> None:
    async with EngineStandIn(redis_url) as engine:
        await client.post("/trading/halt", json={"reason": "stop"})
        response = await client.post("/trading/flatten", json={"confirm": True, "reason": "go flat"})

    assert response.status_code == 200
    assert response.json()["status"] == "halted"
    assert response.json()["engine_acknowledged"] is True
    assert [c["command"] for c in engine.commands] == ["halt", "flatten"]
    assert [a[:3] for a in _actions(pg)] == [("halt", "api", "stop"), ("flatten", "api", "go flat")]


async def test_a_command_the_engine_refuses_is_409_with_its_reason(
    client: httpx.AsyncClient, redis_url: str
) -> None:
    async with EngineStandIn(redis_url, mode="refuse"):
        response = await client.post("/trading/resume")

    assert response.status_code == 409
    assert "stand-in refuses" in response.json()["detail"]


async def test_a_profile_switch_is_recorded_stored_and_sent(
    client: httpx.AsyncClient, redis_url: str, rds: redis.Redis, pg: psycopg.Connection
) -> None:
    async with EngineStandIn(redis_url) as engine:
        response = await client.post("/profile", json={"profile": "conservative"})

    assert response.status_code == 200
    assert response.json() == {"profile": "conservative", "engine_acknowledged": True}
    assert rds.get(redis_keys.PROFILE) == b"conservative"
    conservative = PROFILES["conservative"]
    assert rds.get(redis_keys.PROFILE_HASH) == conservative.content_hash.encode()
    assert _actions(pg) == [
        (
            "profile",
            "api",
            "",
            json.dumps(
                {"content_hash": conservative.content_hash, "name": "conservative", "version": 1},
                separators=(",", ":"),
            ),
        )
    ]
    assert [(c["command"], c["value"]) for c in engine.commands] == [("profile", "conservative")]
    assert (await client.get("/trading/status")).json()["profile"] == "conservative"


@pytest.mark.parametrize("body", [{"profile": "yolo"}, {"profile": ""}, {"profile": None}, {}])
async def test_an_unknown_profile_is_422_naming_the_valid_ones(
    client: httpx.AsyncClient, pg: psycopg.Connection, body: dict[str, object]
) -> None:
    response = await client.post("/profile", json=body)

    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "profile"]
    if body:
        assert all(name in error["msg"] for name in ("conservative", "balanced", "aggressive"))
    assert _actions(pg) == []


@pytest.mark.parametrize("path", ["/profile", "/trading/halt", "/trading/flatten"])
async def test_a_malformed_json_body_is_422(client: httpx.AsyncClient, path: str) -> None:
    response = await client.post(path, content=b'{"profile": ', headers={"Content-Type": "application/json"})

    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "json_invalid"


def test_the_command_line_halts_shows_status_and_resumes(
    api: ServerThread, pg: psycopg.Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = api.settings.model_copy(update={"api_port": api.port})

    def tradeos(command: str, **options: object) -> int:
        return cli_operator.run(argparse.Namespace(command=command, **options), settings)

    assert tradeos("halt", reason="from the shell") == 0
    assert json.loads(capsys.readouterr().out)["status"] == "halted"
    assert tradeos("status") == 1  # no engine: health is degraded
    assert json.loads(capsys.readouterr().out)["trading"]["reason"] == "from the shell"
    assert tradeos("profile", name="aggressive", reason="") == 0
    assert tradeos("resume", reason="") == 0
    assert tradeos("reduce", reason="") == 0
    capsys.readouterr()
    assert [a[0] for a in _actions(pg)] == ["halt", "profile", "resume", "reduce"]
    assert all(a[1].startswith("cli:") for a in _actions(pg))

    wrong_token = settings.model_copy(update={"tool_token": "nope"})
    assert cli_operator.run(argparse.Namespace(command="halt", reason=""), wrong_token) == 1
    assert "HTTP 401" in capsys.readouterr().err
