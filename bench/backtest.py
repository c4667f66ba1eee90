"""Backtest throughput (bars/s): `run_backtest` on the 30-day x 8-symbol sim (345,600 bars) exported to a Parquet
replay file, including validating the file, every signal, the regime, risk checks and paper fills, and writing
results.duckdb and report.html. Best of 2 runs; the split says where the time goes (engine + figures, the rest
being loading the file and writing the results and the report).
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from tempfile import TemporaryDirectory

import polars as pl
from harness import SIM_SEED, Figure, Stopwatch, emit, figure, load_average

from flows.backtest import run_backtest
from live.feeds.sim import SimFeed
from live.settings import Settings

DAYS = 30
RUNS = 2
TARGET = 150_000


def export_sim(path: Path) -> int:
    """The seeded sim's bars as a replay file; returns the number of bars."""
    rows = [
        (b.timestamp, b.symbol, b.open, b.high, b.low, b.close, b.volume, b.spread)
        for batch in SimFeed(sim_days=DAYS, seed=SIM_SEED).batches()
        for b in batch
    ]
    columns = ["timestamp", "symbol", "open", "high", "low", "close", "volume", "spread"]
    pl.DataFrame(rows, schema=columns, orient="row").write_parquet(path)
    return len(rows)


def measure() -> dict[str, Figure]:
    with TemporaryDirectory() as scratch:
        folder = Path(scratch)
        data = folder / "sim30.parquet"
        bars = export_sim(data)
        settings = Settings(
            home=folder / "home",
            broker="paper",
            strategy="builtin",
            initial_cash=Decimal("100000"),
            commission_bps=Decimal("1.0"),
            slippage_bps=Decimal("2.0"),
        )
        load = load_average()
        best_wall = best_cpu = float("inf")
        engine_seconds = 0.0
        fills = 0
        for run in range(RUNS):
            with Stopwatch() as watch:
                result = run_backtest(settings, data, out=folder / f"run{run}")
            if watch.wall < best_wall:
                engine_seconds, fills = result.summary.seconds, result.summary.fills
            best_wall, best_cpu = min(best_wall, watch.wall), min(best_cpu, watch.cpu)
            size_mb = sum(p.stat().st_size for p in (folder / f"run{run}").iterdir()) / 1e6
    rate = bars / best_wall
    return {
        "backtest_throughput": figure(
            round(rate),
            "bars/s",
            f">= {TARGET}",
            rate >= TARGET,
            cpu_bars_per_s=round(bars / best_cpu),
            seconds_total=round(best_wall, 2),
            seconds_engine_and_figures=round(engine_seconds, 2),
            seconds_load_and_write=round(best_wall - engine_seconds, 2),
            results_mb=round(size_mb, 1),
            bars=bars,
            fills=fills,
            days=DAYS,
            load_average=round(load, 2),
            note="run_backtest: Parquet replay file in, results.duckdb + report.html out, best of 2",
        )
    }


if __name__ == "__main__":
    emit(measure())
