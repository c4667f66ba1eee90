"""Custom profiles through the real operator API over HTTP, on real PostgreSQL and Redis (no engine running):
created, versioned and listed with their content hashes; the built-ins read-only; bad values refused naming the
field with nothing stored; a switch to a custom profile recorded with its hash."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import httpx
import psycopg
import pytest
import redis

from live.profiles import PROFILES, canonical_json
from live.stores import redis_keys


def _body(**changes: Any) -> dict[str, Any]:
    """A valid profile body: the conservative built-in's content with `changes`."""
    return {**json.loads(canonical_json(PROFILES["conservative"])), **changes}


def _sha256(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _stored(pg: psycopg.Connection) -> list[tuple[Any, ...]]:
    return pg.execute(
        "SELECT name, version, body, content_hash, actor FROM profile_versions ORDER BY id"
    ).fetchall()


def _actions(pg: psycopg.Connection) -> list[tuple[Any, ...]]:
    return pg.execute("SELECT action, actor, value FROM control_actions ORDER BY id").fetchall()


async def test_a_custom_profile_is_created_versioned_and_listed_with_its_hashes(
    client: httpx.AsyncClient, pg: psycopg.Connection
) -> None:
    first, second = _body(max_position_fraction=0.02), _body(max_position_fraction=0.03)
    alice = {"X-Actor": "cli:alice"}

    created = await client.put("/profiles/cautious", json=first, headers=alice)
    again = await client.put("/profiles/cautious", json=first, headers=alice)
    updated = await client.put("/profiles/cautious", json=second, headers={"X-Actor": "cli:bob"})
    listed = await client.get("/profiles")

    assert created.status_code == 201
    assert created.json() | {"created_at": None} == {
        "name": "cautious",
        "version": 1,
        "read_only": False,
        "active": False,
        "content_hash": _sha256(first),
        "created_at": None,
        "actor": "cli:alice",
        "definition": first,
        "created": True,
        "engine_acknowledged": None,
    }
    assert created.json()["created_at"].endswith("Z")
    assert (again.status_code, again.json()["version"], again.json()["created"]) == (200, 1, False)
    assert (updated.status_code, updated.json()["version"], updated.json()["created"]) == (200, 2, True)
    assert updated.json()["content_hash"] == _sha256(second) != _sha256(first)
    profiles = {p["name"]: p for p in listed.json()}
    assert list(profiles) == ["conservative", "balanced", "aggressive", "cautious"]
    for name, builtin in PROFILES.items():
        assert profiles[name] | {"active": None} == {
            "name": name,
            "version": 1,
            "read_only": True,
            "active": None,
            "content_hash": builtin.content_hash,
            "created_at": None,
            "actor": None,
            "definition": json.loads(canonical_json(builtin)),
        }
    assert profiles["balanced"]["active"]  # TRADEOS_PROFILE of the API's settings, nothing switched yet
    assert (profiles["cautious"]["version"], profiles["cautious"]["content_hash"]) == (2, _sha256(second))
    assert _stored(pg) == [
        (
            "cautious",
            1,
            json.dumps(first, sort_keys=True, separators=(",", ":")),
            _sha256(first),
            "cli:alice",
        ),
        (
            "cautious",
            2,
            json.dumps(second, sort_keys=True, separators=(",", ":")),
            _sha256(second),
            "cli:bob",
        ),
    ]
    assert [(a, who, json.loads(v)) for a, who, v in _actions(pg)] == [
        ("profile_update", "cli:alice", {"name": "cautious", "version": 1, "content_hash": _sha256(first)}),
        ("profile_update", "cli:bob", {"name": "cautious", "version": 2, "content_hash": _sha256(second)}),
    ]


@pytest.mark.parametrize("name", sorted(PROFILES))
async def test_a_builtin_profile_is_read_only(
    client: httpx.AsyncClient, pg: psycopg.Connection, name: str
) -> None:
    response = await client.put(f"/profiles/{name}", json=_body(max_position_fraction=0.5))

    assert response.status_code == 409
    assert "read-only" in response.json()["detail"]
    assert _stored(pg) == []
    assert _actions(pg) == []


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        (_body(max_position_fraction=2), ["body", "max_position_fraction"]),
        (_body(drawdown_limit=0), ["body", "drawdown_limit"]),
        (_body(daily_loss_limit=-0.01), ["body", "daily_loss_limit"]),
        (_body(signal_threshold=1.5), ["body", "signal_threshold"]),
        (_body(max_orders_per_minute=0), ["body", "max_orders_per_minute"]),
        (_body(regime_weights={"trending": {"momentum": 1.0}}), ["body", "regime_weights"]),
        (_body(margin=2), ["body", "margin"]),
    ],
)
async def test_a_bad_value_is_refused_naming_the_field_and_nothing_is_stored(
    client: httpx.AsyncClient, pg: psycopg.Connection, body: dict[str, Any], loc: list[str]
) -> None:
    response = await client.put("/profiles/cautious", json=body)

    assert response.status_code == 422
    assert [error["loc"] for error in response.json()["detail"]] == [loc]
    assert _stored(pg) == []
    assert _actions(pg) == []


@pytest.mark.parametrize("name", ["Cautious", "9lives", "a" * 41, "semi;colon"])
async def test_a_name_that_cannot_name_a_profile_is_refused(
    client: httpx.AsyncClient, pg: psycopg.Connection, name: str
) -> None:
    response = await client.put(f"/profiles/{name}", json=_body())

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["path", "name"]
    assert _stored(pg) == []


async def test_a_switch_to_a_custom_profile_is_recorded_and_posted_with_its_hash(
    client: httpx.AsyncClient, pg: psycopg.Connection, rds: redis.Redis
) -> None:
    body = _body(max_orders_per_minute=5)
    assert (await client.put("/profiles/cautious", json=body)).status_code == 201

    switched = await client.post("/profile", json={"profile": "cautious"}, headers={"X-Actor": "cli:carol"})
    status = (await client.get("/trading/status")).json()

    assert switched.json() == {
        "profile": "cautious",
        "engine_acknowledged": False,
    }  # no engine: applied at start
    assert (status["profile"], status["profile_hash"]) == ("cautious", _sha256(body))
    assert (rds.get(redis_keys.PROFILE), rds.get(redis_keys.PROFILE_HASH)) == (
        b"cautious",
        _sha256(body).encode(),
    )
    action, actor, value = _actions(pg)[-1]
    assert (action, actor, json.loads(value)) == (
        "profile",
        "cli:carol",
        {"name": "cautious", "version": 1, "content_hash": _sha256(body)},
    )
    assert [p["name"] for p in (await client.get("/profiles")).json() if p["active"]] == ["cautious"]


async def test_an_unknown_profile_is_422_naming_the_stored_custom_ones_too(
    client: httpx.AsyncClient, pg: psycopg.Connection
) -> None:
    await client.put("/profiles/cautious", json=_body())

    response = await client.post("/profile", json={"profile": "yolo"})

    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "profile"]
    assert all(name in error["msg"] for name in ("conservative", "balanced", "aggressive", "cautious"))
    assert [a for a, _, _ in _actions(pg)] == ["profile_update"]


async def test_a_stored_version_cannot_be_changed_or_removed(
    client: httpx.AsyncClient, pg: psycopg.Connection
) -> None:
    await client.put("/profiles/cautious", json=_body())

    for statement in (
        "UPDATE profile_versions SET body = '{}' WHERE name = 'cautious'",
        "DELETE FROM profile_versions WHERE name = 'cautious'",
    ):
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            pg.execute(statement)
    assert len(_stored(pg)) == 1


async def test_switching_to_a_custom_profile_edited_behind_the_apis_back_is_refused(
    client: httpx.AsyncClient, pg: psycopg.Connection
) -> None:
    await client.put("/profiles/cautious", json=_body())
    pg.execute("ALTER TABLE profile_versions DISABLE TRIGGER profile_versions_append_only")
    pg.execute(
        "UPDATE profile_versions SET body = replace(body, '\"reject_storm_count\":20', '\"reject_storm_count\":900')"
    )

    response = await client.post("/profile", json={"profile": "cautious"})

    assert response.status_code == 409
    assert "no longer matches its content hash" in response.json()["detail"]
    assert [a for a, _, _ in _actions(pg)] == ["profile_update"]
