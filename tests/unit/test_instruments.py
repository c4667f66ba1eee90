"""Market rules as data: a venue's step, tick and minimums read from its ccxt market list, and the rounding they
imply (quantities down to the step, prices to the nearest tick)."""

from decimal import Decimal

import pytest

from live.instruments import (
    DECIMAL_PLACES,
    SIGNIFICANT_DIGITS,
    Instrument,
    default_instrument,
    instruments_from_ccxt_markets,
)

D = Decimal

# Binance spot as ccxt 4 loads it (`exchange.markets`, precisionMode TICK_SIZE): precision and limits are floats,
# the step and tick themselves; `info` carries the exchange's own filters (abridged).
BINANCE_MARKETS = {
    "BTC/USDT": {
        "id": "BTCUSDT",
        "symbol": "BTC/USDT",
        "base": "BTC",
        "quote": "USDT",
        "type": "spot",
        "spot": True,
        "active": True,
        "taker": 0.001,
        "maker": 0.001,
        "precision": {"amount": 1e-05, "price": 0.01, "cost": None, "base": 1e-08, "quote": 1e-08},
        "limits": {
            "leverage": {"min": None, "max": None},
            "amount": {"min": 1e-05, "max": 9000.0},
            "price": {"min": 0.01, "max": 1000000.0},
            "cost": {"min": 5.0, "max": 9000000.0},
            "market": {"min": 0.0, "max": 89.54403722},
        },
        "info": {
            "symbol": "BTCUSDT",
            "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": "0.01000000", "tickSize": "0.01000000"},
                {"filterType": "LOT_SIZE", "minQty": "0.00001000", "stepSize": "0.00001000"},
                {"filterType": "NOTIONAL", "minNotional": "5.00000000", "applyMinToMarket": True},
            ],
        },
    },
    "ETH/USDT": {
        "id": "ETHUSDT",
        "symbol": "ETH/USDT",
        "active": True,
        "precision": {"amount": 0.0001, "price": 0.01},
        "limits": {"amount": {"min": 0.0001, "max": 9000.0}, "cost": {"min": 5.0, "max": None}},
    },
    "SHIB/USDT": {
        "id": "SHIBUSDT",
        "symbol": "SHIB/USDT",
        "active": True,
        "precision": {"amount": 1.0, "price": 1e-08},
        "limits": {"amount": {"min": 1.0, "max": 92141578986.0}, "cost": {"min": 5.0, "max": None}},
    },
    "LUNA/USDT": {
        "id": "LUNAUSDT",
        "symbol": "LUNA/USDT",
        "active": False,
        "precision": {"amount": 0.01, "price": 0.0001},
        "limits": {"amount": {"min": 0.01}, "cost": {"min": 5.0}},
    },
}


def test_a_binance_market_list_gives_each_symbols_step_tick_and_minimums_as_exact_decimals():
    instruments = instruments_from_ccxt_markets(BINANCE_MARKETS, ["BTC/USDT", "ETH/USDT", "SHIB/USDT"])

    assert instruments == {
        "BTC/USDT": Instrument(
            symbol="BTC/USDT",
            quantity_step=D("0.00001"),
            price_tick=D("0.01"),
            min_quantity=D("0.00001"),
            min_notional=D("5"),
        ),
        "ETH/USDT": Instrument(
            symbol="ETH/USDT",
            quantity_step=D("0.0001"),
            price_tick=D("0.01"),
            min_quantity=D("0.0001"),
            min_notional=D("5"),
        ),
        "SHIB/USDT": Instrument(
            symbol="SHIB/USDT",
            quantity_step=D("1"),
            price_tick=D("0.00000001"),
            min_quantity=D("1"),
            min_notional=D("5"),
        ),
    }
    # The floats ccxt holds become the decimals the venue publishes, not their binary expansions.
    assert str(instruments["BTC/USDT"].quantity_step) == "0.00001"


def test_a_market_without_limits_falls_back_to_one_step_and_no_minimum_notional():
    markets = {
        "XBT/EUR": {"active": None, "precision": {"amount": "0.00000001", "price": "0.1"}, "limits": {}}
    }

    (instrument,) = instruments_from_ccxt_markets(markets, ["XBT/EUR"]).values()

    assert instrument.min_quantity == D("0.00000001")
    assert instrument.min_notional == 0
    assert instrument.price_tick == D("0.1")


def test_decimal_places_precision_is_read_as_a_number_of_decimals():
    markets = {
        "BTC/USD": {"precision": {"amount": 8, "price": 1}, "limits": {"amount": {"min": 0.0001}}},
        "DOGE/USD": {"precision": {"amount": 0, "price": 5}, "limits": {}},
    }

    instruments = instruments_from_ccxt_markets(
        markets, ["BTC/USD", "DOGE/USD"], precision_mode=DECIMAL_PLACES
    )

    assert instruments["BTC/USD"].quantity_step == D("0.00000001")
    assert instruments["BTC/USD"].price_tick == D("0.1")
    assert instruments["BTC/USD"].min_quantity == D("0.0001")
    assert instruments["DOGE/USD"].quantity_step == D("1")
    assert instruments["DOGE/USD"].price_tick == D("0.00001")


@pytest.mark.parametrize(
    ("markets", "symbol", "message", "mode"),
    [
        (BINANCE_MARKETS, "DOGE/USDT", "DOGE/USDT: no such market", None),
        (BINANCE_MARKETS, "LUNA/USDT", "LUNA/USDT: the market is not active", None),
        ({"X/Y": {"precision": {"price": 0.01}}}, "X/Y", r"X/Y: the market gives no precision\.amount", None),
        (
            {"X/Y": {"precision": {"amount": "lots", "price": 0.01}}},
            "X/Y",
            "precision.amount is 'lots'",
            None,
        ),
        ({"X/Y": {"precision": {"amount": 0.0, "price": 0.01}}}, "X/Y", "precision.amount is 0", None),
        ({"X/Y": {"precision": {"amount": 0.5, "price": 2}}}, "X/Y", "not a number of decimal places", 2),
        ({"X/Y": {"precision": {"amount": 3, "price": 2}}}, "X/Y", "precision mode 3", SIGNIFICANT_DIGITS),
        (
            {"X/Y": {"precision": {"amount": 0.1, "price": 0.01}, "limits": {"cost": {"min": -1}}}},
            "X/Y",
            "limits.cost.min",
            None,
        ),
    ],
)
def test_a_market_the_engine_cannot_trade_safely_is_refused_with_the_symbol_and_the_field(
    markets, symbol, message, mode
):
    kwargs = {} if mode is None else {"precision_mode": mode}
    with pytest.raises(ValueError, match=message):
        instruments_from_ccxt_markets(markets, [symbol], **kwargs)


def test_a_quantity_is_rounded_down_to_the_step_and_a_price_to_the_nearest_tick():
    btc = instruments_from_ccxt_markets(BINANCE_MARKETS, ["BTC/USDT"])["BTC/USDT"]

    assert btc.quantity_down(D("0.0013999")) == D("0.00139")
    assert btc.quantity_down(D("0.00000999")) == 0
    assert str(btc.quantity_down(D("2"))) == "2.00000"
    assert btc.price_on_tick(D("50000.125")) == D("50000.12")  # half to even
    assert btc.price_on_tick(D("50000.135")) == D("50000.14")
    assert btc.price_on_tick(D("50000.1349")) == D("50000.13")


def test_a_step_or_tick_that_is_not_a_power_of_ten_is_a_multiple_of_itself():
    odd = Instrument(symbol="X", quantity_step=D("0.25"), price_tick=D("0.05"))

    assert odd.quantity_down(D("1.99")) == D("1.75")
    assert odd.price_on_tick(D("10.074")) == D("10.05")
    assert odd.price_on_tick(D("10.076")) == D("10.10")


def test_the_sims_instrument_trades_whole_shares_at_prices_to_four_decimals():
    shares = default_instrument("AAPL")

    assert shares.quantity_down(D("123.9")) == 123
    assert str(shares.quantity_down(D("123.9"))) == "123"
    assert shares.price_on_tick(D("187.123456")) == D("187.1235")
    assert (shares.min_quantity, shares.min_notional) == (1, 0)


@pytest.mark.parametrize(
    "changes",
    [
        {"quantity_step": D(0)},
        {"price_tick": D("-0.01")},
        {"min_notional": D(-5)},
        {"min_quantity": 1},
        {"price_tick": D("NaN")},
    ],
)
def test_an_instrument_with_impossible_rules_is_refused(changes):
    values = {"symbol": "X", "quantity_step": D("0.001"), "price_tick": D("0.01")} | changes
    with pytest.raises(ValueError, match="X: "):
        Instrument(**values)
