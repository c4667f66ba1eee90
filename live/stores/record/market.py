"""The market's tables: `bars` and `signals` (every computed value), written by binary COPY (most of what the
engine writes, bench/README.md), and read back for the book's marks, `GET /signals` and the published signal ids."""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from live.domain import Bar
from live.engine import SignalRow
from live.stores.record.statements import (
    Copy,
    Query,
    Row,
    column_list,
    rows_of,
)

BAR_COLUMNS = ("timestamp", "symbol", "open", "high", "low", "close", "volume", "spread")

# Strength last: all that precedes it repeats from step to step, so the binary COPY encodes that prefix once.
_SIGNAL_COPIED = ("timestamp", "symbol", "signal_type", "horizon_bars", "regime", "actionable", "strength")


def _closes(rows: list[Row]) -> dict[str, float]:
    return dict(rows)


def last_closes() -> Query[dict[str, float]]:
    """Each symbol's last recorded close."""
    return Query(
        sql="SELECT DISTINCT ON (symbol) symbol, close FROM bars ORDER BY symbol, timestamp DESC",
        decode=_closes,
    )


class RecordedSignal(NamedTuple):
    """A computed signal value as recorded, with the id the record gave it; `actionable`: the engine acted on it.
    A row to serialise (`GET /signals` reads up to a thousand), hence a tuple: a microsecond to build."""

    id: int
    timestamp: datetime
    symbol: str
    signal_type: str
    strength: float
    horizon_bars: int
    regime: str
    actionable: bool


SIGNAL_COLUMNS: tuple[str, ...] = RecordedSignal._fields


_signals = rows_of(RecordedSignal._make)


def recent_signals(
    *, limit: int, signal_type: str | None = None, symbol: str | None = None, actionable: bool | None = None
) -> Query[list[RecordedSignal]]:
    """Signal values newest first, filtered on what is given."""
    return Query(
        sql=f"SELECT {column_list(SIGNAL_COLUMNS)} FROM signals"
        " WHERE (%(signal_type)s::text IS NULL OR signal_type = %(signal_type)s)"
        " AND (%(symbol)s::text IS NULL OR symbol = %(symbol)s)"
        " AND (%(actionable)s::boolean IS NULL OR actionable = %(actionable)s)"
        " ORDER BY timestamp DESC, id DESC LIMIT %(limit)s",
        params={"signal_type": signal_type, "symbol": symbol, "actionable": actionable, "limit": limit},
        decode=_signals,
    )


def _signal_ids(rows: list[Row]) -> dict[tuple[datetime, str, str], int]:
    return {(timestamp, symbol, signal_type): int(id_) for timestamp, symbol, signal_type, id_ in rows}


def actionable_signal_ids(*, since: datetime, until: datetime) -> Query[dict[tuple[datetime, str, str], int]]:
    """Row ids of the committed actionable signals stamped `since`..`until`, by (timestamp, symbol, signal type)."""
    return Query(
        sql="SELECT timestamp, symbol, signal_type, id FROM signals"
        " WHERE actionable AND timestamp BETWEEN %s AND %s ORDER BY id",
        params=(since, until),
        decode=_signal_ids,
    )


# Binary COPY (PostgreSQL's own wire format): the server parses no text and the client formats each row with one
# struct.pack.
_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags, header extension length
_COPY_TRAILER = b"\xff\xff"
_COPY_CHUNK_ROWS = 4096  # rows per write: the server parses one chunk while the next is formatted
_BAR_HEAD = struct.Struct(">hiq")  # 8 fields; timestamptz (length 8, microseconds since 2000-01-01 UTC)
_BAR_PRICES = struct.Struct(">" + "id" * 6)  # open, high, low, close, volume, spread: float8 each
_SIGNAL_HEAD = struct.Struct(">hiq")  # 7 fields; timestamptz
_FLOAT8 = struct.Struct(">id")
_INT4 = struct.Struct(">ii")
_BOOL = {True: b"\x00\x00\x00\x01\x01", False: b"\x00\x00\x00\x01\x00"}


def copy_bars(bars: Iterable[Bar]) -> Copy:
    return Copy(
        sql=f"COPY bars ({column_list(BAR_COLUMNS)}) FROM STDIN (FORMAT BINARY)",
        chunks=_chunks(_bar_rows(bars)),
    )


def copy_signals(rows: Iterable[SignalRow]) -> Copy:
    return Copy(
        sql=f"COPY signals ({column_list(_SIGNAL_COPIED)}) FROM STDIN (FORMAT BINARY)",
        chunks=_chunks(_signal_rows(rows)),
    )


def _chunks(rows: Iterator[bytes]) -> Iterator[bytes]:
    """The binary COPY stream of pre-encoded rows, in chunks of _COPY_CHUNK_ROWS."""
    chunk = [_COPY_HEADER]
    for row in rows:
        chunk.append(row)
        if len(chunk) >= _COPY_CHUNK_ROWS:
            yield b"".join(chunk)
            chunk = []
    chunk.append(_COPY_TRAILER)
    yield b"".join(chunk)


def _text_field(value: str) -> bytes:
    encoded = value.encode()
    return len(encoded).to_bytes(4, "big") + encoded


def _microseconds(timestamp: datetime) -> int:
    return (timestamp - _PG_EPOCH) // _MICROSECOND


def _bar_rows(bars: Iterable[Bar]) -> Iterator[bytes]:
    """Binary COPY rows of `bars`; timestamps and symbols are encoded once each (a step's bars share one)."""
    symbols: dict[str, bytes] = {}
    last_ts: datetime | None = None
    head = b""
    prices = _BAR_PRICES.pack
    for b in bars:
        if b.timestamp is not last_ts:
            last_ts = b.timestamp
            head = _BAR_HEAD.pack(8, 8, _microseconds(last_ts))
        symbol = symbols.get(b.symbol)
        if symbol is None:
            symbol = symbols[b.symbol] = _text_field(b.symbol)
        yield head + symbol + prices(8, b.open, 8, b.high, 8, b.low, 8, b.close, 8, b.volume, 8, b.spread)


def _signal_rows(rows: Iterable[SignalRow]) -> Iterator[bytes]:
    """Binary COPY rows of the engine's signal rows in _SIGNAL_COPIED order: the prefix before the strength is
    encoded once per (symbol, type, horizon, regime, actionable)."""
    prefixes: dict[tuple[str, str, int, str, bool], bytes] = {}
    last_ts: datetime | None = None
    head = b""
    strength_field = _FLOAT8.pack
    for timestamp, symbol, signal_type, strength, horizon_bars, regime, actionable in rows:
        if timestamp is not last_ts:
            last_ts = timestamp
            head = _SIGNAL_HEAD.pack(7, 8, _microseconds(timestamp))
        key = (symbol, signal_type, horizon_bars, regime, actionable)
        prefix = prefixes.get(key)
        if prefix is None:
            prefix = prefixes[key] = (
                _text_field(symbol)
                + _text_field(signal_type)
                + _INT4.pack(4, horizon_bars)
                + _text_field(regime)
                + _BOOL[bool(actionable)]
            )
        yield head + prefix + strength_field(8, strength)


def last_closes_of(*, symbols: Sequence[str]) -> Query[dict[str, float]]:
    """The last recorded close of each of `symbols` (those without a bar are left out): one backward scan of the
    bars' time index per symbol, stopping at its latest bar, however long the history."""
    return Query(
        sql="SELECT s.symbol, b.close FROM unnest(%(symbols)s::text[]) AS s (symbol)"
        " CROSS JOIN LATERAL (SELECT close FROM bars WHERE bars.symbol = s.symbol"
        " ORDER BY timestamp DESC LIMIT 1) AS b",
        params={"symbols": list(symbols)},
        decode=_closes,
    )


def _count_through(rows: list[Row]) -> tuple[int, datetime | None]:
    count, through = rows[0]
    return int(count), through


def bars_recorded_after(*, after: datetime | None) -> Query[tuple[int, datetime | None]]:
    """(how many bars are recorded with a time after `after` (all of them when None), the latest such time): a
    range scan of the bars' primary key, so a tally kept up to date this way costs only the bars new since."""
    return Query(
        sql="SELECT count(*), max(timestamp) FROM bars WHERE %(after)s::timestamptz IS NULL OR timestamp > %(after)s",
        params={"after": after},
        decode=_count_through,
    )


class RecentMarket(NamedTuple):
    """The last bars of the record and the signal values computed on them, as columns (a polars frame's input)."""

    bars: dict[str, list[Any]]  # timestamp, symbol, close
    signals: dict[str, list[Any]]  # timestamp, symbol, signal_type, strength, horizon_bars


def _recent_market(rows: list[Row]) -> RecentMarket:
    bars: dict[str, list[Any]] = {"timestamp": [], "symbol": [], "close": []}
    signals: dict[str, list[Any]] = {
        "timestamp": [],
        "symbol": [],
        "signal_type": [],
        "strength": [],
        "horizon_bars": [],
    }
    for kind, timestamp, symbol, close, signal_type, strength, horizon in rows:
        if kind == "b":
            bars["timestamp"].append(timestamp)
            bars["symbol"].append(symbol)
            bars["close"].append(close)
        else:
            signals["timestamp"].append(timestamp)
            signals["symbol"].append(symbol)
            signals["signal_type"].append(signal_type)
            signals["strength"].append(strength)
            signals["horizon_bars"].append(horizon)
    return RecentMarket(bars=bars, signals=signals)


def recent_market(*, timestamps: int) -> Query[RecentMarket]:
    """The bars of the last `timestamps` distinct bar times (a backward scan of the bars' primary key) and every
    signal value stamped in that span, in one statement."""
    return Query(
        sql="WITH times AS (SELECT DISTINCT timestamp FROM bars ORDER BY timestamp DESC LIMIT %(timestamps)s),"
        " cut AS (SELECT min(timestamp) AS since FROM times)"
        " SELECT 'b', b.timestamp, b.symbol, b.close, NULL::text, NULL::float8, NULL::int"
        " FROM bars b, cut WHERE b.timestamp >= cut.since"
        " UNION ALL"
        " SELECT 's', s.timestamp, s.symbol, NULL::float8, s.signal_type, s.strength, s.horizon_bars"
        " FROM signals s, cut WHERE s.timestamp >= cut.since",
        params={"timestamps": timestamps},
        decode=_recent_market,
    )
