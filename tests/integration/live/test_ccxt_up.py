"""`tradeos up --feed ccxt` against a fake Binance venue (tests/fakes/binance.py) trading live: the venue's minutes
are recorded in PostgreSQL as they end, whatever `--speed` says; a silent venue trips the stale-feed breaker; an
unknown exchange or symbol stops start-up in one line with exit 2. These run on the wall clock (a minute's bar
comes after the minute)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from tests.fakes.binance import FakeBinance
from tests.support import Service, eventually, recorded_bars, run_cli

SYMBOLS = ("BTC/USDT", "ETH/USDT")


@pytest.fixture
def venue() -> Iterator[FakeBinance]:
    with FakeBinance(symbols=SYMBOLS) as fake:
        yield fake


def _env(database_url: str, redis_url: str, venue: FakeBinance, **extra: str) -> dict[str, str]:
    return {
        "TRADEOS_DATABASE_URL": database_url,
        "TRADEOS_REDIS_URL": redis_url,
        "TRADEOS_EXCHANGE_URL": venue.url,
        **extra,
    }


def _up(*extra: str) -> list[str]:
    return ["up", "--no-api", "--no-flows", "--feed", "ccxt", "--exchange", "binance", *extra]


def test_up_records_the_venues_minutes_as_they_end_whatever_the_speed(
    tmp_path: Path, venue: FakeBinance, database_url: str, redis_url: str
) -> None:
    venue.start_market()
    # At --speed 0.01 a paced feed would hold each minute back for 100 minutes: a live one is never held back.
    with Service(
        tmp_path / "home",
        _up("--symbols", ",".join(SYMBOLS), "--speed", "0.01"),
        _env(database_url, redis_url, venue),
    ) as service:
        eventually(
            lambda: recorded_bars(database_url).height >= 4,
            timeout=180,
            what="two minutes of both symbols in PostgreSQL",
        )
        assert "streaming trades and quotes of BTC/USDT, ETH/USDT" in service.output

    recorded = recorded_bars(database_url)  # the service has stopped: all it recorded
    venue_bars = venue.minute_bars()
    assert recorded.equals(
        venue_bars.join(recorded.select("timestamp", "symbol"), on=["timestamp", "symbol"])
    )
    minutes = recorded["timestamp"].unique().sort().to_list()
    assert minutes[-1] < datetime.now(UTC).replace(second=0, microsecond=0)  # only minutes that are over
    assert set(recorded["symbol"]) == set(SYMBOLS)


def test_a_silent_venue_trips_the_stale_feed_breaker(
    tmp_path: Path, venue: FakeBinance, database_url: str, redis_url: str
) -> None:
    env = _env(database_url, redis_url, venue, TRADEOS_STALE_FEED_SECONDS="3")

    def stale_feed_recorded() -> bool:
        with psycopg.connect(database_url) as conn:
            row = conn.execute("SELECT detail FROM risk_events WHERE code = 'STALE_FEED'").fetchone()
        return row is not None and row[0] == "no bar for 3s"

    with Service(tmp_path / "home", _up("--symbols", "BTC/USDT"), env) as service:
        eventually(stale_feed_recorded, timeout=60, what="a STALE_FEED risk event")
        eventually(
            lambda: "circuit breaker STALE_FEED halted trading" in service.output, what="the halt logged"
        )


@pytest.mark.parametrize(
    ("flags", "line"),
    [
        (
            ["--exchange", "no-such-venue", "--symbols", "BTC/USDT"],
            "tradeos: --exchange 'no-such-venue': not a ccxt exchange with live market data",
        ),
        (["--symbols", "BTC/USDT,NOPE/USDT"], "tradeos: --symbols: binance has no market 'NOPE/USDT'"),
        ([], "tradeos: --feed ccxt needs --symbols"),
    ],
)
def test_an_unknown_exchange_or_symbol_stops_start_up_in_one_line(
    tmp_path: Path, venue: FakeBinance, database_url: str, redis_url: str, flags: list[str], line: str
) -> None:
    args = ["up", "--no-api", "--no-flows", "--feed", "ccxt", *flags]

    code, output = run_cli(tmp_path / "home", args, _env(database_url, redis_url, venue), timeout=60)

    assert code == 2
    assert output.strip().splitlines()[-1].startswith(line)
    assert len(output.strip().splitlines()) == 1
