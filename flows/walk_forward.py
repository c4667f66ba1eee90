"""walk-forward: rolling train/test windows over a replay file; on each train window every point of a parameter grid
is backtested and the best (by `objective`) is then scored on the next, unseen window (docs/strategies.md).

Each trial is one Prefect task running `flows.backtest.run_backtest` in-process on its window (nothing written to
the live system of record). The tasks fan out on a task runner chosen per run: Dask (`prefect-dask`) when
`dask_address` or TRADEOS_DASK_ADDRESS names a scheduler, else local threads or processes. Results are ordered by
(fold, trial) — never by completion — so every runner gives the same tables. They go to `research_runs` /
`research_trials` in the analytics DuckDB and to `TRADEOS_HOME/reports/walk-forward-<run id>.html`.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from analytics.research import (
    FIGURE_NAMES,
    Fold,
    FoldResult,
    Params,
    ResearchError,
    ResearchRun,
    best_trial,
    check_objective,
    grid_points,
    parse_grid,
    plan_folds,
    record_research,
    score,
    write_report,
)
from analytics.warehouse import Warehouse
from flows import flow_run_settings
from flows.backtest import BacktestError, new_run_id, run_backtest
from flows.sync import run_logger
from live.backtest import FeedError, ReplayFeed, StrategyError, choose_strategy, load_replay
from live.settings import PROFILE_NAMES, Settings

if TYPE_CHECKING:
    from prefect.task_runners import TaskRunner

LocalRunner = Literal["threads", "processes"]
Figures = dict[str, float | int | Decimal]
REPORT_PREFIX = "walk-forward-"


@task(
    name="walk-forward-trial",
    task_run_name="fold {fold} {window} {label}",
    cache_policy=NO_CACHE,
    persist_result=False,
)
def run_trial(
    settings: Settings,
    data: str,
    *,
    strategy: str,
    params: Params,
    profile: str,
    start: datetime,
    end: datetime | None,
    fold: int,
    window: str,
    label: str,
) -> Figures:
    """One backtest of `params` on the window [start, end) of the file: its figures (picklable, for any runner)."""
    summary = run_backtest(
        settings,
        replay_file(Path(data)),
        strategy=strategy,
        params=params,
        profile=profile,
        write=False,
        start=start,
        end=end,
    ).summary
    return {name: getattr(summary, name) for name in FIGURE_NAMES}


@functools.lru_cache(maxsize=4)
def _loaded(path: Path, modified_ns: int, size: int) -> ReplayFeed:
    return load_replay(path)


def replay_file(path: Path) -> ReplayFeed:
    """The replay file, read once per process (and again only if it changes): a worker's trials share it. Trials
    get the file's path, not its bars, so a Dask worker on another machine reads its own copy."""
    stat = path.stat()
    return _loaded(path, stat.st_mtime_ns, stat.st_size)


def task_runner(
    dask_address: str | None, *, local: LocalRunner = "threads", max_workers: int | None = None
) -> tuple[TaskRunner[Any], str]:
    """The runner the trials fan out on, and how the run records it."""
    if dask_address:
        from prefect_dask.task_runners import DaskTaskRunner

        return DaskTaskRunner(address=dask_address), f"dask {dask_address}"
    workers = max_workers or os.cpu_count() or 1
    if local == "processes":
        from prefect.task_runners import ProcessPoolTaskRunner

        return ProcessPoolTaskRunner(max_workers=workers), f"processes ({workers})"
    from prefect.task_runners import ThreadPoolTaskRunner

    return ThreadPoolTaskRunner(max_workers=workers), f"threads ({workers})"


def _check(settings: Settings, *, strategy: str, grid: Sequence[Params], profile: str) -> None:
    """Every grid point builds the strategy, so a bad spec or parameter stops the run before any trial."""
    if profile not in PROFILE_NAMES:
        raise ResearchError(f"profile: unknown {profile!r}; valid: {', '.join(PROFILE_NAMES)}")
    for params in grid:
        try:
            choose_strategy(settings.engine, strategy, params).build(())
        except StrategyError as exc:
            raise ResearchError(f"{exc} (grid point {params})") from None


def _plan(data: Path, *, train_bars: int, test_bars: int, step_bars: int) -> list[Fold]:
    try:
        feed = replay_file(data)
    except (FeedError, OSError) as exc:
        raise ResearchError(f"data: {exc}") from None
    return plan_folds(
        feed.cross_sections, feed.timestamp_at, train=train_bars, test=test_bars, step=step_bars
    )


def _label(params: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in params.items())


def _figure(value: float) -> str:
    return f"{value:.4g}" if math.isfinite(value) else "undefined"


@flow(
    name="walk-forward",
    description="Rolling train/test windows over a replay file: grid search in-sample, score out-of-sample.",
)
def walk_forward(
    data: str,
    grid: str,
    train_bars: int,
    test_bars: int,
    step_bars: int | None = None,
    strategy: str = "builtin",
    objective: str = "sharpe_ratio",
    profile: str | None = None,
    dask_address: str | None = None,
    local_runner: LocalRunner = "threads",
    max_workers: int | None = None,
) -> dict[str, Any]:
    """Walk forward over `data`: windows of `train_bars` / `test_bars` timestamps, moved by `step_bars`
    (default `test_bars`); every point of `grid` (`name=v1,v2;other=...`) is tried on each train window."""
    settings = flow_run_settings()
    log = run_logger()
    started_at = datetime.now(UTC)
    run_id = new_run_id(started_at)
    path = Path(data).expanduser().resolve()
    profile_name = profile or settings.engine.profile
    axes = parse_grid(grid)
    points = grid_points(axes)
    check_objective(objective)
    step = step_bars or test_bars
    folds = _plan(path, train_bars=train_bars, test_bars=test_bars, step_bars=step)
    _check(settings, strategy=strategy, grid=points, profile=profile_name)
    runner, runner_name = task_runner(
        dask_address or settings.flows.dask_address, local=local_runner, max_workers=max_workers
    )
    log.info(
        "walk-forward %s: %d folds x %d trials of %s on %s, on %s",
        run_id,
        len(folds),
        len(points),
        strategy,
        path.name,
        runner_name,
    )
    common = {"settings": settings, "data": str(path), "strategy": strategy, "profile": profile_name}

    def submit(fold: Fold, params: Params, window: Literal["train", "test"]) -> Any:
        start, end = (
            (fold.train_start, fold.train_end) if window == "train" else (fold.test_start, fold.test_end)
        )
        return runner.submit(
            run_trial,
            parameters={
                **common,
                "params": params,
                "start": start,
                "end": end,
                "fold": fold.number,
                "window": window,
                "label": _label(params),
            },
        )

    results = []
    try:
        with runner:
            # Every train trial at once; then, fold by fold in order, the choice and its test run.
            trials = {
                (fold.number, k): submit(fold, params, "train")
                for fold in folds
                for k, params in enumerate(points)
            }
            chosen: dict[int, tuple[list[Figures], int, Any]] = {}
            for fold in folds:
                in_sample = [trials[fold.number, k].result() for k in range(len(points))]
                best = best_trial(in_sample, objective)
                log.info(
                    "fold %d/%d: train %s to %s, best %s (%s %s in-sample)",
                    fold.number,
                    len(folds),
                    fold.train_start.isoformat(),
                    fold.train_last.isoformat(),
                    _label(points[best]),
                    objective,
                    _figure(score(in_sample[best], objective)),
                )
                chosen[fold.number] = (in_sample, best, submit(fold, points[best], "test"))
            for fold in folds:
                in_sample, best, test = chosen[fold.number]
                out_of_sample = test.result()
                log.info(
                    "fold %d/%d: test %s to %s, %s %s out-of-sample against %s in-sample",
                    fold.number,
                    len(folds),
                    fold.test_start.isoformat(),
                    fold.test_last.isoformat(),
                    objective,
                    _figure(score(out_of_sample, objective)),
                    _figure(score(in_sample[best], objective)),
                )
                results.append(
                    FoldResult(
                        fold=fold,
                        params=points,
                        in_sample=in_sample,
                        chosen=best,
                        out_of_sample=out_of_sample,
                    )
                )
    except BacktestError as exc:  # a window or a parameter the backtest refused
        raise ResearchError(str(exc)) from None
    report = settings.reports_dir / f"{REPORT_PREFIX}{run_id}.html"
    run = ResearchRun(
        run_id=run_id,
        started_at=started_at,
        finished_at=datetime.now(UTC),
        data=str(path),
        strategy=strategy,
        profile=profile_name,
        objective=objective,
        grid=axes,
        train_bars=train_bars,
        test_bars=test_bars,
        step_bars=step,
        task_runner=runner_name,
        report=str(report),
        folds=results,
    )
    write_report(report, run, generated_at=run.finished_at)
    with Warehouse(settings.home_dir).writer() as conn:
        record_research(conn, run)
    log.info("walk-forward %s: wrote %s and the research tables", run_id, report)
    return {
        "run_id": run_id,
        "report": str(report),
        "folds": [
            {
                "fold": r.fold.number,
                "params": points[r.chosen],
                "in_sample": _json_number(score(r.in_sample[r.chosen], objective)),
                "out_of_sample": _json_number(score(r.out_of_sample, objective)),
            }
            for r in results
        ],
    }


def _json_number(value: float) -> float | None:
    return value if math.isfinite(value) else None
