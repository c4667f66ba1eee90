"""`tradeos backtest --check-lookahead` (issue 11): a strategy that peeks at the next bar is caught, with the first
timestamp, symbol and both values; the built-in strategy passes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.research.backtest_support import PEEKING, backtest, sim_replay


@pytest.fixture(scope="module")
def half_day(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sim_replay(tmp_path_factory.mktemp("data") / "half_day.csv", days=0.5)


def test_a_strategy_reading_the_next_bar_is_caught_at_the_first_cut(tmp_path: Path, half_day: Path) -> None:
    peeker = ["--strategy", f"{PEEKING}:PeekingStrategy", "--param", f"data={half_day}"]

    done = backtest(tmp_path / "home", ["--data", str(half_day), "--check-lookahead", "--json", *peeker])

    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    assert report["clean"] is False
    assert len(report["differences"]) == len(report["cuts"]) == 4
    first = report["differences"][0]
    # The peeker's signal on the last bar of the first truncated copy is where it had a future to see.
    assert first["timestamp"] == first["cut_at"] == report["cuts"][0]
    assert first["kind"] == "signal peek"
    assert first["symbol"] == "AAPL"
    assert first["full"] in ("strength 1.0", "strength -1.0")
    assert first["truncated"] == "strength 0.0"
    assert not (tmp_path / "home" / "backtests").exists(), "the check writes no results"


def test_the_check_names_the_first_difference_in_one_line_a_human_reads(
    tmp_path: Path, half_day: Path
) -> None:
    peeker = ["--strategy", f"{PEEKING}:PeekingStrategy", "--param", f"data={half_day}"]

    done = backtest(tmp_path / "home", ["--data", str(half_day), "--check-lookahead", *peeker])

    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert lines[0].startswith("look-ahead check: FAILED")
    assert "AAPL signal peek: strength" in lines[1]
    assert "with the whole file, strength 0.0 with the file cut after" in lines[1]


def test_the_builtin_strategy_passes_the_lookahead_check(tmp_path: Path, half_day: Path) -> None:
    done = backtest(tmp_path / "home", ["--data", str(half_day), "--check-lookahead"])

    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("look-ahead check: clean")
