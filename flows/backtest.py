"""Backtests and the look-ahead check: the live engine on a replay file (live/backtest.py), its figures, results
file and report (analytics/backtest.py). Research code (`tradeos backtest`, the walk-forward flow) calls these.

`run_backtest` is a plain function of picklable inputs with no global state, so a research flow may call it many
times, in threads or in worker processes; `write=False` skips the results file and the report and only returns the
figures. Nothing here touches the live system of record, Redis or the live analytics DuckDB: the results of a run
go to its own directory, `TRADEOS_HOME/backtests/<run id>` unless `out` says otherwise.
"""

from __future__ import annotations

import bisect
import json
import logging
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from analytics.backtest import (
    REPORT_NAME,
    RESULTS_NAME,
    BacktestSummary,
    figures,
    write_report,
    write_results,
)
from analytics.regime_model import load_promoted_classifier
from live.backtest import (
    BacktestRecord,
    FeedError,
    ReplayFeed,
    StrategyChoice,
    StrategyError,
    choose_strategy,
    load_replay,
    replay,
)
from live.domain import iso_utc
from live.settings import PROFILE_NAMES, Settings
from live.stores.embedded import EmbeddedError, secure_home

log = logging.getLogger("tradeos.backtest")

BACKTESTS_DIR = "backtests"
PRIVATE_DIR = 0o700
# What a directory may already hold to be written into again: an earlier backtest's results (and what a run that
# was killed while writing them leaves beside them: `.partial` files, DuckDB's `.wal`).
_OWN_FILES = (RESULTS_NAME, REPORT_NAME)
DEFAULT_CUTS = 4

Progress = Callable[[int, int], None]  # (bars done, bars in the file)


class BacktestError(ValueError):
    """A backtest's input that cannot be used (data, strategy, parameter, profile, output directory): the message
    is the one line shown to the user, naming the flag."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BacktestResult:
    """A run's summary and where its results went (None with `write=False`)."""

    summary: BacktestSummary
    out: Path | None
    results: Path | None
    report: Path | None


def new_run_id(now: datetime | None = None) -> str:
    """A sortable, unique run id: UTC start time and a random suffix."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{moment:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def run_backtest(
    settings: Settings,
    data: Path | ReplayFeed,
    *,
    strategy: str = "builtin",
    params: Mapping[str, str] | None = None,
    profile: str | None = None,
    out: Path | None = None,
    write: bool = True,
    run_id: str | None = None,
    progress: Progress | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> BacktestResult:
    """Backtests `strategy` (a spec, with its `params`) on the replay file `data` under `profile` (default: the
    settings'), as `tradeos up --feed replay` would trade it; with `start`/`end`, only the bars with
    `start <= timestamp < end` (a walk-forward window; the engine starts cold at `start`). BacktestError for any
    unusable input, before anything is run or written."""
    run_id = run_id or new_run_id()
    # A feed already loaded (`live.backtest.load_replay`) spares a research flow's trials reading the file again.
    feed = data if isinstance(data, ReplayFeed) else _load(data)
    if start is not None or end is not None:
        feed = feed.window(start, end)
        if not len(feed):
            raise BacktestError(
                f"--data: {feed.source} has no bar in the window [{iso_utc(start)}, {iso_utc(end)})"
            )
    choice = _choose(settings, strategy, params or {})
    profile_name = _profile(settings, profile)
    target = _prepare_out(settings, out, run_id) if write else None
    try:
        started = time.perf_counter()
        total = len(feed)
        try:
            record = replay(
                settings.engine,
                feed,
                strategy=choice,
                profile=profile_name,
                classifier=_promoted_classifier(settings),
                progress=(lambda done: progress(done, total)) if progress is not None else None,
            )
        except StrategyError as exc:  # parameters the strategy refused when it was built
            raise BacktestError(str(exc)) from None
        frames = record.frames()
        summary = _summary(
            settings, record, frames, run_id=run_id, data=feed.source, choice=choice, started=started
        )
        if target is None:
            return BacktestResult(summary=summary, out=None, results=None, report=None)
        frames["bars"] = feed.frame()
        results, report = target / RESULTS_NAME, target / REPORT_NAME
        write_results(results, frames, summary)
        write_report(results, report, summary, generated_at=datetime.now(UTC))
    except BaseException:
        if target is not None and out is None and not any(target.iterdir()):
            target.rmdir()
        raise
    return BacktestResult(summary=summary, out=target, results=results, report=report)


def _load(data: Path) -> ReplayFeed:
    try:
        feed = load_replay(data)
    except (FeedError, OSError) as exc:
        raise BacktestError(f"--data: {exc}") from None
    return feed


def _choose(settings: Settings, spec: str, params: Mapping[str, str]) -> StrategyChoice:
    try:
        return choose_strategy(settings.engine, spec, params)
    except StrategyError as exc:
        raise BacktestError(str(exc)) from None


def _profile(settings: Settings, profile: str | None) -> str:
    name = profile or settings.engine.profile
    if name not in PROFILE_NAMES:
        raise BacktestError(f"--profile: unknown profile {name!r}; valid: {', '.join(PROFILE_NAMES)}")
    return name


def _prepare_out(settings: Settings, out: Path | None, run_id: str) -> Path:
    """The run's directory, created private (0700); one line naming --out when it cannot be used."""
    if out is None:
        try:
            secure_home(settings.home_dir)
            backtests = settings.home_dir / BACKTESTS_DIR
            backtests.mkdir(mode=PRIVATE_DIR, exist_ok=True)
            target = backtests / run_id
            target.mkdir(mode=PRIVATE_DIR)
        except (EmbeddedError, OSError) as exc:
            raise BacktestError(f"TRADEOS_HOME: cannot create the backtest's directory: {exc}") from None
        return target
    if out.exists() and not out.is_dir():
        raise BacktestError(f"--out: {out} exists and is not a directory")
    if out.is_dir():
        foreign = sorted(p.name for p in out.iterdir() if not p.name.startswith(_OWN_FILES))
        if foreign:
            raise BacktestError(
                f"--out: {out} is not empty and holds no backtest's results ({', '.join(foreign[:3])}"
                f"{', ...' if len(foreign) > 3 else ''}); choose a new or empty directory"
            )
    try:
        out.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
        probe = out / f".tradeos-write-probe-{secrets.token_hex(4)}"
        probe.touch(mode=0o600, exist_ok=False)
        probe.unlink()
    except OSError as exc:
        raise BacktestError(f"--out: {out} is not writable ({exc.strerror or exc})") from None
    return out


def _promoted_classifier(settings: Settings) -> Any:
    """The regime model `tradeos up` would load (the one promoted in TRADEOS_HOME/models), or None, as up does."""
    try:
        return load_promoted_classifier(settings.models_dir)
    except Exception:  # up keeps the rule-based classifier then, and says so
        log.exception("could not load the promoted regime model; using the rule-based classifier")
        return None


def _summary(
    settings: Settings,
    record: BacktestRecord,
    frames: Mapping[str, Any],
    *,
    run_id: str,
    data: str,
    choice: StrategyChoice,
    started: float,
) -> BacktestSummary:
    figured = figures(frames, initial_cash=record.initial_cash, annualization=settings.flows.annualization)
    orders = frames["orders"]
    return BacktestSummary(
        run_id=run_id,
        data=data,
        strategy=choice.name if choice.spec == choice.name else f"{choice.name} ({choice.spec})",
        params=json.loads(choice.params_json),
        profile=record.profile,
        regime_model=record.regime_model,
        first_bar=record.first_bar,
        last_bar=record.last_bar,
        bars=record.bars,
        symbols=len(record.symbols),
        signals=len(record.signal_rows),
        orders=orders.height,
        orders_rejected=orders.filter(orders["status"] == "rejected").height,
        fills=len(record.fills),
        risk_events=len(record.risk_events),
        initial_cash=figured.initial_cash,
        final_equity=figured.final_equity,
        net_pnl=figured.final_equity - figured.initial_cash,
        realized_pnl=figured.realized_pnl,
        fees=figured.fees,
        total_return=figured.total_return,
        annualized_return=figured.annualized_return,
        sharpe_ratio=figured.sharpe_ratio,
        sortino_ratio=figured.sortino_ratio,
        max_drawdown=figured.max_drawdown,
        total_trades=figured.total_trades,
        win_rate=figured.win_rate,
        profit_factor=figured.profit_factor,
        average_trade_duration_seconds=figured.average_trade_duration_seconds,
        annualization=figured.annualization,
        seconds=round(time.perf_counter() - started, 3),
    )


# -- the look-ahead check ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class LookaheadDifference:
    """The first place a run on data cut at `cut_at` disagrees with the run on the whole file."""

    cut_at: datetime  # the last timestamp of the truncated copy
    kind: str  # signal, decision or order
    timestamp: datetime
    symbol: str
    full: str  # what the run on the whole file produced there
    truncated: str  # what the run on the truncated copy produced there

    def describe(self) -> str:
        return (
            f"{iso_utc(self.timestamp)} {self.symbol} {self.kind}: {self.full} with the whole file, "
            f"{self.truncated} with the file cut after {iso_utc(self.cut_at)}"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class LookaheadReport:
    """The cut points tried and, for each where the runs disagree, its first difference (earliest first)."""

    cuts: tuple[datetime, ...]
    differences: tuple[LookaheadDifference, ...]

    @property
    def clean(self) -> bool:
        return not self.differences


def check_lookahead(
    settings: Settings,
    data: Path,
    *,
    strategy: str = "builtin",
    params: Mapping[str, str] | None = None,
    profile: str | None = None,
    cuts: int = DEFAULT_CUTS,
) -> LookaheadReport:
    """Runs the strategy on the whole file and on copies cut after `cuts` evenly spaced timestamps, and compares
    its signals, target positions and orders at every timestamp both saw: a strategy that uses no future data
    cannot tell the difference. A parameter whose value is the data file's path names the truncated copy in the
    truncated runs, so a strategy that loads the file itself is held to the same cut as the engine."""
    params = dict(params or {})
    feed = _load(data)
    _choose(settings, strategy, params)
    profile_name = _profile(settings, profile)
    n = feed.cross_sections
    points = sorted({round(n * i / (cuts + 1)) for i in range(1, cuts + 1)} - {0, n})
    if not points:
        raise BacktestError(f"--data: {data} has {n} timestamp(s); the look-ahead check needs at least 2")
    classifier = _promoted_classifier(settings)

    def run(source: ReplayFeed, run_params: Mapping[str, str]) -> BacktestRecord:
        try:
            return replay(
                settings.engine,
                source,
                strategy=_choose(settings, strategy, run_params),
                profile=profile_name,
                classifier=classifier,
                record_decisions=True,
            )
        except StrategyError as exc:
            raise BacktestError(str(exc)) from None

    full = run(feed, params)
    differences = []
    folder = Path(tempfile.mkdtemp(prefix="tradeos-lookahead-"))
    try:
        for k in points:
            copy = feed.write_head(folder / f"head-{k}{Path(data).suffix.lower()}", cross_sections=k)
            cut_params = {key: str(copy) if _names(value, data) else value for key, value in params.items()}
            truncated = run(load_replay(copy), cut_params)
            found = _first_difference(full, truncated, cut_at=feed.timestamp_at(k - 1))
            if found is not None:
                differences.append(found)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    differences.sort(key=lambda d: (d.timestamp, d.cut_at))
    return LookaheadReport(
        cuts=tuple(feed.timestamp_at(k - 1) for k in points), differences=tuple(differences)
    )


def _names(value: str, data: Path) -> bool:
    try:
        return Path(value).resolve() == Path(data).resolve()
    except (OSError, ValueError):
        return False


def _first_difference(
    full: BacktestRecord, truncated: BacktestRecord, *, cut_at: datetime
) -> LookaheadDifference | None:
    """The earliest disagreement at a timestamp up to `cut_at`, over signals, decisions and orders."""
    signal = _first_mismatch(
        full.signal_rows,
        truncated.signal_rows,
        cut_at,
        stamp=lambda r: r[0],
        key=lambda r: (r[1], f"signal {r[2]}"),
        show=lambda r: f"strength {r[3]!r}",
    )
    decision = _first_mismatch(
        full.decisions,
        truncated.decisions,
        cut_at,
        stamp=lambda d: d.timestamp,
        key=lambda d: (d.symbol, "decision"),
        show=lambda d: f"target {d.direction:+d} ({d.signal_type})",
    )
    order = _first_mismatch(
        full.orders,
        truncated.orders,
        cut_at,
        stamp=lambda o: o.timestamp,
        key=lambda o: (o.symbol, "order"),
        show=lambda o: f"{o.side.value} {o.quantity} ({o.status.value}{': ' + o.reason if o.reason else ''})",
    )
    found = [
        (at, symbol, kind, a, b) for at, symbol, kind, a, b in (signal, decision, order) if at is not None
    ]
    if not found:
        return None
    at, symbol, kind, a, b = min(found, key=lambda f: f[0])
    return LookaheadDifference(cut_at=cut_at, kind=kind, timestamp=at, symbol=symbol, full=a, truncated=b)


_Mismatch = tuple[datetime | None, str, str, str, str]
T = TypeVar("T")


def _first_mismatch(
    full: Sequence[T],
    truncated: Sequence[T],
    cut_at: datetime,
    *,
    stamp: Callable[[T], datetime],
    key: Callable[[T], tuple[str, str]],
    show: Callable[[T], str],
) -> _Mismatch:
    """(timestamp, symbol, kind, full's value, truncated's value) of the first row the two runs disagree on at a
    timestamp up to `cut_at`, or Nones. Both runs list their rows in time order."""
    shared = full[: bisect.bisect_right(full, cut_at, key=stamp)]
    seen = truncated[: bisect.bisect_right(truncated, cut_at, key=stamp)]
    if shared == seen:
        return None, "", "", "", ""
    for index in range(max(len(shared), len(seen))):
        a = shared[index] if index < len(shared) else None
        b = seen[index] if index < len(seen) else None
        if a == b:
            continue
        first = a if a is not None and (b is None or stamp(a) <= stamp(b)) else b
        assert first is not None
        symbol, kind = key(first)
        same_place = a is not None and b is not None and key(a) == key(b) and stamp(a) == stamp(b)
        return (
            stamp(first),
            symbol,
            kind,
            show(a) if a is not None and (same_place or first is a) else "nothing",
            show(b) if b is not None and (same_place or first is b) else "nothing",
        )
    return None, "", "", "", ""
