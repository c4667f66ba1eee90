"""GET /healthz probes Redis, PostgreSQL and the engine's heartbeats for real (docs/api.md)."""

from __future__ import annotations

import socket
import time

import httpx
import psycopg
import redis
from operator_api_support import EngineStandIn, ServerThread

from live.settings import Settings
from live.stores import redis_keys


def _closed_port() -> int:
    """A local port nobody listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _assert_health_shape(body: dict[str, object]) -> None:
    assert set(body) == {"status", "services", "timestamp"}
    assert set(body["services"]) == {"redis", "postgres", "signal_engine", "execution"}  # type: ignore[arg-type]
    assert str(body["timestamp"]).endswith("Z")


async def test_without_an_engine_health_is_degraded_and_names_the_engine_services(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/healthz")

    assert response.status_code == 503
    body = response.json()
    _assert_health_shape(body)
    assert body["status"] == "degraded"
    assert body["services"] == {
        "redis": "healthy",
        "postgres": "healthy",
        "signal_engine": "unhealthy",
        "execution": "unhealthy",
    }


async def test_with_fresh_heartbeats_health_is_200_healthy(client: httpx.AsyncClient, redis_url: str) -> None:
    async with EngineStandIn(redis_url):
        response = await client.get("/healthz")

    assert response.status_code == 200
    assert response.json()["status"] == "healthy"
    assert set(response.json()["services"].values()) == {"healthy"}


async def test_a_stale_heartbeat_makes_that_service_unhealthy(
    client: httpx.AsyncClient, rds: redis.Redis
) -> None:
    rds.set(redis_keys.heartbeat_key("signal_engine"), time.time())
    rds.set(redis_keys.heartbeat_key("execution"), time.time() - redis_keys.HEARTBEAT_MAX_AGE_SECONDS - 1)

    body = (await client.get("/healthz")).json()

    assert body["status"] == "degraded"
    assert body["services"]["signal_engine"] == "healthy"
    assert body["services"]["execution"] == "unhealthy"


async def test_unreachable_redis_is_unhealthy_503_not_a_hang(
    api_settings: Settings, token: str, pg: psycopg.Connection
) -> None:
    settings = api_settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{_closed_port()}/0"})
    with ServerThread(settings) as api:
        async with httpx.AsyncClient(
            base_url=api.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=15
        ) as client:
            response = await client.get("/healthz")
            halt = await client.post("/trading/halt", json={"reason": "redis down"})
            status = await client.get("/trading/status")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unhealthy"
    assert body["services"]["redis"] == "unhealthy"
    assert body["services"]["postgres"] == "healthy"
    # The engine cannot trade without Redis (fail closed); the halt is recorded for when it comes back.
    assert halt.status_code == 503
    assert "recorded" in halt.json()["detail"]
    assert pg.execute("SELECT action, reason FROM control_actions").fetchall() == [("halt", "redis down")]
    assert status.status_code == 200  # read from the record in PostgreSQL
    assert status.json()["status"] == "halted"


async def test_unreachable_postgres_is_unhealthy_503_and_reads_say_so(
    api_settings: Settings, token: str, rds: redis.Redis
) -> None:
    settings = api_settings.model_copy(
        update={"database_url": f"postgresql://postgres@127.0.0.1:{_closed_port()}/nowhere"}
    )
    with ServerThread(settings) as api:
        async with httpx.AsyncClient(
            base_url=api.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=15
        ) as client:
            health = await client.get("/healthz")
            trades = await client.get("/trades")
            halt = await client.post("/trading/halt", json={"reason": "db down"})
    kill_switch = rds.get(redis_keys.KILL_SWITCH)

    assert health.status_code == 503
    assert health.json()["services"]["postgres"] == "unhealthy"
    assert health.json()["status"] == "unhealthy"
    assert trades.status_code == 503
    assert "postgres" in trades.json()["detail"]
    # A halt still takes effect when it cannot be recorded: it says so, and the kill switch is set.
    assert halt.status_code == 503
    assert "halted" in halt.json()["detail"]
    assert kill_switch == b"1"
