"""Closed trades: one symbol's position from flat to flat; P&L = realized P&L minus all fees (docs/metrics.md)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import polars as pl
import pytest

from analytics.trades import (
    average_trade_duration_seconds,
    closed_trades,
    pnl_by_signal_type,
    profit_factor,
    win_rate,
)

T0 = datetime(2024, 6, 3, 13, 30, tzinfo=UTC)


def _fills(*rows: tuple[str, int, str, str, int, str, str, str]) -> pl.DataFrame:
    """Rows of (id, minutes after T0, symbol, side, quantity, fee, signal_type, realized_pnl); money as Decimal."""
    return pl.DataFrame(
        {
            "id": [r[0] for r in rows],
            "order_id": [f"o-{r[0]}" for r in rows],
            "timestamp": [T0 + timedelta(minutes=r[1]) for r in rows],
            "symbol": [r[2] for r in rows],
            "side": [r[3] for r in rows],
            "quantity": [r[4] for r in rows],
            "price": [Decimal("100.00000000")] * len(rows),
            "fee": [Decimal(r[5]) for r in rows],
            "signal_type": [r[6] for r in rows],
            "realized_pnl": [Decimal(r[7]) for r in rows],
        },
        schema_overrides={
            "price": pl.Decimal(24, 8),
            "fee": pl.Decimal(24, 8),
            "realized_pnl": pl.Decimal(24, 8),
        },
    )


def _book() -> pl.DataFrame:
    return _fills(
        # A long round trip: buy 10, sell 10. The opening fee counts.
        ("f1", 0, "AAPL", "buy", 10, "1.50", "momentum", "0"),
        ("f2", 30, "AAPL", "sell", 10, "1.25", "mean_reversion", "42.00"),
        # A short round trip: sell 5, buy 5 back at a loss.
        ("f3", 5, "MSFT", "sell", 5, "0.75", "breakout", "0"),
        ("f4", 65, "MSFT", "buy", 5, "0.75", "breakout", "-20.00"),
        # A partial close, then the rest: one trade of three fills, opened by vol_trend.
        ("f5", 10, "TSLA", "buy", 8, "1.00", "vol_trend", "0"),
        ("f6", 20, "TSLA", "sell", 3, "0.50", "momentum", "9.00"),
        ("f7", 130, "TSLA", "sell", 5, "0.50", "momentum", "-4.00"),
        # AAPL again, still open at the end: no row.
        ("f8", 200, "AAPL", "buy", 4, "0.40", "momentum", "0"),
        ("f9", 210, "AAPL", "sell", 1, "0.10", "momentum", "3.00"),
    )


def test_round_trips_become_closed_trades_net_of_every_fee() -> None:
    trades = closed_trades(_book())

    assert trades.columns == [
        "symbol",
        "opened_at",
        "closed_at",
        "duration_seconds",
        "pnl",
        "fees",
        "signal_type",
        "n_fills",
    ]
    assert trades.to_dicts() == [
        {
            "symbol": "AAPL",
            "opened_at": T0,
            "closed_at": T0 + timedelta(minutes=30),
            "duration_seconds": 1800.0,
            "pnl": pytest.approx(42.00 - 1.50 - 1.25),
            "fees": pytest.approx(2.75),
            "signal_type": "momentum",
            "n_fills": 2,
        },
        {
            "symbol": "MSFT",
            "opened_at": T0 + timedelta(minutes=5),
            "closed_at": T0 + timedelta(minutes=65),
            "duration_seconds": 3600.0,
            "pnl": pytest.approx(-20.00 - 1.50),
            "fees": pytest.approx(1.50),
            "signal_type": "breakout",
            "n_fills": 2,
        },
        {
            "symbol": "TSLA",
            "opened_at": T0 + timedelta(minutes=10),
            "closed_at": T0 + timedelta(minutes=130),
            "duration_seconds": 7200.0,
            "pnl": pytest.approx(9.00 - 4.00 - 2.00),
            "fees": pytest.approx(2.00),
            "signal_type": "vol_trend",
            "n_fills": 3,
        },
    ]


def test_float_money_columns_give_the_same_trades() -> None:
    decimal_book = _book()
    float_book = decimal_book.with_columns(pl.col("price", "fee", "realized_pnl").cast(pl.Float64))

    assert closed_trades(float_book).equals(closed_trades(decimal_book))


def test_input_order_does_not_matter() -> None:
    book = _book()

    assert closed_trades(book.reverse()).equals(closed_trades(book))


def test_a_symbol_traded_flat_to_flat_twice_gives_two_trades() -> None:
    fills = _fills(
        ("a", 0, "ES", "buy", 2, "1", "momentum", "0"),
        ("b", 1, "ES", "sell", 2, "1", "momentum", "10"),
        ("c", 2, "ES", "sell", 1, "1", "breakout", "0"),
        ("d", 3, "ES", "buy", 1, "1", "breakout", "5"),
    )

    trades = closed_trades(fills)

    assert trades["signal_type"].to_list() == ["momentum", "breakout"]
    assert trades["pnl"].to_list() == pytest.approx([8.0, 3.0])


def test_a_fill_that_crosses_zero_is_refused_by_id() -> None:
    fills = _fills(
        ("open-1", 0, "NVDA", "buy", 5, "1", "momentum", "0"),
        ("flip-2", 1, "NVDA", "sell", 8, "1", "momentum", "12"),
    )

    with pytest.raises(ValueError, match="flip-2"):
        closed_trades(fills)


def test_statistics_over_closed_trades() -> None:
    trades = closed_trades(_book())

    assert win_rate(trades) == pytest.approx(2 / 3)
    assert average_trade_duration_seconds(trades) == pytest.approx((1800 + 3600 + 7200) / 3)
    assert profit_factor(trades) == pytest.approx((39.25 + 3.0) / 21.5)


def test_no_trades_give_undefined_statistics() -> None:
    trades = closed_trades(_book().clear())

    assert trades.height == 0
    assert math.isnan(win_rate(trades))
    assert math.isnan(average_trade_duration_seconds(trades))
    assert math.isnan(profit_factor(trades))


def test_profit_factor_without_a_losing_trade_is_infinite() -> None:
    trades = closed_trades(_book()).filter(pl.col("pnl") > 0)

    assert profit_factor(trades) == math.inf


def test_pnl_is_credited_to_the_signal_type_that_opened_the_trade() -> None:
    by_signal = pnl_by_signal_type(closed_trades(_book()))

    assert by_signal.columns == ["signal_type", "pnl", "n_trades", "win_rate"]
    assert by_signal.to_dicts() == [
        {"signal_type": "breakout", "pnl": pytest.approx(-21.5), "n_trades": 1, "win_rate": 0.0},
        {"signal_type": "momentum", "pnl": pytest.approx(39.25), "n_trades": 1, "win_rate": 1.0},
        {"signal_type": "vol_trend", "pnl": pytest.approx(3.0), "n_trades": 1, "win_rate": 1.0},
    ]


def test_hundreds_of_thousands_of_fills_roll_up_per_symbol() -> None:
    n_round_trips = 250_000
    # Each round trip on one of 100 symbols: buy 10, sell 4, sell 6; trades on a symbol follow one another.
    legs = pl.DataFrame(
        {"leg": [0, 1, 2], "side": ["buy", "sell", "sell"], "quantity": [10, 4, 6], "gross": [0.0, 2.0, -1.0]}
    )
    fills = (
        pl.DataFrame({"k": range(n_round_trips)})
        .join(legs, how="cross")
        .with_columns(
            id=pl.format("f{}-{}", pl.col("k"), pl.col("leg")),
            order_id=pl.format("o{}-{}", pl.col("k"), pl.col("leg")),
            symbol=pl.format("S{}", pl.col("k") % 100),
            timestamp=pl.lit(T0) + pl.duration(seconds=pl.col("k") * 3 + pl.col("leg")),
            price=pl.lit(1.0),
            fee=pl.lit(0.01),
            signal_type=pl.lit("momentum"),
            realized_pnl=pl.col("gross"),
        )
        .drop("k", "leg", "gross")
        .sample(fraction=1.0, shuffle=True, seed=3)
    )

    trades = closed_trades(fills)

    assert trades.height == n_round_trips
    assert trades["n_fills"].unique().to_list() == [3]
    assert trades["duration_seconds"].unique().to_list() == [2.0]
    assert trades["pnl"].sum() == pytest.approx(n_round_trips * (1.0 - 0.03))
