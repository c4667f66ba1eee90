"""`kill -9` of `tradeos up --feed ccxt` trading a live (fake Binance) market, then a restart on the same record:
the book is recovered, the engine trades on from the minute after the last one committed, and every recorded bar
is the venue's own minute, each once."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import psycopg
import pytest

from live.domain import iso_utc
from tests.fakes.binance import FakeBinance
from tests.support import Service, eventually, recorded_bars

pytestmark = pytest.mark.faults

SYMBOLS = ("BTC/USDT", "ETH/USDT")


def _last_bar(database_url: str) -> datetime | None:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT max(timestamp) FROM bars").fetchone()
    return row[0] if row else None


def test_a_live_feed_trades_on_after_kill_9_from_the_minute_after_the_last_committed(
    tmp_path: Path, database_url: str, redis_url: str
) -> None:
    with FakeBinance(symbols=SYMBOLS) as venue:
        venue.start_market()
        env = {
            "TRADEOS_DATABASE_URL": database_url,
            "TRADEOS_REDIS_URL": redis_url,
            "TRADEOS_EXCHANGE_URL": venue.url,
            "TRADEOS_LEASE_TTL_SECONDS": "1",
        }
        args = ["up", "--no-api", "--no-flows", "--feed", "ccxt", "--symbols", ",".join(SYMBOLS)]
        home = tmp_path / "home"
        first = Service(home, args, env)
        with first:
            eventually(
                lambda: _last_bar(database_url) is not None, timeout=180, what="a first minute recorded"
            )
            first.kill()
        crashed_at = _last_bar(database_url)
        assert crashed_at is not None

        with Service(home, args, env) as second:
            eventually(
                lambda: f"last bar {iso_utc(crashed_at)}" in second.output,
                timeout=60,
                what="the restart to recover up to the last committed bar",
            )
            eventually(
                lambda: (_last_bar(database_url) or crashed_at) > crashed_at,
                timeout=180,
                what="a minute after the crash recorded",
            )
            assert second.process.poll() is None
        recorded = recorded_bars(database_url)
        venue_bars = venue.minute_bars()

    assert recorded.equals(
        venue_bars.join(recorded.select("timestamp", "symbol"), on=["timestamp", "symbol"])
    )
    assert recorded.select("timestamp", "symbol").is_duplicated().sum() == 0
