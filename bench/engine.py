"""Engine throughput (bars/s) without and with persistence, and tick-to-order latency.

8 symbols x 30 days of 1-minute bars (345,600 bars) from the seeded sim feed, generated before the clock starts,
through the full engine: every signal, the regime, risk checks and paper fills.
- pure: `Engine.step` over the cross-sections, nothing persisted (best of 3 runs);
- persisted: the real `EngineRunner` at `--speed 0` against a fresh PostgreSQL database and an empty Redis DB
  index: batched binary COPY of every bar, signal value and equity row, the kill-switch gate before each order,
  Redis publishing. Timed from the runner being ready to the feed being done (everything committed).
Tick-to-order latency is what the engine records per order (bar arrival → submission, `orders.tick_to_order_us`)
over the persisted run, so it includes the kill-switch read from Redis.
"""

from __future__ import annotations

import threading
import time
from decimal import Decimal
from pathlib import Path
from tempfile import TemporaryDirectory

import psycopg
from harness import (
    SIM_SEED,
    Figure,
    Stopwatch,
    emit,
    figure,
    load_average,
    scratch_database,
    scratch_redis,
)

from live.assembly import build_engine
from live.domain import Bar
from live.engine import Engine
from live.feeds.sim import SimFeed
from live.profiles import get_profile
from live.risk.kill_switch import KillSwitchGate
from live.service import EngineRunner, RunnerOptions
from live.settings import Settings
from live.stores.audit_key import audit_key
from live.stores.postgres import PostgresStore

DAYS = 30
SEED = SIM_SEED
PURE_RUNS = 3
# The paper broker and the built-in strategy at the default costs, whatever the environment says.
PURE_SETTINGS = Settings(
    broker="paper",
    strategy="builtin",
    initial_cash=Decimal("100000"),
    commission_bps=Decimal("1.0"),
    slippage_bps=Decimal("2.0"),
).engine


class ListFeed:
    """The sim feed's cross-sections, generated up front, behind the feed port."""

    def __init__(self, batches: list[list[Bar]], symbols: tuple[str, ...], bar_seconds: int) -> None:
        self._batches = batches
        self.symbols = symbols
        self.bar_seconds = bar_seconds

    def batches(self):  # type: ignore[no-untyped-def]
        return iter(self._batches)


def _engine(symbols: tuple[str, ...]) -> Engine:
    return build_engine(PURE_SETTINGS, symbols=symbols, profile=get_profile("balanced"))


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def pure(batches: list[list[Bar]], symbols: tuple[str, ...]) -> tuple[float, float, dict[str, float]]:
    """(bars/s wall, bars/s CPU, latencies of the last run) of Engine.step over every batch."""
    bars = sum(len(b) for b in batches)
    best_wall = best_cpu = float("inf")
    latencies: dict[str, float] = {}
    for _ in range(PURE_RUNS):
        engine = _engine(symbols)
        latencies = {}
        with Stopwatch() as watch:
            for i, batch in enumerate(batches):
                engine.step(batch)
                if i % 2000 == 1999:  # the runner takes the outbox a few times a second
                    latencies.update(engine.take_outbox().latencies_us)
        latencies.update(engine.take_outbox().latencies_us)
        best_wall, best_cpu = min(best_wall, watch.wall), min(best_cpu, watch.cpu)
    return bars / best_wall, bars / best_cpu, latencies


_WRITE_OUTBOX = PostgresStore.write_outbox
_GATE = KillSwitchGate.__call__


def _instrument() -> dict[str, float]:
    """Wall time spent in the kill-switch gate and in write_outbox (the rest is the engine and publishing)."""
    spent = {"gate": 0.0, "write_outbox": 0.0}

    def timed_gate(self: KillSwitchGate) -> str | None:
        t = time.perf_counter()
        try:
            return _GATE(self)
        finally:
            spent["gate"] += time.perf_counter() - t

    def timed_write(self: PostgresStore, *args: object, **kwargs: object) -> None:
        t = time.perf_counter()
        try:
            _WRITE_OUTBOX(self, *args, **kwargs)  # type: ignore[arg-type]
        finally:
            spent["write_outbox"] += time.perf_counter() - t

    KillSwitchGate.__call__ = timed_gate  # type: ignore[method-assign]
    PostgresStore.write_outbox = timed_write  # type: ignore[method-assign,assignment]
    return spent


def persisted(batches: list[list[Bar]], feed: SimFeed) -> tuple[float, list[float], dict[str, int]]:
    """(bars/s, tick-to-order latencies in µs, row counts) of the runner over every batch."""
    with scratch_database() as database_url, scratch_redis() as redis_url, TemporaryDirectory() as home:
        settings = Settings(home=Path(home), database_url=database_url, redis_url=redis_url)
        runner = EngineRunner(
            settings=settings.engine,
            models_dir=settings.models_dir,
            feed=ListFeed(batches, feed.symbols, feed.bar_seconds),
            database_url=database_url,
            redis_url=redis_url,
            audit_key=audit_key(None, Path(home)),
            options=RunnerOptions(speed=0),
        )
        spent = _instrument()
        stop = threading.Event()
        thread = threading.Thread(target=runner.run, args=(stop,), name="bench-engine")
        thread.start()
        if not runner.ready.wait(60):
            raise RuntimeError("the runner did not get ready")
        started = time.perf_counter()
        runner.feed_done.wait()
        elapsed = time.perf_counter() - started
        stop.set()
        thread.join(30)
        with psycopg.connect(database_url) as conn:
            latencies = [
                r[0]
                for r in conn.execute(
                    "SELECT tick_to_order_us FROM orders WHERE status <> 'rejected' AND tick_to_order_us IS NOT NULL"
                )
            ]
            counts = {
                table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # type: ignore[index]
                for table in ("bars", "signals", "equity", "orders", "fills")
            }
            counts |= {
                f"risk_events:{code}": n
                for code, n in conn.execute(
                    "SELECT code, count(*) FROM risk_events GROUP BY code ORDER BY code"
                )
            }
        PostgresStore.write_outbox = _WRITE_OUTBOX  # type: ignore[method-assign]
        KillSwitchGate.__call__ = _GATE  # type: ignore[method-assign]
        counts |= {f"seconds_in_{k}": round(v, 2) for k, v in spent.items()}
        counts["seconds_total"] = round(elapsed, 2)
        return runner.bars_processed / elapsed, latencies, counts


def measure() -> dict[str, Figure]:
    feed = SimFeed(sim_days=DAYS, seed=SEED)
    with Stopwatch() as generation:
        batches = list(feed.batches())
    bars = sum(len(b) for b in batches)
    load = load_average()
    wall_rate, cpu_rate, pure_latencies = pure(batches, feed.symbols)
    rate, latencies, counts = persisted(batches, feed)
    p50, p99 = _percentile(latencies, 0.50), _percentile(latencies, 0.99)
    common = {"bars": bars, "symbols": len(feed.symbols), "days": DAYS, "load_average": round(load, 2)}
    return {
        "engine_throughput": figure(
            round(wall_rate),
            "bars/s",
            ">= 200000",
            wall_rate >= 200_000,
            cpu_bars_per_s=round(cpu_rate),
            sim_feed_generation_bars_per_s=round(bars / generation.wall),
            note="Engine.step only (no persistence), best of 3, bars generated beforehand",
            **common,
        ),
        "engine_throughput_persisted": figure(
            round(rate),
            "bars/s",
            ">= 50000",
            rate >= 50_000,
            rows=counts,
            note="EngineRunner --speed 0 against a fresh PostgreSQL database and Redis DB index",
            **common,
        ),
        "tick_to_order_latency_p99": figure(
            round(p99, 1),
            "µs",
            "<= 1000",
            p99 <= 1000,
            p50_us=round(p50, 1),
            orders=len(latencies),
            pure_engine_p50_us=round(_percentile(list(pure_latencies.values()), 0.5), 1),
            pure_engine_p99_us=round(_percentile(list(pure_latencies.values()), 0.99), 1),
            note="Outbox.latencies_us over the persisted 30-day run: includes the kill-switch GET from Redis",
        ),
        "tick_to_order_latency_p50": figure(round(p50, 1), "µs", "report it", None, orders=len(latencies)),
    }


if __name__ == "__main__":
    emit(measure())
