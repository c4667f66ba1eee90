"""A strategy from a file, end to end: `tradeos up --strategy docs/examples/sma_crossover.py:SmaCrossover --param ...`
against real PostgreSQL and Redis trades it and records it, `/trading/status` shows it, and `POST /trading/strategy`
switches it over the real API, audited, only among the strategies allowed at start-up."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from operator_api_support import eventually

from live.strategy.loading import load_strategy
from tests.support import Service

ROOT = Path(__file__).resolve().parents[3]
SMA = f"{ROOT / 'docs' / 'examples' / 'sma_crossover.py'}:SmaCrossover"
SMA_PARAMS = ["--param", "fast=5", "--param", "slow=20", "--param", "entry=0.2"]
ENGINE = ["up", "--no-api", "--no-flows", "--speed", "0", "--profile", "aggressive", "--seed", "1"]


@pytest.fixture
def engine(tmp_path: Path, pg_url: str, redis_url: str) -> Iterator[Service]:
    env = {"TRADEOS_DATABASE_URL": pg_url, "TRADEOS_REDIS_URL": redis_url}
    with Service(tmp_path / "engine", [*ENGINE, "--strategy", SMA, *SMA_PARAMS], env) as service:
        yield service


def _fills_by_signal(pg: psycopg.Connection) -> dict[str, int]:
    return dict(pg.execute("SELECT signal_type, count(*) FROM fills GROUP BY signal_type").fetchall())


def _open_positions(pg: psycopg.Connection) -> int:
    return pg.execute("SELECT count(*) FROM positions WHERE quantity <> 0").fetchone()[0]  # type: ignore[index]


@pytest.mark.usefixtures("engine")
async def test_the_example_strategy_trades_under_up_and_is_recorded_and_shown(
    client: httpx.AsyncClient, pg: psycopg.Connection
) -> None:
    expected = load_strategy(SMA, {"fast": "5", "slow": "20", "entry": "0.2"})

    await eventually(lambda: _fills_by_signal(pg).get("sma_cross", 0) >= 10, within=120)

    assert set(_fills_by_signal(pg)) == {"sma_cross"}
    signal_types = pg.execute("SELECT DISTINCT signal_type FROM signals").fetchall()
    assert signal_types == [("sma_cross",)]
    runs = pg.execute("SELECT spec, name, version, params, params_hash FROM strategy_runs").fetchall()
    assert runs == [(SMA, "sma_crossover", "1", expected.params_json, expected.params_hash)]
    status = (await client.get("/trading/status")).json()
    assert status["strategy"] == {
        "name": "sma_crossover",
        "version": "1",
        "params": {"allow_short": True, "entry": 0.2, "fast": 5, "scale": 0.002, "slow": 20},
        "params_hash": expected.params_hash,
    }


@pytest.mark.usefixtures("engine")
async def test_a_strategy_switch_is_refused_until_halted_and_flat_then_applied_and_recorded_with_its_actor(
    client: httpx.AsyncClient, pg: psycopg.Connection, tmp_path: Path
) -> None:
    await eventually(lambda: _open_positions(pg) > 0, within=120)
    marker = tmp_path / "imported"
    evil = tmp_path / "evil.py"
    evil.write_text(f"open({str(marker)!r}, 'w').write('imported')\n")

    unauthenticated = await client.post(
        "/trading/strategy", json={"strategy": "builtin"}, headers={"Authorization": "Bearer wrong"}
    )
    malformed = await client.post("/trading/strategy", json={"strategy": "builtin", "colour": "red"})
    while_active = await client.post("/trading/strategy", json={"strategy": "builtin"})
    not_allowed = await client.post("/trading/strategy", json={"strategy": f"{evil}:X"})

    assert unauthenticated.status_code == 401
    assert malformed.status_code == 422
    assert while_active.status_code == 409
    assert while_active.json()["detail"] == (
        "the engine refused the strategy: trading must be halted to switch strategy (POST /trading/halt, then "
        "flatten)"
    )
    assert not_allowed.status_code == 409
    assert f"strategy '{evil}:X' was not allowed at start-up; allowed: " in not_allowed.json()["detail"]
    assert not marker.exists()  # the caller's file was never imported

    assert (await client.post("/trading/halt", json={"reason": "switch"})).status_code == 200
    not_flat = await client.post("/trading/strategy", json={"strategy": "builtin"})
    assert not_flat.status_code == 409
    assert "the book must be flat to switch strategy" in not_flat.json()["detail"]
    flattened = await client.post("/trading/flatten", json={"confirm": True})
    assert flattened.status_code == 200
    await eventually(lambda: _open_positions(pg) == 0, within=60)
    bad_params = await client.post("/trading/strategy", json={"strategy": SMA, "params": {"fast": "five"}})
    assert bad_params.status_code == 409
    assert "parameter 'fast': Input should be a valid integer" in bad_params.json()["detail"]
    assert (await client.get("/trading/status")).json()["strategy"]["name"] == "sma_crossover"

    switched = await client.post(
        "/trading/strategy",
        json={"strategy": "builtin", "reason": "back to basics"},
        headers={"X-Actor": "alice"},
    )

    builtin = load_strategy("builtin")
    assert switched.status_code == 200
    assert switched.json() == {
        "strategy": {"name": "builtin", "version": "1", "params": {}, "params_hash": builtin.params_hash},
        "engine_acknowledged": True,
    }

    async def status_after_switch() -> dict[str, object] | None:
        status = (await client.get("/trading/status")).json()
        return status if status["strategy"]["name"] == "builtin" else None

    status = await eventually(status_after_switch)
    assert status["status"] == "halted"
    recorded = await eventually(
        lambda: pg.execute(
            "SELECT actor, reason, value FROM control_actions WHERE action = 'strategy'"
        ).fetchall(),
        within=30,
    )
    [(actor, reason, value)] = recorded
    assert (actor, reason) == ("alice", "back to basics")
    change = json.loads(value)
    assert change["from"]["name"] == "sma_crossover"
    assert (
        change["from"]["params_hash"] == load_strategy(SMA, {"fast": 5, "slow": 20, "entry": 0.2}).params_hash
    )
    assert change["to"] == {
        "name": "builtin",
        "version": "1",
        "params": {},
        "params_hash": builtin.params_hash,
    }
