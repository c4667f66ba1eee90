"""Fractional quantities through the batch side: an analytics.duckdb written before them (INTEGER quantities) is
converted in place by the next sync, fractional fills arrive exactly, a trade of 0.0008 + 0.0005 - 0.0013 BTC is
closed (a float sum is not zero), and refusals under a market's minimum are counted by reason."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import psycopg

from analytics.warehouse import QUANTITY, SYNCED_TABLES, Warehouse, table_ddl
from flows.metrics_rollup import rollup_metrics
from flows.sync import sync
from live.assembly import build_engine
from live.domain import Bar, EquitySnapshot, Order, OrderStatus, Side
from live.instruments import Instrument
from live.portfolio import Portfolio
from live.risk.checks import BELOW_MIN_NOTIONAL
from live.settings import Settings
from live.stores import record
from live.stores.postgres import apply_migrations
from tests.factories import CASH, eager_profile, trending_rows

T0 = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
D = Decimal


def _old_warehouse(home: Path, old_fill: tuple[object, ...]) -> None:
    """The analysts' file as the versions before fractional quantities wrote it, with one synced whole-share fill."""
    conn = duckdb.connect(str(home / "analytics.duckdb"))
    try:
        for table in SYNCED_TABLES:
            columns = tuple((name, "INTEGER" if kind == QUANTITY else kind) for name, kind in table.columns)
            conn.execute(table_ddl(dataclasses.replace(table, columns=columns)))
        conn.execute("INSERT INTO fills VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", list(old_fill))
    finally:
        conn.close()


def _rejected_orders_of_a_real_engine() -> list[Order]:
    """Entries the engine refused for a minimum notional no entry can reach (20,000 against a 12% order cap)."""
    eth = Instrument(
        symbol="ETH/USDT",
        quantity_step=D("0.0001"),
        price_tick=D("0.01"),
        min_quantity=D("0.0001"),
        min_notional=D("20000"),
    )
    engine = build_engine(
        Settings(broker="paper", strategy="builtin").engine,
        symbols=("ETH/USDT",),
        profile=eager_profile(),
        initial_cash=CASH,
        instruments={"ETH/USDT": eth},
    )
    orders: list[Order] = []
    for ts, symbol, o, h, low, c, v in trending_rows(("ETH/USDT",), 40, start=3000.0, step=0.5, t0=T0):
        engine.step([Bar(timestamp=ts, symbol=symbol, open=o, high=h, low=low, close=c, volume=v)])
        orders += engine.take_outbox().orders
    return orders


def test_a_sync_converts_an_old_warehouse_and_the_rollups_count_fractional_trades_and_refusals_exactly(
    database_url: str, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    book = Portfolio(initial_cash=CASH)
    trades = [  # (order id, minute, symbol, side, quantity, price, fee)
        ("a-1", 0, "AAPL", Side.BUY, D(12), "187.2500", "0.22"),
        ("a-2", 1, "AAPL", Side.SELL, D(12), "188.1000", "0.23"),
        ("b-1", 2, "BTC/USDT", Side.BUY, D("0.0008"), "50000.12", "0.04"),
        ("b-2", 3, "BTC/USDT", Side.BUY, D("0.0005"), "50321.55", "0.03"),
        ("b-3", 4, "BTC/USDT", Side.SELL, D("0.0013"), "50500.01", "0.07"),
    ]
    orders, fills = [], []
    for order_id, minute, symbol, side, quantity, price, fee in trades:
        at = T0 + minute * MINUTE
        orders.append(
            Order(
                id=order_id,
                timestamp=at,
                symbol=symbol,
                side=side,
                quantity=quantity,
                signal_type="momentum",
                reduces_position=side is Side.SELL,
                status=OrderStatus.FILLED,
            )
        )
        fills.append(
            book.apply_fill(
                fill_id=f"{order_id}-F",
                order_id=order_id,
                timestamp=at,
                symbol=symbol,
                side=side,
                quantity=quantity,
                price=D(price),
                fee=D(fee),
                signal_type="momentum",
            )
        )
    refused = _rejected_orders_of_a_real_engine()
    assert refused
    assert {o.reason for o in refused} == {BELOW_MIN_NOTIONAL}
    with psycopg.connect(database_url, autocommit=True) as conn:
        apply_migrations(conn)
        record.execute_many(conn, record.book.insert_orders([*orders, *refused], latencies_us={}))
        record.execute_many(conn, record.book.insert_fills(fills))
        snapshots = [
            EquitySnapshot(timestamp=T0, total_value=CASH, cash=CASH),
            EquitySnapshot(timestamp=T0 + 5 * MINUTE, total_value=book.total_value(), cash=book.cash),
        ]
        record.copy(conn.cursor(), record.book.copy_equity(snapshots, high_water_mark=CASH))
    first = fills[0]
    _old_warehouse(
        home,
        (
            first.id,
            first.order_id,
            first.timestamp,
            first.symbol,
            "buy",
            12,
            first.price,
            first.fee,
            "momentum",
            0,
        ),
    )

    sync(home, database_url)
    rollup_metrics(home, annualization=252, as_of=T0 + MINUTE * 10)

    with Warehouse(home).reader() as conn:
        kinds = conn.execute(
            "SELECT table_name, data_type FROM duckdb_columns() WHERE column_name = 'quantity'"
            " AND table_name IN ('orders', 'fills', 'positions') ORDER BY table_name"
        ).fetchall()
        synced = conn.execute("SELECT id, quantity FROM fills ORDER BY timestamp, id").fetchall()
        closed = conn.execute("SELECT symbol, pnl, fees FROM closed_trades ORDER BY closed_at").fetchall()
        reasons = conn.execute("SELECT reason, orders FROM rejections_by_reason").fetchall()
    assert kinds == [
        ("fills", "DECIMAL(38,18)"),
        ("orders", "DECIMAL(38,18)"),
        ("positions", "DECIMAL(38,18)"),
    ]
    assert synced == [(f.id, f.quantity) for f in fills]
    # Both round trips are closed trades; each one's P&L is exactly its realized P&L minus its fees.
    assert [symbol for symbol, _, _ in closed] == ["AAPL", "BTC/USDT"]
    for symbol, pnl, fees in closed:
        mine = [f for f in fills if f.symbol == symbol]
        assert fees == sum(f.fee for f in mine)
        assert pnl == sum(f.realized_pnl for f in mine) - sum(f.fee for f in mine)
    assert reasons == [(BELOW_MIN_NOTIONAL, len(refused))]
