"""The engine core, without I/O: timing of fills, determinism, profiles, halts and breakers."""

import dataclasses
from decimal import Decimal

from live.domain import Bar, OrderStatus, Side, TradingState
from live.engine import Engine, Outbox
from live.execution.paper import PaperBroker
from live.feeds.sim import SimFeed
from live.profiles import get_profile
from live.risk import breakers, checks
from tests.factories import CASH, eager_profile, trending_rows

SYMBOLS = ("AAA", "BBB", "CCC")


def _engine(profile=None, symbols=SYMBOLS, **kw) -> Engine:
    return Engine(
        symbols=symbols,
        profile=profile or eager_profile(),
        initial_cash=CASH,
        commission_bps=Decimal("1"),
        slippage_bps=Decimal("2"),
        **kw,
    )


def _batches(rows):
    """Cross-sections from (ts, symbol, o, h, l, c, v) rows."""
    out: dict = {}
    for ts, symbol, o, h, low, c, v in rows:
        out.setdefault(ts, []).append(
            Bar(timestamp=ts, symbol=symbol, open=o, high=h, low=low, close=c, volume=v, spread=0.02)
        )
    return [out[t] for t in sorted(out)]


def _run(engine: Engine, batches, **kw) -> Outbox:
    total = Outbox()
    for batch in batches:
        engine.step(batch, **kw)
        out = engine.take_outbox()
        for name in ("orders", "fills", "risk_events", "control_actions", "order_updates", "regime_changes"):
            getattr(total, name).extend(getattr(out, name))
    return total


def _crash(rows, from_minute: int, factor: float):
    """The same bars with every price from `from_minute` on multiplied by `factor`."""
    t_cut = sorted({r[0] for r in rows})[from_minute]
    return [
        (ts, s, o * factor, h * factor, low * factor, c * factor, v)
        if ts >= t_cut
        else (ts, s, o, h, low, c, v)
        for ts, s, o, h, low, c, v in rows
    ]


def test_a_market_order_fills_at_the_next_bars_open_never_at_a_price_known_when_it_was_decided():
    feed = SimFeed(sim_days=1, seed=3)
    engine = _engine(get_profile("aggressive"), symbols=feed.symbols)
    bars_by_key = {}
    orders = {}
    fills = []
    for batch in feed.batches():
        for b in batch:
            bars_by_key[(b.timestamp, b.symbol)] = b
        engine.step(batch)
        out = engine.take_outbox()
        orders.update({o.id: o for o in out.orders})
        fills += out.fills
    assert len(fills) > 20
    broker = PaperBroker(commission_bps=Decimal("1"), slippage_bps=Decimal("2"))
    for fill in fills:
        order = orders[fill.order_id]
        assert fill.timestamp == order.timestamp + engine.bar_interval
        fill_bar = bars_by_key[(fill.timestamp, fill.symbol)]
        assert fill.price == broker.fill_price(fill_bar, fill.side)
        decided_on = bars_by_key[(order.timestamp, order.symbol)]
        half = Decimal(repr(fill_bar.spread)) / 2
        reference = Decimal(repr(fill_bar.open)) + (half if fill.side is Side.BUY else -half)
        assert abs(fill.price / reference - 1) <= Decimal(
            "0.00021"
        )  # the open, plus 2 bps slippage, nothing else
        assert fill.price != Decimal(repr(decided_on.close)) or fill_bar.open == decided_on.close


def test_the_same_seed_gives_the_same_fills_and_another_seed_different_ones():
    def fills(seed: int):
        feed = SimFeed(sim_days=1, seed=seed)
        engine = _engine(get_profile("aggressive"), symbols=feed.symbols)
        return [(f.id, f.price, f.quantity, f.realized_pnl) for f in _run(engine, feed.batches()).fills]

    first = fills(11)
    assert first
    assert fills(11) == first
    assert fills(12) != first


def test_a_position_is_never_reversed_in_one_order():
    feed = SimFeed(sim_days=2, seed=5)
    engine = _engine(get_profile("aggressive"), symbols=feed.symbols)
    position: dict[str, int] = {}
    for fill in _run(engine, feed.batches()).fills:
        before = position.get(fill.symbol, 0)
        after = before + (fill.quantity if fill.side is Side.BUY else -fill.quantity)
        assert before == 0 or after == 0 or (before > 0) == (after > 0), fill
        position[fill.symbol] = after


def test_a_profile_switch_changes_the_next_decision():
    rows = trending_rows(SYMBOLS, 200)
    batches = _batches(rows)
    cautious, bold = _engine(eager_profile("conservative")), _engine(eager_profile("conservative"))
    first_entry = None
    for i, batch in enumerate(batches):
        if i == 5:
            bold.set_profile(eager_profile("aggressive"))
        cautious.step(batch)
        bold.step(batch)
        a, b = cautious.take_outbox().orders, bold.take_outbox().orders
        if a or b:
            first_entry = (a, b)
            break
    assert first_entry is not None
    a, b = first_entry
    assert [o.symbol for o in a] == [o.symbol for o in b]
    for small, large in zip(a, b, strict=True):
        assert large.quantity >= 3 * small.quantity  # 20% of equity against 5%


def test_a_halted_engine_submits_nothing_but_orders_already_submitted_still_fill():
    batches = _batches(trending_rows(SYMBOLS, 300))
    engine = _engine()
    submitted_at = None
    for i, batch in enumerate(batches):
        engine.step(batch)
        if engine.outbox.orders:
            submitted_at = i
            break
    assert submitted_at is not None
    pending = [o.id for o in engine.take_outbox().orders]
    engine.set_state(TradingState.HALTED, actor="test", reason="halt test")
    after = _run(engine, batches[submitted_at + 1 :])
    assert after.orders == []
    assert sorted(f.order_id for f in after.fills) == sorted(pending)


def test_the_kill_switch_seen_at_submission_rejects_the_order_and_halts():
    engine = _engine()
    out = _run(engine, _batches(trending_rows(SYMBOLS, 120)), gate=lambda: checks.TRADING_HALTED)
    assert out.orders
    assert all(o.status is OrderStatus.REJECTED for o in out.orders)
    assert {o.reason for o in out.orders} == {checks.TRADING_HALTED}
    assert engine.state is TradingState.HALTED
    assert [a.actor for a in out.control_actions] == ["kill_switch"]


def test_drawdown_at_twice_the_limit_halts_trading():
    profile = eager_profile(
        max_position_fraction=Decimal("0.45"),
        max_order_notional_fraction=Decimal("0.5"),
        max_gross_exposure=Decimal("1.0"),
        drawdown_limit=Decimal("0.02"),
        daily_loss_limit=Decimal("0.9"),
    )
    engine = _engine(profile)
    # Both symbols held at ~45% of equity each, then a 6% fall: ~5.4% below the high-water mark (> 2 x 2%).
    out = _run(engine, _batches(_crash(trending_rows(("AAA", "BBB"), 160), 100, 0.94)))
    halts = [e for e in out.risk_events if e.halts_trading]
    assert [e.code for e in halts] == [breakers.DRAWDOWN_HALT]
    assert engine.state is TradingState.HALTED
    assert not [o for o in out.orders if o.timestamp > halts[0].timestamp]


def test_a_drawdown_between_one_and_two_limits_refuses_entries_but_keeps_trading():
    profile = eager_profile(
        max_position_fraction=Decimal("0.45"),
        max_order_notional_fraction=Decimal("0.5"),
        max_gross_exposure=Decimal("1.0"),
        drawdown_limit=Decimal("0.01"),
        daily_loss_limit=Decimal("0.9"),
    )
    early = trending_rows(("AAA", "BBB"), 80, step=0.0)
    engine = _engine(profile)
    _run(engine, _batches(early))
    assert engine.portfolio.quantity("AAA") != 0
    assert engine.portfolio.quantity("BBB") != 0
    t_end = early[-1][0]
    # Both held positions lose ~1.5% of equity; a new symbol then asks to enter.
    later = [
        (ts + (t_end - early[0][0]) + engine.bar_interval, s, o * 0.985, h * 0.985, lo * 0.985, c * 0.985, v)
        for ts, s, o, h, lo, c, v in trending_rows(("AAA", "BBB"), 80, step=0.0)
    ]
    newcomer = [
        (ts + (t_end - early[0][0]) + engine.bar_interval, "CCC", o, h, lo, c, v)
        for ts, _s, o, h, lo, c, v in trending_rows(("CCC",), 80, step=0.0)
    ]
    out = _run(engine, _batches(sorted(later + newcomer, key=lambda r: (r[0], r[1]))))
    assert Decimal("0.01") <= engine.portfolio.drawdown() < Decimal("0.02")
    rejected = [o for o in out.orders if o.status is OrderStatus.REJECTED]
    assert rejected
    assert {o.reason for o in rejected} == {checks.DRAWDOWN_LIMIT_EXCEEDED}
    assert {o.symbol for o in rejected} == {"CCC"}
    assert engine.state is TradingState.ACTIVE


def test_a_daily_loss_beyond_the_limit_trips_the_breaker_and_halts():
    profile = eager_profile(
        max_position_fraction=Decimal("0.3"),
        max_order_notional_fraction=Decimal("0.5"),
        daily_loss_limit=Decimal("0.01"),
        drawdown_limit=Decimal("0.5"),
    )
    rows = trending_rows(SYMBOLS, 160)
    engine = _engine(profile)
    out = _run(engine, _batches(_crash(rows, 100, 0.95)))
    halts = [e for e in out.risk_events if e.halts_trading]
    assert [e.code for e in halts] == [breakers.DAILY_LOSS_LIMIT]
    assert engine.state is TradingState.HALTED
    assert not [o for o in out.orders if o.timestamp > halts[0].timestamp]


def test_a_breakers_halt_is_recorded_on_the_wall_clock_like_every_operator_action():
    from datetime import UTC, datetime

    wall = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    profile = eager_profile(max_order_notional_fraction=Decimal("0.00001"), reject_storm_count=3)
    engine = _engine(profile, wall_clock=lambda: wall)
    out = _run(engine, _batches(trending_rows(SYMBOLS, 120)))
    assert [(a.action, a.timestamp) for a in out.control_actions] == [("halt", wall)]
    assert engine.state_since == wall
    storm = next(e for e in out.risk_events if e.halts_trading)
    assert storm.timestamp < wall  # the risk event keeps the bar's time


def test_a_storm_of_rejections_halts_trading():
    profile = eager_profile(max_order_notional_fraction=Decimal("0.00001"), reject_storm_count=3)
    engine = _engine(profile)
    out = _run(engine, _batches(trending_rows(SYMBOLS, 120)))
    assert {o.reason for o in out.orders} == {checks.MAX_ORDER_NOTIONAL}
    assert [e.code for e in out.risk_events if e.halts_trading] == [breakers.REJECT_STORM]
    assert engine.state is TradingState.HALTED
    halted_at = next(e.timestamp for e in out.risk_events if e.halts_trading)
    assert all(o.timestamp <= halted_at for o in out.orders)


def test_flatten_closes_every_position_even_while_halted():
    batches = _batches(trending_rows(SYMBOLS, 200))
    engine = _engine()
    _run(engine, batches[:120])
    assert any(p.quantity for p in engine.portfolio.positions.values())
    engine.set_state(TradingState.HALTED, actor="test")
    closing = engine.flatten()
    assert closing
    assert all(o.reduces_position for o in closing)
    _run(engine, batches[120:122])
    assert all(p.quantity == 0 for p in engine.portfolio.positions.values())


def test_profiles_are_data_with_increasing_appetite():
    c, b, a = (get_profile(n) for n in ("conservative", "balanced", "aggressive"))
    assert c.max_position_fraction < b.max_position_fraction < a.max_position_fraction
    assert c.signal_threshold > b.signal_threshold > a.signal_threshold
    assert dataclasses.is_dataclass(c)
