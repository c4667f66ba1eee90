"""Real PostgreSQL and Redis for the suite: a fresh database and a private Redis DB index per test session."""

from __future__ import annotations

import os
import queue
import threading
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


class ScratchDatabases:
    """Empty databases made one ahead and used ones dropped on a background thread: CREATE and DROP DATABASE each
    wait for a checkpoint on the shared server (0.2-3 s on a busy machine), and no test needs to wait for them."""

    def __init__(self, admin_url: str) -> None:
        self._admin_url = admin_url
        self._jobs: queue.SimpleQueue[tuple[str, str] | None] = queue.SimpleQueue()
        self._ready: queue.SimpleQueue[str | BaseException] = queue.SimpleQueue()
        self._errors: list[BaseException] = []
        self._thread = threading.Thread(target=self._work, name="scratch-databases", daemon=True)
        self._thread.start()
        self._jobs.put(("create", self._new_name()))

    @staticmethod
    def _new_name() -> str:
        return f"tradeos_t_{uuid.uuid4().hex[:12]}"

    def _work(self) -> None:
        try:
            with psycopg.connect(self._admin_url, autocommit=True) as conn:
                while (job := self._jobs.get()) is not None:
                    action, name = job
                    try:
                        if action == "create":
                            conn.execute(f'CREATE DATABASE "{name}"')
                        else:
                            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                    except psycopg.Error as exc:
                        (self._ready.put if action == "create" else self._errors.append)(exc)
                    else:
                        if action == "create":
                            self._ready.put(name)
        except psycopg.Error as exc:
            # No admin connection: the waiting test (and every later one) fails with why.
            self._errors.append(exc)
            self._ready.put(exc)

    def take(self) -> str:
        """The URL of a database nobody has used; the next one is made meanwhile."""
        self._jobs.put(("create", self._new_name()))
        made = self._ready.get(timeout=120)
        if isinstance(made, BaseException):
            if not self._thread.is_alive():  # no admin connection: every later test fails at once, with why
                self._ready.put(made)
            raise made
        return _with_db(self._admin_url, made)

    def give_back(self, url: str) -> None:
        self._jobs.put(("drop", url.rsplit("/", 1)[1]))

    def close(self) -> None:
        """Drops the spare and waits for every drop; a drop that failed fails the session here."""
        self._jobs.put(None)
        self._thread.join(timeout=300)
        while not self._ready.empty():
            spare = self._ready.get()
            if isinstance(spare, str):
                with psycopg.connect(self._admin_url, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{spare}" WITH (FORCE)')
        if self._errors:
            raise RuntimeError(f"test databases: {len(self._errors)} error(s), the first: {self._errors[0]}")


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
