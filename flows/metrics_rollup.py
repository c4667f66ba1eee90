"""metrics-rollup: sync, then daily performance, system metrics and the regime timeline (docs/metrics.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from analytics.rollups import build_performance, build_regimes, build_system_metrics
from analytics.warehouse import Warehouse
from flows import flow_run_settings
from flows.sync import run_logger, sync_postgres


def rollup_metrics(home: Path, *, annualization: int, as_of: datetime) -> dict[str, Any]:
    """Rebuild `daily_performance`, `performance_summary`, `closed_trades`, `system_metrics` and `regimes`."""
    with Warehouse(home).writer() as conn:
        performance = build_performance(conn, annualization=annualization, as_of=as_of)
        system = build_system_metrics(conn, as_of=as_of)
        spells = build_regimes(conn, as_of=as_of)
    return {
        "days": performance.days,
        "performance": performance.summary.as_json(),
        "system": system,
        "regimes": spells,
    }


@task(name="rollup-metrics", retries=2, retry_delay_seconds=5, cache_policy=NO_CACHE, persist_result=False)
def rollup_metrics_task(home: Path, annualization: int) -> dict[str, Any]:
    """Task: rebuild the performance and system rollups from the synced tables."""
    result = rollup_metrics(home, annualization=annualization, as_of=datetime.now(UTC))
    run_logger().info(
        "performance over %d days: %s; orders %s, rejected %s",
        result["days"],
        result["performance"],
        result["system"].get("orders_submitted"),
        result["system"].get("orders_rejected"),
    )
    return result


@flow(
    name="metrics-rollup", description="Sync PostgreSQL → DuckDB, then daily performance and system metrics."
)
def metrics_rollup() -> dict[str, Any]:
    """Sync, then rebuild the performance and system rollups the Metrics API serves."""
    settings = flow_run_settings()
    added = sync_postgres(settings.stores, settings.home_dir)
    result = rollup_metrics_task(settings.home_dir, settings.flows.annualization)
    return {"synced": added, **result}
