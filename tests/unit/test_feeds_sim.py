"""The seeded synthetic market: deterministic, well-formed bars of symbols that move together."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from live.domain import Bar
from live.feeds import DEFAULT_START, DEFAULT_SYMBOLS, FeedError, SimFeed


def _run(feed: SimFeed) -> list[list[Bar]]:
    return list(feed.batches())


def test_sim_feed_yields_identical_bars_for_the_same_seed() -> None:
    assert _run(SimFeed(seed=11, sim_days=0.5)) == _run(SimFeed(seed=11, sim_days=0.5))


def test_sim_feed_yields_different_bars_for_another_seed() -> None:
    first = [bar.close for batch in _run(SimFeed(seed=11, sim_days=0.1)) for bar in batch]
    second = [bar.close for batch in _run(SimFeed(seed=12, sim_days=0.1)) for bar in batch]
    assert first != second


def test_a_shorter_sim_run_is_the_start_of_a_longer_one() -> None:
    # The engine recovers by replaying the feed from its start, so the length asked for must not matter.
    short = _run(SimFeed(seed=3, sim_days=1.5))
    long = _run(SimFeed(seed=3, sim_days=2.0))
    assert long[: len(short)] == short


def test_a_symbol_follows_the_same_path_whichever_other_symbols_are_simulated() -> None:
    alone = [batch[0] for batch in _run(SimFeed(symbols=("NVDA",), sim_days=0.2))]
    with_others = [batch[2] for batch in _run(SimFeed(sim_days=0.2))]
    assert alone == with_others


def test_sim_feed_stops_after_sim_days_with_one_cross_section_of_all_symbols_per_bar() -> None:
    batches = _run(SimFeed(sim_days=0.25, bar_seconds=60))
    assert len(batches) == 360
    assert all(tuple(bar.symbol for bar in batch) == DEFAULT_SYMBOLS for batch in batches)


def test_sim_timestamps_start_at_start_and_step_by_bar_seconds_in_utc() -> None:
    start = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    batches = _run(SimFeed(start=start, sim_days=1, bar_seconds=300))
    times = [batch[0].timestamp for batch in batches]
    assert len(times) == 288
    assert times[0] == start
    assert all(b - a == timedelta(seconds=300) for a, b in itertools.pairwise(times))
    assert all(bar.timestamp == batch[0].timestamp for batch in batches for bar in batch)
    assert times[0].utcoffset() == timedelta(0)


def test_sim_feed_without_sim_days_keeps_going_past_one_day() -> None:
    batches = list(itertools.islice(SimFeed().batches(), 1440 + 10))
    assert batches[-1][0].timestamp == DEFAULT_START + timedelta(minutes=1449)


def test_every_sim_bar_is_a_consistent_positive_ohlc_bar_that_opens_at_the_last_close() -> None:
    batches = _run(SimFeed(seed=5, sim_days=2))
    last_close: dict[str, float] = {}
    for bar in (bar for batch in batches for bar in batch):
        assert bar.high >= max(bar.open, bar.close)
        assert bar.low <= min(bar.open, bar.close)
        assert bar.low > 0
        assert bar.volume > 0
        assert 0 < bar.spread < bar.close * 0.005
        if bar.symbol in last_close:
            assert bar.open == pytest.approx(last_close[bar.symbol], rel=1e-12)
        last_close[bar.symbol] = bar.close
    assert all(20 <= bar.open <= 500 for bar in batches[0])


def test_sim_symbols_move_together() -> None:
    closes = np.array([[bar.close for bar in batch] for batch in _run(SimFeed(sim_days=2))])
    returns = np.diff(np.log(closes), axis=0)
    correlation = np.corrcoef(returns.T)
    pairs = correlation[np.triu_indices(len(DEFAULT_SYMBOLS), k=1)]
    assert pairs.min() > 0.1


def test_sim_volume_and_spread_rise_when_the_market_is_turbulent() -> None:
    batches = _run(SimFeed(sim_days=10))
    closes = np.array([[bar.close for bar in batch] for batch in batches])
    volume = np.array([[bar.volume for bar in batch] for batch in batches])[1:].sum(axis=1)
    spread_bps = np.array([[bar.spread / bar.close for bar in batch] for batch in batches])[1:].mean(axis=1)
    market_move = np.abs(np.diff(np.log(closes), axis=0).mean(axis=1))
    # Hourly blocks: volatile hours must carry more volume and wider spreads than quiet ones.
    hours = len(market_move) // 60
    move, vol, spread = (
        x[: hours * 60].reshape(hours, 60).mean(axis=1) for x in (market_move, volume, spread_bps)
    )
    turbulent = move > np.quantile(move, 0.9)
    quiet = move < np.quantile(move, 0.5)
    assert vol[turbulent].mean() > 1.5 * vol[quiet].mean()
    assert spread[turbulent].mean() > 1.5 * spread[quiet].mean()


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"symbols": ()}, "no symbols"),
        ({"symbols": ("AAPL", "AAPL")}, "duplicate symbols"),
        ({"bar_seconds": 0}, "bar_seconds"),
        ({"sim_days": -1.0}, "sim_days"),
    ],
)
def test_sim_feed_refuses_unusable_settings_naming_them(kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(FeedError, match=fragment):
        SimFeed(**kwargs)  # type: ignore[arg-type]


def test_sim_feed_refuses_a_naive_start() -> None:
    with pytest.raises(ValueError, match="no timezone"):
        SimFeed(start=datetime(2026, 1, 5))
