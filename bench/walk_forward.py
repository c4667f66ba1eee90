"""Walk-forward wall time: the `walk-forward` flow, 64 trials x 4 folds, on the 30-day x 8-symbol sim (345,600 bars)
exported to Parquet: four folds of 6 days' train and 6 days' test windows, a 4 x 4 x 4 grid of the SMA crossover
(tests/integration/research/sma_strategy.py), every trial a backtest of its train window on local worker processes
(the flow's `local_runner=processes`, one per core), the chosen ones scored out-of-sample, the tables and the report
written. Under a Prefect test harness (its own temporary API), whose start-up is not counted.

`--trials N` runs only the first N grid points (to extrapolate while developing); `make bench` runs all 64.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from backtest import DAYS, export_sim
from harness import ROOT, Figure, Stopwatch, emit, figure, load_average

TARGET_SECONDS = 600
DAY = 1440  # timestamps of minute bars
WINDOW = 6 * DAY
GRID = {
    "fast": ["5", "10", "15", "20"],
    "slow": ["30", "60", "90", "120"],
    "band": ["2", "5", "10", "20"],
}
STRATEGY = f"{ROOT / 'tests' / 'integration' / 'research' / 'sma_strategy.py'}:SmaCrossover"


def _grid(trials: int) -> str:
    """The first `trials` points of the grid, as the flow's grid text (fewest parameters varied first)."""
    from analytics.research import grid_points

    points = grid_points(GRID)[:trials]
    axes = {name: sorted({p[name] for p in points}, key=GRID[name].index) for name in GRID}
    return ";".join(f"{name}={','.join(values)}" for name, values in axes.items())


def measure(trials: int) -> dict[str, Figure]:
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        os.environ["PREFECT_HOME"] = str(folder / "prefect")
        os.environ["TRADEOS_HOME"] = str(folder / "home")
        os.environ.setdefault("DO_NOT_TRACK", "1")
        from prefect.testing.utilities import prefect_test_harness

        from flows.walk_forward import walk_forward

        data = folder / "sim30.parquet"
        bars = export_sim(data)
        grid = _grid(trials)
        workers = os.cpu_count() or 1
        load = load_average()
        with prefect_test_harness(server_startup_timeout=180), Stopwatch() as watch:
            outcome = walk_forward(
                data=str(data),
                grid=grid,
                train_bars=WINDOW,
                test_bars=WINDOW,
                step_bars=WINDOW,
                strategy=STRATEGY,
                objective="sharpe_ratio",
                local_runner="processes",
                max_workers=workers,
            )
        folds = len(outcome["folds"])
        tried = len(_expand(grid))
    backtests = folds * (tried + 1)
    bars_run = folds * (tried * WINDOW + WINDOW) * 8
    return {
        "walk_forward_64x4": figure(
            round(watch.wall, 1),
            "s",
            f"<= {TARGET_SECONDS}",
            watch.wall <= TARGET_SECONDS if tried == 64 else None,
            trials=tried,
            folds=folds,
            backtests=backtests,
            bars_backtested=bars_run,
            bars_per_s=round(bars_run / watch.wall),
            file_bars=bars,
            days=DAYS,
            workers=workers,
            cpu_seconds_this_process=round(watch.cpu, 1),
            load_average=round(load, 2),
            note=f"{tried} trials x {folds} folds of 6-day train/test windows, processes, Parquet replay file",
        )
    }


def _expand(grid: str) -> list[dict[str, str]]:
    from analytics.research import grid_points, parse_grid

    return grid_points(parse_grid(grid))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=64, help="grid points tried per fold (64: all)")
    emit(measure(parser.parse_args().trials))
