"""Fixtures for the operator API: a migrated database, a private Redis DB, and the real app served over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
import redis
from operator_api_support import ServerThread, new_token

from live.settings import Settings
from live.stores.postgres import apply_migrations


@pytest.fixture
def pg_url(database_url: str) -> str:
    """The test database with the engine's schema applied."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        apply_migrations(conn)
    return database_url


@pytest.fixture
def pg(pg_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        yield conn


@pytest.fixture
def rds(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def token() -> str:
    return new_token()


@pytest.fixture
def api_settings(tmp_path: Path, pg_url: str, redis_url: str, token: str) -> Settings:
    return Settings(
        home=tmp_path, database_url=pg_url, redis_url=redis_url, tool_token=token, profile="balanced"
    )


@pytest.fixture
def api(api_settings: Settings) -> Iterator[ServerThread]:
    with ServerThread(api_settings, ws_queue_size=64, access_log_flush_interval=0.1) as server:
        yield server


@pytest.fixture
async def client(api: ServerThread, token: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=api.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=15
    ) as http:
        yield http
