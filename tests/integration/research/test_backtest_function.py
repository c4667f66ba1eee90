"""`flows.backtest.run_backtest` as research code calls it: in-process, figures only, on a window of a file loaded
once; the same bars give the same figures whichever way they come."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime
from pathlib import Path

import pytest

from flows.backtest import BacktestError, run_backtest
from live.backtest import load_replay
from live.settings import Settings
from tests.integration.research.backtest_support import sim_replay

RUN_ONLY = ("run_id", "data", "seconds")


def _figures(result) -> dict:
    return {k: v for k, v in result.summary.as_json().items() if k not in RUN_ONLY}


def test_a_window_of_a_loaded_file_gives_the_figures_of_the_same_bars_in_a_file_of_their_own(
    tmp_path: Path,
) -> None:
    data = sim_replay(tmp_path / "day.csv", days=1)
    settings = Settings(home=tmp_path / "home")
    start, end = datetime(2026, 1, 5, 6, tzinfo=UTC), datetime(2026, 1, 5, 20, tzinfo=UTC)
    window = load_replay(data).window(start, end)
    own_file = window.write_head(tmp_path / "window.csv", cross_sections=window.cross_sections)

    windowed = run_backtest(
        settings, pickle.loads(pickle.dumps(load_replay(data))), start=start, end=end, write=False
    )
    alone = run_backtest(settings, own_file, write=False)

    assert windowed.out is None
    assert windowed.results is None
    assert not (tmp_path / "home").exists(), "figures only: nothing written"
    assert _figures(windowed) == _figures(alone)
    assert windowed.summary.bars == 14 * 60 * 8
    assert windowed.summary.first_bar == start
    assert windowed.summary.fills > 0


def test_a_window_without_bars_is_refused(tmp_path: Path) -> None:
    data = sim_replay(tmp_path / "day.csv", days=0.1)

    with pytest.raises(BacktestError, match="no bar in the window"):
        run_backtest(
            Settings(home=tmp_path / "home"), data, start=datetime(2027, 1, 1, tzinfo=UTC), write=False
        )
