"""The book, to the cent: hand-computed cash, average cost, realized and unrealized P&L."""

from decimal import Decimal

import pytest

from live.domain import Side
from live.portfolio import AccountingError, Portfolio
from tests.factories import T0

D = Decimal


def _fill(book: Portfolio, n: int, symbol: str, side: Side, qty: int, price: str, fee: str = "0"):
    return book.apply_fill(
        fill_id=f"f{n}",
        order_id=f"o{n}",
        timestamp=T0,
        symbol=symbol,
        side=side,
        quantity=qty,
        price=D(price),
        fee=D(fee),
        signal_type="momentum",
    )


def test_round_trip_long_books_cash_average_cost_and_realized_pnl_to_the_cent():
    book = Portfolio(initial_cash=D("100000"))
    _fill(book, 1, "AAPL", Side.BUY, 100, "10.00", "1.00")
    _fill(book, 2, "AAPL", Side.BUY, 50, "10.03", "0.50")
    assert book.positions["AAPL"].avg_price == D("10.01")
    assert book.cash == D("100000") - D("1000.00") - D("1.00") - D("501.50") - D("0.50")
    sell = _fill(book, 3, "AAPL", Side.SELL, 60, "10.51", "0.63")
    assert sell.realized_pnl == D("30.00")  # 60 * (10.51 - 10.01)
    book.mark("AAPL", D("10.21"))
    assert book.unrealized_pnl() == D("18.00")  # 90 * (10.21 - 10.01)
    last = _fill(book, 4, "AAPL", Side.SELL, 90, "9.91", "0.89")
    assert last.realized_pnl == D("-9.00")
    assert book.quantity("AAPL") == 0
    assert book.realized_pnl == D("21.00")
    assert book.fees == D("3.02")
    assert book.cash == D("100000") + D("21.00") - D("3.02")
    assert book.total_value() == D("100017.98")


def test_short_position_profits_when_price_falls():
    book = Portfolio(initial_cash=D("50000"))
    _fill(book, 1, "TSLA", Side.SELL, 20, "250.00")
    book.mark("TSLA", D("240.00"))
    assert book.quantity("TSLA") == -20
    assert book.unrealized_pnl() == D("200.00")
    assert book.total_value() == D("50200.00")
    cover = _fill(book, 2, "TSLA", Side.BUY, 20, "245.50")
    assert cover.realized_pnl == D("90.00")
    assert book.cash == D("50090.00")


def test_a_fill_that_would_reverse_a_position_is_refused():
    book = Portfolio(initial_cash=D("1000"))
    _fill(book, 1, "JPM", Side.BUY, 5, "100")
    with pytest.raises(AccountingError, match="reverse"):
        _fill(book, 2, "JPM", Side.SELL, 6, "100")


def test_high_water_mark_and_drawdown_follow_the_marked_value():
    book = Portfolio(initial_cash=D("1000"))
    _fill(book, 1, "X", Side.BUY, 10, "10")
    book.mark("X", D("20"))
    assert book.update_high_water_mark() == D("1100")
    book.mark("X", D("15"))
    book.update_high_water_mark()
    assert book.high_water_mark == D("1100")
    assert book.drawdown() == D("50") / D("1100")


def test_rebuilding_from_fills_gives_the_same_book():
    book = Portfolio(initial_cash=D("100000"))
    fills = [
        _fill(book, 1, "A", Side.BUY, 7, "33.3333", "0.02"),
        _fill(book, 2, "A", Side.BUY, 3, "31.1111", "0.01"),
        _fill(book, 3, "B", Side.SELL, 4, "12.5", "0.01"),
        _fill(book, 4, "A", Side.SELL, 5, "35.0001", "0.02"),
    ]
    rebuilt = Portfolio.from_fills(initial_cash=D("100000"), fills=fills)
    assert rebuilt.cash == book.cash
    assert {s: (p.quantity, p.avg_price) for s, p in rebuilt.positions.items()} == {
        s: (p.quantity, p.avg_price) for s, p in book.positions.items()
    }
    assert rebuilt.realized_pnl == book.realized_pnl


# -- fractional quantities, as a crypto venue trades them ----------------------------------------------------


def _btc(book: Portfolio, n: int, side: Side, qty: str, price: str, fee: str):
    return book.apply_fill(
        fill_id=f"f{n}",
        order_id=f"o{n}",
        timestamp=T0,
        symbol="BTC/USDT",
        side=side,
        quantity=D(qty),
        price=D(price),
        fee=D(fee),
        signal_type="momentum",
    )


def test_fractional_fills_book_cash_average_cost_and_realized_pnl_exactly():
    # 0.0013 BTC bought in two fills, closed in two partial sells; fees (10 bps) to the cent.
    book = Portfolio(initial_cash=D("10000"))
    _btc(book, 1, Side.BUY, "0.0008", "50000.12", "0.04")  # 40.000096
    _btc(book, 2, Side.BUY, "0.0005", "50321.55", "0.03")  # 25.160775
    assert book.quantity("BTC/USDT") == D("0.0013")
    # (0.0008 x 50000.12 + 0.0005 x 50321.55) / 0.0013 = 65.160871 / 0.0013 = 50123.746923076..., kept to 8 places
    assert book.positions["BTC/USDT"].avg_price == D("50123.74692308")
    assert book.cash == D("10000") - D("40.000096") - D("25.160775") - D("0.07")

    first = _btc(book, 3, Side.SELL, "0.0004", "50500.01", "0.02")
    # 0.0004 x (50500.01 - 50123.74692308) = 0.150505230768, kept to 8 places
    assert first.realized_pnl == D("0.15050523")
    assert book.quantity("BTC/USDT") == D("0.0009")
    assert book.positions["BTC/USDT"].avg_price == D("50123.74692308")  # a partial close leaves the average
    book.mark("BTC/USDT", D("49000.00"))
    # 0.0009 x (49000.00 - 50123.74692308), exact: unrealized P&L is not rounded
    assert book.unrealized_pnl() == D("-1.011372230772")
    assert book.total_value() == book.cash + D("0.0009") * D("49000.00")

    last = _btc(book, 4, Side.SELL, "0.0009", "49000.03", "0.04")
    assert last.realized_pnl == D("-1.01134523")  # 0.0009 x (49000.03 - 50123.74692308) = -1.011345230772
    assert book.quantity("BTC/USDT") == 0
    assert book.positions["BTC/USDT"].avg_price == 0
    assert book.fees == D("0.13")
    # Cash is exact: every notional and fee, to the last satoshi-dollar; the realized P&L (kept to 8 places)
    # matches it to far better than a cent.
    paid = D("40.000096") + D("25.160775")
    received = D("0.0004") * D("50500.01") + D("0.0009") * D("49000.03")
    assert book.cash == D("10000") - paid + received - D("0.13")
    assert abs((book.cash - D("10000")) - (book.realized_pnl - book.fees)) < D("0.00000001")
    assert book.realized_pnl_today == book.realized_pnl - book.fees


def test_a_fractional_book_rebuilt_from_its_fills_is_the_same_book():
    book = Portfolio(initial_cash=D("10000"))
    fills = [
        _btc(book, 1, Side.BUY, "0.0013", "50000.12", "0.07"),
        _btc(book, 2, Side.SELL, "0.00047", "50210.99", "0.02"),
        _btc(book, 3, Side.BUY, "0.00001", "50190.01", "0.00"),
        _btc(book, 4, Side.SELL, "0.00084", "49999.99", "0.04"),
    ]

    rebuilt = Portfolio.from_fills(initial_cash=D("10000"), fills=fills)

    assert book.quantity("BTC/USDT") == 0
    assert (rebuilt.cash, rebuilt.realized_pnl, rebuilt.fees) == (book.cash, book.realized_pnl, book.fees)
    assert rebuilt.positions == book.positions


def test_a_fractional_short_is_covered_exactly():
    book = Portfolio(initial_cash=D("1000"))
    _btc(book, 1, Side.SELL, "0.0013", "50000.00", "0.07")
    assert book.quantity("BTC/USDT") == D("-0.0013")
    cover = _btc(book, 2, Side.BUY, "0.0013", "49000.00", "0.06")
    assert cover.realized_pnl == D("1.30000000")  # 0.0013 x 1000.00
    assert book.cash == D("1000") + D("1.30") - D("0.13")


def test_a_fractional_sell_larger_than_the_position_is_refused():
    book = Portfolio(initial_cash=D("1000"))
    _btc(book, 1, Side.BUY, "0.0013", "50000.00", "0.07")
    with pytest.raises(AccountingError, match="reverse"):
        _btc(book, 2, Side.SELL, "0.00131", "50000.00", "0.07")
