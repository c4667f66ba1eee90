"""The engine under a venue's market rules: entries sized down to the step, fills on the tick, and an order under
the minimum quantity or notional refused before it is sent, recorded like every other refusal."""

from datetime import timedelta
from decimal import Decimal

import pytest

from live.assembly import build_engine
from live.domain import Bar, OrderStatus, Side, TradingState
from live.engine import Engine, Outbox
from live.execution.paper import PaperBroker
from live.instruments import Instrument
from live.portfolio import Portfolio
from live.profiles import get_profile
from live.risk import checks, sizing
from live.risk.checks import OrderCheck, pre_trade_check
from live.settings import Settings
from tests.factories import CASH, T0, eager_profile, trending_rows

D = Decimal
SYMBOLS = ("BTC/USDT", "ETH/USDT")
BTC = Instrument(
    symbol="BTC/USDT",
    quantity_step=D("0.00001"),
    price_tick=D("0.01"),
    min_quantity=D("0.00001"),
    min_notional=D("5"),
)
ETH = Instrument(
    symbol="ETH/USDT",
    quantity_step=D("0.0001"),
    price_tick=D("0.01"),
    min_quantity=D("0.0001"),
    min_notional=D("5"),
)
SETTINGS = Settings(broker="paper", strategy="builtin", commission_bps=D("1"), slippage_bps=D("2")).engine


def _engine(instruments: dict[str, Instrument], **profile_changes: object) -> Engine:
    return build_engine(
        SETTINGS,
        symbols=SYMBOLS,
        profile=eager_profile(**profile_changes),
        initial_cash=CASH,
        instruments=instruments,
    )


def _crypto_bars(minutes: int) -> list[list[Bar]]:
    """A rising BTC near 50,000 and ETH near 3,000, prices with 3 decimals (finer than the venue's tick)."""
    rows = trending_rows(("BTC/USDT",), minutes, start=50000.0, step=7.013) + trending_rows(
        ("ETH/USDT",), minutes, start=3000.0, step=0.517
    )
    batches: dict = {}
    for ts, symbol, o, h, low, c, v in rows:
        batches.setdefault(ts, []).append(
            Bar(timestamp=ts, symbol=symbol, open=o, high=h, low=low, close=c, volume=v, spread=0.02)
        )
    return [batches[t] for t in sorted(batches)]


def _run(engine: Engine, batches: list[list[Bar]]) -> Outbox:
    total = Outbox()
    for batch in batches:
        engine.step(batch)
        out = engine.take_outbox()
        for name in ("orders", "fills", "risk_events"):
            getattr(total, name).extend(getattr(out, name))
    return total


def _multiple(value: Decimal, step: Decimal) -> bool:
    return value % step == 0


def test_fractional_entries_are_sized_down_to_the_step_fill_on_the_tick_and_book_exactly():
    engine = _engine({"BTC/USDT": BTC, "ETH/USDT": ETH})

    out = _run(engine, _crypto_bars(240))

    rules = {"BTC/USDT": BTC, "ETH/USDT": ETH}
    assert {f.symbol for f in out.fills} == set(SYMBOLS)
    assert all(o.status is OrderStatus.SUBMITTED for o in out.orders)
    assert any(o.quantity != o.quantity.to_integral_value() for o in out.orders)  # really fractional
    for order in out.orders:
        assert _multiple(order.quantity, rules[order.symbol].quantity_step), order
        assert order.quantity >= rules[order.symbol].min_quantity
    for fill in out.fills:
        assert _multiple(fill.price, rules[fill.symbol].price_tick), fill
    # The book is every fill exactly: cash moved by each notional and fee, and the same book rebuilt from them.
    signed = [(f.quantity if f.side is Side.BUY else -f.quantity, f.price, f.fee) for f in out.fills]
    assert engine.portfolio.cash == CASH - sum(q * p + fee for q, p, fee in signed)
    rebuilt = Portfolio.from_fills(initial_cash=CASH, fills=out.fills)
    assert rebuilt.positions == engine.portfolio.positions
    assert (rebuilt.cash, rebuilt.realized_pnl, rebuilt.fees) == (
        engine.portfolio.cash,
        engine.portfolio.realized_pnl,
        engine.portfolio.fees,
    )


def test_an_entry_is_the_largest_whole_number_of_steps_within_the_room():
    balanced = get_profile("balanced")  # a full position is 10% of equity: 10,000 of 100,000

    size = sizing.opening_quantity(
        price=D("50000.12"),
        equity=D("100000"),
        position_quantity=D(0),
        gross_exposure=D(0),
        profile=balanced,
        instrument=BTC,
    )

    assert size == D("0.19999")  # 10,000 / 50,000.12 = 0.1999995...
    assert size * D("50000.12") <= D("10000") < (size + BTC.quantity_step) * D("50000.12")


def test_an_order_under_the_minimum_notional_is_refused_before_it_is_sent_and_recorded_once_per_symbol():
    # 20,000 minimum notional: more than the 12% order cap lets any entry be. A storm threshold of 3 shows the
    # refusals are not a malfunction: trading goes on.
    too_big = {
        s: Instrument(**{**_fields(r), "min_notional": D("20000")})
        for s, r in (("BTC/USDT", BTC), ("ETH/USDT", ETH))
    }
    engine = _engine(too_big, reject_storm_count=3)

    out = _run(engine, _crypto_bars(60))

    assert len(out.orders) > 20
    assert {(o.status, o.reason) for o in out.orders} == {(OrderStatus.REJECTED, checks.BELOW_MIN_NOTIONAL)}
    assert out.fills == []
    assert not engine.broker.pending
    assert sorted((e.code, e.symbol) for e in out.risk_events) == [
        (checks.BELOW_MIN_NOTIONAL, "BTC/USDT"),
        (checks.BELOW_MIN_NOTIONAL, "ETH/USDT"),
    ]
    assert engine.state is TradingState.ACTIVE


def test_an_order_under_the_minimum_quantity_is_refused_before_it_is_sent():
    lots = {
        s: Instrument(**{**_fields(r), "min_quantity": D("10")})
        for s, r in (("BTC/USDT", BTC), ("ETH/USDT", ETH))
    }
    engine = _engine(lots)

    out = _run(engine, _crypto_bars(30))

    assert out.orders
    assert {o.reason for o in out.orders} == {checks.BELOW_MIN_QUANTITY}
    assert out.fills == []
    assert {e.code for e in out.risk_events} == {checks.BELOW_MIN_QUANTITY}


def _fields(instrument: Instrument) -> dict[str, object]:
    return {name: getattr(instrument, name) for name in Instrument.__slots__}


def _check(**changes: object) -> OrderCheck:
    values: dict[str, object] = {
        "signed_quantity": D("0.002"),
        "reduces_position": False,
        "price": D("50000"),
        "previous_price": D("50000"),
        "position_quantity": D(0),
        "equity": D("100000"),
        "gross_exposure": D(0),
        "drawdown": D(0),
        "trading_state": TradingState.ACTIVE,
        "orders_last_minute": 0,
        "min_quantity": D("0.001"),
        "min_notional": D("100"),
    }
    return OrderCheck(**(values | changes))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({}, None),  # 0.002 BTC, worth 100: at both minimums
        ({"signed_quantity": D("0.0009")}, checks.BELOW_MIN_QUANTITY),
        (
            {"signed_quantity": D("-0.0009"), "position_quantity": D("0.0009"), "reduces_position": True},
            checks.BELOW_MIN_QUANTITY,
        ),
        ({"price": D("49999.99")}, checks.BELOW_MIN_NOTIONAL),
        ({"trading_state": TradingState.HALTED, "signed_quantity": D("0.0001")}, checks.TRADING_HALTED),
    ],
)
def test_the_minimums_apply_to_every_order_after_the_trading_state(changes, reason):
    assert pre_trade_check(_check(**changes), get_profile("balanced")) == reason


def test_the_paper_broker_fills_on_the_instruments_tick():
    broker = PaperBroker(commission_bps=D("10"), slippage_bps=D("2"), instruments={"BTC/USDT": BTC})
    bar = Bar(
        timestamp=T0 + timedelta(minutes=1),
        symbol="BTC/USDT",
        open=50000.123,
        high=50010.0,
        low=49990.0,
        close=50001.0,
        volume=3.5,
        spread=0.02,
    )

    # (50000.123 + 0.01) x 1.0002 = 50010.1330266, on the 0.01 tick (not 50010.1330 as a share's price)
    assert broker.fill_price(bar, Side.BUY) == D("50010.13")
    # (50000.123 - 0.01) x 0.9998 = 49990.1129774
    assert broker.fill_price(bar, Side.SELL) == D("49990.11")
    assert broker.fee(D("0.0013"), D("50010.13")) == D(
        "0.07"
    )  # 65.013169 x 10 bps = 0.065013..., to the cent


def test_an_engine_without_the_rules_of_one_of_its_symbols_is_not_built():
    with pytest.raises(ValueError, match="no market rules .* for ETH/USDT"):
        _engine({"BTC/USDT": BTC})
