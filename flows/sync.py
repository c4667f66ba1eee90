"""The shared first step of every flow: bring new system-of-record rows into DuckDB and publish the file."""

from __future__ import annotations

import logging
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from analytics.warehouse import Warehouse, sync_from_postgres
from live.settings import Settings, load_settings


class DatabaseNotConfiguredError(RuntimeError):
    """Neither TRADEOS_DATABASE_URL nor a running embedded PostgreSQL under TRADEOS_HOME."""


def run_logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    """Prefect's run logger inside a flow or task run, a plain logger when a task's function is called directly."""
    from prefect.exceptions import MissingContextError
    from prefect.logging import get_run_logger

    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger("tradeos.flows")


def database_url(settings: Settings) -> str:
    """The system of record's URL: TRADEOS_DATABASE_URL, else the embedded server running under TRADEOS_HOME."""
    if settings.database_url:
        return settings.database_url
    from live.stores.embedded import running_embedded_url

    url = running_embedded_url(settings.home_dir, "postgres")
    if not url:
        raise DatabaseNotConfiguredError(
            f"TRADEOS_DATABASE_URL is not set and no embedded PostgreSQL is running under {settings.home_dir}: "
            "start `tradeos up` or set TRADEOS_DATABASE_URL"
        )
    return str(url)


def sync(home: Path, url: str, *, full: bool = False) -> dict[str, int]:
    """Copy new rows from PostgreSQL into the warehouse and publish it; rows added per table."""
    with Warehouse(home).writer() as conn:
        added = sync_from_postgres(conn, url, full=full)
    run_logger().info("synced %d new rows from PostgreSQL: %s", sum(added.values()), added)
    return added


@task(name="sync-postgres", retries=2, retry_delay_seconds=5, cache_policy=NO_CACHE, persist_result=False)
def sync_postgres(full: bool = False) -> dict[str, int]:
    """Task: incremental, idempotent PostgreSQL → DuckDB copy (the URL never becomes a recorded parameter)."""
    settings = load_settings()
    return sync(settings.home_dir, database_url(settings), full=full)
