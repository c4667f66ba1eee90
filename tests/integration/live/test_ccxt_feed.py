"""The ccxt feed (live/feeds/ccxt.py) with ccxt's own binance client against a fake Binance venue speaking its wire
protocol (tests/fakes/binance.py): bars built from the trade stream, and a dropped connection reconnected and
backfilled from the venue's history. The feed's clock is the test's, so minutes close when the test says."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import polars as pl
import pytest

from live.domain import Bar
from live.feeds.base import FeedError, LiveFeed, VenueFeed
from live.feeds.ccxt import CcxtFeed
from tests.fakes.binance import FakeBinance
from tests.support import eventually

T0 = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
SYMBOLS = ("BTC/USDT", "ETH/USDT")


class TestClock:
    """The venue time the feed sees; moved by the test."""

    __test__ = False

    def __init__(self, start: datetime) -> None:
        self.now = start
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self.now

    def set(self, now: datetime) -> None:
        with self._lock:
            self.now = now


@pytest.fixture
def venue() -> Iterator[FakeBinance]:
    with FakeBinance(symbols=SYMBOLS) as fake:
        yield fake


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _streaming(venue: FakeBinance, feed: CcxtFeed) -> None:
    feed.next_batch(0)  # starts the stream
    wanted = {f"{s.replace('/', '').lower()}@{kind}" for s in SYMBOLS for kind in ("trade", "bookTicker")}
    eventually(lambda: wanted <= venue.subscriptions, what="the feed to subscribe to trades and quotes")


def _collect(feed: CcxtFeed, until: datetime) -> list[list[Bar]]:
    """Cross-sections until the one of the minute `until` (the last expected) has come."""
    got: list[list[Bar]] = []

    def last_came() -> bool:
        batch = feed.next_batch(0.1)
        if batch:
            got.append(batch)
        return bool(got) and got[-1][0].timestamp >= until

    eventually(last_came, timeout=30, what=f"the bars up to {until}")
    return got


def _frame(cross_sections: list[list[Bar]]) -> pl.DataFrame:
    bars = [bar for cs in cross_sections for bar in cs]
    return pl.DataFrame(
        {
            "timestamp": [b.timestamp for b in bars],
            "symbol": [b.symbol for b in bars],
            "open": [b.open for b in bars],
            "high": [b.high for b in bars],
            "low": [b.low for b in bars],
            "close": [b.close for b in bars],
            "volume": [round(b.volume, 8) for b in bars],
        }
    ).sort("timestamp", "symbol")


def _market(venue: FakeBinance, seconds: list[float], *, start_price: str = "100") -> None:
    """Trades of both symbols at the given seconds after T0, prices walking up and down by the cent."""
    for k, second in enumerate(seconds):
        step = Decimal(k % 7 - 3) / 100
        venue.trade("BTC/USDT", Decimal(start_price) + step, Decimal("0.0015") * (k % 4 + 1), at=_at(second))
        if k % 3 == 0:
            venue.trade("ETH/USDT", Decimal("30") - step, Decimal("0.25"), at=_at(second + 0.5))


def test_bars_from_the_trade_stream_equal_bars_computed_from_the_venues_trades(venue: FakeBinance) -> None:
    clock = TestClock(_at(-1))
    feed = CcxtFeed.connect(exchange_id="binance", symbols=SYMBOLS, exchange_url=venue.url, clock=clock)
    assert isinstance(feed, LiveFeed)
    try:
        _streaming(venue, feed)
        venue.quote("BTC/USDT", "99.99", "100.01")
        venue.quote("ETH/USDT", "29.9", "30.1")
        # Minutes 0..5 trade, minute 3 does not.
        _market(venue, [s for s in range(2, 6 * 60, 7) if not 180 <= s < 240])
        eventually(lambda: feed.received_trades == len(venue.trades), what="every trade to reach the feed")
        assert feed.next_batch(0.2) is None  # no minute is over yet

        clock.set(_at(6 * 60 + 2))
        got = _collect(feed, until=_at(5 * 60))
    finally:
        feed.close()

    assert _frame(got).equals(venue.minute_bars())
    assert _at(3 * 60) not in {cs[0].timestamp for cs in got}  # a minute without trades has no bar
    assert all(
        bar.spread == pytest.approx(0.02 if bar.symbol == "BTC/USDT" else 0.2) for cs in got for bar in cs
    )
    assert venue.requests["/api/v3/klines"] == 2  # the first, partly seen minute (-1), once per symbol
    assert feed.reconnections == 0


def test_a_dropped_connection_reconnects_and_backfills_without_a_duplicate_or_invented_bar(
    venue: FakeBinance,
) -> None:
    clock = TestClock(_at(-1))
    feed = CcxtFeed.connect(exchange_id="binance", symbols=SYMBOLS, exchange_url=venue.url, clock=clock)
    try:
        _streaming(venue, feed)
        _market(venue, [5, 20, 40, 62, 75])  # minutes 0 and 1, seen by the stream
        eventually(lambda: feed.received_trades == len(venue.trades), what="the first trades")
        seen_before = len(venue.trades)

        venue.refuse_connections = True
        venue.drop_connections()
        eventually(
            lambda: venue.requests["/ws/0"] + venue.requests["/ws/1"] >= 4, what="a refused reconnection"
        )
        _market(venue, [90, 110, 250, 275], start_price="101")  # minutes 1 and 4: the stream never sees these
        venue.refuse_connections = False
        eventually(lambda: "btcusdt@trade" in venue.subscriptions, timeout=30, what="the feed to reconnect")
        missed = len(venue.trades) - seen_before
        _market(
            venue, [5 * 60 + 30, 6 * 60 + 10, 6 * 60 + 40], start_price="102"
        )  # minutes 5 and 6: live again
        eventually(
            lambda: feed.received_trades == len(venue.trades) - missed,
            what="the trades after the reconnection",
        )

        clock.set(_at(7 * 60 + 2))
        got = _collect(feed, until=_at(6 * 60))
        assert feed.next_batch(0.5) is None
    finally:
        feed.close()

    stamps = [(bar.timestamp, bar.symbol) for cs in got for bar in cs]
    assert len(stamps) == len(set(stamps))  # no duplicate
    assert _frame(got).equals(venue.minute_bars())  # nothing lost, nothing invented (minutes 2 and 3)
    assert feed.reconnections == 1
    assert [cs[0].timestamp for cs in got] == sorted({cs[0].timestamp for cs in got})


def test_an_unknown_symbol_or_exchange_is_refused_before_the_feed_starts(venue: FakeBinance) -> None:
    with pytest.raises(FeedError, match="--symbols: binance has no market 'DOGE/EUR'"):
        CcxtFeed.connect(exchange_id="binance", symbols=("BTC/USDT", "DOGE/EUR"), exchange_url=venue.url)
    with pytest.raises(FeedError, match="--exchange 'no-such-venue'"):
        CcxtFeed.connect(exchange_id="no-such-venue", symbols=SYMBOLS, exchange_url=venue.url)


def test_the_feed_states_each_symbols_market_rules_as_the_venue_has_them(venue: FakeBinance) -> None:
    feed = CcxtFeed.connect(exchange_id="binance", symbols=SYMBOLS, exchange_url=venue.url)

    assert isinstance(feed, VenueFeed)
    assert feed.instruments is not None
    btc = feed.instruments["BTC/USDT"]
    # The fake's exchangeInfo filters: LOT_SIZE step and minimum 0.00001, PRICE_FILTER tick 0.01, NOTIONAL 5.
    assert (btc.quantity_step, btc.price_tick, btc.min_quantity, btc.min_notional) == (
        Decimal("0.00001"),
        Decimal("0.01"),
        Decimal("0.00001"),
        Decimal("5"),
    )
    assert set(feed.instruments) == set(SYMBOLS)
