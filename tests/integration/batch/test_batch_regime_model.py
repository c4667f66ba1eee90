"""The regime model: stable labels, validated promotion, a JSON artifact the engine can load and use."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from analytics.regime_model import (
    CURRENT_POINTER,
    GaussianRegimeClassifier,
    TrainingConfig,
    feature_matrix,
    label_components,
    load_promoted_classifier,
    promoted_model_name,
)
from analytics.warehouse import Warehouse
from flows.regime_retrain import retrain_regime_model
from flows.sync import sync
from live.domain import REGIMES
from live.regime import FEATURE_NAMES, RegimeTracker

FIRST = datetime(2026, 1, 9, 0, 30, tzinfo=UTC)
SECOND = datetime(2026, 1, 10, 0, 30, tzinfo=UTC)


@pytest.fixture
def synced_home(loaded_database: str, tradeos_home: Path) -> Path:
    sync(tradeos_home, loaded_database)
    return tradeos_home


def _features(home: Path) -> np.ndarray:
    from analytics.regime_model import load_window

    with Warehouse(home).reader() as conn:
        _, x = feature_matrix(load_window(conn, window_days=30))
    return x


def test_retraining_twice_on_the_same_data_gives_the_same_labels(synced_home: Path) -> None:
    models = synced_home / "models"
    first = retrain_regime_model(synced_home, models, window_days=30, now=FIRST)
    second = retrain_regime_model(synced_home, models, window_days=30, now=SECOND)
    assert first["promoted"], first["reason"]
    assert second["promoted"], second["reason"]
    x = _features(synced_home)
    one = GaussianRegimeClassifier.from_json(json.loads((models / first["name"] / "model.json").read_text()))
    two = GaussianRegimeClassifier.from_json(json.loads((models / second["name"] / "model.json").read_text()))

    assert one.classify_many(x) == two.classify_many(x)
    assert len(set(one.classify_many(x))) >= 3
    assert promoted_model_name(models) == second["name"] == "gmm-20260110T003000Z"


def test_labels_follow_the_components_shape_not_their_index() -> None:
    rng = np.random.default_rng(5)
    means = rng.normal(size=(len(REGIMES), len(FEATURE_NAMES)))
    labels = label_components(means, FEATURE_NAMES)
    order = rng.permutation(len(REGIMES))

    assert sorted(labels) == sorted(REGIMES)
    assert label_components(means[order], FEATURE_NAMES) == [labels[i] for i in order]
    vol = means[:, FEATURE_NAMES.index("vol_ratio")]
    assert labels[int(np.argmin(vol))] == "low_volatility_compression"
    loudest = set(np.argsort(vol)[-2:].tolist())
    assert {labels[i] for i in loudest} == {"crisis", "high_volatility_breakout"}


def test_the_promoted_model_loads_and_classifies_live_features(synced_home: Path) -> None:
    models = synced_home / "models"
    assert load_promoted_classifier(models) is None
    result = retrain_regime_model(synced_home, models, window_days=30, now=FIRST)

    classifier = load_promoted_classifier(models)

    assert classifier is not None
    assert classifier.name == result["name"]
    tracker = RegimeTracker(classifier, confirm_bars=1)
    from analytics.regime_model import bar_batches, load_window

    with Warehouse(synced_home).reader() as conn:
        batches = bar_batches(load_window(conn, window_days=30))
    changes = [c for batch in batches if (c := tracker.update(batch[0].timestamp, batch)) is not None]
    assert changes
    assert all(c.model == result["name"] and c.current in REGIMES for c in changes)
    # The artifact is plain JSON: nothing to unpickle.
    artifact = models / result["name"]
    assert sorted(p.name for p in artifact.iterdir()) == ["metadata.json", "model.json"]
    metadata = json.loads((artifact / "metadata.json").read_text())
    assert metadata["features"] == list(FEATURE_NAMES)
    assert metadata["validated"] is True
    assert metadata["training_start"].endswith("Z")
    assert metadata["created_at"] == "2026-01-09T00:30:00Z"
    assert isinstance(metadata["validation_score"], float)


def test_a_model_that_does_not_validate_is_saved_but_not_promoted(synced_home: Path) -> None:
    models = synced_home / "models"
    good = retrain_regime_model(synced_home, models, window_days=30, now=FIRST)
    from analytics.regime_model import load_window, retrain

    with Warehouse(synced_home).reader() as conn:
        bars = load_window(conn, window_days=30)
    strict = TrainingConfig(min_persistence=1.01)

    outcome = retrain(bars, models, created_at=SECOND, config=strict)

    assert not outcome.promoted
    assert "flicker" in outcome.result.reason
    assert (models / outcome.name / "model.json").exists()
    assert json.loads((models / CURRENT_POINTER).read_text())["name"] == good["name"]


def test_too_little_data_promotes_nothing(synced_home: Path) -> None:
    models = synced_home / "models"
    result = retrain_regime_model(synced_home, models, window_days=0.1, now=FIRST)
    assert not result["promoted"]
    assert "too little data" in result["reason"]
    assert load_promoted_classifier(models) is None


def test_the_registry_table_lists_every_retraining(synced_home: Path) -> None:
    models = synced_home / "models"
    retrain_regime_model(synced_home, models, window_days=30, now=FIRST)
    retrain_regime_model(synced_home, models, window_days=0.1, now=SECOND)
    with Warehouse(synced_home).reader() as conn:
        rows = conn.execute(
            "SELECT name, promoted, validated FROM regime_models ORDER BY created_at"
        ).fetchall()
    assert rows == [("gmm-20260109T003000Z", True, True), ("gmm-20260110T003000Z", False, False)]
