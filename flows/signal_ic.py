"""signal-ic: sync, then per-timestamp and daily IC, win rate and P&L contribution per signal type (docs/metrics.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from analytics.rollups import build_signal_ic
from analytics.warehouse import Warehouse
from flows import flow_run_settings
from flows.sync import run_logger, sync_postgres


def rollup_signal_ic(home: Path, *, as_of: datetime) -> dict[str, Any]:
    """Rebuild `signal_ic_periods`, `signal_ic` and `signal_summary`."""
    with Warehouse(home).writer() as conn:
        periods = build_signal_ic(conn, as_of=as_of)
    return {"ic_periods": periods}


@task(name="rollup-signal-ic", retries=2, retry_delay_seconds=5, cache_policy=NO_CACHE, persist_result=False)
def rollup_signal_ic_task(home: Path) -> dict[str, Any]:
    """Task: rebuild the signal IC rollups from the synced signals, bars and fills."""
    result = rollup_signal_ic(home, as_of=datetime.now(UTC))
    run_logger().info("signal IC over %d (signal type, timestamp) periods", result["ic_periods"])
    return result


@flow(name="signal-ic", description="Sync PostgreSQL → DuckDB, then IC, win rate and P&L per signal type.")
def signal_ic() -> dict[str, Any]:
    """Sync, then rebuild the signal rollups `/metrics/signals` serves."""
    settings = flow_run_settings()
    added = sync_postgres(settings.stores, settings.home_dir)
    result = rollup_signal_ic_task(settings.home_dir)
    return {"synced": added, **result}
