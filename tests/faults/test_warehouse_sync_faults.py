"""The analysts' DuckDB file under faults (README, the analysts' DuckDB file): a PostgreSQL → DuckDB sync killed with `kill -9` mid-way
and re-run gives exactly the tables of an uninterrupted sync; an analyst's read-only connection, held open in another
process while the flows sync and roll up again and again, breaks none of them and keeps the snapshot it opened."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import psycopg
import pytest

from analytics.warehouse import SYNCED_TABLES, Warehouse
from live.stores.postgres import apply_migrations
from tests.faults.desk import ENGINE_ONLY, wait_feed_done
from tests.support import Service, eventually

pytestmark = pytest.mark.faults

MINUTES = 30_000  # × 8 symbols: 240k bars, and 4 signals per bar: 960k signals
SYMBOLS = ("AAPL", "MSFT", "AMZN", "GOOG", "META", "NVDA", "JPM", "XOM")
SYNC = (
    "import sys; from pathlib import Path; from flows.sync import sync; sync(Path(sys.argv[1]), sys.argv[2])"
)


def _large_record(url: str, *, minutes: int, start: datetime) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        apply_migrations(conn)
        symbols = "ARRAY[" + ",".join(f"'{s}'" for s in SYMBOLS) + "]"
        conn.execute(
            f"""INSERT INTO bars (timestamp, symbol, open, high, low, close, volume)
            SELECT %(start)s + make_interval(mins => m), s, 100 + m %% 7, 101 + m %% 7, 99 + m %% 7, 100.5 + m %% 7, 1000
            FROM generate_series(0, %(n)s - 1) m, unnest({symbols}) s""",
            {"start": start, "n": minutes},
        )
        conn.execute(
            f"""INSERT INTO signals (timestamp, symbol, signal_type, strength, horizon_bars, regime, actionable)
            SELECT %(start)s + make_interval(mins => m), s, t, ((m %% 200) - 100) / 100.0, 20, 'trending', m %% 5 = 0
            FROM generate_series(0, %(n)s - 1) m, unnest({symbols}) s,
                 unnest(ARRAY['momentum', 'mean_reversion', 'breakout', 'vol_trend']) t""",
            {"start": start, "n": minutes},
        )


def _sync_child(home: Path, url: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", SYNC, str(home), url], cwd=Path.cwd())


def _differences(a: Path, b: Path) -> dict[str, tuple[int, int, int]]:
    """Per synced table: (rows in a, rows in b, rows in one and not the other, duplicates counted)."""
    conn = duckdb.connect()
    conn.execute(f"ATTACH '{a}' AS a (READ_ONLY)")
    conn.execute(f"ATTACH '{b}' AS b (READ_ONLY)")
    out = {}
    for table in SYNCED_TABLES:
        t = f'"{table.name}"'
        count_a = conn.execute(f"SELECT count(*) FROM a.{t}").fetchone()[0]  # type: ignore[index]
        count_b = conn.execute(f"SELECT count(*) FROM b.{t}").fetchone()[0]  # type: ignore[index]
        differ = conn.execute(
            f"SELECT (SELECT count(*) FROM (SELECT * FROM a.{t} EXCEPT ALL SELECT * FROM b.{t}))"
            f" + (SELECT count(*) FROM (SELECT * FROM b.{t} EXCEPT ALL SELECT * FROM a.{t}))"
        ).fetchone()[0]  # type: ignore[index]
        out[table.name] = (count_a, count_b, differ)
    conn.close()
    return out


def test_a_sync_killed_mid_way_and_run_again_gives_the_tables_of_an_uninterrupted_sync(
    tmp_path: Path, private_database_url: str
) -> None:
    url = private_database_url
    _large_record(url, minutes=MINUTES, start=datetime(2026, 1, 5, tzinfo=UTC))
    interrupted, reference = tmp_path / "interrupted", tmp_path / "reference"
    kills = []
    for attempt in range(3):  # killed at different points: as soon as the staging file grows, then later
        child = _sync_child(interrupted, url)
        staging = Warehouse(interrupted).staging_path
        eventually(
            lambda staging=staging, child=child, grown=(1 + attempt) * (2 << 20): (
                child.poll() is not None or (staging.exists() and staging.stat().st_size > grown)
            ),
            timeout=120,
            interval=0.01,
            what="the sync to be under way",
        )
        if child.poll() is not None:
            break
        child.kill()
        child.wait(30)
        kills.append(staging.stat().st_size)
        assert not Warehouse(interrupted).published_path.exists(), "a killed sync published its file"
    assert kills, "the sync finished before it could be killed: the record is too small to test this"
    assert _sync_child(interrupted, url).wait(300) == 0
    assert _sync_child(reference, url).wait(300) == 0
    differences = _differences(Warehouse(interrupted).published_path, Warehouse(reference).published_path)
    print(f"sync killed {len(kills)} times at staging sizes {kills} bytes; tables: {differences}")
    assert differences["bars"][0] == MINUTES * len(SYMBOLS)
    assert differences["signals"][0] == MINUTES * len(SYMBOLS) * 4
    assert all(a == b and differ == 0 for a, b, differ in differences.values()), differences


READER = textwrap.dedent(
    """
    import sys, duckdb
    conn = duckdb.connect(sys.argv[1], read_only=True)
    for line in sys.stdin:
        tables = ("bars", "signals", "fills", "equity", "daily_performance", "system_metrics")
        counts = [conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables]
        print(" ".join(map(str, counts)), flush=True)
    """
)
FLOWS = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime
    from pathlib import Path
    from flows.metrics_rollup import rollup_metrics
    from flows.signal_ic import rollup_signal_ic
    from flows.sync import sync
    home = Path(sys.argv[1])
    print(sync(home, sys.argv[2]), flush=True)
    rollup_metrics(home, annualization=252, as_of=datetime.now(UTC))
    rollup_signal_ic(home, as_of=datetime.now(UTC))
    """
)


def test_an_analyst_holding_the_file_open_breaks_no_flow_and_keeps_a_consistent_snapshot(
    tmp_path: Path, private_database_url: str, private_redis: object
) -> None:
    url = private_database_url
    home = tmp_path / "home"
    env = {"TRADEOS_DATABASE_URL": url, "TRADEOS_REDIS_URL": private_redis.url}  # type: ignore[attr-defined]
    with Service(home, [*ENGINE_ONLY, "--speed", "0", "--sim-days", "1", "--seed", "1"], env) as service:
        wait_feed_done(service)
    flows = [sys.executable, "-c", FLOWS, str(home), url]
    assert subprocess.run(flows, capture_output=True, check=False, timeout=300).returncode == 0
    analyst = subprocess.Popen(
        [sys.executable, "-c", READER, str(Warehouse(home).published_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert analyst.stdin is not None
    assert analyst.stdout is not None

    def ask() -> list[int]:
        analyst.stdin.write("count\n")  # type: ignore[union-attr]
        analyst.stdin.flush()  # type: ignore[union-attr]
        return [int(n) for n in analyst.stdout.readline().split()]  # type: ignore[union-attr]

    try:
        snapshot = ask()
        with psycopg.connect(url, autocommit=True) as conn:
            last = conn.execute("SELECT max(timestamp) FROM bars").fetchone()[0]  # type: ignore[index]
        for run in range(3):  # new rows each time, so each sync really writes
            _large_record_after(url, last + timedelta(minutes=1 + 100 * run))
            result = subprocess.run(flows, capture_output=True, text=True, check=False, timeout=300)
            assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
            assert "'bars': 800" in result.stdout, result.stdout
            assert ask() == snapshot, "the analyst's open connection saw the file change under it"
        with duckdb.connect(str(Warehouse(home).published_path), read_only=True) as fresh:
            assert fresh.execute("SELECT count(*) FROM bars").fetchone()[0] == snapshot[0] + 3 * 800  # type: ignore[index]
    finally:
        analyst.stdin.close()
        analyst.wait(30)
    assert analyst.returncode == 0


def _large_record_after(url: str, start: datetime) -> None:
    """100 minutes × 8 symbols of new bars (and their signals) after the record's last bar."""
    _large_record(url, minutes=100, start=start)
