"""The analysts' DuckDB file: its schema, the incremental PostgreSQL → DuckDB sync, and safe publication.

DuckDB lets one process write a file or many processes read it, never both at once. So flows write a private
staging file under an exclusive lock and then publish it: copy it beside `analytics.duckdb` and atomically rename
it over the old one. A reader keeps the snapshot it opened (the old inode) and sees new data when it reconnects; no
reader ever blocks a flow, and no flow ever blocks a reader.

Flows that start together share one sync: `Warehouse.sync` skips the copy when another completed moments ago
(`sync_log`), deciding under the same lock, so two flows on the same schedule read PostgreSQL once.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from analytics.catalog import apply_comments

if TYPE_CHECKING:
    from adbc_driver_postgresql.dbapi import Connection as PostgresConnection

PUBLISHED_NAME = "analytics.duckdb"
STAGING_DIR = "warehouse"
STAGING_NAME = "staging.duckdb"
LOCK_NAME = "writer.lock"


class WarehouseMissingError(FileNotFoundError):
    """No analytics file has been published yet."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncedTable:
    """One system-of-record table copied into DuckDB, de-duplicated on `key`, fetched from `watermark` on.

    `lookback` re-reads rows a little behind the watermark for tables stamped with a wall-clock commit time
    (now() is the transaction's start, so a long transaction can commit behind a shorter, later one).
    `full_copy` tables are small current-state tables replaced on every sync.
    """

    name: str
    columns: tuple[tuple[str, str], ...]
    key: tuple[str, ...]
    watermark: str | None
    lookback: timedelta = timedelta(0)
    full_copy: bool = False

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)


_TS = "TIMESTAMPTZ"
MONEY = "DECIMAL(24, 8)"
# Exact quantities as the venue has them: whole shares and 0.0013 BTC (PostgreSQL numeric at the scale written).
QUANTITY = "DECIMAL(38, 18)"
_EXACT = (MONEY, QUANTITY)
_LATE_COMMITS = timedelta(minutes=5)

SYNCED_TABLES: tuple[SyncedTable, ...] = (
    SyncedTable(
        name="bars",
        columns=(
            ("timestamp", _TS),
            ("symbol", "VARCHAR"),
            ("open", "DOUBLE"),
            ("high", "DOUBLE"),
            ("low", "DOUBLE"),
            ("close", "DOUBLE"),
            ("volume", "DOUBLE"),
            ("spread", "DOUBLE"),
        ),
        key=("timestamp", "symbol"),
        watermark="timestamp",
    ),
    SyncedTable(
        name="signals",
        columns=(
            ("id", "BIGINT"),
            ("timestamp", _TS),
            ("symbol", "VARCHAR"),
            ("signal_type", "VARCHAR"),
            ("strength", "DOUBLE"),
            ("horizon_bars", "INTEGER"),
            ("regime", "VARCHAR"),
            ("actionable", "BOOLEAN"),
        ),
        key=("id",),
        watermark="timestamp",
    ),
    SyncedTable(
        name="orders",
        columns=(
            ("id", "VARCHAR"),
            ("timestamp", _TS),
            ("symbol", "VARCHAR"),
            ("side", "VARCHAR"),
            ("quantity", QUANTITY),
            ("signal_type", "VARCHAR"),
            ("reduces_position", "BOOLEAN"),
            ("status", "VARCHAR"),
            ("reason", "VARCHAR"),
            ("tick_to_order_us", "DOUBLE"),
            ("updated_at", _TS),
        ),
        key=("id",),
        # An order's status changes after submission: follow updated_at, not the submission time.
        watermark="updated_at",
        lookback=_LATE_COMMITS,
    ),
    SyncedTable(
        name="fills",
        columns=(
            ("id", "VARCHAR"),
            ("order_id", "VARCHAR"),
            ("timestamp", _TS),
            ("symbol", "VARCHAR"),
            ("side", "VARCHAR"),
            ("quantity", QUANTITY),
            ("price", MONEY),
            ("fee", MONEY),
            ("signal_type", "VARCHAR"),
            ("realized_pnl", MONEY),
        ),
        key=("id",),
        watermark="timestamp",
    ),
    SyncedTable(
        name="equity",
        columns=(("timestamp", _TS), ("total_value", MONEY), ("cash", MONEY), ("high_water_mark", MONEY)),
        key=("timestamp",),
        watermark="timestamp",
    ),
    SyncedTable(
        name="risk_events",
        columns=(
            ("id", "BIGINT"),
            ("timestamp", _TS),
            ("code", "VARCHAR"),
            ("detail", "VARCHAR"),
            ("symbol", "VARCHAR"),
            ("halts_trading", "BOOLEAN"),
            ("recorded_at", _TS),
        ),
        key=("id",),
        # An outage's event is written once the database is back, with its original (older) timestamp.
        watermark="recorded_at",
        lookback=_LATE_COMMITS,
    ),
    SyncedTable(
        name="regime_changes",
        columns=(
            ("id", "BIGINT"),
            ("timestamp", _TS),
            ("previous", "VARCHAR"),
            ("current", "VARCHAR"),
            ("model", "VARCHAR"),
        ),
        key=("id",),
        watermark="timestamp",
    ),
    SyncedTable(
        name="api_requests",
        columns=(
            ("id", "BIGINT"),
            ("timestamp", _TS),
            ("method", "VARCHAR"),
            ("path", "VARCHAR"),
            ("status", "INTEGER"),
            ("latency_ms", "DOUBLE"),
        ),
        key=("id",),
        # Written by every API replica on its own clock.
        watermark="timestamp",
        lookback=_LATE_COMMITS,
    ),
    SyncedTable(
        name="control_actions",
        columns=(
            ("id", "BIGINT"),
            ("timestamp", _TS),
            ("action", "VARCHAR"),
            ("actor", "VARCHAR"),
            ("reason", "VARCHAR"),
            ("value", "VARCHAR"),
            ("origin", "VARCHAR"),
        ),
        key=("id",),
        watermark="timestamp",
        lookback=_LATE_COMMITS,
    ),
    SyncedTable(
        name="audit_ledger",
        columns=(
            ("seq", "BIGINT"),
            ("recorded_at", _TS),
            ("kind", "VARCHAR"),
            ("ref", "VARCHAR"),
            ("actor", "VARCHAR"),
            ("origin", "VARCHAR"),
            ("payload", "VARCHAR"),
            ("prev_hash", "VARCHAR"),
            ("hash", "VARCHAR"),
        ),
        key=("seq",),
        # Stamped by each writer (the engine, every API process) on its own clock when it takes the ledger's turn.
        watermark="recorded_at",
        lookback=_LATE_COMMITS,
    ),
    SyncedTable(
        name="positions",
        columns=(
            ("symbol", "VARCHAR"),
            ("quantity", QUANTITY),
            ("avg_price", MONEY),
            ("realized_pnl", MONEY),
            ("updated_at", _TS),
        ),
        key=("symbol",),
        watermark=None,
        full_copy=True,
    ),
)

_SYNC_STATE_DDL = """
CREATE TABLE IF NOT EXISTS sync_state (
    table_name VARCHAR PRIMARY KEY,
    watermark TIMESTAMPTZ,
    rows_total BIGINT NOT NULL,
    rows_added BIGINT NOT NULL,
    synced_at TIMESTAMPTZ NOT NULL
)
"""

_SYNC_LOG_DDL = """
CREATE TABLE IF NOT EXISTS sync_log (
    synced_at TIMESTAMPTZ NOT NULL,
    seconds DOUBLE NOT NULL,
    rows_added BIGINT NOT NULL,
    full_resync BOOLEAN NOT NULL
)
"""

_ROLLUP_RUNS_DDL = """
CREATE TABLE IF NOT EXISTS rollup_runs (
    rollup VARCHAR PRIMARY KEY,
    as_of TIMESTAMPTZ NOT NULL,
    detail VARCHAR NOT NULL DEFAULT ''
)
"""


def scalar(conn: duckdb.DuckDBPyConnection, sql: str, params: Sequence[object] | None = None) -> object:
    """The first column of the first row, fetching the whole result (DuckDB refuses work past an unfinished one)."""
    rows = conn.execute(sql, params).fetchall() if params is not None else conn.execute(sql).fetchall()
    return rows[0][0] if rows else None


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def table_ddl(table: SyncedTable) -> str:
    """`CREATE TABLE IF NOT EXISTS` with the table's columns (also the schema of a backtest's results file)."""
    columns = ", ".join(f"{_quote(name)} {kind}" for name, kind in table.columns)
    return f"CREATE TABLE IF NOT EXISTS {_quote(table.name)} ({columns})"


def ensure_schema(conn: duckdb.DuckDBPyConnection) -> None:
    """Create the synced tables and the bookkeeping tables if they do not exist yet, and bring the columns of a
    file an earlier version wrote to today's types."""
    for table in SYNCED_TABLES:
        conn.execute(table_ddl(table))
        # A file an earlier version made gets the columns added since (always at the end, in the record's order).
        for name, kind in table.columns:
            conn.execute(f"ALTER TABLE {_quote(table.name)} ADD COLUMN IF NOT EXISTS {_quote(name)} {kind}")
    upgrade_column_types(conn, SYNCED_TABLES)
    conn.execute(_SYNC_STATE_DDL)
    conn.execute(_SYNC_LOG_DDL)
    conn.execute(_ROLLUP_RUNS_DDL)


def upgrade_column_types(conn: duckdb.DuckDBPyConnection, tables: Sequence[SyncedTable]) -> list[str]:
    """Converts, in place, each column whose type differs from the one `tables` declare (`CREATE TABLE IF NOT
    EXISTS` keeps an existing table as it was: an integer `quantity` from before fractional quantities becomes
    the same exact decimal). Returns the columns converted, as `table.column`."""
    found = {
        (table_name, column): kind
        for table_name, column, kind in conn.execute(
            "SELECT table_name, column_name, data_type FROM duckdb_columns()"
            " WHERE database_name = current_database() AND schema_name = 'main'"
        ).fetchall()
    }
    canonical: dict[str, object] = {}
    converted = []
    for table in tables:
        for column, kind in table.columns:
            have = found.get((table.name, column))
            if have is None:
                continue
            if kind not in canonical:
                canonical[kind] = scalar(conn, f"SELECT typeof(CAST(NULL AS {kind}))")
            if have != canonical[kind]:
                conn.execute(
                    f"ALTER TABLE {_quote(table.name)} ALTER COLUMN {_quote(column)} SET DATA TYPE {kind}"
                )
                converted.append(f"{table.name}.{column}")
    return converted


def configure(conn: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """Make TIMESTAMPTZ values come out in UTC whatever the machine's time zone."""
    conn.execute("SET TimeZone = 'UTC'")
    return conn


def adbc_uri(database_url: str) -> str:
    """A libpq URI from a SQLAlchemy-style or plain PostgreSQL URL."""
    scheme, sep, rest = database_url.partition("://")
    if not sep:
        raise ValueError("database URL must look like postgresql://user@host:port/dbname")
    base = scheme.split("+", 1)[0]
    if base not in ("postgresql", "postgres"):
        raise ValueError(f"not a PostgreSQL URL (scheme {scheme!r})")
    return f"postgresql://{rest}"


def _select_sql(table: SyncedTable, *, since: datetime | None) -> tuple[str, tuple[str, ...]]:
    # numeric travels as text: Arrow has no lossless numeric from libpq, DuckDB parses it exactly.
    parts = [
        f"{_quote(name)}::text AS {_quote(name)}" if kind in _EXACT else _quote(name)
        for name, kind in table.columns
    ]
    sql = f"SELECT {', '.join(parts)} FROM {_quote(table.name)}"
    if since is None or table.watermark is None:
        return sql, ()
    since_iso = (since - table.lookback).isoformat()
    return f"{sql} WHERE {_quote(table.watermark)} >= $1::timestamptz", (since_iso,)


def _watermark(conn: duckdb.DuckDBPyConnection, table: SyncedTable) -> datetime | None:
    if table.watermark is None:
        return None
    value = scalar(conn, f"SELECT max({_quote(table.watermark)}) FROM {_quote(table.name)}")
    return value if isinstance(value, datetime) else None


def _casts(table: SyncedTable) -> str:
    return ", ".join(f"CAST({_quote(col)} AS {kind}) AS {_quote(col)}" for col, kind in table.columns)


def _is_empty(conn: duckdb.DuckDBPyConnection, table: SyncedTable) -> bool:
    return not conn.execute(f"SELECT 1 FROM {_quote(table.name)} LIMIT 1").fetchall()


def _merge(conn: duckdb.DuckDBPyConnection, table: SyncedTable, *, replace_all: bool) -> int:
    """Move `_incoming` into the table, replacing rows with the same key; return how many keys are new."""
    name = _quote(table.name)
    casts = _casts(table)
    join = " AND ".join(f"t.{_quote(col)} = i.{_quote(col)}" for col in table.key)
    conn.execute("BEGIN TRANSACTION")
    try:
        if replace_all:
            before = _count(conn, f"SELECT count(*) FROM {name}")
            conn.execute(f"DELETE FROM {name}")
            conn.execute(f"INSERT INTO {name} SELECT {casts} FROM _incoming")
            added = max(0, _count(conn, f"SELECT count(*) FROM {name}") - before)
        else:
            added = _count(
                conn,
                f"SELECT count(*) FROM _incoming i WHERE NOT EXISTS (SELECT 1 FROM {name} t WHERE {join})",
            )
            conn.execute(f"DELETE FROM {name} t USING _incoming i WHERE {join}")
            conn.execute(f"INSERT INTO {name} SELECT {casts} FROM _incoming")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return added


def _count(conn: duckdb.DuckDBPyConnection, sql: str) -> int:
    value = scalar(conn, sql)
    return int(value) if isinstance(value, int) else 0


def sync_from_postgres(
    conn: duckdb.DuckDBPyConnection,
    database_url: str,
    *,
    tables: Sequence[SyncedTable] = SYNCED_TABLES,
    full: bool = False,
) -> dict[str, int]:
    """Copy rows newer than each table's watermark from PostgreSQL (Arrow, via ADBC); return rows added per table.

    The boundary timestamp is re-read and rows are de-duplicated on the primary key, so a re-run adds nothing.
    `full=True` re-reads everything (a repair; still de-duplicated).
    """
    import adbc_driver_postgresql.dbapi as pg_dbapi

    started = time.monotonic()
    ensure_schema(conn)
    added: dict[str, int] = {}
    # Every reader orders explicitly, so DuckDB's threads may append row groups as they finish: a third less CPU
    # for a large copy, nothing left for the checkpoint after it, and a smaller file to publish.
    conn.execute("SET preserve_insertion_order = false")
    try:
        with pg_dbapi.connect(adbc_uri(database_url)) as pg:
            _copy_tables(conn, pg, tables, full=full, added=added)
    finally:
        conn.execute("RESET preserve_insertion_order")
    _record_sync_state(conn, tables, added)
    conn.execute(
        "INSERT INTO sync_log VALUES (?, ?, ?, ?)",
        [datetime.now(UTC), time.monotonic() - started, sum(added.values()), full],
    )
    return added


def last_sync_at(conn: duckdb.DuckDBPyConnection) -> datetime | None:
    """When the newest sync recorded in `sync_log` finished, or None if none has."""
    value = scalar(conn, "SELECT max(synced_at) FROM sync_log")
    return value if isinstance(value, datetime) else None


@dataclass(frozen=True, slots=True)
class SyncOutcome:
    """What `Warehouse.sync` did: rows added per table, or nothing because it shared a sync that had just run."""

    rows_added: dict[str, int] = field(default_factory=dict)
    shared_with: datetime | None = None

    @property
    def performed(self) -> bool:
        return self.shared_with is None


def _copy_tables(
    conn: duckdb.DuckDBPyConnection,
    pg: PostgresConnection,
    tables: Sequence[SyncedTable],
    *,
    full: bool,
    added: dict[str, int],
) -> None:
    for table in tables:
        since = None if full else _watermark(conn, table)
        sql, params = _select_sql(table, since=since)
        first_copy = since is None and not table.full_copy and _is_empty(conn, table)
        with pg.cursor() as cursor:
            cursor.execute(sql, parameters=params or None)
            # A stream, not a table: one batch in memory at a time, stored while the driver decodes the next.
            conn.register("_incoming_arrow", cursor.fetch_record_batch())
            try:
                if first_copy:
                    # PostgreSQL's primary key already guarantees unique keys, so no merge is needed.
                    added[table.name] = _count(
                        conn, f"INSERT INTO {_quote(table.name)} SELECT {_casts(table)} FROM _incoming_arrow"
                    )
                    pg.commit()
                    continue
                conn.execute("CREATE OR REPLACE TEMP TABLE _incoming AS SELECT * FROM _incoming_arrow")
            finally:
                conn.unregister("_incoming_arrow")
        pg.commit()  # end the read-only transaction so nothing is held open on the server
        if not table.full_copy and _count(conn, "SELECT count(*) FROM _incoming") == 0:
            added[table.name] = 0
        else:
            added[table.name] = _merge(conn, table, replace_all=table.full_copy)
        conn.execute("DROP TABLE _incoming")


def _record_sync_state(
    conn: duckdb.DuckDBPyConnection, tables: Sequence[SyncedTable], added: dict[str, int]
) -> None:
    for table in tables:
        total = _count(conn, f"SELECT count(*) FROM {_quote(table.name)}")
        conn.execute(
            "INSERT OR REPLACE INTO sync_state VALUES (?, ?, ?, ?, now())",
            [table.name, _watermark(conn, table), total, added.get(table.name, 0)],
        )


def record_rollup(conn: duckdb.DuckDBPyConnection, rollup: str, *, as_of: datetime, detail: str = "") -> None:
    """Note when a rollup was made: the Metrics API reports it as `as_of`."""
    conn.execute("INSERT OR REPLACE INTO rollup_runs VALUES (?, ?, ?)", [rollup, as_of, detail])


def rollup_as_of(conn: duckdb.DuckDBPyConnection, rollup: str) -> datetime | None:
    """When the named rollup was last made, or None if never (or before the table existed)."""
    try:
        value = scalar(conn, "SELECT as_of FROM rollup_runs WHERE rollup = ?", [rollup])
    except duckdb.CatalogException:
        return None
    return value if isinstance(value, datetime) else None


@dataclass(frozen=True, slots=True)
class Warehouse:
    """Where the analytics files live under TRADEOS_HOME, and the only ways to write and read them."""

    home: Path
    lock_timeout_seconds: float = 600.0

    @property
    def published_path(self) -> Path:
        return self.home / PUBLISHED_NAME

    @property
    def staging_path(self) -> Path:
        return self.home / STAGING_DIR / STAGING_NAME

    @property
    def lock_path(self) -> Path:
        return self.home / STAGING_DIR / LOCK_NAME

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.lock_timeout_seconds
        with self.lock_path.open("a") as handle:
            while True:
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"another flow has held {self.lock_path} too long") from None
                    time.sleep(0.05)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def _open_staging(self) -> duckdb.DuckDBPyConnection:
        """The staging file, with its schema; the caller holds the lock."""
        if not self.staging_path.exists() and self.published_path.exists():
            # A lost staging file is rebuilt from the last published copy rather than from scratch.
            shutil.copyfile(self.published_path, self.staging_path)
        conn = configure(duckdb.connect(str(self.staging_path)))
        try:
            ensure_schema(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    @staticmethod
    def _finish(conn: duckdb.DuckDBPyConnection) -> None:
        # Rollups recreate their tables, which drops comments: every table leaves documented.
        apply_comments(conn)
        conn.execute("CHECKPOINT")

    @contextmanager
    def writer(self, *, publish: bool = True) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection to the staging file, alone among flows; on a clean exit the file is published."""
        with self._exclusive():
            conn = self._open_staging()
            try:
                yield conn
                self._finish(conn)
            finally:
                conn.close()
            if publish:
                self._publish_locked()

    def sync(
        self, database_url: str, *, full: bool = False, shared_within: timedelta = timedelta(0)
    ) -> SyncOutcome:
        """Sync from PostgreSQL and publish, unless a sync finished less than `shared_within` ago: then share it.

        The check and the sync happen under the writers' lock, so of flows that start together the first syncs
        and the others, once they get the lock, find its fresh record and skip the copy and the publication.
        A full re-read (`full=True`) is never skipped.
        """
        with self._exclusive():
            conn = self._open_staging()
            try:
                last = last_sync_at(conn)
                age = datetime.now(UTC) - last if last is not None else None
                if (
                    not full
                    and age is not None
                    and timedelta(0) <= age < shared_within
                    and self.published_path.exists()
                ):
                    return SyncOutcome(shared_with=last)
                added = sync_from_postgres(conn, database_url, full=full)
                self._finish(conn)
            finally:
                conn.close()
            self._publish_locked()
        return SyncOutcome(rows_added=added)

    def publish(self) -> Path:
        """Atomically replace the analysts' file with the current staging file."""
        with self._exclusive():
            return self._publish_locked()

    def _publish_locked(self) -> Path:
        if not self.staging_path.exists():
            conn = configure(duckdb.connect(str(self.staging_path)))
            ensure_schema(conn)
            self._finish(conn)
            conn.close()
        self.published_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.published_path.with_name(f".{PUBLISHED_NAME}.{os.getpid()}.tmp")
        shutil.copyfile(self.staging_path, tmp)
        with tmp.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, self.published_path)
        return self.published_path

    @contextmanager
    def reader(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A short-lived read-only connection to the published file; never blocks or is blocked by a flow."""
        if not self.published_path.exists():
            raise WarehouseMissingError(str(self.published_path))
        conn = configure(duckdb.connect(str(self.published_path), read_only=True))
        try:
            yield conn
        finally:
            conn.close()
