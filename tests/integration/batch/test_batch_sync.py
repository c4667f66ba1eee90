"""PostgreSQL → DuckDB sync: incremental, idempotent, exact, and never in an analyst's way."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import psycopg
import pytest
from batch_records import START, SystemOfRecord, apply_schema, write_system_of_record

from analytics.warehouse import SYNCED_TABLES, Warehouse, rollup_as_of, sync_from_postgres
from flows.sync import shared_sync, sync

COUNTED = ("bars", "signals", "orders", "fills", "equity", "risk_events", "regime_changes", "api_requests")


def _pg_counts(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in COUNTED}  # type: ignore[index]


def _duck_counts(home: Path) -> dict[str, int]:
    with Warehouse(home).reader() as conn:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0] for t in COUNTED}


def test_first_sync_copies_every_row_and_a_second_adds_nothing(
    loaded_database: str, tradeos_home: Path
) -> None:
    first = sync(tradeos_home, loaded_database)
    expected = _pg_counts(loaded_database)
    assert {t: first[t] for t in COUNTED} == expected
    assert _duck_counts(tradeos_home) == expected

    second = sync(tradeos_home, loaded_database)

    assert all(count == 0 for count in second.values()), second
    assert _duck_counts(tradeos_home) == expected


def test_sync_picks_up_only_new_rows_and_keeps_keys_unique(
    database_url: str, system_of_record: SystemOfRecord, tradeos_home: Path
) -> None:
    apply_schema(database_url)
    midway = START.replace(day=START.day + 2)
    write_system_of_record(database_url, system_of_record, until=midway)
    sync(tradeos_home, database_url)
    with psycopg.connect(database_url) as conn:
        # The rest, as the engine would commit it later; the boundary timestamp's rows are re-read, not duplicated.
        for table in COUNTED:
            conn.execute(f"CREATE TEMP TABLE seen_{table} AS SELECT * FROM {table}")
    rest = SystemOfRecord(
        bars=[b for b in system_of_record.bars if b.timestamp > midway],
        signals=[r for r in system_of_record.signals if r["timestamp"] > midway],
        orders=[r for r in system_of_record.orders if r["timestamp"] > midway],
        fills=[r for r in system_of_record.fills if r["timestamp"] > midway],
        equity=[r for r in system_of_record.equity if r["timestamp"] > midway],
        risk_events=[r for r in system_of_record.risk_events if r["timestamp"] > midway],
        regime_changes=[r for r in system_of_record.regime_changes if r["timestamp"] > midway],
        api_requests=[r for r in system_of_record.api_requests if r["timestamp"] > midway],
    )
    write_system_of_record(database_url, rest)
    with psycopg.connect(database_url) as conn:
        # An order's status changes after it was first synced: the copy follows it.
        conn.execute("UPDATE orders SET status = 'cancelled', updated_at = now() WHERE id = 'o-000001'")

    added = sync(tradeos_home, database_url)

    assert added["fills"] == len(rest.fills)
    assert added["bars"] == len(rest.bars)
    assert _duck_counts(tradeos_home) == _pg_counts(database_url)
    with Warehouse(tradeos_home).reader() as conn:
        for table in SYNCED_TABLES:
            key = ", ".join(f'"{k}"' for k in table.key)
            duplicates = conn.execute(
                f"SELECT count(*) FROM (SELECT {key} FROM {table.name} GROUP BY ALL HAVING count(*) > 1)"
            ).fetchall()[0][0]
            assert duplicates == 0, table.name
        status = conn.execute("SELECT status FROM orders WHERE id = 'o-000001'").fetchall()
    assert status == [("cancelled",)]


def test_synced_fills_keep_exact_money_and_utc_times(
    loaded_database: str, system_of_record: SystemOfRecord, tradeos_home: Path
) -> None:
    sync(tradeos_home, loaded_database)
    with Warehouse(tradeos_home).reader() as conn:
        rows = conn.execute(
            "SELECT id, order_id, timestamp, symbol, side, quantity, price, fee, signal_type, realized_pnl"
            " FROM fills ORDER BY id"
        ).fetchall()
    expected = sorted(system_of_record.fills, key=lambda f: f["id"])
    assert len(rows) == len(expected)
    for row, fill in zip(rows, expected, strict=True):
        assert row[0] == fill["id"]
        assert row[2] == fill["timestamp"]
        assert row[2].utcoffset().total_seconds() == 0
        assert (row[6], row[7], row[9]) == (fill["price"], fill["fee"], fill["realized_pnl"])
        assert isinstance(row[6], Decimal)


def test_an_analyst_holding_the_file_open_read_only_does_not_block_a_sync(
    database_url: str, system_of_record: SystemOfRecord, tradeos_home: Path
) -> None:
    apply_schema(database_url)
    midway = START.replace(day=START.day + 2)
    write_system_of_record(database_url, system_of_record, until=midway)
    sync(tradeos_home, database_url)
    published = Warehouse(tradeos_home).published_path
    before = _duck_counts(tradeos_home)["fills"]
    # Another process, as an analyst's notebook would be: it holds a read-only connection throughout.
    analyst = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, duckdb
                conn = duckdb.connect({str(published)!r}, read_only=True)
                print(conn.execute("SELECT count(*) FROM fills").fetchall()[0][0], flush=True)
                sys.stdin.readline()
                print(conn.execute("SELECT count(*) FROM fills").fetchall()[0][0], flush=True)
                """
            ),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert analyst.stdout is not None
        assert analyst.stdin is not None
        assert int(analyst.stdout.readline()) == before
        write_system_of_record(
            database_url,
            SystemOfRecord(
                bars=[],
                fills=[f for f in system_of_record.fills if f["timestamp"] > midway],
                orders=[o for o in system_of_record.orders if o["timestamp"] > midway],
            ),
        )

        added = sync(tradeos_home, database_url)

        assert added["fills"] > 0
        # The analyst keeps a consistent snapshot; a new connection sees the new rows.
        analyst.stdin.write("\n")
        analyst.stdin.flush()
        assert int(analyst.stdout.readline()) == before
        assert _duck_counts(tradeos_home)["fills"] == before + added["fills"]
    finally:
        analyst.kill()
        analyst.wait()


def test_a_read_only_connection_in_this_process_survives_a_sync(
    loaded_database: str, tradeos_home: Path
) -> None:
    sync(tradeos_home, loaded_database)
    reader = duckdb.connect(str(Warehouse(tradeos_home).published_path), read_only=True)
    try:
        sync(tradeos_home, loaded_database)
        assert reader.execute("SELECT count(*) FROM bars").fetchall()[0][0] > 0
    finally:
        reader.close()


def test_sync_refuses_a_url_that_is_not_postgresql(tradeos_home: Path) -> None:
    with pytest.raises(ValueError, match="PostgreSQL"), Warehouse(tradeos_home).writer() as conn:
        sync_from_postgres(conn, "mysql://localhost/x")


# ---- One sync per schedule round, and a documented file (issue 9, item 13) ----


def _syncs_logged(home: Path) -> int:
    with Warehouse(home).reader() as conn:
        return int(conn.execute("SELECT count(*) FROM sync_log").fetchall()[0][0])


@pytest.fixture
def flow_env(monkeypatch: pytest.MonkeyPatch, tradeos_home: Path, loaded_database: str) -> None:
    """What a served flow run gets from `tradeos up`: TRADEOS_HOME and the database URL."""
    monkeypatch.setenv("TRADEOS_HOME", str(tradeos_home))
    monkeypatch.setenv("TRADEOS_DATABASE_URL", loaded_database)


@pytest.mark.usefixtures("prefect_harness", "flow_env")
def test_the_rollup_and_ic_flows_of_one_round_sync_postgresql_once(
    tradeos_home: Path, loaded_database: str
) -> None:
    from flows.metrics_rollup import metrics_rollup
    from flows.signal_ic import signal_ic

    rollup = metrics_rollup()
    ic = signal_ic()

    assert {t: rollup["synced"][t] for t in COUNTED} == _pg_counts(loaded_database)
    assert ic["synced"] == {}  # it used the sync the rollup flow had just made
    assert _syncs_logged(tradeos_home) == 1
    with Warehouse(tradeos_home).reader() as conn:
        assert rollup_as_of(conn, "performance") is not None
        assert rollup_as_of(conn, "signals") is not None


def test_flows_starting_together_share_one_sync_and_a_later_one_syncs_again(
    loaded_database: str, tradeos_home: Path
) -> None:
    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = list(
            pool.map(
                lambda _: shared_sync(tradeos_home, loaded_database, shared_within_seconds=60.0), range(2)
            )
        )

    assert sorted(o.performed for o in outcomes) == [False, True]
    [performed] = [o for o in outcomes if o.performed]
    [shared] = [o for o in outcomes if not o.performed]
    with Warehouse(tradeos_home).reader() as conn:
        logged = conn.execute("SELECT synced_at, rows_added FROM sync_log").fetchall()
    assert logged == [(shared.shared_with, sum(performed.rows_added.values()))]
    assert _duck_counts(tradeos_home) == _pg_counts(loaded_database)

    # Past the window (here: none) the next flow syncs itself; a full re-read is never shared.
    assert shared_sync(tradeos_home, loaded_database, shared_within_seconds=0.0).performed
    assert shared_sync(tradeos_home, loaded_database, full=True, shared_within_seconds=60.0).performed
    assert _syncs_logged(tradeos_home) == 3
    assert _duck_counts(tradeos_home) == _pg_counts(loaded_database)  # still idempotent


def test_every_table_and_column_of_the_analysts_file_carries_a_comment(
    loaded_database: str, tradeos_home: Path
) -> None:
    from analytics.regime_model import REGISTRY_DDL
    from flows.metrics_rollup import rollup_metrics
    from flows.signal_ic import rollup_signal_ic

    as_of = datetime.now(UTC)
    sync(tradeos_home, loaded_database)
    rollup_metrics(tradeos_home, annualization=252, as_of=as_of)
    rollup_signal_ic(tradeos_home, as_of=as_of)
    with Warehouse(tradeos_home).writer() as conn:
        conn.execute(REGISTRY_DDL)  # what a regime retraining adds

    with Warehouse(tradeos_home).reader() as conn:
        tables = dict(
            conn.execute(
                "SELECT table_name, comment FROM duckdb_tables() WHERE NOT internal AND schema_name = 'main'"
            ).fetchall()
        )
        columns = conn.execute(
            "SELECT table_name, column_name, comment FROM duckdb_columns()"
            " WHERE NOT internal AND schema_name = 'main'"
        ).fetchall()

    documented = {"bars", "signals", "fills", "equity", "daily_performance", "signal_ic", "system_metrics"}
    assert documented | {"regimes", "regime_models", "closed_trades", "sync_log"} <= set(tables)
    assert [t for t, comment in tables.items() if not comment] == []
    assert [(t, c) for t, c, comment in columns if not comment] == []
    assert {c for t, c, _ in columns if t == "fills"} == {
        "id", "order_id", "timestamp", "symbol", "side", "quantity", "price", "fee", "signal_type", "realized_pnl"
    }  # fmt: skip
