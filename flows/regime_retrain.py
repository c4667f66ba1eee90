"""regime-retrain: sync, train a mixture model on recent bars, save it under models/, promote it if it validates.

The engine polls `models/current.json` and swaps classifiers without a restart (`load_promoted_classifier`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from analytics.regime_model import load_window, record_model, retrain
from analytics.warehouse import Warehouse
from flows import flow_run_settings
from flows.sync import run_logger, sync_postgres

DEFAULT_WINDOW_DAYS = 30.0


def retrain_regime_model(
    home: Path, models_dir: Path, *, window_days: float, now: datetime
) -> dict[str, Any]:
    """Train on the last `window_days` of synced bars, save and maybe promote, and add a registry row."""
    warehouse = Warehouse(home)
    with warehouse.reader() as conn:
        bars = load_window(conn, window_days=window_days)
    outcome = retrain(bars, models_dir, created_at=now)
    with warehouse.writer() as conn:
        record_model(conn, outcome)
    return {
        "name": outcome.name,
        "promoted": outcome.promoted,
        "reason": outcome.result.reason,
        "validation_score": outcome.result.validation_score,
        "n_train": outcome.result.n_train,
        "label_counts": outcome.result.label_counts,
    }


@task(
    name="retrain-regime-model",
    retries=1,
    retry_delay_seconds=10,
    cache_policy=NO_CACHE,
    persist_result=False,
)
def retrain_task(home: Path, models_dir: Path, window_days: float) -> dict[str, Any]:
    """Task: train, validate, save, promote."""
    result = retrain_regime_model(home, models_dir, window_days=window_days, now=datetime.now(UTC))
    log = run_logger()
    if result["promoted"]:
        log.info("promoted regime model %s (validation %.3f)", result["name"], result["validation_score"])
    else:
        log.warning("regime model %s not promoted: %s", result["name"], result["reason"])
    return result


@flow(
    name="regime-retrain", description="Retrain the regime model on recent bars; promote it if it validates."
)
def regime_retrain(window_days: float = DEFAULT_WINDOW_DAYS) -> dict[str, Any]:
    """Sync, then retrain the regime classifier."""
    settings = flow_run_settings()
    added = sync_postgres(settings.stores, settings.home_dir)
    result = retrain_task(settings.home_dir, settings.models_dir, window_days)
    return {"synced": added, **result}
