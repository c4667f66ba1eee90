"""Replays recorded OHLCV bars from a CSV or Parquet file, validated up front.

Every problem is reported as a `FeedError` naming the file, the line (CSV: the file line, header = line 1) or
row (Parquet: 1-based) and the reason, so a bad file fails at start-up rather than halfway through a replay.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from live.domain import Bar, iso_utc
from live.feeds.base import FeedError

REQUIRED_COLUMNS: tuple[str, ...] = ("timestamp", "symbol", "open", "high", "low", "close", "volume")
PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")
_CSV_SUFFIXES = (".csv",)
_PARQUET_SUFFIXES = (".parquet", ".pq")
_DEFAULT_BAR_SECONDS = 60
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


class ReplayFeed:
    """Bars loaded eagerly from a file, handed out one timestamp at a time (build it with `from_path`).

    Timestamps are ISO 8601; those with `Z` or an offset are converted to UTC, naive ones are taken to be UTC.
    Parquet datetime columns are accepted as they are (naive = UTC). `bar_seconds` is the smallest gap between
    two timestamps (60 if there is only one), for pacing only: the engine counts horizons in each symbol's own
    bars, whatever their length or gaps. `symbols` are the file's symbols, sorted.
    """

    def __init__(
        self,
        *,
        times: list[datetime],
        starts: list[int],
        symbols: list[str],
        opens: list[float],
        highs: list[float],
        lows: list[float],
        closes: list[float],
        volumes: list[float],
        spreads: list[float],
        source: str = "<memory>",
        first_row: int = 0,
    ) -> None:
        # `times[k]` is the timestamp of the rows from `starts[k]` up to the next start; the rows are the source's
        # from `first_row` on (a window of a file starts further in).
        self.source = source
        self._first_row = first_row
        self._times = times
        self._starts = starts
        self._names = symbols
        self._columns = (opens, highs, lows, closes, volumes, spreads)
        self.symbols: tuple[str, ...] = tuple(sorted(set(symbols)))
        gaps = [(b - a).total_seconds() for a, b in zip(times, times[1:], strict=False)]
        self.bar_seconds = max(1, round(min(gaps))) if gaps else _DEFAULT_BAR_SECONDS

    @classmethod
    def from_path(cls, path: Path, *, symbols: tuple[str, ...] | None = None) -> ReplayFeed:
        """Load and validate a .csv, .parquet or .pq file; `symbols`, if given, are the only ones allowed."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in _CSV_SUFFIXES + _PARQUET_SUFFIXES:
            raise FeedError(
                f"{path}: unsupported file type {suffix or '(none)'!r}; use .csv, .parquet or .pq"
            )
        if not path.is_file():
            raise FeedError(f"{path}: no such file")
        is_csv = suffix in _CSV_SUFFIXES
        frame = _read(path, is_csv=is_csv)
        return _load(frame, path=path, is_csv=is_csv, allowed=symbols)

    @property
    def first_timestamp(self) -> datetime | None:
        """The timestamp of the file's first bars (None for a feed without bars)."""
        return self._times[0] if self._times else None

    @property
    def last_timestamp(self) -> datetime | None:
        """The timestamp of the file's last bars (None for a feed without bars)."""
        return self._times[-1] if self._times else None

    def __len__(self) -> int:
        """Number of bars in the file."""
        return len(self._names)

    def frame(self) -> pl.DataFrame:
        """Every bar as one frame (`timestamp` UTC, `symbol`, `open` .. `volume`, `spread`), in file order: what a
        backtest records as its `bars` without building a `Bar` per row."""
        counts = np.diff([*self._starts, len(self._names)])
        opens, highs, lows, closes, volumes, spreads = self._columns
        times = pl.Series("timestamp", self._times, dtype=pl.Datetime("us", "UTC"))
        return pl.DataFrame(
            {
                "timestamp": times.gather(np.repeat(np.arange(len(counts)), counts)),
                "symbol": self._names,
                "open": opens,
                "high": highs,
                "low": lows,
                "close": closes,
                "volume": volumes,
                "spread": spreads,
            },
            schema_overrides={"symbol": pl.String},
        )

    @property
    def cross_sections(self) -> int:
        """Number of distinct timestamps (what `batches` yields)."""
        return len(self._times)

    def timestamp_at(self, index: int) -> datetime:
        """The timestamp of the `index`-th cross-section (0-based)."""
        return self._times[index]

    def window(self, start: datetime | None = None, end: datetime | None = None) -> ReplayFeed:
        """The bars with `start <= timestamp < end` (either bound open when None), as a feed of its own."""
        first = 0 if start is None else bisect.bisect_left(self._times, start)
        stop = len(self._times) if end is None else bisect.bisect_left(self._times, end)
        stop = max(first, stop)
        lo = self._starts[first] if first < len(self._starts) else len(self._names)
        hi = self._starts[stop] if stop < len(self._starts) else len(self._names)
        return ReplayFeed(
            times=self._times[first:stop],
            starts=[offset - lo for offset in self._starts[first:stop]],
            symbols=self._names[lo:hi],
            opens=self._columns[0][lo:hi],
            highs=self._columns[1][lo:hi],
            lows=self._columns[2][lo:hi],
            closes=self._columns[3][lo:hi],
            volumes=self._columns[4][lo:hi],
            spreads=self._columns[5][lo:hi],
            source=self.source,
            first_row=self._first_row + lo,
        )

    def write_head(self, dest: Path, *, cross_sections: int) -> Path:
        """Copies this feed's first `cross_sections` timestamps to `dest` in the source file's format, each value
        as the file wrote it (a truncated copy for the look-ahead check; a window's own file)."""
        source = Path(self.source)
        rows = len(self._names) if cross_sections >= len(self._starts) else self._starts[cross_sections]
        if source.suffix.lower() in _CSV_SUFFIXES:
            frame = pl.read_csv(source, infer_schema=False)
            # Blank lines are skipped as on loading, so rows are counted as the feed counts them.
            frame = frame.filter(~pl.all_horizontal(pl.col(REQUIRED_COLUMNS).is_null()))
            frame.slice(self._first_row, rows).write_csv(dest)
        else:
            pl.read_parquet(source).slice(self._first_row, rows).write_parquet(dest)
        return dest

    def batches(self) -> Iterator[list[Bar]]:
        """Yield the bars of each timestamp, in file order."""
        names = self._names
        opens, highs, lows, closes, volumes, spreads = self._columns
        ends = [*self._starts[1:], len(names)] if self._starts else []
        for ts, start, end in zip(self._times, self._starts, ends, strict=True):
            yield [
                Bar(timestamp=ts, symbol=sym, open=o, high=h, low=lo, close=c, volume=v, spread=sp)
                for sym, o, h, lo, c, v, sp in zip(
                    names[start:end],
                    opens[start:end],
                    highs[start:end],
                    lows[start:end],
                    closes[start:end],
                    volumes[start:end],
                    spreads[start:end],
                    strict=True,
                )
            ]


def _read(path: Path, *, is_csv: bool) -> pl.DataFrame:
    try:
        if is_csv:
            # Everything as text: each value is parsed below, where a failure can be pinned to its line.
            return pl.read_csv(path, infer_schema=False)
        return pl.read_parquet(path)
    except pl.exceptions.NoDataError as exc:
        raise FeedError(f"{path}: the file is empty") from exc
    except (pl.exceptions.PolarsError, OSError) as exc:
        kind = "CSV" if is_csv else "Parquet"
        raise FeedError(f"{path}: not a readable {kind} file ({exc})") from exc


class _Locator:
    """Turns a row index of the frame into the words that find it in the file."""

    def __init__(self, path: Path, *, is_csv: bool, rows: list[int]) -> None:
        self.path = path
        self.is_csv = is_csv
        self.rows = rows

    def where(self, index: int) -> str:
        row = self.rows[index]
        return f"line {row + 2}" if self.is_csv else f"row {row + 1}"

    def error(self, index: int, reason: str) -> FeedError:
        return FeedError(f"{self.path}, {self.where(index)}: {reason}")


def _load(frame: pl.DataFrame, *, path: Path, is_csv: bool, allowed: tuple[str, ...] | None) -> ReplayFeed:
    missing = [name for name in REQUIRED_COLUMNS if name not in frame.columns]
    if missing:
        raise FeedError(
            f"{path}: missing column(s) {', '.join(missing)} (required: {', '.join(REQUIRED_COLUMNS)})"
        )
    has_spread = "spread" in frame.columns
    wanted = [*REQUIRED_COLUMNS, *(["spread"] if has_spread else [])]
    frame = frame.select(wanted).with_row_index("_row")
    if is_csv:
        # A blank line reads as a row of nulls: skip it, keeping the line numbers of the rows after it.
        frame = frame.filter(~pl.all_horizontal(pl.col(REQUIRED_COLUMNS).is_null()))
    if frame.height == 0:
        raise FeedError(f"{path}: the file is empty (no bars)")
    where = _Locator(path, is_csv=is_csv, rows=frame["_row"].to_list())

    # First: can every value be read; then: does each bar make sense; last: do the bars follow each other.
    micros = _epoch_micros(frame["timestamp"], where)
    names = _symbols(frame["symbol"], where, allowed)
    numbers = pl.DataFrame([_numbers(frame[name], name, where) for name in wanted[2:]])
    _check_bars(numbers, where)
    _check_order(micros, names, where)

    starts = (micros.diff() != 0).fill_null(True).arg_true()
    times = [_EPOCH + timedelta(microseconds=value) for value in micros.gather(starts).to_list()]
    columns: dict[str, list[float]] = {name: numbers[name].to_list() for name in numbers.columns}
    return ReplayFeed(
        times=times,
        starts=starts.to_list(),
        symbols=names.to_list(),
        opens=columns["open"],
        highs=columns["high"],
        lows=columns["low"],
        closes=columns["close"],
        volumes=columns["volume"],
        spreads=columns["spread"] if has_spread else [0.0] * frame.height,
        source=str(path),
    )


def _epoch_micros(column: pl.Series, where: _Locator) -> pl.Series:
    """Timestamps as integer microseconds since the epoch, UTC."""
    if isinstance(column.dtype, pl.Datetime):
        if column.dtype.time_zone is None:
            # Naive values are UTC by the documented convention.
            column = column.dt.replace_time_zone("UTC")
        micros = column.dt.epoch("us")
        if micros.null_count():
            raise where.error(_first(micros.is_null()), "missing timestamp")
        return micros
    if column.dtype != pl.String:
        raise where.error(0, f"timestamp must be ISO 8601 text or a datetime, not {column.dtype}")
    if column.null_count():
        raise where.error(_first(column.is_null()), "missing timestamp")
    # Each distinct text is parsed once: a file repeats every timestamp for each of its symbols.
    distinct = column.unique(maintain_order=True)
    parsed: dict[str, int] = {}
    for text in distinct.to_list():
        ts = _parse_timestamp(text)
        if ts is None:
            i = _first(column == text)
            reason = (
                "missing timestamp"
                if not text.strip()
                else f"unparsable timestamp {text!r} (expected ISO 8601)"
            )
            raise where.error(i, reason)
        parsed[text] = (ts - _EPOCH) // _MICROSECOND
    return column.replace_strict(parsed, return_dtype=pl.Int64)


def _parse_timestamp(text: str) -> datetime | None:
    try:
        ts = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    # Naive timestamps are taken to be UTC, as documented on ReplayFeed.
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def _symbols(column: pl.Series, where: _Locator, allowed: tuple[str, ...] | None) -> pl.Series:
    names = column.cast(pl.String).str.strip_chars()
    empty = names.is_null() | (names == "")
    if empty.any():
        raise where.error(_first(empty), "missing symbol")
    if allowed is not None:
        unknown = ~names.is_in(list(allowed))
        if unknown.any():
            i = _first(unknown)
            raise where.error(
                i, f"symbol {names[i]!r} is not one of the requested symbols ({', '.join(allowed)})"
            )
    return names


def _numbers(column: pl.Series, name: str, where: _Locator) -> pl.Series:
    text = column.str.strip_chars() if column.dtype == pl.String else column
    values = text.cast(pl.Float64, strict=False).alias(name)
    bad = values.is_null()
    if bad.any():
        i = _first(bad)
        raw = column[i]
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            raise where.error(i, f"missing value in column {name}")
        raise where.error(i, f"non-numeric value {raw!r} in column {name}")
    bad = ~values.is_finite()
    if bad.any():
        i = _first(bad)
        raise where.error(i, f"{name} is {values[i]}, not a finite number")
    return values


def _first(mask: pl.Series) -> int:
    return int(mask.arg_true()[0])


def _check_bars(numbers: pl.DataFrame, where: _Locator) -> None:
    """Prices positive, volume and spread not negative, high and low enclosing open and close."""
    o, h, lo, c = (pl.col(name) for name in PRICE_COLUMNS)
    checks: list[tuple[pl.Expr, str]] = [
        *((pl.col(name) <= 0, f"{name} must be positive") for name in PRICE_COLUMNS),
        (pl.col("volume") < 0, "volume must not be negative"),
        (h < pl.max_horizontal(o, c), "high is below max(open, close)"),
        (lo > pl.min_horizontal(o, c), "low is above min(open, close)"),
    ]
    if "spread" in numbers.columns:
        checks.append((pl.col("spread") < 0, "spread must not be negative"))
    masks = numbers.select(*(expr.alias(str(k)) for k, (expr, _) in enumerate(checks)))
    # The earliest bad line is reported, whichever check finds it.
    found = [(_first(masks[str(k)]), k) for k in range(len(checks)) if masks[str(k)].any()]
    if found:
        i, k = min(found)
        bar = ", ".join(f"{name}={numbers[name][i]}" for name in numbers.columns)
        raise where.error(i, f"{checks[k][1]} ({bar})")


def _check_order(micros: pl.Series, names: pl.Series, where: _Locator) -> None:
    """Timestamps never go backwards and each (timestamp, symbol) appears once; the earliest fault is reported."""
    backwards = (micros.diff() < 0).fill_null(False)
    keys = pl.DataFrame({"t": micros, "s": names})
    copy = ~keys.select(pl.struct("t", "s").is_first_distinct()).to_series()
    first_backwards = _first(backwards) if backwards.any() else None
    first_copy = _first(copy) if copy.any() else None
    if first_backwards is not None and (first_copy is None or first_backwards <= first_copy):
        i = first_backwards
        raise where.error(
            i, f"timestamp {_iso(micros[i])} goes backwards (the bar before has {_iso(micros[i - 1])})"
        )
    if first_copy is not None:
        i = first_copy
        original = _first((micros == micros[i]) & (names == names[i]))
        raise where.error(
            i, f"duplicate bar for {names[i]} at {_iso(micros[i])} (first on {where.where(original)})"
        )


def _iso(micros: int) -> str:
    return iso_utc(_EPOCH + timedelta(microseconds=micros))
