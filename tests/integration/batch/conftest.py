"""Fixtures for the batch side: a realistic system of record in a fresh PostgreSQL database and a TRADEOS_HOME
(Prefect's test harness: tests/integration/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from batch_records import SystemOfRecord, apply_schema, build_system_of_record, write_system_of_record

from live.settings import Settings


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
