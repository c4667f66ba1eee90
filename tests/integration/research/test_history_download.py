"""`tradeos data download` against a fake Binance venue (tests/fakes/binance.py) with ccxt's own client: the file
holds the venue's minutes exactly, 429s are waited out with nothing lost, a re-run asks only for what is missing,
and the file replays and backtests as is."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import polars as pl
import psycopg
import pytest

from live.feeds.replay import ReplayFeed
from live.feeds.sim import SimFeed
from tests.fakes.binance import FakeBinance
from tests.integration.research.backtest_support import ROOT, backtest
from tests.support import Service, eventually

SYMBOLS = ("BTC/USDT", "ETH/USDT")
NAMES = {"BTC/USDT": "S00", "ETH/USDT": "S01"}  # the sim's symbols the venue's prices are taken from


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


@pytest.fixture(scope="module")
def sim_bars() -> pl.DataFrame:
    """Two sim symbols' minute bars for 1.5 days: the prices the fake venue trades at."""
    rows = [
        (b.timestamp, symbol, b.open, b.high, b.low, b.close, b.volume)
        for batch in SimFeed(symbols=tuple(NAMES.values()), sim_days=1.5, seed=4).batches()
        for b in batch
        for symbol in SYMBOLS
        if NAMES[symbol] == b.symbol
    ]
    return pl.DataFrame(
        rows, schema=["timestamp", "symbol", "open", "high", "low", "close", "volume"], orient="row"
    ).with_columns(pl.col("timestamp").dt.cast_time_unit("us"))


@pytest.fixture
def venue(sim_bars: pl.DataFrame) -> Iterator[FakeBinance]:
    """A venue whose history has, for each sim bar, four trades: open, high, low, close. Every 50th minute of
    ETH/USDT has no trade (the venue reports it without volume)."""
    trades = []
    for ts, symbol, o, h, lo, c, v in sim_bars.iter_rows():
        if symbol == "ETH/USDT" and ts.minute % 50 == 7:
            continue
        amount = Decimal(repr(v)) / 4
        for second, price in ((1, o), (15, h), (30, lo), (45, c)):
            trades.append((symbol, Decimal(repr(price)), amount, ts + timedelta(seconds=second)))
    with FakeBinance(symbols=SYMBOLS) as fake:
        fake.record_history(trades)
        yield fake


def _expected(sim_bars: pl.DataFrame, since: datetime, until: datetime) -> pl.DataFrame:
    """The bars the venue's trades make, computed from the sim bars they came from."""
    return sim_bars.filter(
        (pl.col("timestamp") >= since)
        & (pl.col("timestamp") < until)
        & ~((pl.col("symbol") == "ETH/USDT") & (pl.col("timestamp").dt.minute() % 50 == 7))
    ).sort("timestamp", "symbol")


def _download(home: Path, venue: FakeBinance, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEOS_")}
    env.update({"TRADEOS_HOME": str(home), "TRADEOS_EXCHANGE_URL": venue.url, "DO_NOT_TRACK": "1"})
    return subprocess.run(
        [sys.executable, "-m", "api.cli", "data", "download", "--exchange", "binance", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=str(ROOT),
        check=False,
    )


def _download_range(
    home: Path, venue: FakeBinance, since: datetime, until: datetime, out: Path
) -> subprocess.CompletedProcess[str]:
    """Every symbol of the fake venue, `since` to `until`, into `out`."""
    return _download(
        home,
        venue,
        "--symbols",
        ",".join(SYMBOLS),
        "--since",
        _iso(since),
        "--until",
        _iso(until),
        "--out",
        str(out),
    )


def _file(path: Path) -> pl.DataFrame:
    frame = pl.read_parquet(path)
    return frame.with_columns(pl.col("volume").round(6)).sort("timestamp", "symbol")


def _same_bars(got: pl.DataFrame, expected: pl.DataFrame) -> bool:
    return got.equals(expected.with_columns(pl.col("volume").round(6)))


def test_429s_are_waited_out_and_nothing_is_lost(
    tmp_path: Path, venue: FakeBinance, sim_bars: pl.DataFrame
) -> None:
    start = sim_bars["timestamp"][0]
    until = start + timedelta(hours=20)
    out = tmp_path / "history.parquet"
    venue.answer_next(429, count=2, retry_after=1)
    venue.answer_next(503, count=1)

    done = _download_range(tmp_path / "home", venue, start, until, out)

    assert done.returncode == 0, done.stderr
    assert venue.misbehaviour_left() == 0
    assert "rate limited" in done.stderr
    assert "retrying in 1.0s" in done.stderr
    assert _same_bars(_file(out), _expected(sim_bars, start, until))
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    assert not list(tmp_path.glob(".*partial"))


def test_a_rerun_asks_the_venue_only_for_what_the_file_lacks(
    tmp_path: Path, venue: FakeBinance, sim_bars: pl.DataFrame
) -> None:
    start = sim_bars["timestamp"][0]
    noon = start + timedelta(hours=12)
    evening = start + timedelta(hours=30)
    out = tmp_path / "history.parquet"
    first = _download_range(tmp_path / "home", venue, start, noon, out)
    assert first.returncode == 0, first.stderr
    asked_first = len(venue.kline_requests)
    assert asked_first >= 2

    again = _download_range(tmp_path / "home", venue, start, noon, out)
    assert again.returncode == 0, again.stderr
    assert len(venue.kline_requests) == asked_first  # nothing missing: nothing asked

    longer = _download_range(tmp_path / "home", venue, start, evening, out)
    assert longer.returncode == 0, longer.stderr
    later = venue.kline_requests[asked_first:]
    assert later
    assert all(int(query["startTime"]) >= noon.timestamp() * 1000 for query in later)
    assert _same_bars(_file(out), _expected(sim_bars, start, evening))


def test_a_downloaded_history_replays_and_backtests(
    tmp_path: Path, venue: FakeBinance, sim_bars: pl.DataFrame, database_url: str, redis_url: str
) -> None:
    start = sim_bars["timestamp"][0]
    until = start + timedelta(days=1)
    out = tmp_path / "history.parquet"
    done = _download_range(tmp_path / "home", venue, start, until, out)
    assert done.returncode == 0, done.stderr
    rows = pl.read_parquet(out).height
    assert len(ReplayFeed.from_path(out)) == rows

    result = backtest(tmp_path / "bt-home", ["--data", str(out), "--json"])
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1])["bars"] == rows

    env = {"TRADEOS_DATABASE_URL": database_url, "TRADEOS_REDIS_URL": redis_url}
    args = ["up", "--no-api", "--no-flows", "--feed", "replay", "--data", str(out), "--speed", "0"]
    with Service(tmp_path / "up-home", args, env) as service:
        eventually(lambda: "feed finished" in service.output, timeout=180, what="the replay to finish")

        def bars_recorded() -> int:
            with psycopg.connect(database_url) as conn:
                row = conn.execute("SELECT count(*) FROM bars").fetchone()
                return int(row[0]) if row else 0

        eventually(lambda: bars_recorded() == rows, timeout=60, what="every bar recorded")


def test_an_unknown_symbol_is_refused_in_one_line_with_exit_2(tmp_path: Path, venue: FakeBinance) -> None:
    done = _download(
        tmp_path / "home",
        venue,
        "--symbols",
        "BTC/USDT,NOPE/USDT",
        "--since",
        "2026-01-01",
        "--out",
        str(tmp_path / "h.parquet"),
    )

    assert done.returncode == 2
    assert (
        done.stderr.strip()
        == "tradeos data download: --symbols: binance has no market 'NOPE/USDT' (symbols are like BTC/USDT)"
    )
    assert not (tmp_path / "h.parquet").exists()
