"""`tradeos data download --exchange ID --symbols A/B,... --since DATE [--until DATE] --out FILE.parquet` (README,
Downloading history); wired into `api/cli.py` by `register`. The work is live/feeds/history.py's: this module parses
the flags, draws the progress bar and prints the outcome."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from api.cli_backtest import ProgressBar
from live.domain import iso_utc
from live.feeds.history import download
from live.settings import Settings
from live.venue import VenueError, VenueFailure

EXIT_FAILED = 1
EXIT_USAGE = 2


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `data` command."""
    data = subparsers.add_parser("data", help="market data: download a venue's history in the replay format")
    commands = data.add_subparsers(dest="data_command", required=True)
    fetch = commands.add_parser(
        "download",
        help="1-minute bars of a ccxt exchange into a Parquet replay file (resumable)",
    )
    add_exchange_arguments(fetch)
    fetch.add_argument("--symbols", required=True, help="comma-separated, like BTC/USDT,ETH/USDT")
    fetch.add_argument(
        "--since", required=True, help="first minute, ISO 8601 date or time (UTC if no offset)"
    )
    fetch.add_argument("--until", default=None, help="end (excluded), ISO 8601; default: now")
    fetch.add_argument("--out", type=Path, required=True, help="the Parquet file to write (or complete)")


def add_exchange_arguments(parser: argparse.ArgumentParser) -> None:
    """`--exchange ID` and `--exchange-url URL` (they win over TRADEOS_EXCHANGE / TRADEOS_EXCHANGE_URL)."""
    parser.add_argument(
        "--exchange", default=None, metavar="ID", help="a ccxt exchange id, e.g. binance (TRADEOS_EXCHANGE)"
    )
    parser.add_argument(
        "--exchange-url",
        default=None,
        metavar="URL",
        help="replaces the scheme and host of every endpoint of the exchange, REST and WebSocket "
        "(TRADEOS_EXCHANGE_URL)",
    )


def parse_time(text: str, flag: str) -> datetime:
    """An ISO 8601 date or time as aware UTC (naive = UTC); VenueError naming the flag."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise VenueError(f"{flag}: {text!r} is not an ISO 8601 date or time (e.g. 2024-01-31)") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Carry out `tradeos data download`: 0 when the file holds the range, 2 with one line for a bad input, 1 when
    the venue kept failing (what was fetched is kept)."""
    try:
        symbols = tuple(s.strip().upper() for s in args.symbols.split(",") if s.strip())
        if not symbols:
            raise VenueError("--symbols: give at least one, like BTC/USDT")
        since = parse_time(args.since, "--since")
        until = parse_time(args.until, "--until") if args.until else None
        if until is not None and until <= since:
            raise VenueError(f"--until: {iso_utc(until)} is not after --since {iso_utc(since)}")
        if args.out.suffix.lower() not in (".parquet", ".pq"):
            raise VenueError(f"--out {args.out}: use a .parquet file (the replay format)")
    except VenueError as exc:
        print(f"tradeos data download: {exc}", file=sys.stderr)
        return EXIT_USAGE
    bar = ProgressBar(sys.stderr, unit="minutes") if sys.stderr.isatty() else None
    try:
        summary = download(
            exchange_id=settings.venue.exchange,
            symbols=symbols,
            since=since,
            until=until,
            out=args.out,
            exchange_url=settings.venue.exchange_url,
            progress=bar.update if bar is not None else None,
        )
    except VenueError as exc:
        if bar is not None:
            bar.finish()
        print(f"tradeos data download: {exc}", file=sys.stderr)
        return EXIT_FAILED if isinstance(exc, VenueFailure) else EXIT_USAGE
    if bar is not None:
        bar.finish()
    print(
        f"{args.out}: {summary.added:,} bars added ({summary.minutes_fetched:,} minutes asked for),"
        f" {summary.bars_in_file:,} bars in the file"
    )
    return 0
