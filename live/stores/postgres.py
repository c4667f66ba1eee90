"""PostgreSQL adapter: migrations, the engine lease with its fencing token, batched event writes, recovery reads."""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from importlib import resources
from typing import Any

import psycopg

from live.domain import Bar, ControlAction, EquitySnapshot, Fill, Order, RiskEvent, Side, TradingState
from live.engine import Outbox, SignalRow

log = logging.getLogger(__name__)

_MIGRATION_LOCK = 0x7261_6465_6F73  # advisory lock key: one migrator at a time


# Binary COPY (PostgreSQL's own wire format): the server parses no text and the client formats each row with
# one struct.pack. Bars and signals are most of what the engine writes (bench/README.md).
_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags, header extension length
_COPY_TRAILER = b"\xff\xff"
_COPY_CHUNK_ROWS = 4096  # rows per write: the server parses one chunk while the next is formatted
_BAR_HEAD = struct.Struct(">hiq")  # 8 fields; timestamptz (length 8, microseconds since 2000-01-01 UTC)
_BAR_PRICES = struct.Struct(">" + "id" * 6)  # open, high, low, close, volume, spread: float8 each
_SIGNAL_HEAD = struct.Struct(">hiq")  # 7 fields; timestamptz
_FLOAT8 = struct.Struct(">id")
_INT4 = struct.Struct(">ii")
_BOOL = {True: b"\x00\x00\x00\x01\x01", False: b"\x00\x00\x00\x01\x00"}


class FencedError(RuntimeError):
    """This engine no longer holds the lease: its writes are refused."""


def connect(url: str, *, autocommit: bool = False, connect_timeout: int = 5) -> psycopg.Connection[Any]:
    return psycopg.connect(url, autocommit=autocommit, connect_timeout=connect_timeout)


def migrations() -> list[tuple[int, str, str]]:
    """(version, name, sql) of every migration shipped with the package, in order."""
    folder = resources.files("live.stores") / "migrations"
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            found.append((version, entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


def apply_migrations(conn: psycopg.Connection[Any]) -> list[str]:
    """Applies the migrations not yet recorded in schema_migrations; returns their names (re-running is a no-op)."""
    applied: list[str] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        for version, name, sql in migrations():
            if version in done:
                continue
            conn.execute(sql.encode())
            conn.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, name))
            applied.append(name)
    return applied


@dataclass(frozen=True, slots=True)
class EngineRecord:
    """What the record says about the engine at start-up."""

    last_bar_ts: datetime | None
    initial_cash: Decimal
    high_water_mark: Decimal
    profile: str
    trading_state: TradingState
    state_actor: str
    state_reason: str
    state_since: datetime | None


class PostgresStore:
    """The engine's connection to the system of record. Not thread-safe: one per thread."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.conn = connect(url)
        self.conn.autocommit = True

    def close(self) -> None:
        self.conn.close()

    def reconnect(self) -> None:
        try:
            self.conn.close()
        finally:
            self.conn = connect(self.url)
            self.conn.autocommit = True

    # -- lease ----------------------------------------------------------------------------------------

    def acquire_lease(self, *, holder: str, ttl_seconds: float) -> int | None:
        """Takes the lease if it is free or expired; returns the new fencing token, or None if another holds it."""
        row = self.conn.execute(
            "INSERT INTO engine_lease (id, holder, token, expires_at)"
            " VALUES (1, %(holder)s, 1, now() + make_interval(secs => %(ttl)s))"
            " ON CONFLICT (id) DO UPDATE SET holder = EXCLUDED.holder, token = engine_lease.token + 1,"
            "  expires_at = EXCLUDED.expires_at"
            " WHERE engine_lease.expires_at < now() OR engine_lease.holder = EXCLUDED.holder"
            " RETURNING token",
            {"holder": holder, "ttl": ttl_seconds},
        ).fetchone()
        return int(row[0]) if row else None

    def lease_holder(self) -> tuple[str, datetime] | None:
        row = self.conn.execute("SELECT holder, expires_at FROM engine_lease WHERE id = 1").fetchone()
        return (row[0], row[1]) if row else None

    def renew_lease(self, *, holder: str, token: int, ttl_seconds: float) -> bool:
        row = self.conn.execute(
            "UPDATE engine_lease SET expires_at = now() + make_interval(secs => %s)"
            " WHERE id = 1 AND holder = %s AND token = %s RETURNING 1",
            (ttl_seconds, holder, token),
        ).fetchone()
        return row is not None

    def release_lease(self, *, holder: str, token: int) -> None:
        self.conn.execute(
            "UPDATE engine_lease SET expires_at = now() - interval '1 second'"
            " WHERE id = 1 AND holder = %s AND token = %s",
            (holder, token),
        )

    # -- recovery -------------------------------------------------------------------------------------

    def load_engine_record(self, *, initial_cash: Decimal, default_profile: str) -> EngineRecord:
        """Reads (creating on first start) the engine's anchors and the last operator decisions."""
        self.conn.execute(
            "INSERT INTO engine_state (id, initial_cash, high_water_mark, profile)"
            " VALUES (1, %s, %s, %s) ON CONFLICT (id) DO NOTHING",
            (initial_cash, initial_cash, default_profile),
        )
        state = self.conn.execute(
            "SELECT last_bar_ts, initial_cash, high_water_mark, profile FROM engine_state WHERE id = 1"
        ).fetchone()
        assert state is not None
        profile_row = self.conn.execute(
            "SELECT value FROM control_actions WHERE action = 'profile' ORDER BY id DESC LIMIT 1"
        ).fetchone()
        trading_state, actor, reason, since = self.recorded_trading_state() or (
            TradingState.ACTIVE,
            "startup",
            "",
            None,
        )
        return EngineRecord(
            last_bar_ts=state[0],
            initial_cash=Decimal(state[1]),
            high_water_mark=Decimal(state[2]),
            profile=profile_row[0] if profile_row else state[3],
            trading_state=trading_state,
            state_actor=actor,
            state_reason=reason,
            state_since=since,
        )

    def recorded_trading_state(self) -> tuple[TradingState, str, str, datetime] | None:
        """(state, actor, reason, when) of the last halt/resume/reduce on record, if any."""
        row = self.conn.execute(
            "SELECT action, actor, reason, timestamp FROM control_actions"
            " WHERE action IN ('halt', 'resume', 'reduce') ORDER BY id DESC LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        state = {
            "halt": TradingState.HALTED,
            "resume": TradingState.ACTIVE,
            "reduce": TradingState.REDUCE_ONLY,
        }
        return state[row[0]], row[1], row[2], row[3]

    def load_fills(self) -> list[Fill]:
        rows = self.conn.execute(
            "SELECT id, order_id, timestamp, symbol, side, quantity, price, fee, signal_type, realized_pnl"
            " FROM fills ORDER BY timestamp, id"
        ).fetchall()
        return [
            Fill(
                id=r[0],
                order_id=r[1],
                timestamp=r[2],
                symbol=r[3],
                side=Side(r[4]),
                quantity=r[5],
                price=Decimal(r[6]),
                fee=Decimal(r[7]),
                signal_type=r[8],
                realized_pnl=Decimal(r[9]),
            )
            for r in rows
        ]

    def load_pending_orders(self) -> list[Order]:
        rows = self.conn.execute(
            "SELECT id, timestamp, symbol, side, quantity, signal_type, reduces_position, reason"
            " FROM orders WHERE status = 'submitted' ORDER BY timestamp, id"
        ).fetchall()
        return [
            Order(
                id=r[0],
                timestamp=r[1],
                symbol=r[2],
                side=Side(r[3]),
                quantity=r[4],
                signal_type=r[5],
                reduces_position=r[6],
                reason=r[7],
            )
            for r in rows
        ]

    def start_of_day_value(self, *, before: datetime, initial_cash: Decimal) -> Decimal:
        """The last recorded equity before `before` (the start of the engine clock's current UTC day)."""
        row = self.conn.execute(
            "SELECT total_value FROM equity WHERE timestamp < %s ORDER BY timestamp DESC LIMIT 1", (before,)
        ).fetchone()
        return Decimal(row[0]) if row else initial_cash

    def actionable_signal_ids(
        self, *, since: datetime, until: datetime
    ) -> dict[tuple[datetime, str, str], int]:
        """Row ids of the committed actionable signals stamped `since`..`until`, by (timestamp, symbol, signal
        type): the ids the COPY gave them, which a published `signal` carries like `GET /signals` does."""
        rows = self.conn.execute(
            "SELECT timestamp, symbol, signal_type, id FROM signals"
            " WHERE actionable AND timestamp BETWEEN %s AND %s ORDER BY id",
            (since, until),
        ).fetchall()
        return {(timestamp, symbol, signal_type): int(id_) for timestamp, symbol, signal_type, id_ in rows}

    # -- writes ---------------------------------------------------------------------------------------

    def record_control_action(self, action: ControlAction) -> None:
        self.conn.execute(
            "INSERT INTO control_actions (timestamp, action, actor, reason, value) VALUES (%s, %s, %s, %s, %s)",
            (action.timestamp, action.action, action.actor, action.reason, action.value),
        )

    def record_risk_events(self, events: Sequence[RiskEvent]) -> None:
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO risk_events (timestamp, code, detail, symbol, halts_trading) VALUES (%s, %s, %s, %s, %s)",
                [(e.timestamp, e.code, e.detail, e.symbol, e.halts_trading) for e in events],
            )

    def write_outbox(
        self,
        outbox: Outbox,
        *,
        token: int,
        high_water_mark: Decimal,
        profile: str,
        trading_state: str,
        positions: dict[str, tuple[int, Decimal, Decimal]],
    ) -> None:
        """Writes one batch of engine events atomically, after checking the fencing token.
        `positions` holds (quantity, avg_price, realized_pnl) of the symbols the batch's fills touched."""
        conn = self.conn
        with conn.transaction(), conn.cursor() as cur:
            row = cur.execute("SELECT token FROM engine_lease WHERE id = 1 FOR SHARE").fetchone()
            if row is None or int(row[0]) != token:
                raise FencedError(f"lease token {token} is stale (current: {row[0] if row else None})")
            # A retry after a COMMIT whose reply was lost must not write the batch twice.
            done = cur.execute("SELECT last_bar_ts FROM engine_state WHERE id = 1 FOR UPDATE").fetchone()
            if (
                outbox.last_bar_ts is not None
                and done
                and done[0] is not None
                and done[0] >= outbox.last_bar_ts
            ):
                log.warning("batch up to %s was already committed; not writing it again", outbox.last_bar_ts)
                return
            if outbox.bars:
                _copy_binary(
                    cur,
                    "COPY bars (timestamp, symbol, open, high, low, close, volume, spread) FROM STDIN",
                    _bar_rows(outbox.bars),
                )
            if outbox.signal_rows:
                _copy_binary(
                    cur,
                    "COPY signals (timestamp, symbol, signal_type, horizon_bars, regime, actionable, strength)"
                    " FROM STDIN",
                    _signal_rows(outbox.signal_rows),
                )
            if outbox.equity:
                with cur.copy(
                    "COPY equity (timestamp, total_value, cash, high_water_mark) FROM STDIN"
                ) as copy:
                    copy.write(_equity_text(outbox.equity, high_water_mark))
            if outbox.orders:
                cur.executemany(
                    "INSERT INTO orders (id, timestamp, symbol, side, quantity, signal_type, reduces_position,"
                    " status, reason, tick_to_order_us) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                    " ON CONFLICT (id) DO NOTHING",
                    [
                        (
                            o.id,
                            o.timestamp,
                            o.symbol,
                            o.side.value,
                            o.quantity,
                            o.signal_type,
                            o.reduces_position,
                            o.status.value,
                            o.reason,
                            outbox.latencies_us.get(o.id),
                        )
                        for o in outbox.orders
                    ],
                )
            if outbox.order_updates:
                cur.executemany(
                    "UPDATE orders SET status = %s, updated_at = now() WHERE id = %s",
                    [(status.value, order_id) for order_id, status in outbox.order_updates],
                )
            if outbox.fills:
                cur.executemany(
                    "INSERT INTO fills (id, order_id, timestamp, symbol, side, quantity, price, fee, signal_type,"
                    " realized_pnl) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING",
                    [
                        (
                            f.id,
                            f.order_id,
                            f.timestamp,
                            f.symbol,
                            f.side.value,
                            f.quantity,
                            f.price,
                            f.fee,
                            f.signal_type,
                            f.realized_pnl,
                        )
                        for f in outbox.fills
                    ],
                )
            if outbox.risk_events:
                cur.executemany(
                    "INSERT INTO risk_events (timestamp, code, detail, symbol, halts_trading)"
                    " VALUES (%s, %s, %s, %s, %s)",
                    [(e.timestamp, e.code, e.detail, e.symbol, e.halts_trading) for e in outbox.risk_events],
                )
            if outbox.regime_changes:
                cur.executemany(
                    "INSERT INTO regime_changes (timestamp, previous, current, model) VALUES (%s, %s, %s, %s)",
                    [(c.timestamp, c.previous, c.current, c.model) for c in outbox.regime_changes],
                )
            if outbox.control_actions:
                cur.executemany(
                    "INSERT INTO control_actions (timestamp, action, actor, reason, value)"
                    " VALUES (%s, %s, %s, %s, %s)",
                    [(a.timestamp, a.action, a.actor, a.reason, a.value) for a in outbox.control_actions],
                )
            if positions:
                cur.executemany(
                    "INSERT INTO positions (symbol, quantity, avg_price, realized_pnl, updated_at)"
                    " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (symbol) DO UPDATE SET quantity = EXCLUDED.quantity,"
                    " avg_price = EXCLUDED.avg_price, realized_pnl = EXCLUDED.realized_pnl,"
                    " updated_at = EXCLUDED.updated_at",
                    [
                        (symbol, q, avg, realized, outbox.last_bar_ts)
                        for symbol, (q, avg, realized) in positions.items()
                    ],
                )
            cur.execute(
                "UPDATE engine_state SET last_bar_ts = COALESCE(%s, last_bar_ts), high_water_mark = %s,"
                " profile = %s, trading_state = %s, updated_at = now() WHERE id = 1",
                (outbox.last_bar_ts, high_water_mark, profile, trading_state),
            )


def _copy_binary(cur: psycopg.Cursor[Any], statement: str, rows: Iterator[bytes]) -> None:
    """COPY ... FROM STDIN in binary format, written in chunks of pre-encoded rows."""
    with cur.copy(statement + " (FORMAT BINARY)") as copy:
        chunk = [_COPY_HEADER]
        for row in rows:
            chunk.append(row)
            if len(chunk) >= _COPY_CHUNK_ROWS:
                copy.write(b"".join(chunk))
                chunk = []
        chunk.append(_COPY_TRAILER)
        copy.write(b"".join(chunk))


def _text_field(value: str) -> bytes:
    encoded = value.encode()
    return len(encoded).to_bytes(4, "big") + encoded


def _microseconds(timestamp: datetime) -> int:
    return (timestamp - _PG_EPOCH) // _MICROSECOND


def _bar_rows(bars: Iterable[Bar]) -> Iterator[bytes]:
    """Binary COPY rows of `bars`; timestamps and symbols are encoded once each (a step's bars share one)."""
    symbols: dict[str, bytes] = {}
    last_ts: datetime | None = None
    head = b""
    prices = _BAR_PRICES.pack
    for b in bars:
        if b.timestamp is not last_ts:
            last_ts = b.timestamp
            head = _BAR_HEAD.pack(8, 8, _microseconds(last_ts))
        symbol = symbols.get(b.symbol)
        if symbol is None:
            symbol = symbols[b.symbol] = _text_field(b.symbol)
        yield head + symbol + prices(8, b.open, 8, b.high, 8, b.low, 8, b.close, 8, b.volume, 8, b.spread)


def _signal_rows(rows: Iterable[SignalRow]) -> Iterator[bytes]:
    """Binary COPY rows of the engine's signal rows, strength last: all that precedes it repeats from step to
    step, so it is encoded once per (symbol, type, horizon, regime, actionable)."""
    prefixes: dict[tuple[str, str, int, str, bool], bytes] = {}
    last_ts: datetime | None = None
    head = b""
    strength_field = _FLOAT8.pack
    for timestamp, symbol, signal_type, strength, horizon_bars, regime, actionable in rows:
        if timestamp is not last_ts:
            last_ts = timestamp
            head = _SIGNAL_HEAD.pack(7, 8, _microseconds(timestamp))
        key = (symbol, signal_type, horizon_bars, regime, actionable)
        prefix = prefixes.get(key)
        if prefix is None:
            prefix = prefixes[key] = (
                _text_field(symbol)
                + _text_field(signal_type)
                + _INT4.pack(4, horizon_bars)
                + _text_field(regime)
                + _BOOL[bool(actionable)]
            )
        yield head + prefix + strength_field(8, strength)


def _equity_text(snapshots: Sequence[EquitySnapshot], high_water_mark: Decimal) -> bytes:
    """Text COPY rows of the equity snapshots (Decimals as written, one row per step)."""
    hwm = str(high_water_mark)
    return "".join(
        f"{e.timestamp.isoformat()}\t{e.total_value}\t{e.cash}\t{hwm}\n" for e in snapshots
    ).encode()
