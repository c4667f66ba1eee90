"""Fractional quantities in the system of record: a database written with whole-share quantities upgrades in place
(migration 003), and a fill of 0.0013 BTC reads back exactly, through the engine's and the API's statements."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from live.domain import Fill, Order, OrderStatus, Side
from live.portfolio import Portfolio
from live.stores import record
from live.stores.postgres import apply_migrations, migrations

T0 = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
D = Decimal


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(database_url, autocommit=True) as connection:
        yield connection


def _database_before_fractional_quantities(conn: psycopg.Connection[Any]) -> None:
    """The schema as the versions before migration 003 left it (integer quantities)."""
    conn.execute(
        "CREATE TABLE schema_migrations ("
        " version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
    )
    for version, name, sql in migrations():
        if version < 3:
            conn.execute(sql.encode())
            conn.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, name))


def _order(order_id: str, minute: int, side: Side, quantity: Decimal | int, symbol: str = "AAPL") -> Order:
    return Order(
        id=order_id,
        timestamp=T0 + minute * MINUTE,
        symbol=symbol,
        side=side,
        quantity=quantity,  # type: ignore[arg-type]
        signal_type="momentum",
        reduces_position=side is Side.SELL,
    )


def _book_fills(orders: list[Order], prices: list[str], fees: list[str]) -> tuple[Portfolio, list[Fill]]:
    book = Portfolio(initial_cash=D("100000"))
    fills = [
        book.apply_fill(
            fill_id=f"{order.id}-F",
            order_id=order.id,
            timestamp=order.timestamp + MINUTE,
            symbol=order.symbol,
            side=order.side,
            quantity=D(order.quantity),
            price=D(price),
            fee=D(fee),
            signal_type=order.signal_type,
        )
        for order, price, fee in zip(orders, prices, fees, strict=True)
    ]
    return book, fills


def _column_types(conn: psycopg.Connection[Any]) -> dict[str, str]:
    rows = conn.execute(
        "SELECT table_name, data_type FROM information_schema.columns"
        " WHERE column_name = 'quantity' AND table_name IN ('orders', 'fills', 'positions')"
    ).fetchall()
    return dict(rows)


def test_a_database_with_whole_share_quantities_upgrades_in_place_and_keeps_its_book(
    conn: psycopg.Connection[Any],
) -> None:
    _database_before_fractional_quantities(conn)
    assert set(_column_types(conn).values()) == {"integer"}
    orders = [_order("o-1", 0, Side.BUY, 12), _order("o-2", 1, Side.SELL, 5)]
    _, fills = _book_fills(orders, ["187.2500", "188.1000"], ["0.22", "0.09"])
    record.execute_many(conn, record.book.insert_orders(orders, latencies_us={}))
    record.execute_many(conn, record.book.insert_fills(fills))
    record.execute_many(
        conn, record.book.upsert_positions({"AAPL": (7, D("187.25"), D("4.25"))}, updated_at=T0)
    )

    applied = apply_migrations(conn)

    assert applied[0] == "003_fractional_quantities.sql"  # then any later ones
    assert _column_types(conn) == {"orders": "numeric", "fills": "numeric", "positions": "numeric"}
    recorded = record.fetch(conn, record.book.all_fills())
    assert [(f.id, f.quantity) for f in recorded] == [("o-1-F", D(12)), ("o-2-F", D(5))]
    assert all(isinstance(f.quantity, Decimal) for f in recorded)
    assert Portfolio.from_fills(initial_cash=D("100000"), fills=recorded).quantity("AAPL") == 7
    held = record.fetch(conn, record.book.held_positions())
    assert [(p.symbol, p.quantity) for p in held] == [("AAPL", D(7))]
    # The CHECKs survive the change of type.
    with pytest.raises(psycopg.errors.CheckViolation):
        record.execute_many(
            conn, record.book.insert_orders([_order("o-0", 2, Side.BUY, D(0))], latencies_us={})
        )
    assert apply_migrations(conn) == []


async def test_fractional_orders_fills_and_positions_read_back_exactly_on_both_sides(
    conn: psycopg.Connection[Any], database_url: str
) -> None:
    apply_migrations(conn)
    orders = [
        _order("b-1", 0, Side.BUY, D("0.0008"), "BTC/USDT"),
        _order("b-2", 1, Side.BUY, D("0.0005"), "BTC/USDT"),
        _order("b-3", 2, Side.SELL, D("0.0013"), "BTC/USDT"),
    ]
    book, fills = _book_fills(orders, ["50000.12", "50321.55", "50500.01"], ["0.04", "0.03", "0.07"])
    pending = _order("b-4", 3, Side.BUY, D("0.00047"), "BTC/USDT")
    refused = Order(
        **{**_fields(_order("b-5", 3, Side.BUY, D("0.00001"), "BTC/USDT")), "status": OrderStatus.REJECTED},
    )
    record.execute_many(conn, record.book.insert_orders([*orders, pending, refused], latencies_us={}))
    record.execute_many(conn, record.book.update_order_statuses([(o.id, OrderStatus.FILLED) for o in orders]))
    record.execute_many(conn, record.book.insert_fills(fills))
    position = book.positions["BTC/USDT"]
    record.execute_many(
        conn,
        record.book.upsert_positions(
            {"BTC/USDT": (position.quantity, position.avg_price, position.realized_pnl)}, updated_at=T0
        ),
    )

    recorded = record.fetch(conn, record.book.all_fills())
    assert recorded == fills  # every field, quantities and money exactly as booked
    rebuilt = Portfolio.from_fills(initial_cash=D("100000"), fills=recorded)
    assert (rebuilt.cash, rebuilt.realized_pnl, rebuilt.quantity("BTC/USDT")) == (
        book.cash,
        book.realized_pnl,
        0,
    )
    assert record.fetch(conn, record.book.pending_orders()) == [pending]
    assert record.fetch(conn, record.book.held_positions()) == []  # flat again: 0.0008 + 0.0005 - 0.0013
    assert [r.quantity for r in record.fetch(conn, record.book.recent_rejections(limit=5))] == [D("0.00001")]
    async with await psycopg.AsyncConnection.connect(database_url) as aconn:
        rows = await record.fetch_async(aconn, record.book.recent_fills(limit=10))
    assert [(r.id, r.quantity) for r in rows] == [(f.id, f.quantity) for f in reversed(fills)]


def _fields(order: Order) -> dict[str, object]:
    return {name: getattr(order, name) for name in Order.__slots__}
