"""Real PostgreSQL and Redis for the suite: a fresh database and a private Redis DB index per test session."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
import redis

from tests.support import folder_for_embedded_home

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# Every process of one deployment seals the audit ledger with the same key (README, Verifying the audit ledger); the
# processes a test starts against one database (an engine, an API in the test's process, a standby engine) are one
# deployment, whatever TRADEOS_HOME each is given. tests/support.py `Service` passes it on; a test of the key file
# unsets it (`TRADEOS_AUDIT_KEY=""`).
os.environ.setdefault("TRADEOS_AUDIT_KEY", f"tradeos-tests-{uuid.uuid4().hex}")

ADMIN_URL = os.environ.get("TRADEOS_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_BASE = os.environ.get("TRADEOS_TEST_REDIS_URL", "redis://127.0.0.1:6379")


def _with_db(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    return ADMIN_URL


class ScratchDatabases:
    """Each test's empty database is made while the test before it runs (CREATE DATABASE: 0.2-1 s on a busy
    server). A used one is dropped at once, before the next is made: dropping discards the dropped database's
    pages, but the checkpoint every DROP DATABASE waits for would write out those of any other live database."""

    def __init__(self, admin_url: str) -> None:
        self._admin_url = admin_url
        self._maker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scratch-database")
        self._next: Future[str] | None = self._maker.submit(self._create)

    def _create(self) -> str:
        name = f"tradeos_t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self._admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return _with_db(self._admin_url, name)

    def _drop(self, url: str) -> None:
        with psycopg.connect(self._admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')

    def take(self) -> str:
        """A database nobody has used: the one made in the background, if there is one."""
        made, self._next = self._next, None
        return made.result(timeout=120) if made is not None else self._create()

    def give_back(self, url: str) -> None:
        """Drops `url`, then starts making the next test's database."""
        try:
            self._drop(url)
        finally:
            if self._next is None:
                self._next = self._maker.submit(self._create)

    def close(self) -> None:
        self._maker.shutdown(wait=True)
        if self._next is not None and self._next.exception() is None:
            self._drop(self._next.result())


@pytest.fixture(scope="session")
def scratch_databases(pg_admin_url: str) -> Iterator[ScratchDatabases]:
    databases = ScratchDatabases(pg_admin_url)
    try:
        yield databases
    finally:
        databases.close()


@pytest.fixture
def database_url(scratch_databases: ScratchDatabases) -> Iterator[str]:
    """A brand-new, empty PostgreSQL database for one test, dropped afterwards."""
    url = scratch_databases.take()
    try:
        yield url
    finally:
        scratch_databases.give_back(url)


@pytest.fixture
def embedded_home() -> Iterator[Path]:
    """A TRADEOS_HOME (not yet created) for a `tradeos up` on its embedded stores (tests/support.py
    `folder_for_embedded_home` says why it is not under tmp_path)."""
    with folder_for_embedded_home() as folder:
        yield folder / "home"


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


# Session fixtures too costly to start once per xdist worker: every module that uses one runs on the same worker.
WORKER_SHARED_FIXTURES = ("prefect_harness",)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under `pytest -n N --dist loadgroup` (make test): one xdist group per test file, so its module fixtures
    (a `tradeos up`, a Prefect server, a browser) start once, and one group for the files that share a costly
    session fixture (WORKER_SHARED_FIXTURES)."""
    if not config.pluginmanager.hasplugin("xdist"):
        return
    sharing: dict[str, str] = {}
    for item in items:
        for name in WORKER_SHARED_FIXTURES:
            if name in getattr(item, "fixturenames", ()):
                sharing[item.nodeid.split("::")[0]] = name
    for item in items:
        module = item.nodeid.split("::")[0]
        item.add_marker(pytest.mark.xdist_group(sharing.get(module, module)))
