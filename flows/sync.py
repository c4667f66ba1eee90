"""The shared first step of every flow: bring new system-of-record rows into DuckDB and publish the file.

`metrics-rollup` and `signal-ic` run on the same five-minute schedule: the second to get the warehouse lock finds
the first one's sync moments old and uses it (`SHARED_SYNC_SECONDS`), so PostgreSQL is read once per round.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from analytics.warehouse import SyncOutcome, Warehouse
from live.settings import StoreSettings

# A flow's sync is skipped when another finished less than this long ago: long enough for the flows of one
# schedule round (which queue on the warehouse lock behind each other's sync and rollup), well under the 5-minute
# interval, so each round still reads PostgreSQL once.
SHARED_SYNC_SECONDS = 60.0


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


def database_url(stores: StoreSettings, home: Path) -> str:
    """The system of record's URL, to connect with: TRADEOS_DATABASE_URL, else the embedded server running under
    TRADEOS_HOME (`home`)."""
    if stores.database_url:
        return stores.database_url.get_secret_value()
    from live.stores.embedded import running_embedded_url

    url = running_embedded_url(home, "postgres")
    if not url:
        raise DatabaseNotConfiguredError(
            f"TRADEOS_DATABASE_URL is not set and no embedded PostgreSQL is running under {home}: "
            "start `tradeos up` or set TRADEOS_DATABASE_URL"
        )
    return str(url)


def sync(home: Path, url: str, *, full: bool = False) -> dict[str, int]:
    """Copy new rows from PostgreSQL into the warehouse and publish it, now; rows added per table."""
    return shared_sync(home, url, full=full, shared_within_seconds=0.0).rows_added


def shared_sync(home: Path, url: str, *, full: bool = False, shared_within_seconds: float) -> SyncOutcome:
    """Sync and publish, unless a sync finished less than `shared_within_seconds` ago (then use that one)."""
    outcome = Warehouse(home).sync(url, full=full, shared_within=timedelta(seconds=shared_within_seconds))
    log = run_logger()
    if outcome.shared_with is not None:
        log.info("PostgreSQL was synced at %s, moments ago: using that sync", outcome.shared_with.isoformat())
    else:
        added = outcome.rows_added
        log.info("synced %d new rows from PostgreSQL: %s", sum(added.values()), added)
    return outcome


@task(name="sync-postgres", retries=2, retry_delay_seconds=5, cache_policy=NO_CACHE, persist_result=False)
def sync_postgres(stores: StoreSettings, home: Path, full: bool = False) -> dict[str, int]:
    """Task: incremental, idempotent PostgreSQL → DuckDB copy, shared by flows that start together; rows added
    per table (none when it used a sync that had just run). The URL never becomes a recorded parameter: it
    travels as a `SecretStr` inside `stores` and is revealed here, to connect."""
    outcome = shared_sync(
        home, database_url(stores, home), full=full, shared_within_seconds=SHARED_SYNC_SECONDS
    )
    return outcome.rows_added
