"""The record module over a real PostgreSQL: each row mapping reads back what was written, and the engine's
(sync) and the API's (async) way of running a statement give the same answer."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from live.domain import (
    Bar,
    ControlAction,
    EquitySnapshot,
    Fill,
    Order,
    OrderStatus,
    RegimeChange,
    RiskEvent,
    Side,
    TradingState,
)
from live.stores import record
from live.stores.postgres import apply_migrations

T0 = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(database_url, autocommit=True) as connection:
        apply_migrations(connection)
        yield connection


@pytest.fixture
async def aconn(
    database_url: str, conn: psycopg.Connection[Any]
) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as connection:
        yield connection


def _order(n: int, *, symbol: str = "AAPL", side: Side = Side.BUY) -> Order:
    return Order(
        id=f"o-{n}",
        timestamp=T0 + n * MINUTE,
        symbol=symbol,
        side=side,
        quantity=10 + n,
        signal_type="momentum",
        reduces_position=side is Side.SELL,
        reason="",
    )


def _fill(order: Order, *, price: str = "101.2534", realized_pnl: str = "0") -> Fill:
    return Fill(
        id=f"f-{order.id}",
        order_id=order.id,
        timestamp=order.timestamp + MINUTE,
        symbol=order.symbol,
        side=order.side,
        quantity=order.quantity,
        price=Decimal(price),
        fee=Decimal("0.10"),
        signal_type=order.signal_type,
        realized_pnl=Decimal(realized_pnl),
    )


def _record_fills(conn: psycopg.Connection[Any], orders: list[Order], fills: list[Fill]) -> None:
    record.execute_many(conn, record.book.insert_orders(orders, latencies_us={}))
    record.execute_many(conn, record.book.insert_fills(fills))


def _columns(conn: psycopg.Connection[Any], table: str) -> tuple[str, ...]:
    rows = conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = %s ORDER BY ordinal_position",
        (table,),
    ).fetchall()
    return tuple(name for (name,) in rows)


@pytest.mark.parametrize("table", sorted(record.COLUMNS))
def test_the_record_names_each_table_s_columns_as_the_migrations_define_them(
    conn: psycopg.Connection[Any], table: str
) -> None:
    assert _columns(conn, table) == record.COLUMNS[table]


async def test_fills_read_back_as_written_on_both_sides(
    conn: psycopg.Connection[Any], aconn: psycopg.AsyncConnection[Any]
) -> None:
    orders = [_order(1), _order(2, side=Side.SELL)]
    fills = [_fill(orders[0]), _fill(orders[1], price="99.5", realized_pnl="-18.4468")]
    _record_fills(conn, orders, fills)

    assert record.fetch(conn, record.book.all_fills()) == fills
    assert await record.fetch_async(aconn, record.book.all_fills()) == fills


async def test_recent_fills_are_newest_first_and_filtered_on_what_is_given(
    conn: psycopg.Connection[Any], aconn: psycopg.AsyncConnection[Any]
) -> None:
    orders = [_order(1), _order(2, symbol="MSFT"), _order(3)]
    fills = [_fill(o) for o in orders]
    _record_fills(conn, orders, fills)
    rows = [record.book.FillRow(*record.book.fill_params(f)) for f in fills]

    assert record.fetch(conn, record.book.recent_fills(limit=10)) == rows[::-1]
    assert record.fetch(conn, record.book.recent_fills(limit=1)) == [rows[2]]
    by_symbol = record.book.recent_fills(limit=10, symbol="AAPL")
    assert await record.fetch_async(aconn, by_symbol) == [rows[2], rows[0]]
    since = record.book.recent_fills(limit=10, since=fills[1].timestamp)
    assert await record.fetch_async(aconn, since) == [rows[2], rows[1]]
    both = record.book.recent_fills(limit=10, symbol="AAPL", since=fills[1].timestamp)
    assert [record.book.fill_from_row(r) for r in record.fetch(conn, both)] == [fills[2]]


def test_a_fill_written_twice_is_recorded_once(conn: psycopg.Connection[Any]) -> None:
    order = _order(1)
    _record_fills(conn, [order], [_fill(order)])
    record.execute_many(conn, record.book.insert_fills([_fill(order, price="1")]))

    assert record.fetch(conn, record.book.all_fills()) == [_fill(order)]


def test_an_order_is_pending_until_its_status_changes(conn: psycopg.Connection[Any]) -> None:
    orders = [_order(1), _order(2, side=Side.SELL)]
    record.execute_many(conn, record.book.insert_orders(orders, latencies_us={"o-1": 412.5}))

    assert record.fetch(conn, record.book.pending_orders()) == orders
    record.execute_many(conn, record.book.update_order_statuses([("o-1", OrderStatus.FILLED)]))
    assert record.fetch(conn, record.book.pending_orders()) == [orders[1]]
    assert conn.execute("SELECT tick_to_order_us FROM orders WHERE id = 'o-1'").fetchone() == (412.5,)


async def test_bars_copied_in_binary_read_back_as_given(
    conn: psycopg.Connection[Any], aconn: psycopg.AsyncConnection[Any]
) -> None:
    bars = [
        Bar(
            timestamp=T0 + i * MINUTE,
            symbol=s,
            open=p,
            high=p + 1,
            low=p - 1,
            close=p + 0.25,
            volume=1e3,
            spread=0.01,
        )
        for i in range(3)
        for s, p in (("AAPL", 180.5 + i), ("MSFT", 410.0 - i))
    ]
    with conn.cursor() as cursor:
        record.copy(cursor, record.market.copy_bars(bars))

    columns = ", ".join(record.market.BAR_COLUMNS)
    rows = conn.execute(f"SELECT {columns} FROM bars ORDER BY timestamp, symbol").fetchall()
    assert [Bar(**dict(zip(record.market.BAR_COLUMNS, row, strict=True))) for row in rows] == bars
    assert await record.fetch_async(aconn, record.market.last_closes()) == {"AAPL": 182.75, "MSFT": 408.25}


async def test_signals_copied_in_binary_read_back_with_the_ids_the_record_gave_them(
    conn: psycopg.Connection[Any], aconn: psycopg.AsyncConnection[Any]
) -> None:
    rows = [
        (T0, "AAPL", "momentum", 0.25, 20, "trending", False),
        (T0, "AAPL", "breakout", -0.75, 10, "trending", True),
        (T0 + MINUTE, "MSFT", "momentum", 1.0, 20, "crisis", True),
    ]
    record.copy(conn, record.market.copy_signals(rows))

    newest_first = [
        record.market.RecordedSignal(
            id=n,
            timestamp=ts,
            symbol=symbol,
            signal_type=signal_type,
            strength=strength,
            horizon_bars=horizon,
            regime=regime,
            actionable=actionable,
        )
        for n, (ts, symbol, signal_type, strength, horizon, regime, actionable) in reversed(
            list(enumerate(rows, 1))
        )
    ]
    assert record.fetch(conn, record.market.recent_signals(limit=10)) == newest_first
    actionable = record.market.recent_signals(limit=10, actionable=True, symbol="AAPL")
    assert await record.fetch_async(aconn, actionable) == [newest_first[1]]
    ids = record.market.actionable_signal_ids(since=T0, until=T0 + MINUTE)
    assert record.fetch(conn, ids) == {(T0, "AAPL", "breakout"): 2, (T0 + MINUTE, "MSFT", "momentum"): 3}


async def test_equity_reads_back_with_the_high_water_mark_of_its_batch(
    conn: psycopg.Connection[Any], aconn: psycopg.AsyncConnection[Any]
) -> None:
    snapshots = [
        EquitySnapshot(timestamp=T0, total_value=Decimal("100000"), cash=Decimal("100000")),
        EquitySnapshot(timestamp=T0 + MINUTE, total_value=Decimal("100012.34"), cash=Decimal("98000.5")),
    ]
    record.copy(conn, record.book.copy_equity(snapshots, high_water_mark=Decimal("100012.34")))

    assert await record.fetch_async(aconn, record.book.latest_equity()) == record.book.RecordedEquity(
        timestamp=T0 + MINUTE,
        total_value=Decimal("100012.34"),
        cash=Decimal("98000.5"),
        high_water_mark=Decimal("100012.34"),
    )
    assert record.fetch(conn, record.book.equity_before(before=T0 + MINUTE)) == Decimal("100000")
    assert record.fetch(conn, record.book.equity_before(before=T0)) is None


async def test_an_empty_record_reads_as_nothing_yet(
    conn: psycopg.Connection[Any], aconn: psycopg.AsyncConnection[Any]
) -> None:
    assert await record.fetch_async(aconn, record.book.latest_equity()) is None
    assert await record.fetch_async(aconn, record.book.all_fills()) == []
    assert await record.fetch_async(aconn, record.market.last_closes()) == {}
    assert await record.fetch_async(aconn, record.lease.recorded_initial_cash()) is None
    assert await record.fetch_async(aconn, record.decisions.recorded_trading_state()) is None
    assert await record.fetch_async(aconn, record.decisions.recorded_profile()) is None
    assert record.fetch(conn, record.lease.lease_holder()) is None


def test_positions_are_replaced_by_their_latest_values(conn: psycopg.Connection[Any]) -> None:
    record.execute_many(
        conn, record.book.upsert_positions({"AAPL": (10, Decimal("180.5"), Decimal("0"))}, updated_at=T0)
    )
    later = {"AAPL": (0, Decimal("0"), Decimal("12.5")), "MSFT": (-5, Decimal("410"), Decimal("0"))}
    record.execute_many(conn, record.book.upsert_positions(later, updated_at=T0 + MINUTE))

    columns = ", ".join(record.book.POSITION_COLUMNS)
    assert conn.execute(f"SELECT {columns} FROM positions ORDER BY symbol").fetchall() == [
        ("AAPL", 0, Decimal("0"), Decimal("12.5"), T0 + MINUTE),
        ("MSFT", -5, Decimal("410"), Decimal("0"), T0 + MINUTE),
    ]


def test_risk_events_and_regime_changes_are_recorded_as_given(conn: psycopg.Connection[Any]) -> None:
    events = [
        RiskEvent(timestamp=T0, code="PRICE_BAND", detail="last close 180.5", symbol="AAPL"),
        RiskEvent(timestamp=T0 + MINUTE, code="DAILY_LOSS_LIMIT", detail="-2.1%", halts_trading=True),
    ]
    changes = [RegimeChange(timestamp=T0, previous=None, current="trending", model="rules")]
    record.execute_many(conn, record.events.insert_risk_events(events))
    record.execute_many(conn, record.events.insert_regime_changes(changes))

    stored = conn.execute(
        "SELECT timestamp, code, detail, symbol, halts_trading FROM risk_events ORDER BY id"
    ).fetchall()
    assert [
        RiskEvent(timestamp=t, code=c, detail=d, symbol=s, halts_trading=h) for t, c, d, s, h in stored
    ] == events
    stored = conn.execute("SELECT timestamp, previous, current, model FROM regime_changes").fetchall()
    assert [RegimeChange(timestamp=t, previous=p, current=c, model=m) for t, p, c, m in stored] == changes


async def test_the_last_halt_resume_or_reduce_is_the_recorded_trading_state(
    conn: psycopg.Connection[Any], aconn: psycopg.AsyncConnection[Any]
) -> None:
    halt = ControlAction(timestamp=T0, action="halt", actor="api", reason="news pending")
    await record.execute_async(aconn, record.decisions.insert_control_action(halt))
    later = [
        ControlAction(timestamp=T0 + MINUTE, action="profile", actor="cli", value="conservative"),
        ControlAction(timestamp=T0 + 2 * MINUTE, action="flatten", actor="api", reason="close all"),
    ]
    record.execute_many(conn, record.decisions.insert_control_actions(later))

    halted = record.decisions.RecordedTradingState(
        state=TradingState.HALTED, actor="api", reason="news pending", since=T0
    )
    assert record.fetch(conn, record.decisions.recorded_trading_state()) == halted
    assert await record.fetch_async(aconn, record.decisions.recorded_trading_state()) == halted
    # A switch recorded before profiles had versions names a built-in bare; it still reads.
    assert await record.fetch_async(aconn, record.decisions.recorded_profile()) == (
        record.decisions.RecordedProfile(name="conservative")
    )
    reduce = ControlAction(timestamp=T0 + 3 * MINUTE, action="reduce", actor="risk", reason="drawdown")
    record.execute(conn, record.decisions.insert_control_action(reduce))
    recorded = record.fetch(conn, record.decisions.recorded_trading_state())
    assert recorded is not None
    assert (recorded.state, recorded.since) == (TradingState.REDUCE_ONLY, T0 + 3 * MINUTE)


async def test_a_record_written_without_waiting_for_the_flush_is_committed_as_given_and_leaves_the_session_durable(
    conn: psycopg.Connection[Any], aconn: psycopg.AsyncConnection[Any]
) -> None:
    """The halt's record (api/control.py): one round trip that must neither mangle the operator's words (its
    parameters are bound on the client) nor leave the pooled connection committing without the flush."""
    reason = "it's \\'news\\'; DROP TABLE control_actions; -- %s {x} 100%"
    halt = ControlAction(timestamp=T0, action="halt", actor="o'brien", reason=reason)
    await record.execute_unflushed_async(aconn, record.decisions.insert_control_action(halt))

    # Seen from another session, so committed; the words as given.
    assert conn.execute("SELECT timestamp, action, actor, reason FROM control_actions").fetchall() == [
        (T0, "halt", "o'brien", reason)
    ]
    # The next statement on the same connection waits for the flush again.
    assert (await (await aconn.execute("SHOW synchronous_commit")).fetchone()) == ("on",)

    # A statement that fails records nothing and leaves the connection usable, and durable.
    bad = record.Statement(
        sql="INSERT INTO control_actions (timestamp, action) VALUES (%s, %s)", params=(T0, None)
    )
    with pytest.raises(psycopg.errors.NotNullViolation):
        await record.execute_unflushed_async(aconn, bad)
    assert conn.execute("SELECT count(*) FROM control_actions").fetchone() == (1,)
    assert (await (await aconn.execute("SHOW synchronous_commit")).fetchone()) == ("on",)


async def test_profile_switches_take_one_lock_across_connections(
    conn: psycopg.Connection[Any], aconn: psycopg.AsyncConnection[Any]
) -> None:
    await record.execute_async(aconn, record.decisions.take_profile_lock())
    probe = "SELECT pg_try_advisory_lock(%s)"
    assert conn.execute(probe, (record.decisions.PROFILE_LOCK,)).fetchone() == (False,)
    await record.execute_async(aconn, record.decisions.release_profile_lock())
    assert conn.execute(probe, (record.decisions.PROFILE_LOCK,)).fetchone() == (True,)


def test_the_lease_goes_to_one_holder_at_a_time_with_a_new_token_each(conn: psycopg.Connection[Any]) -> None:
    lease = record.lease
    assert record.fetch(conn, lease.take_lease(holder="a", ttl_seconds=30)) == 1
    assert record.fetch(conn, lease.take_lease(holder="b", ttl_seconds=30)) is None
    holder = record.fetch(conn, lease.lease_holder())
    assert holder is not None
    assert holder[0] == "a"
    assert record.fetch(conn, lease.renew_lease(holder="a", token=1, ttl_seconds=30)) is True
    assert record.fetch(conn, lease.renew_lease(holder="b", token=1, ttl_seconds=30)) is False

    record.execute(conn, lease.release_lease(holder="a", token=1))
    assert record.fetch(conn, lease.take_lease(holder="b", ttl_seconds=30)) == 2
    assert record.fetch(conn, lease.renew_lease(holder="a", token=1, ttl_seconds=30)) is False
    with conn.transaction():
        assert record.fetch(conn, lease.lease_token_for_batch()) == 2


async def test_engine_state_is_created_once_and_moves_with_each_batch(
    conn: psycopg.Connection[Any], aconn: psycopg.AsyncConnection[Any]
) -> None:
    lease = record.lease
    record.execute(conn, lease.create_engine_state(initial_cash=Decimal("100000"), profile="balanced"))
    record.execute(conn, lease.create_engine_state(initial_cash=Decimal("5"), profile="aggressive"))
    assert record.fetch(conn, lease.engine_anchors()) == lease.EngineAnchors(
        last_bar_ts=None,
        initial_cash=Decimal("100000"),
        high_water_mark=Decimal("100000"),
        profile="balanced",
    )

    advance = lease.advance_engine_state(
        last_bar_ts=T0, high_water_mark=Decimal("100250.5"), profile="conservative", trading_state="halted"
    )
    record.execute(conn, advance)
    keep_bar = lease.advance_engine_state(
        last_bar_ts=None, high_water_mark=Decimal("100300"), profile="conservative", trading_state="active"
    )
    record.execute(conn, keep_bar)
    assert record.fetch(conn, lease.engine_anchors()) == lease.EngineAnchors(
        last_bar_ts=T0,
        initial_cash=Decimal("100000"),
        high_water_mark=Decimal("100300"),
        profile="conservative",
    )
    assert await record.fetch_async(aconn, lease.recorded_initial_cash()) == Decimal("100000")
    with conn.transaction():
        assert record.fetch(conn, lease.last_committed_bar_for_batch()) == T0


async def test_access_log_records_are_copied_as_given(
    conn: psycopg.Connection[Any], aconn: psycopg.AsyncConnection[Any]
) -> None:
    rows = [(T0, "GET", "/portfolio", 200, 1.25), (T0 + MINUTE, "POST", "/trading/halt", 503, 2004.5)]
    await record.copy_async(aconn, record.events.copy_api_requests(rows))

    columns = ", ".join(record.events.API_REQUEST_COLUMNS[1:])
    assert conn.execute(f"SELECT {columns} FROM api_requests ORDER BY id").fetchall() == rows


async def test_the_equity_curve_is_the_first_row_and_the_last_at_or_before_each_interval_s_end(
    conn: psycopg.Connection[Any], aconn: psycopg.AsyncConnection[Any]
) -> None:
    snapshots = [
        EquitySnapshot(timestamp=T0 + n * MINUTE, total_value=Decimal(100000 + n), cash=Decimal("100000"))
        for n in range(1000)
        if n % 7 != 3  # gaps: an interval's end often falls between rows
    ]
    record.copy(conn, record.book.copy_equity(snapshots, high_water_mark=Decimal("100999")))
    span = snapshots[-1].timestamp - snapshots[0].timestamp
    ends = [snapshots[0].timestamp + span * k / 10 for k in range(11)]
    expected = [max((s for s in snapshots if s.timestamp <= end), key=lambda s: s.timestamp) for end in ends]

    curve = await record.fetch_async(aconn, record.book.equity_curve(points=10))

    assert curve == [
        record.book.EquityPoint(s.timestamp, s.total_value, Decimal("100999"))
        for s in dict.fromkeys(expected)
    ]
    assert curve[0].timestamp == snapshots[0].timestamp
    assert curve[-1].timestamp == snapshots[-1].timestamp
    assert await record.fetch_async(aconn, record.book.equity_curve(points=2000)) == [
        record.book.EquityPoint(s.timestamp, s.total_value, Decimal("100999")) for s in snapshots
    ]


async def test_an_empty_record_draws_no_equity_curve_and_no_entries(
    aconn: psycopg.AsyncConnection[Any],
) -> None:
    assert await record.fetch_async(aconn, record.book.equity_curve(points=10)) == []
    assert await record.fetch_async(aconn, record.book.open_position_entries()) == {}
    assert await record.fetch_async(aconn, record.events.breaker_trips()) == []


def test_an_open_position_s_entry_is_its_last_filled_increasing_order_with_its_signal_s_horizon(
    conn: psycopg.Connection[Any],
) -> None:
    def order(n: int, symbol: str, *, reduces: bool, status: OrderStatus, signal_type: str) -> Order:
        side = Side.SELL if reduces else Side.BUY
        return Order(
            id=f"o-{n}",
            timestamp=T0 + n * MINUTE,
            symbol=symbol,
            side=side,
            quantity=10,
            signal_type=signal_type,
            reduces_position=reduces,
            status=status,
        )

    orders = [
        order(1, "AAPL", reduces=False, status=OrderStatus.FILLED, signal_type="momentum"),
        order(2, "AAPL", reduces=False, status=OrderStatus.FILLED, signal_type="breakout"),
        order(3, "AAPL", reduces=False, status=OrderStatus.REJECTED, signal_type="vol_trend"),
        order(4, "AAPL", reduces=True, status=OrderStatus.FILLED, signal_type="momentum"),
        order(5, "MSFT", reduces=False, status=OrderStatus.FILLED, signal_type="mean_reversion"),
        order(6, "NVDA", reduces=False, status=OrderStatus.FILLED, signal_type="momentum"),
    ]
    record.execute_many(conn, record.book.insert_orders(orders, latencies_us={}))
    record.copy(
        conn, record.market.copy_signals([(T0 + 2 * MINUTE, "AAPL", "breakout", 0.9, 12, "trending", True)])
    )
    positions = {
        "AAPL": (10, Decimal("180"), Decimal("0")),
        "MSFT": (-10, Decimal("400"), Decimal("0")),
        "NVDA": (0, Decimal("0"), Decimal("5")),  # flat: no entry
    }
    record.execute_many(conn, record.book.upsert_positions(positions, updated_at=T0))

    assert record.fetch(conn, record.book.open_position_entries()) == {
        "AAPL": record.book.PositionEntry("AAPL", T0 + 2 * MINUTE, "breakout", 12),
        "MSFT": record.book.PositionEntry("MSFT", T0 + 5 * MINUTE, "mean_reversion", None),
    }


async def test_the_operator_logs_read_newest_first(
    conn: psycopg.Connection[Any], aconn: psycopg.AsyncConnection[Any]
) -> None:
    rejected = [
        Order(
            id=f"r-{n}",
            timestamp=T0 + n * MINUTE,
            symbol="AAPL",
            side=Side.BUY,
            quantity=5,
            signal_type="momentum",
            reduces_position=False,
            status=OrderStatus.REJECTED,
            reason=f"POSITION_LIMIT {n}",
        )
        for n in range(3)
    ]
    filled = Order(
        id="f-9",
        timestamp=T0 + 9 * MINUTE,
        symbol="AAPL",
        side=Side.BUY,
        quantity=5,
        signal_type="momentum",
        reduces_position=False,
        status=OrderStatus.FILLED,
    )
    record.execute_many(conn, record.book.insert_orders([*rejected, filled], latencies_us={}))
    events = [
        RiskEvent(timestamp=T0, code="DAILY_LOSS_LIMIT", detail="-3.1%", halts_trading=True),
        RiskEvent(timestamp=T0 + MINUTE, code="PRICE_BAND", detail="jump", symbol="AAPL"),
        RiskEvent(timestamp=T0 + 2 * MINUTE, code="DAILY_LOSS_LIMIT", detail="-3.4%", halts_trading=True),
        RiskEvent(timestamp=T0 + 3 * MINUTE, code="STALE_FEED", detail="no bar", halts_trading=True),
    ]
    record.execute_many(conn, record.events.insert_risk_events(events))
    record.execute_many(
        conn,
        record.events.insert_regime_changes(
            [
                RegimeChange(timestamp=T0, previous=None, current="trending", model="rules"),
                RegimeChange(timestamp=T0 + MINUTE, previous="trending", current="crisis", model="rules"),
            ]
        ),
    )
    actions = [
        ControlAction(timestamp=T0, action="halt", actor="dashboard:alice", reason="news"),
        ControlAction(timestamp=T0 + MINUTE, action="profile", actor="cli:bob", value="conservative"),
    ]
    record.execute_many(conn, record.decisions.insert_control_actions(actions))

    rejections = await record.fetch_async(aconn, record.book.recent_rejections(limit=2))
    assert [(r.id, r.reason) for r in rejections] == [
        ("r-2", "POSITION_LIMIT 2"),
        ("r-1", "POSITION_LIMIT 1"),
    ]
    risk = await record.fetch_async(aconn, record.events.recent_risk_events(limit=10))
    assert [(e.code, e.timestamp, e.symbol, e.halts_trading) for e in risk] == [
        (e.code, e.timestamp, e.symbol, e.halts_trading) for e in reversed(events)
    ]
    assert await record.fetch_async(aconn, record.events.breaker_trips()) == [
        record.events.BreakerTrips("STALE_FEED", 1, T0 + 3 * MINUTE),
        record.events.BreakerTrips("DAILY_LOSS_LIMIT", 2, T0 + 2 * MINUTE),
    ]
    regimes = await record.fetch_async(aconn, record.events.recent_regime_changes(limit=10))
    assert [(r.previous, r.current) for r in regimes] == [("trending", "crisis"), (None, "trending")]
    logged = await record.fetch_async(aconn, record.decisions.recent_control_actions(limit=10))
    assert [(a.action, a.actor, a.reason, a.value) for a in logged] == [
        ("profile", "cli:bob", "", "conservative"),
        ("halt", "dashboard:alice", "news", ""),
    ]
