"""The book's tables: `orders`, `fills` (what the book is rebuilt from), `positions` and `equity`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import partial
from typing import NamedTuple

from live.domain import EquitySnapshot, Fill, Order, OrderStatus, Side
from live.stores.record.statements import (
    Batch,
    BucketTally,
    Copy,
    LatencyBuckets,
    Query,
    Row,
    column_list,
    insert_sql,
    le_bucket_sql,
    optional_decimal,
    rows_of,
)

ORDER_COLUMNS = (
    "id",
    "timestamp",
    "symbol",
    "side",
    "quantity",
    "signal_type",
    "reduces_position",
    "status",
    "reason",
    "tick_to_order_us",
    "updated_at",
)


class FillRow(NamedTuple):
    """A fill as its row reads, for serialising many at once: one costs a microsecond to build where a frozen
    `Fill` costs eight, and `GET /trades` serialises up to a thousand per query."""

    id: str
    order_id: str
    timestamp: datetime
    symbol: str
    side: str
    quantity: Decimal
    price: Decimal
    fee: Decimal
    signal_type: str
    realized_pnl: Decimal


FILL_COLUMNS: tuple[str, ...] = FillRow._fields

POSITION_COLUMNS = ("symbol", "quantity", "avg_price", "realized_pnl", "updated_at")

EQUITY_COLUMNS = ("timestamp", "total_value", "cash", "high_water_mark")

_ORDER_WRITTEN = ORDER_COLUMNS[:-1]

_PENDING_ORDER_COLUMNS = (
    "id",
    "timestamp",
    "symbol",
    "side",
    "quantity",
    "signal_type",
    "reduces_position",
    "reason",
)


def fill_params(fill: Fill) -> Row:
    """A fill as FILL_COLUMNS."""
    return (
        fill.id,
        fill.order_id,
        fill.timestamp,
        fill.symbol,
        fill.side.value,
        fill.quantity,
        fill.price,
        fill.fee,
        fill.signal_type,
        fill.realized_pnl,
    )


def fill_from_row(row: Row) -> Fill:
    """A FILL_COLUMNS row (or a `FillRow`) as a fill."""
    fill_id, order_id, timestamp, symbol, side, quantity, price, fee, signal_type, realized_pnl = row
    return Fill(
        id=fill_id,
        order_id=order_id,
        timestamp=timestamp,
        symbol=symbol,
        side=Side(side),
        quantity=Decimal(quantity),
        price=Decimal(price),
        fee=Decimal(fee),
        signal_type=signal_type,
        realized_pnl=Decimal(realized_pnl),
    )


def _fills(rows: list[Row]) -> list[Fill]:
    return [fill_from_row(row) for row in rows]


_fill_rows = rows_of(FillRow._make)


_FILLS_SELECT = f"SELECT {column_list(FILL_COLUMNS)} FROM fills"
_NEWEST_FIRST = " ORDER BY timestamp DESC, id DESC LIMIT %(limit)s"
# One statement per combination of filters, so each is planned (and prepared) for what it filters on; with no
# filter it is a backward scan of fills_timestamp_idx that stops after `limit` rows.
_RECENT_FILLS = {
    (False, False): _FILLS_SELECT + _NEWEST_FIRST,
    (True, False): _FILLS_SELECT + " WHERE symbol = %(symbol)s" + _NEWEST_FIRST,
    (False, True): _FILLS_SELECT + " WHERE timestamp >= %(since)s" + _NEWEST_FIRST,
    (True, True): _FILLS_SELECT + " WHERE symbol = %(symbol)s AND timestamp >= %(since)s" + _NEWEST_FIRST,
}


def all_fills() -> Query[list[Fill]]:
    """Every fill in execution order: the book is rebuilt from these."""
    return Query(sql=_FILLS_SELECT + " ORDER BY timestamp, id", decode=_fills)


def recent_fills(
    *, limit: int, symbol: str | None = None, since: datetime | None = None
) -> Query[list[FillRow]]:
    """Fills newest first, of one symbol and/or from `since` on when given, as rows to serialise."""
    return Query(
        sql=_RECENT_FILLS[symbol is not None, since is not None],
        params={"symbol": symbol, "since": since, "limit": limit},
        decode=_fill_rows,
    )


def insert_fills(fills: Iterable[Fill]) -> Batch:
    """A fill already on record (a batch retried after a lost COMMIT reply) is left as it is; each fill written
    returns its id (`fetch_many`), for its ledger entry (record.audit)."""
    return Batch(
        sql=insert_sql("fills", FILL_COLUMNS, " ON CONFLICT (id) DO NOTHING RETURNING id"),
        rows=[fill_params(f) for f in fills],
    )


def order_params(order: Order, *, tick_to_order_us: float | None) -> Row:
    """An order as the columns `insert_orders` writes."""
    return (
        order.id,
        order.timestamp,
        order.symbol,
        order.side.value,
        order.quantity,
        order.signal_type,
        order.reduces_position,
        order.status.value,
        order.reason,
        tick_to_order_us,
    )


def pending_order_from_row(row: Row) -> Order:
    """A row of `pending_orders` as the order the engine resubmits."""
    order_id, timestamp, symbol, side, quantity, signal_type, reduces_position, reason = row
    return Order(
        id=order_id,
        timestamp=timestamp,
        symbol=symbol,
        side=Side(side),
        quantity=Decimal(quantity),
        signal_type=signal_type,
        reduces_position=reduces_position,
        reason=reason,
    )


def _pending_orders(rows: list[Row]) -> list[Order]:
    return [pending_order_from_row(row) for row in rows]


def pending_orders() -> Query[list[Order]]:
    """Orders submitted and not yet filled, rejected or cancelled, in submission order (resubmitted at restart)."""
    return Query(
        sql=f"SELECT {column_list(_PENDING_ORDER_COLUMNS)} FROM orders"
        " WHERE status = 'submitted' ORDER BY timestamp, id",
        decode=_pending_orders,
    )


def insert_orders(orders: Iterable[Order], *, latencies_us: Mapping[str, float]) -> Batch:
    """`latencies_us`: tick-to-order time of each order id the engine measured. An order id already on record
    (a resubmission) is left as it is; each order written returns its id (`fetch_many`), for its ledger entry."""
    return Batch(
        sql=insert_sql("orders", _ORDER_WRITTEN, " ON CONFLICT (id) DO NOTHING RETURNING id"),
        rows=[order_params(o, tick_to_order_us=latencies_us.get(o.id)) for o in orders],
    )


def update_order_statuses(updates: Iterable[tuple[str, OrderStatus]]) -> Batch:
    """(order id, new status) of each order that filled, was rejected or cancelled."""
    return Batch(
        sql="UPDATE orders SET status = %s, updated_at = now() WHERE id = %s",
        rows=[(status.value, order_id) for order_id, status in updates],
    )


def upsert_positions(
    positions: Mapping[str, tuple[Decimal, Decimal, Decimal]], *, updated_at: datetime | None
) -> Batch:
    """`positions`: (quantity, avg_price, realized_pnl) by symbol."""
    return Batch(
        sql=insert_sql("positions", POSITION_COLUMNS)
        + " ON CONFLICT (symbol) DO UPDATE SET quantity = EXCLUDED.quantity,"
        " avg_price = EXCLUDED.avg_price, realized_pnl = EXCLUDED.realized_pnl,"
        " updated_at = EXCLUDED.updated_at",
        rows=[(symbol, q, avg, realized, updated_at) for symbol, (q, avg, realized) in positions.items()],
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordedEquity:
    """One equity row: the book's value at a bar, with the high-water mark in force then."""

    timestamp: datetime
    total_value: Decimal
    cash: Decimal
    high_water_mark: Decimal


def _latest_equity(rows: list[Row]) -> RecordedEquity | None:
    if not rows:
        return None
    timestamp, total_value, cash, high_water_mark = rows[0]
    return RecordedEquity(
        timestamp=timestamp,
        total_value=Decimal(total_value),
        cash=Decimal(cash),
        high_water_mark=Decimal(high_water_mark),
    )


def latest_equity() -> Query[RecordedEquity | None]:
    """The last equity row: the book rebuilt from the record keeps its high-water mark and time."""
    return Query(
        sql=f"SELECT {column_list(EQUITY_COLUMNS)} FROM equity ORDER BY timestamp DESC LIMIT 1",
        decode=_latest_equity,
    )


def equity_before(*, before: datetime) -> Query[Decimal | None]:
    """The last recorded total value before `before`; None when there is none."""
    return Query(
        sql="SELECT total_value FROM equity WHERE timestamp < %s ORDER BY timestamp DESC LIMIT 1",
        params=(before,),
        decode=optional_decimal,
    )


def copy_equity(snapshots: Sequence[EquitySnapshot], *, high_water_mark: Decimal) -> Copy:
    """Text COPY rows of the equity snapshots (Decimals as written, one row per step)."""
    hwm = str(high_water_mark)
    text = "".join(f"{e.timestamp.isoformat()}\t{e.total_value}\t{e.cash}\t{hwm}\n" for e in snapshots)
    return Copy(sql=f"COPY equity ({column_list(EQUITY_COLUMNS)}) FROM STDIN", chunks=(text.encode(),))


class EquityPoint(NamedTuple):
    """One point of the equity curve as drawn: the last row of its time bucket."""

    timestamp: datetime
    total_value: Decimal
    high_water_mark: Decimal


_equity_points = rows_of(EquityPoint._make)


def equity_curve(*, points: int) -> Query[list[EquityPoint]]:
    """The equity history cut into `points` equal intervals: its first row and the last row at or before each
    interval's end, oldest first. A screen draws a month of one-minute rows (43,200) from a few hundred points,
    each found by one probe of the primary key's index rather than a scan of the table."""
    return Query(
        sql="WITH span AS (SELECT min(timestamp) AS lo, max(timestamp) AS hi FROM equity),"
        " edges AS (SELECT lo + (hi - lo) * step / %(points)s AS edge FROM span,"
        " generate_series(0, %(points)s) AS step)"
        " SELECT DISTINCT e.timestamp, e.total_value, e.high_water_mark FROM edges"
        " CROSS JOIN LATERAL (SELECT timestamp, total_value, high_water_mark FROM equity"
        " WHERE timestamp <= edges.edge ORDER BY timestamp DESC LIMIT 1) AS e"
        " ORDER BY e.timestamp",
        params={"points": points},
        decode=_equity_points,
    )


class RejectedOrder(NamedTuple):
    """An order the risk checks (or the broker) refused, and why."""

    id: str
    timestamp: datetime
    symbol: str
    side: str
    quantity: Decimal
    signal_type: str
    reason: str


_rejected = rows_of(RejectedOrder._make)


def recent_rejections(*, limit: int) -> Query[list[RejectedOrder]]:
    """Rejected orders, newest first."""
    return Query(
        sql=f"SELECT {column_list(RejectedOrder._fields)} FROM orders WHERE status = 'rejected'"
        " ORDER BY timestamp DESC, id DESC LIMIT %(limit)s",
        params={"limit": limit},
        decode=_rejected,
    )


class PositionEntry(NamedTuple):
    """How an open position was entered: its last position-increasing fill's order, the signal type that drove it
    and that signal's horizon (the strategy holds at least that many bars before it may exit)."""

    symbol: str
    entered_at: datetime
    signal_type: str
    horizon_bars: int | None


def _entries(rows: list[Row]) -> dict[str, PositionEntry]:
    return {row[0]: PositionEntry._make(row) for row in rows}


def open_position_entries() -> Query[dict[str, PositionEntry]]:
    """Per open position (non-zero quantity), its entry; symbols whose entry is not on record are absent."""
    return Query(
        sql="SELECT p.symbol, o.timestamp, o.signal_type, s.horizon_bars FROM positions p"
        " JOIN (SELECT DISTINCT ON (symbol) symbol, timestamp, signal_type FROM orders"
        " WHERE status = 'filled' AND NOT reduces_position ORDER BY symbol, timestamp DESC) o"
        " ON o.symbol = p.symbol"
        " LEFT JOIN LATERAL (SELECT horizon_bars FROM signals WHERE signals.timestamp = o.timestamp"
        " AND signals.symbol = p.symbol AND signals.signal_type = o.signal_type LIMIT 1) s ON true"
        " WHERE p.quantity <> 0",
        decode=_entries,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class HeldPosition:
    """A row of `positions` with a non-zero quantity: signed quantity at average cost, gross realized P&L."""

    symbol: str
    quantity: Decimal
    avg_price: Decimal
    realized_pnl: Decimal


def _held_positions(rows: list[Row]) -> list[HeldPosition]:
    return [
        HeldPosition(
            symbol=symbol, quantity=Decimal(quantity), avg_price=Decimal(avg), realized_pnl=Decimal(realized)
        )
        for symbol, quantity, avg, realized in rows
    ]


def held_positions() -> Query[list[HeldPosition]]:
    """The open positions of the current book, by symbol (flat rows left out)."""
    return Query(
        sql="SELECT symbol, quantity, avg_price, realized_pnl FROM positions WHERE quantity <> 0 ORDER BY symbol",
        decode=_held_positions,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderTally:
    """Orders counted by status and, for rejected ones, by reason (`unspecified` for an empty one), with the
    tick-to-order latencies the engine measured as a cumulative histogram (microseconds)."""

    by_status: dict[str, int]
    rejections_by_reason: dict[str, int]
    tick_to_order: LatencyBuckets


def _order_tally(bounds_us: Sequence[float], rows: list[Row]) -> OrderTally:
    by_status: dict[str, int] = {}
    by_reason: dict[str, int] = {}
    latencies = BucketTally(bounds_us)
    for status, reason, bucket, orders, measured, total_us in rows:
        by_status[status] = by_status.get(status, 0) + int(orders)
        if reason is not None:
            by_reason[reason] = by_reason.get(reason, 0) + int(orders)
        latencies.add(bucket, int(measured), total_us)
    return OrderTally(by_status=by_status, rejections_by_reason=by_reason, tick_to_order=latencies.buckets())


def order_tally(*, bounds_us: Sequence[float]) -> Query[OrderTally]:
    """Every order on record by status, the rejected ones by reason, and the tick-to-order latencies bucketed at
    `bounds_us`: one scan of `orders`."""
    return Query(
        sql="SELECT status, CASE WHEN status = 'rejected' THEN COALESCE(NULLIF(reason, ''), 'unspecified') END,"
        f" {le_bucket_sql('tick_to_order_us', bounds_us)}, count(*), count(tick_to_order_us), sum(tick_to_order_us)"
        " FROM orders GROUP BY 1, 2, 3",
        decode=partial(_order_tally, tuple(bounds_us)),
    )
