"""`make bench` is run by hand, so nothing else notices when a change breaks it. This runs bench/engine.py's two
measurements on seven simulated days (its seed places the first order on day 6) and checks they measured what they
claim: every bar through the engine, every bar persisted, a latency per order. No timing is asserted here: the
figures come from `make bench`."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

from live.feeds.sim import SimFeed

BENCH = Path(__file__).resolve().parents[3] / "bench"


def _bench_engine() -> ModuleType:
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))  # the bench scripts import their harness as a sibling module
    return importlib.import_module("engine")


def test_the_engine_benchmark_still_runs_and_measures_every_bar() -> None:
    bench = _bench_engine()
    feed = SimFeed(sim_days=7, seed=bench.SEED)
    batches = list(feed.batches())
    bars = sum(len(batch) for batch in batches)
    assert bars == 7 * 1440 * len(feed.symbols)

    wall_rate, cpu_rate, _ = bench.pure(batches, feed.symbols)
    assert wall_rate > 0
    assert cpu_rate > 0

    rate, latencies, counts = bench.persisted(batches, feed)
    assert rate > 0
    assert counts["bars"] == bars, "the persisted run did not commit every bar"
    assert counts["equity"] == len(batches)
    assert counts["orders"] > 0, "seven simulated days placed no order: nothing measured"
    assert counts["fills"] == counts["orders"]
    assert len(latencies) == counts["orders"]
    assert all(latency > 0 for latency in latencies)
