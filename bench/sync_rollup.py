"""Sync + rollup: 1M and 10M fills from PostgreSQL into DuckDB, then the metrics rollup over them.

The fills are generated with SQL (generate_series) in a scratch database that is dropped afterwards: 8 symbols,
one fill a second, each symbol alternating buy and sell of 10 shares so every pair is a closed trade, with an
equity row a minute over the same span. The scratch database has the real schema, except that the fills'
foreign key to orders is dropped so no 10M orders need generating (the sync reads the orders table too; it is
empty here). Timed: `flows.sync.sync` (incremental sync into a fresh warehouse, published) and
`flows.metrics_rollup.rollup_metrics` (daily performance, closed trades, system metrics, regimes).
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from tempfile import TemporaryDirectory

import psycopg
from harness import Figure, emit, figure, scratch_database, stub

from live.stores.postgres import apply_migrations

SIZES = (1_000_000, 10_000_000)

_FILLS = """
INSERT INTO fills (id, order_id, timestamp, symbol, side, quantity, price, fee, signal_type, realized_pnl)
SELECT 'F' || i, 'O' || i,
       timestamptz '2024-01-01 00:00:00+00' + i * interval '1 second',
       (ARRAY['AAPL','MSFT','NVDA','AMZN','GOOG','META','TSLA','JPM'])[1 + i %% 8],
       CASE WHEN (i / 8) %% 2 = 0 THEN 'buy' ELSE 'sell' END,
       10,
       round((100 + 5 * sin(i / 5000.0) + (i %% 97) / 100.0)::numeric, 4),
       0.10,
       (ARRAY['momentum','mean_reversion','breakout','vol_trend'])[1 + (i / 8) %% 4],
       CASE WHEN (i / 8) %% 2 = 0 THEN 0 ELSE round(((i %% 13) - 6)::numeric / 10, 4) END
FROM generate_series(0, %(n)s - 1) AS i
"""
_EQUITY = """
INSERT INTO equity (timestamp, total_value, cash, high_water_mark)
SELECT timestamptz '2024-01-01 00:00:00+00' + m * interval '1 minute',
       round((100000 + 2000 * sin(m / 3000.0) + m * 0.01)::numeric, 8),
       round((50000 + 2000 * sin(m / 3000.0))::numeric, 8),
       round((102000 + m * 0.01)::numeric, 8)
FROM generate_series(0, %(minutes)s) AS m
"""


def generate(database_url: str, n: int) -> float:
    """Fills the scratch database; returns the seconds it took (not part of the figure)."""
    started = time.perf_counter()
    with psycopg.connect(database_url, autocommit=True) as conn:
        apply_migrations(conn)
        conn.execute("ALTER TABLE fills DROP CONSTRAINT IF EXISTS fills_order_id_fkey")
        conn.execute(_FILLS, {"n": n})
        conn.execute(_EQUITY, {"minutes": n // 60 + 1})
        conn.execute("ANALYZE fills")
        conn.execute("ANALYZE equity")
    return time.perf_counter() - started


def measure() -> dict[str, Figure]:
    try:
        from flows.metrics_rollup import rollup_metrics
        from flows.sync import sync
    except ImportError as exc:
        return {
            f"sync_rollup_{n // 1_000_000}M_fills": stub(
                "s", "<= 10" if n == 10_000_000 else "report it", str(exc)
            )
            for n in SIZES
        }
    figures: dict[str, Figure] = {}
    for n in SIZES:
        name = f"sync_rollup_{n // 1_000_000}M_fills"
        with scratch_database("tradeos_bench_fills") as url, TemporaryDirectory() as home:
            generated = generate(url, n)
            started = time.perf_counter()
            added = sync(Path(home), url)
            synced = time.perf_counter()
            result = rollup_metrics(Path(home), annualization=252, as_of=datetime.now(UTC))
            done = time.perf_counter()
        total = done - started
        target_holds = total <= 10 if n == 10_000_000 else None
        figures[name] = figure(
            round(total, 2),
            "s",
            "<= 10" if n == 10_000_000 else "report it",
            target_holds,
            sync_s=round(synced - started, 2),
            rollup_s=round(done - synced, 2),
            fills_synced=added.get("fills"),
            equity_rows_synced=added.get("equity"),
            closed_trades=result["performance"].get("total_trades"),
            generation_s=round(generated, 1),
        )
        print(f"{name}: {figures[name]}", file=sys.stderr)
    return figures


if __name__ == "__main__":
    emit(measure())
