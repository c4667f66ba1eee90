"""The live feed's bar builder (live/feeds/minute_bars.py): trades in, 1-minute OHLCV bars out, only once each
minute is over, never for a minute without trades, and with the minutes a broken stream missed taken from history."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import polars as pl
from polars.testing import assert_frame_equal

from live.domain import Bar
from live.feeds.minute_bars import Backfill, MinuteBars

T0 = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
SYMBOLS = ("BTC/USDT", "ETH/USDT")


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _flatten(cross_sections: list[list[Bar]]) -> list[Bar]:
    return [bar for cross_section in cross_sections for bar in cross_section]


def _independent_bars(trades: list[tuple[str, datetime, float, float]]) -> pl.DataFrame:
    """The same bars by another route: a polars group-by over the trades in arrival order."""
    frame = pl.DataFrame(trades, schema=["symbol", "at", "price", "amount"], orient="row").with_row_index(
        "arrival"
    )
    return (
        frame.with_columns(pl.col("at").dt.truncate("1m").alias("timestamp"))
        .sort("arrival")
        .group_by("timestamp", "symbol", maintain_order=True)
        .agg(
            pl.col("price").first().alias("open"),
            pl.col("price").max().alias("high"),
            pl.col("price").min().alias("low"),
            pl.col("price").last().alias("close"),
            pl.col("amount").sum().alias("volume"),
        )
        .sort("timestamp", "symbol")
    )


def _as_frame(bars: list[Bar]) -> pl.DataFrame:
    return pl.DataFrame(
        [(b.timestamp, b.symbol, b.open, b.high, b.low, b.close, b.volume) for b in bars],
        schema=["timestamp", "symbol", "open", "high", "low", "close", "volume"],
        orient="row",
    ).sort("timestamp", "symbol")


def test_bars_from_a_trade_stream_equal_bars_computed_independently_from_the_same_trades() -> None:
    rng = random.Random(12)
    trades = []
    for _ in range(600):
        symbol = rng.choice(SYMBOLS)
        # 20 minutes, with minutes 7 and 13 left without a trade.
        second = rng.choice([s for s in range(20 * 60) if s // 60 not in (7, 13)])
        trades.append(
            (symbol, _at(second + rng.random()), round(rng.uniform(90, 110), 2), round(rng.random(), 4))
        )
    trades.sort(key=lambda trade: trade[1])
    builder = MinuteBars(symbols=SYMBOLS)
    emitted: list[list[Bar]] = []
    for symbol, at, price, amount in trades:
        emitted += builder.close(at)
        builder.add_trade(symbol=symbol, at=at, price=price, amount=amount)
    emitted += builder.close(_at(20 * 60))

    bars = _flatten(emitted)
    ours, theirs = _as_frame(bars), _independent_bars(trades)
    # Times, symbols and prices exactly; volumes up to the order the two sum them in.
    assert_frame_equal(ours.drop("volume"), theirs.drop("volume"))
    assert_frame_equal(ours, theirs, check_exact=False, rel_tol=1e-12)
    assert {bar.timestamp for bar in bars}.isdisjoint({_at(7 * 60), _at(13 * 60)})  # never invented
    assert all(len({bar.timestamp for bar in cs}) == 1 for cs in emitted)
    assert [cs[0].timestamp for cs in emitted] == sorted({bar.timestamp for bar in bars})


def test_a_minute_is_emitted_only_once_it_is_over() -> None:
    builder = MinuteBars(symbols=SYMBOLS)
    builder.add_trade(symbol="BTC/USDT", at=_at(10), price=100.0, amount=1.0)

    assert builder.close(_at(59.999)) == []
    builder.add_trade(symbol="BTC/USDT", at=_at(59.9995), price=101.0, amount=1.0)
    [[bar]] = builder.close(_at(60))

    assert (bar.timestamp, bar.open, bar.close, bar.volume) == (T0, 100.0, 101.0, 2.0)
    assert builder.close(_at(600)) == []


def test_a_late_trade_for_an_emitted_minute_is_dropped_and_counted() -> None:
    builder = MinuteBars(symbols=SYMBOLS)
    builder.add_trade(symbol="BTC/USDT", at=_at(10), price=100.0, amount=1.0)
    [[bar]] = builder.close(_at(61))

    builder.add_trade(symbol="BTC/USDT", at=_at(50), price=500.0, amount=9.0)
    builder.add_trade(symbol="BTC/USDT", at=_at(70), price=102.0, amount=1.0)

    assert builder.late_trades == 1
    assert _flatten(builder.close(_at(120))) == [
        Bar(timestamp=_at(60), symbol="BTC/USDT", open=102.0, high=102.0, low=102.0, close=102.0, volume=1.0)
    ]


def test_the_spread_is_the_latest_quote_before_the_minute_ends() -> None:
    builder = MinuteBars(symbols=SYMBOLS)
    builder.add_quote(symbol="BTC/USDT", at=_at(5), bid=99.0, ask=101.0)
    builder.add_quote(symbol="BTC/USDT", at=_at(59), bid=99.5, ask=100.5)
    builder.add_quote(symbol="BTC/USDT", at=_at(61), bid=90.0, ask=110.0)  # the next minute's
    builder.add_trade(symbol="BTC/USDT", at=_at(30), price=100.0, amount=1.0)
    builder.add_trade(symbol="ETH/USDT", at=_at(30), price=10.0, amount=1.0)

    btc, eth = builder.close(_at(62))[0]

    assert (btc.spread, eth.spread) == (1.0, 0.0)  # no quote of ETH seen yet


def test_a_broken_stream_holds_the_minutes_it_touched_until_history_fills_them_in_order() -> None:
    builder = MinuteBars(symbols=SYMBOLS)
    builder.add_trade(symbol="BTC/USDT", at=_at(10), price=100.0, amount=1.0)
    builder.add_trade(symbol="BTC/USDT", at=_at(65), price=101.0, amount=1.0)
    builder.lost(_at(65))  # the stream's last trade; everything after may be missed
    assert [cs[0].timestamp for cs in builder.close(_at(5 * 60))] == [T0]
    assert builder.needs_backfill is None  # still down: the stretch is not over

    builder.resumed(_at(3 * 60 + 20))
    builder.add_trade(symbol="BTC/USDT", at=_at(3 * 60 + 20), price=104.0, amount=1.0)
    builder.add_trade(symbol="BTC/USDT", at=_at(4 * 60 + 5), price=105.0, amount=2.0)
    assert builder.close(_at(4 * 60)) == []  # minute 3 (the resumption's) is not over yet
    assert builder.close(_at(4 * 60 + 1)) == []
    assert builder.needs_backfill == Backfill(start=_at(60), end=_at(4 * 60))

    history = [
        Bar(timestamp=_at(60), symbol="BTC/USDT", open=101.0, high=102.0, low=101.0, close=102.0, volume=2.0),
        Bar(
            timestamp=_at(3 * 60),
            symbol="BTC/USDT",
            open=103.0,
            high=104.0,
            low=103.0,
            close=104.0,
            volume=2.0,
        ),
        Bar(timestamp=_at(4 * 60), symbol="BTC/USDT", open=1.0, high=1.0, low=1.0, close=1.0, volume=1.0),
    ]
    filled = builder.backfilled(history)

    assert [[(b.timestamp, b.close) for b in cs] for cs in filled] == [
        [(_at(60), 102.0)],
        [(_at(180), 104.0)],
    ]
    later = builder.close(_at(5 * 60))
    assert [[(b.timestamp, b.close, b.volume) for b in cs] for cs in later] == [[(_at(240), 105.0, 2.0)]]
    assert builder.needs_backfill is None


def test_the_first_minute_of_a_stream_comes_from_history() -> None:
    builder = MinuteBars(symbols=SYMBOLS)
    builder.start_uncovered(_at(30))
    builder.add_trade(symbol="ETH/USDT", at=_at(40), price=10.0, amount=1.0)

    assert builder.close(_at(61)) == []
    assert builder.needs_backfill == Backfill(start=T0, end=_at(60))
    history = [Bar(timestamp=T0, symbol="ETH/USDT", open=9.0, high=10.0, low=9.0, close=10.0, volume=3.0)]
    assert builder.backfilled(history) == [history]


def test_quotes_older_than_what_the_next_minute_needs_are_not_kept() -> None:
    builder = MinuteBars(symbols=SYMBOLS)
    builder.close(_at(60))
    for k in range(10_000):
        builder.add_quote(symbol="ETH/USDT", at=_at(60 + k * 0.05), bid=10.0, ask=10.0 + (k % 5) / 100)
    builder.close(_at(10 * 60))
    builder.add_quote(symbol="ETH/USDT", at=_at(10 * 60 + 1), bid=10.0, ask=10.5)
    builder.add_trade(symbol="ETH/USDT", at=_at(10 * 60 + 2), price=10.2, amount=1.0)

    [[bar]] = builder.close(_at(11 * 60))

    assert bar.spread == 0.5
    assert len(builder._quotes["ETH/USDT"]) <= 2  # a symbol that rarely trades keeps no backlog of quotes
