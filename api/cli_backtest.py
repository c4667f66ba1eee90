"""`tradeos backtest --data FILE [...]` and `tradeos backtest --check-lookahead` (README, Commands;
docs/strategies.md); wired into `api/cli.py` by `register`. The work is flows/backtest.py's: this module parses the
flags, draws the progress bar and prints the outcome."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TextIO

from flows.backtest import BacktestError, LookaheadReport, check_lookahead, run_backtest
from live.domain import iso_utc
from live.settings import PROFILE_NAMES, Settings

EXIT_LOOKAHEAD = 1
EXIT_USAGE = 2
_BAR_WIDTH = 30
_REDRAW_SECONDS = 0.2


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `backtest` command."""
    parser = subparsers.add_parser(
        "backtest",
        help="the live engine, broker and risk checks on a replay file, in-process; nothing written to the live"
        " system",
    )
    parser.add_argument("--data", type=Path, required=True, help="replay file (CSV or Parquet)")
    parser.add_argument(
        "--strategy",
        default="builtin",
        help="builtin (default), path/to/file.py:Class or package.module:Class",
    )
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a strategy parameter (repeatable)",
    )
    parser.add_argument("--profile", type=str, default=None, choices=PROFILE_NAMES)
    parser.add_argument(
        "--out", type=Path, default=None, help="results directory (default TRADEOS_HOME/backtests/<run id>)"
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    parser.add_argument(
        "--check-lookahead",
        action="store_true",
        help="compare runs on the whole file and on truncated copies; exit 1 if the strategy uses future data",
    )


def parse_params(pairs: list[str]) -> dict[str, str]:
    """`key=value` pairs as a dict; BacktestError naming the bad one."""
    params: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise BacktestError(f"--param: expected KEY=VALUE, got {pair!r}")
        if key.strip() in params:
            raise BacktestError(f"--param: {key.strip()!r} given twice")
        params[key.strip()] = value
    return params


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Carry out `tradeos backtest`: 0 on success, 1 when look-ahead is found, 2 with one line for a bad input."""
    try:
        params = parse_params(list(args.param))
        if args.check_lookahead:
            report = check_lookahead(settings, args.data, strategy=args.strategy, params=params)
            _print_lookahead(report, as_json=args.json)
            return 0 if report.clean else EXIT_LOOKAHEAD
        bar = ProgressBar(sys.stderr) if sys.stderr.isatty() else None
        result = run_backtest(
            settings,
            args.data,
            strategy=args.strategy,
            params=params,
            out=args.out,
            progress=bar.update if bar is not None else None,
        )
        if bar is not None:
            bar.finish()
    except BacktestError as exc:
        print(f"tradeos backtest: {exc}", file=sys.stderr)
        return EXIT_USAGE
    summary = result.summary
    if args.json:
        payload = {**summary.as_json(), "results": str(result.results), "report": str(result.report)}
        print(json.dumps(payload))
        return 0
    print(
        f"backtest {summary.run_id}: {summary.bars:,} bars, {summary.fills:,} fills, {summary.total_trades:,} closed"
        f" trades; net P&L {summary.net_pnl:,.2f} (total return {summary.total_return * 100:.2f} %), max drawdown"
        f" {summary.max_drawdown * 100:.2f} %"
    )
    print(f"results: {result.results}")
    print(f"report:  {result.report}")
    return 0


def _print_lookahead(report: LookaheadReport, *, as_json: bool) -> None:
    if as_json:
        payload = {
            "clean": report.clean,
            "cuts": [iso_utc(cut) for cut in report.cuts],
            "differences": [
                {
                    "cut_at": iso_utc(d.cut_at),
                    "kind": d.kind,
                    "timestamp": iso_utc(d.timestamp),
                    "symbol": d.symbol,
                    "full": d.full,
                    "truncated": d.truncated,
                }
                for d in report.differences
            ],
        }
        print(json.dumps(payload))
        return
    if report.clean:
        print(
            f"look-ahead check: clean: signals, target positions and orders agree at every shared timestamp with"
            f" the file cut after each of {', '.join(iso_utc(c) for c in report.cuts)}"
        )
        return
    print(
        f"look-ahead check: FAILED: the strategy uses data from after the bar it decides on ({len(report.differences)} of {len(report.cuts)} cuts differ)"
    )
    for difference in report.differences:
        print(f"  {difference.describe()}")


class ProgressBar:
    """A one-line bar on a terminal, redrawn at most five times a second."""

    def __init__(self, stream: TextIO, *, unit: str = "bars") -> None:
        self.stream = stream
        self.unit = unit
        self.started = time.monotonic()
        self.drawn = 0.0

    def update(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self.drawn < _REDRAW_SECONDS and done < total:
            return
        self.drawn = now
        share = done / total if total else 1.0
        filled = round(_BAR_WIDTH * share)
        rate = done / max(now - self.started, 1e-9)
        self.stream.write(
            f"\r[{'#' * filled}{'.' * (_BAR_WIDTH - filled)}] {share * 100:5.1f} % {done:,}/{total:,} {self.unit}"
            f" {rate:,.0f} {self.unit}/s"
        )
        self.stream.flush()

    def finish(self) -> None:
        self.stream.write("\n")
        self.stream.flush()
