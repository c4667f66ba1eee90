"""daily-report: sync, then write `$TRADEOS_HOME/reports/<date>.html` (README, Reports)."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from analytics.report import build_report, latest_day
from analytics.warehouse import Warehouse
from flows import flow_run_settings
from flows.sync import run_logger, sync_postgres


def write_report(
    home: Path, reports_dir: Path, *, through: date | None, annualization: int, now: datetime
) -> Path:
    """Render the report through `through` (default: the last day with data, else today) and write it atomically."""
    with Warehouse(home).reader() as conn:
        day = through or latest_day(conn) or now.astimezone(UTC).date()
        html = build_report(conn, through=day, annualization=annualization, generated_at=now)
    reports_dir.mkdir(parents=True, exist_ok=True)
    path = reports_dir / f"{day.isoformat()}.html"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(html, encoding="utf-8")
    os.replace(tmp, path)
    return path


@task(name="write-report", retries=2, retry_delay_seconds=5, cache_policy=NO_CACHE, persist_result=False)
def write_report_task(home: Path, reports_dir: Path, annualization: int, day: str | None) -> str:
    """Task: render and write the HTML report."""
    path = write_report(
        home,
        reports_dir,
        through=date.fromisoformat(day) if day else None,
        annualization=annualization,
        now=datetime.now(UTC),
    )
    run_logger().info("wrote %s", path)
    return str(path)


@flow(name="daily-report", description="Sync PostgreSQL → DuckDB, then write the self-contained HTML report.")
def daily_report(day: str | None = None) -> dict[str, Any]:
    """Sync, then write `reports/<day>.html` (default day: the last UTC day with equity data)."""
    settings = flow_run_settings()
    added = sync_postgres(settings.stores, settings.home_dir)
    path = write_report_task(settings.home_dir, settings.reports_dir, settings.flows.annualization, day)
    return {"synced": added, "report": path}
