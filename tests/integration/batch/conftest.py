"""Fixtures for the batch side: a realistic system of record in a fresh PostgreSQL database, a TRADEOS_HOME,
and one Prefect test harness for the session."""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# Prefect reads its settings once, at import: its state goes to a private directory before anything imports it.
if "PREFECT_HOME" not in os.environ:
    _prefect_home = tempfile.mkdtemp(prefix="tradeos-test-prefect-")
    os.environ["PREFECT_HOME"] = _prefect_home
    atexit.register(functools.partial(shutil.rmtree, _prefect_home, ignore_errors=True))
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

from batch_records import SystemOfRecord, apply_schema, build_system_of_record, write_system_of_record  # noqa: E402

from live.settings import Settings  # noqa: E402


@pytest.fixture(scope="session")
def system_of_record() -> SystemOfRecord:
    return build_system_of_record()


@pytest.fixture
def loaded_database(database_url: str, system_of_record: SystemOfRecord) -> str:
    """A fresh database with the schema and the whole system of record."""
    apply_schema(database_url)
    write_system_of_record(database_url, system_of_record)
    return database_url


@pytest.fixture
def tradeos_home(tmp_path: Path) -> Path:
    home = tmp_path / "tradeos-home"
    home.mkdir()
    return home


@pytest.fixture
def settings(tradeos_home: Path, loaded_database: str) -> Settings:
    return Settings(home=tradeos_home, database_url=loaded_database, tool_token=None)


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One Prefect test API for the session (its start-up costs several seconds)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
