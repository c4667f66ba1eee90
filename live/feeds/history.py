"""Downloads a venue's 1-minute history into the replay format (`tradeos data download`; live/feeds/replay.py reads
it): Parquet with `timestamp` (UTC), `symbol`, `open`, `high`, `low`, `close`, `volume`, sorted by time.

Resumable: the file records, per symbol, the stretches of minutes already asked for (Parquet metadata
`tradeos.coverage`; for a file without it, its first to last bar). A re-run asks the venue only for the minutes of
`[since, until)` outside them (a minute without trades is absent from the file but covered: not asked again). The file is rewritten whole, atomically (temp file + rename), after each symbol and
every few pages, so an interrupted download keeps what it fetched. Requests go through ccxt's rate limiter; a 429
waits the venue's Retry-After (live/venue.py `call_with_retries`), and nothing is skipped.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from live.domain import Bar, iso_utc
from live.feeds.minute_bars import MINUTE, minute_of
from live.venue import (
    Backoff,
    VenueError,
    VenueFailure,
    call_with_retries,
    check_symbols,
    minute_bars_between,
    open_exchange,
)

COVERAGE_KEY = "tradeos.coverage"
_CHECKPOINT_PAGES = 20
_COLUMNS = ("timestamp", "symbol", "open", "high", "low", "close", "volume")


@dataclass(frozen=True, slots=True, kw_only=True)
class Stretch:
    """Minutes [start, end) of one symbol."""

    start: datetime
    end: datetime

    @property
    def minutes(self) -> int:
        return max(0, int((self.end - self.start) / MINUTE))


@dataclass(frozen=True, slots=True, kw_only=True)
class DownloadSummary:
    """What a download did: bars added, minutes asked for, bars in the file now."""

    added: int
    minutes_fetched: int
    bars_in_file: int


def missing_stretches(have: list[Stretch], *, since: datetime, until: datetime) -> list[Stretch]:
    """The parts of `[since, until)` outside the stretches already covered, oldest first. Pure."""
    wanted: list[Stretch] = []
    cursor = since
    for stretch in sorted(have, key=lambda s: s.start):
        if stretch.end <= cursor or stretch.start >= until:
            continue
        if stretch.start > cursor:
            wanted.append(Stretch(start=cursor, end=stretch.start))
        cursor = max(cursor, stretch.end)
    if cursor < until:
        wanted.append(Stretch(start=cursor, end=until))
    return wanted


def joined(have: list[Stretch], new: Stretch) -> list[Stretch]:
    """`have` with `new` added, touching or overlapping stretches joined into one. Pure."""
    merged: list[Stretch] = []
    for stretch in sorted([*have, new], key=lambda s: s.start):
        if merged and stretch.start <= merged[-1].end:
            merged[-1] = Stretch(start=merged[-1].start, end=max(merged[-1].end, stretch.end))
        else:
            merged.append(stretch)
    return merged


def read_existing(path: Path) -> tuple[pl.DataFrame, dict[str, list[Stretch]]]:
    """The bars already in `path` and each symbol's covered stretch; VenueError if it is not a replay file."""
    if not path.exists():
        return _empty(), {}
    try:
        frame = pl.read_parquet(path)
        metadata = pl.read_parquet_metadata(path)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise VenueError(f"--out {path}: not a readable Parquet file ({exc})") from None
    missing = [name for name in _COLUMNS if name not in frame.columns]
    if missing:
        raise VenueError(f"--out {path}: not a replay file (missing column(s) {', '.join(missing)})")
    frame = frame.select(_COLUMNS)
    stamps = frame["timestamp"]
    if not isinstance(stamps.dtype, pl.Datetime):
        raise VenueError(f"--out {path}: its timestamp column is {stamps.dtype}, not a datetime")
    # Naive times are UTC, as the replay feed reads them.
    utc = (
        stamps.dt.replace_time_zone("UTC")
        if stamps.dtype.time_zone is None
        else stamps.dt.convert_time_zone("UTC")
    )
    frame = frame.with_columns(utc.cast(pl.Datetime("us", "UTC")).alias("timestamp")).cast(_schema())
    coverage: dict[str, list[Stretch]] = {}
    recorded = metadata.get(COVERAGE_KEY)
    if recorded:
        for symbol, stretches in json.loads(recorded).items():
            coverage[symbol] = [
                Stretch(start=datetime.fromisoformat(start), end=datetime.fromisoformat(end))
                for start, end in stretches
            ]
    else:
        for row in (
            frame.group_by("symbol")
            .agg(pl.col("timestamp").min().alias("first"), pl.col("timestamp").max().alias("last"))
            .iter_rows(named=True)
        ):
            coverage[row["symbol"]] = [Stretch(start=row["first"], end=row["last"] + MINUTE)]
    return frame, coverage


def write_atomically(path: Path, frame: pl.DataFrame, coverage: dict[str, list[Stretch]]) -> None:
    """`frame` sorted by time (then symbol) with `coverage` in its metadata, replacing `path` at once."""
    recorded = {s: [[iso_utc(c.start), iso_utc(c.end)] for c in cs] for s, cs in coverage.items()}
    partial = path.with_name(f".{path.name}.partial")
    frame.sort(["timestamp", "symbol"], maintain_order=True).write_parquet(
        partial, metadata={COVERAGE_KEY: json.dumps(recorded)}
    )
    os.replace(partial, path)


def download(
    *,
    exchange_id: str,
    symbols: tuple[str, ...],
    since: datetime,
    until: datetime | None,
    out: Path,
    exchange_url: str | None = None,
    backoff: Backoff = Backoff(first=1.0, most=60.0, attempts=10),
    progress: Callable[[int, int], None] | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> DownloadSummary:
    """Fetches what `out` lacks of `[since, until)` (until: default and at most the last minute that is over) for
    `symbols` and writes it into `out`. VenueError (one line) for an unknown exchange, symbol or a bad file."""
    end = minute_of(now()) if until is None else min(until, minute_of(now()))
    start = minute_of(since) + (MINUTE if since != minute_of(since) else timedelta(0))
    frame, coverage = read_existing(out)
    return asyncio.run(
        _download(
            exchange_id=exchange_id,
            symbols=symbols,
            start=start,
            end=end,
            out=out,
            frame=frame,
            coverage=coverage,
            exchange_url=exchange_url,
            backoff=backoff,
            progress=progress,
        )
    )


async def _download(
    *,
    exchange_id: str,
    symbols: tuple[str, ...],
    start: datetime,
    end: datetime,
    out: Path,
    frame: pl.DataFrame,
    coverage: dict[str, list[Stretch]],
    exchange_url: str | None,
    backoff: Backoff,
    progress: Callable[[int, int], None] | None,
) -> DownloadSummary:
    exchange = open_exchange(exchange_id, exchange_url=exchange_url, streaming=False)
    try:
        try:
            markets = await call_with_retries(
                exchange, exchange.load_markets, backoff=backoff, what=f"{exchange_id} markets"
            )
        except VenueError:
            raise
        except Exception as exc:
            reason = " ".join(str(exc).split())[:160]
            raise VenueError(
                f"--exchange {exchange_id}: cannot load its markets ({type(exc).__name__}: {reason})"
            ) from None
        check_symbols(markets, symbols, exchange_id=exchange_id)
        return await _fetch_missing(
            exchange,
            symbols=symbols,
            start=start,
            end=end,
            out=out,
            frame=frame,
            coverage=coverage,
            backoff=backoff,
            progress=progress,
        )
    finally:
        await exchange.close()


async def _fetch_missing(
    exchange: Any,
    *,
    symbols: tuple[str, ...],
    start: datetime,
    end: datetime,
    out: Path,
    frame: pl.DataFrame,
    coverage: dict[str, list[Stretch]],
    backoff: Backoff,
    progress: Callable[[int, int], None] | None,
) -> DownloadSummary:
    import ccxt

    try:
        plan = {s: missing_stretches(coverage.get(s, []), since=start, until=end) for s in symbols}
        total = sum(stretch.minutes for stretches in plan.values() for stretch in stretches)
        done = added = 0
        if progress is not None:
            progress(0, total)
        for symbol, stretches in plan.items():
            for stretch in stretches:
                fetched: list[Bar] = []
                cursor = kept_from = stretch.start
                pages = 0
                async for page in minute_bars_between(
                    exchange, symbol, start=stretch.start, end=stretch.end, backoff=backoff
                ):
                    fetched.extend(page.bars)
                    done += Stretch(start=cursor, end=page.covered_until).minutes
                    cursor = page.covered_until
                    pages += 1
                    if progress is not None:
                        progress(min(done, total), total)
                    if pages % _CHECKPOINT_PAGES == 0:
                        frame, coverage = _merged(frame, coverage, symbol, fetched, kept_from, cursor)
                        added, fetched, kept_from = added + len(fetched), [], cursor
                        write_atomically(out, frame, coverage)
                frame, coverage = _merged(frame, coverage, symbol, fetched, kept_from, stretch.end)
                added += len(fetched)
                write_atomically(out, frame, coverage)
        if progress is not None and done < total:
            progress(total, total)  # the last pages may have covered less than asked (a quiet tail)
        return DownloadSummary(added=added, minutes_fetched=total, bars_in_file=frame.height)
    except ccxt.BaseError as exc:
        # What was fetched up to here is in the file; the error is said in one line.
        reason = " ".join(str(exc).split())[:200]
        raise VenueFailure(f"{exchange.id}: {type(exc).__name__}: {reason}") from None


def _merged(
    frame: pl.DataFrame,
    coverage: dict[str, list[Stretch]],
    symbol: str,
    bars: list[Bar],
    start: datetime,
    end: datetime,
) -> tuple[pl.DataFrame, dict[str, list[Stretch]]]:
    """`frame` with `bars` added (a bar already there is kept) and [start, end) added to `symbol`'s coverage."""
    if bars:
        new = pl.DataFrame(
            {
                "timestamp": [bar.timestamp for bar in bars],
                "symbol": [bar.symbol for bar in bars],
                "open": [bar.open for bar in bars],
                "high": [bar.high for bar in bars],
                "low": [bar.low for bar in bars],
                "close": [bar.close for bar in bars],
                "volume": [bar.volume for bar in bars],
            },
            schema=_schema(),
        )
        frame = pl.concat([frame, new]).unique(["timestamp", "symbol"], keep="first", maintain_order=True)
    if end <= start:
        return frame, coverage
    return frame, {**coverage, symbol: joined(coverage.get(symbol, []), Stretch(start=start, end=end))}


def _schema() -> pl.Schema:
    return pl.Schema(
        {
            "timestamp": pl.Datetime("us", "UTC"),
            "symbol": pl.String(),
            "open": pl.Float64(),
            "high": pl.Float64(),
            "low": pl.Float64(),
            "close": pl.Float64(),
            "volume": pl.Float64(),
        }
    )


def _empty() -> pl.DataFrame:
    return pl.DataFrame(schema=_schema())
