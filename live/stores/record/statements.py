"""Statements as values, and the two ways to run them: on the engine's psycopg connection, or awaited on an
API `AsyncConnection`. A statement carries its SQL text, its parameters and, for a query, how its rows become what
the caller asked for, so both sides run the same text with the same mapping and differ only in `await`."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from itertools import accumulate
from typing import Any, Generic, TypeVar

import psycopg

T = TypeVar("T")
Params = Sequence[Any] | Mapping[str, Any]
Row = tuple[Any, ...]


def column_list(columns: Iterable[str]) -> str:
    return ", ".join(columns)


def insert_sql(table: str, columns: Sequence[str], tail: str = "") -> str:
    placeholders = ", ".join(["%s"] * len(columns))
    return f"INSERT INTO {table} ({column_list(columns)}) VALUES ({placeholders}){tail}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Query(Generic[T]):
    """A statement whose rows are read, and how they become what the caller asked for."""

    sql: str
    params: Params = ()
    decode: Callable[[list[Row]], T]


@dataclass(frozen=True, slots=True, kw_only=True)
class Statement:
    """A statement run once, nothing read back."""

    sql: str
    params: Params = ()


# Inside a transaction: its commit returns without waiting for its WAL to reach the disk (see its users for why).
COMMIT_WITHOUT_FLUSH = Statement(sql="SET LOCAL synchronous_commit = off")


@dataclass(frozen=True, slots=True, kw_only=True)
class Batch:
    """One statement run for each of `rows` (psycopg pipelines them)."""

    sql: str
    rows: Sequence[Params]


@dataclass(frozen=True, slots=True, kw_only=True)
class Copy:
    """COPY ... FROM STDIN: `rows` are adapted by psycopg one by one; `chunks` are written as already encoded."""

    sql: str
    rows: Iterable[Sequence[Any]] = ()
    chunks: Iterable[bytes] = ()


SyncTarget = psycopg.Connection[Any] | psycopg.Cursor[Any]
AsyncTarget = psycopg.AsyncConnection[Any] | psycopg.AsyncCursor[Any]


def fetch(on: SyncTarget, query: Query[T]) -> T:
    return query.decode(on.execute(query.sql, query.params).fetchall())


async def fetch_async(on: AsyncTarget, query: Query[T]) -> T:
    return query.decode(await (await on.execute(query.sql, query.params)).fetchall())


def execute(on: SyncTarget, statement: Statement) -> None:
    on.execute(statement.sql, statement.params)


async def execute_async(on: AsyncTarget, statement: Statement) -> None:
    await on.execute(statement.sql, statement.params)


def execute_many(on: SyncTarget, batch: Batch) -> None:
    if isinstance(on, psycopg.Cursor):
        on.executemany(batch.sql, batch.rows)
        return
    with on.cursor() as cursor:
        cursor.executemany(batch.sql, batch.rows)


def fetch_many(on: SyncTarget, batch: Batch) -> list[Row]:
    """Runs `batch` (a statement with RETURNING) for each of its rows, pipelined; what each returned, in order."""
    if isinstance(on, psycopg.Connection):
        with on.cursor() as cursor:
            return fetch_many(cursor, batch)
    if not batch.rows:
        return []
    on.executemany(batch.sql, batch.rows, returning=True)
    returned: list[Row] = []
    while True:
        returned.extend(on.fetchall())
        if not on.nextset():
            return returned


async def execute_unflushed_async(on: psycopg.AsyncConnection[Any], statement: Statement) -> None:
    """Runs `statement` in a transaction of its own whose commit returns before its WAL reaches the disk
    (`SET LOCAL synchronous_commit = off`), on an autocommit connection. Both go in one simple-protocol query (the
    parameters bound by psycopg on the client), which PostgreSQL runs as one implicit transaction: one round trip.

    The commit is durable at the WAL writer's next flush (within 3 x `wal_writer_delay`) or at the next synchronous
    commit by anyone, the WAL being flushed in order; a server crash before then loses it. Only for a row that
    another store already makes good on (the caller says which)."""
    async with psycopg.AsyncClientCursor(on) as cursor:
        await cursor.execute(f"SET LOCAL synchronous_commit = off; {statement.sql}", statement.params)


async def execute_many_async(on: AsyncTarget, batch: Batch) -> None:
    if isinstance(on, psycopg.AsyncCursor):
        await on.executemany(batch.sql, batch.rows)
        return
    async with on.cursor() as cursor:
        await cursor.executemany(batch.sql, batch.rows)


def copy(on: SyncTarget, statement: Copy) -> None:
    if isinstance(on, psycopg.Connection):
        with on.cursor() as cursor:
            copy(cursor, statement)
        return
    with on.copy(statement.sql) as stream:
        for row in statement.rows:
            stream.write_row(row)
        for chunk in statement.chunks:
            stream.write(chunk)


async def copy_async(on: AsyncTarget, statement: Copy) -> None:
    if isinstance(on, psycopg.AsyncConnection):
        async with on.cursor() as cursor:
            await copy_async(cursor, statement)
        return
    async with on.copy(statement.sql) as stream:
        for row in statement.rows:
            await stream.write_row(row)
        for chunk in statement.chunks:
            await stream.write(chunk)


def rows_of(make: Callable[[Row], T]) -> Callable[[list[Row]], list[T]]:
    """A decoder of every row by `make` (a row type's `_make`)."""

    def decode(rows: list[Row]) -> list[T]:
        return [make(row) for row in rows]

    return decode


def first_value(rows: list[Row]) -> Any:
    return rows[0][0] if rows else None


def exists(rows: list[Row]) -> bool:
    return bool(rows)


def optional_int(rows: list[Row]) -> int | None:
    value = first_value(rows)
    return int(value) if value is not None else None


def optional_decimal(rows: list[Row]) -> Decimal | None:
    value = first_value(rows)
    return Decimal(value) if value is not None else None


def optional_str(rows: list[Row]) -> str | None:
    value = first_value(rows)
    return str(value) if value is not None else None


@dataclass(frozen=True, slots=True, kw_only=True)
class LatencyBuckets:
    """Cumulative counts of samples at or under each bound (in the bounds' unit), their count and their sum."""

    bounds: tuple[float, ...]
    cumulative: tuple[int, ...]
    count: int
    total: float


def le_bucket_sql(column: str, bounds: Sequence[float]) -> str:
    """An expression numbering the bucket of `column` so that values equal to a bound fall at or under it (as a
    Prometheus `le` bucket): `width_bucket` puts a value equal to a threshold above it, so it is given the
    negated value and bounds. With n bounds, n - the number is the index of the first bound >= the value (n: above
    them all)."""
    negated = ", ".join(repr(-float(b)) for b in reversed(bounds))
    return f"width_bucket(-{column}, ARRAY[{negated}]::double precision[])"


class BucketTally:
    """Adds up rows of (le_bucket_sql number, samples, sum of the samples) into `LatencyBuckets`."""

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self._per_bucket = [0] * (len(self.bounds) + 1)  # the last one: above every bound
        self._total = 0.0

    def add(self, number: int | None, samples: int, total: float | None) -> None:
        if number is None or not samples:
            return
        self._per_bucket[len(self.bounds) - number] += samples
        self._total += float(total or 0.0)

    def buckets(self) -> LatencyBuckets:
        cumulative = list(accumulate(self._per_bucket))
        return LatencyBuckets(
            bounds=self.bounds, cumulative=tuple(cumulative[:-1]), count=cumulative[-1], total=self._total
        )
