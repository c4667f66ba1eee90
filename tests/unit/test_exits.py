"""The exit manager's rules on scripted closes: each fires on the bar its rule says and no earlier, the tighter
stop names the exit, shorts mirror longs, and the ATR is Wilder's."""

from __future__ import annotations

from decimal import Decimal

import pytest

from live.risk.exits import ExitReason, ExitRules, OpenTrade, WilderAtr, on_bar, open_trade

NO_EXITS = ExitRules(max_loss_per_trade=Decimal("1"), atr_multiple=0.0, take_profit=0.0, max_hold_bars=0)


def _first_exit(
    trade: OpenTrade, closes: list[float], rules: ExitRules, atrs: list[float | None] | None = None
) -> tuple[int, ExitReason] | None:
    for i, close in enumerate(closes):
        trade, reason = on_bar(trade, close=close, atr=None if atrs is None else atrs[i], rules=rules)
        if reason is not None:
            return i, reason
    return None


def test_the_loss_stop_sits_at_the_maximum_loss_per_trade_and_fires_on_the_first_close_through_it() -> None:
    rules = ExitRules(max_loss_per_trade=Decimal("0.01"), atr_multiple=0.0, take_profit=0.0, max_hold_bars=0)
    # 1% of 100,000 on 100 shares: the stop is $10 below the $100 entry.
    trade = open_trade(
        direction=1, entry_price=100.0, quantity=Decimal(100), equity=Decimal(100_000), rules=rules
    )
    assert trade.loss_stop == pytest.approx(90.0)

    assert _first_exit(trade, [99.0, 95.0, 90.01, 92.0, 89.99, 85.0], rules) == (4, ExitReason.STOP_LOSS)
    assert _first_exit(trade, [99.0, 95.0, 90.0], rules) == (2, ExitReason.STOP_LOSS)  # at the stop counts


def test_a_short_mirrors_a_long() -> None:
    rules = ExitRules(max_loss_per_trade=Decimal("0.01"), atr_multiple=0.0, take_profit=0.05, max_hold_bars=0)
    trade = open_trade(
        direction=-1, entry_price=100.0, quantity=Decimal(-100), equity=Decimal(100_000), rules=rules
    )
    assert trade.loss_stop == pytest.approx(110.0)

    assert _first_exit(trade, [101.0, 109.0, 110.5], rules) == (2, ExitReason.STOP_LOSS)
    assert _first_exit(trade, [99.0, 96.0, 95.0], rules) == (2, ExitReason.TAKE_PROFIT)


def test_the_trailing_stop_follows_the_best_close_and_the_tighter_stop_names_the_exit() -> None:
    rules = ExitRules(max_loss_per_trade=Decimal("0.05"), atr_multiple=2.0, take_profit=0.0, max_hold_bars=0)
    trade = open_trade(
        direction=1, entry_price=100.0, quantity=Decimal(100), equity=Decimal(100_000), rules=rules
    )
    closes = [101.0, 104.0, 108.0, 106.0, 104.5, 103.9, 80.0]
    atrs: list[float | None] = [2.0] * len(closes)
    # Independently: the stop in force on bar i is max(loss stop 50, best close before i - 2 x 2); the exit is
    # the first close at or below it.
    best, expected = 100.0, None
    for i, close in enumerate(closes):
        in_force = max(50.0, best - 4.0) if i else 50.0  # no trailing level before the first bar's ATR
        if close <= in_force:
            expected = (i, ExitReason.TRAILING_STOP if in_force > 50.0 else ExitReason.STOP_LOSS)
            break
        best = max(best, close)

    assert expected == (5, ExitReason.TRAILING_STOP)
    assert _first_exit(trade, closes, rules, atrs) == expected


def test_the_trailing_stop_never_moves_against_the_position() -> None:
    rules = ExitRules(max_loss_per_trade=Decimal("0.5"), atr_multiple=1.0, take_profit=0.0, max_hold_bars=0)
    trade = open_trade(
        direction=1, entry_price=100.0, quantity=Decimal(10), equity=Decimal(100_000), rules=rules
    )
    levels = []
    for close, atr in [(105.0, 1.0), (105.0, 3.0), (104.0, 0.5)]:
        trade, _ = on_bar(trade, close=close, atr=atr, rules=rules)
        levels.append(trade.trailing_stop)
    assert levels == [104.0, 104.0, 104.5]


def test_take_profit_and_maximum_hold_fire_on_their_bar_and_no_earlier() -> None:
    take = ExitRules(max_loss_per_trade=Decimal("1"), atr_multiple=0.0, take_profit=0.03, max_hold_bars=0)
    trade = open_trade(
        direction=1, entry_price=200.0, quantity=Decimal(1), equity=Decimal(10_000), rules=take
    )
    assert _first_exit(trade, [201.0, 205.99, 206.0, 207.0], take) == (2, ExitReason.TAKE_PROFIT)

    hold = ExitRules(max_loss_per_trade=Decimal("1"), atr_multiple=0.0, take_profit=0.0, max_hold_bars=3)
    trade = open_trade(
        direction=1, entry_price=200.0, quantity=Decimal(1), equity=Decimal(10_000), rules=hold
    )
    assert _first_exit(trade, [200.0] * 10, hold) == (2, ExitReason.MAX_HOLD)
    assert _first_exit(trade, [200.0] * 10, NO_EXITS) is None


def test_the_atr_is_wilders_average_true_range() -> None:
    bars = [(10.0, 9.0, 9.5), (10.2, 9.4, 10.0), (10.8, 9.9, 10.7), (10.6, 10.1, 10.2), (11.5, 10.0, 11.4)]
    bars += [(11.0 + i * 0.1, 10.5 + i * 0.05, 10.8 + i * 0.07) for i in range(20)]
    period = 5
    # Independently: true ranges, their plain mean over the first `period`, then a_t = a_{t-1} + (tr - a_{t-1}) / n.
    ranges = [bars[0][0] - bars[0][1]] + [
        max(h, bars[i - 1][2]) - min(lo, bars[i - 1][2]) for i, (h, lo, _) in enumerate(bars) if i
    ]
    expected: list[float | None] = [None] * (period - 1) + [sum(ranges[:period]) / period]
    for tr in ranges[period:]:
        previous = expected[-1]
        assert previous is not None
        expected.append(previous + (tr - previous) / period)

    atr = WilderAtr(period)
    got = [atr.update(h, lo, c) for h, lo, c in bars]

    assert got[: period - 1] == [None] * (period - 1)
    assert got[period - 1 :] == pytest.approx(expected[period - 1 :], rel=1e-12)
