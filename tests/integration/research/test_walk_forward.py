"""The `walk-forward` flow (issue 11, research flows): rolling train/test windows over a replay file, the in-sample
best of a parameter grid scored on the next, unseen window; the same run on a Dask cluster of worker processes as on
threads; `research_runs` / `research_trials` in the analytics DuckDB and an HTML report."""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from analytics.research import ResearchError
from api.cli_flows import register, run
from flows.backtest import run_backtest
from flows.walk_forward import walk_forward
from live.settings import Settings
from tests.integration.research.backtest_support import sim_replay

SMA = Path(__file__).resolve().with_name("sma_strategy.py")
SPEC = f"{SMA}:SmaCrossover"
GRID = "fast=5,10;slow=30,60"
TRAIN, TEST, STEP = 300, 120, 150  # timestamps of a half-day file of minute bars: 720
SYMBOLS = 8  # the sim feed's


@dataclass(frozen=True)
class WalkForwardRuns:
    home: Path
    data: Path
    threads: str  # run ids
    dask: str


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="tradeos")
    register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(list(argv))


def _rows(home: Path, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(home / "analytics.duckdb"), read_only=True) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        return conn.execute(sql, params or []).fetchall()


def _trials(home: Path, run_id: str) -> list[tuple[Any, ...]]:
    """Every column of a run's trials but the run id, ordered by (fold, trial)."""
    columns = [
        name
        for (name,) in _rows(
            home,
            "SELECT column_name FROM duckdb_columns() WHERE table_name = 'research_trials' AND column_name != "
            "'run_id' ORDER BY column_index",
        )
    ]
    return _rows(
        home,
        f"SELECT {', '.join(columns)} FROM research_trials WHERE run_id = ? ORDER BY fold, trial",
        [run_id],
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, prefect_harness: None) -> Iterator[WalkForwardRuns]:
    """One run through `tradeos flows run walk-forward` on threads, then the same on a local Dask cluster of two
    worker processes named by TRADEOS_DASK_ADDRESS."""
    from distributed import LocalCluster

    root = tmp_path_factory.mktemp("walk-forward")
    data = sim_replay(root / "half_day.csv", days=0.5)
    home = root / "home"
    home.mkdir()
    params = [
        f"data={data}",
        f"grid={GRID}",
        f"train_bars={TRAIN}",
        f"test_bars={TEST}",
        f"step_bars={STEP}",
        f"strategy={SPEC}",
        "objective=total_return",
    ]
    with pytest.MonkeyPatch.context() as patch:
        for name in ("PREFECT_API_AUTH_STRING", "PREFECT_SERVER_API_AUTH_STRING", "TRADEOS_DASK_ADDRESS"):
            patch.setenv(name, "")  # recorded, so what `flows run` exports is removed after the module
            patch.delenv(name)
        patch.setenv("TRADEOS_HOME", str(home))
        settings = Settings(home=home, database_url=None)
        argv = ["flows", "run", "walk-forward"] + [arg for p in params for arg in ("--param", p)]
        assert run(_args(*argv), settings) == 0
        [(threads,)] = _rows(home, "SELECT run_id FROM research_runs")
        with LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster:
            patch.setenv("TRADEOS_DASK_ADDRESS", cluster.scheduler_address)
            outcome = walk_forward(
                data=str(data),
                grid=GRID,
                train_bars=TRAIN,
                test_bars=TEST,
                step_bars=STEP,
                strategy=SPEC,
                objective="total_return",
            )
        yield WalkForwardRuns(home=home, data=data, threads=threads, dask=outcome["run_id"])


def test_a_run_on_a_dask_cluster_of_processes_equals_the_run_on_threads(runs: WalkForwardRuns) -> None:
    runners = dict(_rows(runs.home, "SELECT run_id, task_runner FROM research_runs"))
    assert runners[runs.threads].startswith("threads")
    assert runners[runs.dask].startswith("dask tcp://")

    on_threads, on_dask = _trials(runs.home, runs.threads), _trials(runs.home, runs.dask)

    assert len(on_threads) == 3 * 4  # (720 - 300 - 120) // 150 + 1 folds x a 2 x 2 grid
    assert on_dask == on_threads


def test_out_of_sample_windows_follow_their_train_windows_and_never_overlap_them(
    runs: WalkForwardRuns,
) -> None:
    folds = _rows(
        runs.home,
        "SELECT DISTINCT fold, train_start, train_end, test_start, test_end, is_bars, oos_bars"
        " FROM research_trials WHERE run_id = ? AND chosen ORDER BY fold",
        [runs.threads],
    )
    minute = 60
    end_of_file = folds[0][1] + timedelta(minutes=720)
    for fold, train_start, train_end, test_start, test_end, is_bars, oos_bars in folds:
        test_end = test_end or end_of_file  # null: the window runs to the end of the file
        assert test_start >= train_end > train_start
        assert (train_end - train_start).total_seconds() == TRAIN * minute
        assert (test_end - test_start).total_seconds() == TEST * minute
        # What was traded is exactly the window: every symbol's bars in it, none outside.
        assert is_bars == TRAIN * SYMBOLS, fold
        assert oos_bars == TEST * SYMBOLS, fold
    starts = [row[1] for row in folds]
    assert [(b - a).total_seconds() for a, b in zip(starts, starts[1:], strict=False)] == [STEP * minute] * 2


def test_each_fold_chooses_the_in_sample_best_and_its_figures_are_a_backtest_of_the_window(
    runs: WalkForwardRuns,
) -> None:
    rows = _rows(
        runs.home,
        "SELECT fold, params, chosen, is_objective, is_total_return, train_start, train_end"
        " FROM research_trials WHERE run_id = ? ORDER BY fold, trial",
        [runs.threads],
    )
    for fold in {row[0] for row in rows}:
        trials = [row for row in rows if row[0] == fold]
        [chosen] = [row for row in trials if row[2]]
        assert chosen[3] == max(row[3] for row in trials)
        assert len({row[3] for row in trials}) > 1  # the grid points really differ
    # The first fold again, trial by trial, with the backtest itself.
    settings = Settings(home=runs.home, database_url=None)
    for _, params, _, objective, total_return, start, end in [row for row in rows if row[0] == 1]:
        summary = run_backtest(
            settings, runs.data, strategy=SPEC, params=json.loads(params), write=False, start=start, end=end
        ).summary
        assert summary.total_return == total_return == objective


def test_the_tables_are_documented_and_the_report_puts_in_and_out_of_sample_side_by_side(
    runs: WalkForwardRuns,
) -> None:
    [(folds, trials, objective, report)] = _rows(
        runs.home,
        "SELECT folds, trials, objective, report FROM research_runs WHERE run_id = ?",
        [runs.threads],
    )
    assert (folds, trials, objective) == (3, 4, "total_return")
    comments = _rows(
        runs.home,
        "SELECT table_name, column_name, comment FROM duckdb_columns()"
        " WHERE table_name IN ('research_runs', 'research_trials')",
    )
    assert comments
    assert [(t, c) for t, c, comment in comments if not comment] == []
    assert Path(report) == runs.home / "reports" / f"walk-forward-{runs.threads}.html"
    html = Path(report).read_text(encoding="utf-8")
    assert "in-sample (train)" in html
    assert "out-of-sample (test)" in html
    chosen = _rows(
        runs.home,
        "SELECT fold, params, oos_total_return FROM research_trials WHERE run_id = ? AND chosen ORDER BY fold",
        [runs.threads],
    )
    for fold, params, oos_return in chosen:
        label = ", ".join(f"{k}={v}" for k, v in json.loads(params).items())
        assert f"<tr><td>{fold}</td>" in html
        assert label in html
        assert math.isfinite(oos_return)
        assert f"{oos_return * 100:.2f} %" in html


@pytest.mark.usefixtures("prefect_harness")
@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"grid": ""}, "grid: empty; give at least one parameter with values"),
        ({"grid": "fast="}, "grid: parameter 'fast' has no values"),
        ({"train_bars": 600, "test_bars": 121}, "train_bars + test_bars: 600 + 121 timestamps do not fit"),
        ({"strategy": "no-such-strategy"}, "--strategy: unknown 'no-such-strategy'"),
        ({"grid": "fast=60;slow=30"}, "fast (60) must be positive and below slow (30)"),
        ({"objective": "luck"}, "objective: unknown 'luck'; valid: sharpe_ratio"),
        ({"data": "/nonexistent/bars.csv"}, "data: "),
    ],
)
def test_bad_parameters_stop_the_run_with_one_line_before_any_trial(
    change: dict[str, Any],
    message: str,
    runs: WalkForwardRuns,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRADEOS_HOME", str(tmp_path))
    parameters: dict[str, Any] = {
        "data": str(runs.data),
        "grid": GRID,
        "train_bars": TRAIN,
        "test_bars": TEST,
        "strategy": SPEC,
        **change,
    }

    with pytest.raises(ResearchError) as raised:
        walk_forward(**parameters)

    assert message in str(raised.value)
    assert len(str(raised.value).splitlines()) == 1
    assert not (tmp_path / "analytics.duckdb").exists()
    assert not (tmp_path / "reports").exists()


@pytest.mark.usefixtures("prefect_harness")
def test_flows_run_reports_a_bad_parameter_in_one_line(
    runs: WalkForwardRuns, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("PREFECT_API_AUTH_STRING", "PREFECT_SERVER_API_AUTH_STRING", "TRADEOS_HOME"):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    argv = ["flows", "run", "walk-forward", "--param", f"data={runs.data}", "--param", "grid="]
    argv += ["--param", f"train_bars={TRAIN}", "--param", f"test_bars={TEST}", "--param", f"strategy={SPEC}"]

    code = run(_args(*argv), Settings(home=tmp_path, database_url=None))

    err = capsys.readouterr().err.strip()
    assert code != 0
    assert len(err.splitlines()) == 1, err
    assert err.startswith("tradeos flows run walk-forward: failed: grid: empty"), err
