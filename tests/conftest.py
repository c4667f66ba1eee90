"""Real PostgreSQL and Redis for the suite: a fresh database and a private Redis DB index per test session."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest
import redis

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

ADMIN_URL = os.environ.get("TRADEOS_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_BASE = os.environ.get("TRADEOS_TEST_REDIS_URL", "redis://127.0.0.1:6379")


def _with_db(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    return ADMIN_URL


@pytest.fixture
def database_url(pg_admin_url: str) -> Iterator[str]:
    """A brand-new, empty PostgreSQL database for one test, dropped afterwards."""
    name = f"tradeos_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_db(pg_admin_url, name)
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def redis_db_index() -> Iterator[int]:
    """Claims a Redis DB index (1..15) for this session so parallel sessions do not share keys."""
    admin = redis.Redis.from_url(f"{REDIS_BASE}/0")
    token = uuid.uuid4().hex
    for index in range(1, 16):
        if admin.set(f"tradeos:test_claim:{index}", token, nx=True, ex=3600):
            try:
                yield index
            finally:
                if admin.get(f"tradeos:test_claim:{index}") == token.encode():
                    admin.delete(f"tradeos:test_claim:{index}")
                admin.close()
            return
    admin.close()
    raise RuntimeError("no free Redis DB index (1..15) for the test session")


@pytest.fixture
def redis_url(redis_db_index: int) -> Iterator[str]:
    """A Redis URL whose DB index is empty at the start of the test."""
    url = f"{REDIS_BASE}/{redis_db_index}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()
    yield url
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()
