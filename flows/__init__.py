"""Prefect flows over `analytics/`: one module per flow, named as in CONTRACT.md §1.

Importing this package does not import Prefect, so a caller can point PREFECT_HOME under TRADEOS_HOME first
(`prefect_environment`) — Prefect reads its settings once, at import.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prefect import Flow

    from live.settings import Settings

# Contract name -> (module, flow function).
FLOWS: dict[str, tuple[str, str]] = {
    "metrics-rollup": ("flows.metrics_rollup", "metrics_rollup"),
    "signal-ic": ("flows.signal_ic", "signal_ic"),
    "regime-retrain": ("flows.regime_retrain", "regime_retrain"),
    "daily-report": ("flows.daily_report", "daily_report"),
}
FLOW_NAMES: tuple[str, ...] = tuple(FLOWS)

# One schedule per deployment (UTC); prefect.yaml declares the same (a test keeps them equal).
SCHEDULES: dict[str, dict[str, int | str]] = {
    "metrics-rollup": {"interval": 300},
    "signal-ic": {"interval": 300},
    "regime-retrain": {"cron": "30 0 * * *"},
    "daily-report": {"cron": "55 23 * * *"},
}
WORK_POOL = "tradeos"


def prefect_environment(settings: Settings) -> dict[str, str]:
    """Environment for Prefect and for flow-run subprocesses: state under TRADEOS_HOME, no telemetry."""
    env = {
        "TRADEOS_HOME": str(settings.home_dir),
        "PREFECT_HOME": str(settings.home_dir / "prefect"),
        "DO_NOT_TRACK": "1",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    if settings.database_url:
        env["TRADEOS_DATABASE_URL"] = settings.database_url
    return env


def apply_prefect_environment(settings: Settings) -> None:
    """Export `prefect_environment` into this process; an explicit PREFECT_HOME already set is kept."""
    for key, value in prefect_environment(settings).items():
        if key == "PREFECT_HOME" and os.environ.get(key):
            continue
        os.environ[key] = value
    (settings.home_dir / "prefect").mkdir(parents=True, exist_ok=True)


def get_flow(name: str) -> Flow[Any, Any]:
    """The flow object registered under a contract name; KeyError names the valid ones."""
    if name not in FLOWS:
        raise KeyError(f"unknown flow {name!r}; valid flows: {', '.join(FLOW_NAMES)}")
    module, attribute = FLOWS[name]
    flow: Flow[Any, Any] = getattr(importlib.import_module(module), attribute)
    return flow


def registry() -> dict[str, Flow[Any, Any]]:
    """Every flow by contract name (imports Prefect)."""
    return {name: get_flow(name) for name in FLOW_NAMES}
