"""The engine's regime model hot-load (live/service/control.py `ModelWatch`): the model loaded at start-up is not
swapped in again by the first housekeeping pass (a swap adopts the next label at once, so the run's regimes would
depend on when housekeeping first looked); a newly promoted one is."""

from __future__ import annotations

import os
from pathlib import Path

from live.assembly import build_engine
from live.regime import RuleBasedClassifier
from live.service.book import Book
from live.service.control import ModelWatch
from live.settings import Settings


class _Named(RuleBasedClassifier):
    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name


def _promote(models: Path, name: str, mtime: float) -> None:
    models.mkdir(parents=True, exist_ok=True)
    pointer = models / "current.json"
    pointer.write_text(f'{{"name": "{name}", "path": "{name}"}}')
    os.utime(pointer, (mtime, mtime))


def _loader(models: Path) -> _Named:
    return _Named((models / "current.json").read_text().split('"')[3])


def test_the_model_loaded_at_start_up_is_not_swapped_in_again_and_a_new_one_is(tmp_path: Path) -> None:
    models = tmp_path / "models"
    _promote(models, "gmm-1", 1_000_000)
    watch = ModelWatch(loader=_loader, models_dir=models)
    classifier = watch.load()
    assert classifier is not None
    engine = build_engine(Settings(home=tmp_path).engine, symbols=("AAPL",), classifier=classifier)
    book = Book(engine)

    watch.maybe_load(book)

    assert engine.regime.classifier is classifier
    _promote(models, "gmm-2", 2_000_000)
    watch.maybe_load(book)
    assert engine.regime.classifier.name == "gmm-2"
