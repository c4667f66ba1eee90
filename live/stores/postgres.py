"""PostgreSQL adapter: migrations, the engine lease with its fencing token, batched event writes, recovery reads."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from importlib import resources
from typing import Any

import psycopg

from live.domain import ControlAction, Fill, Order, RiskEvent, Side, TradingState
from live.engine import Outbox

log = logging.getLogger(__name__)

_MIGRATION_LOCK = 0x7261_6465_6F73  # advisory lock key: one migrator at a time


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
        action_row = self.conn.execute(
            "SELECT action, actor, reason, timestamp FROM control_actions"
            " WHERE action IN ('halt', 'resume', 'reduce') ORDER BY id DESC LIMIT 1"
        ).fetchone()
        trading_state, actor, reason, since = TradingState.ACTIVE, "startup", "", None
        if action_row:
            trading_state = {
                "halt": TradingState.HALTED,
                "resume": TradingState.ACTIVE,
                "reduce": TradingState.REDUCE_ONLY,
            }[action_row[0]]
            actor, reason, since = action_row[1], action_row[2], action_row[3]
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
            if outbox.bars:
                with cur.copy(
                    "COPY bars (timestamp, symbol, open, high, low, close, volume, spread) FROM STDIN"
                ) as copy:
                    for b in outbox.bars:
                        copy.write_row(
                            (b.timestamp, b.symbol, b.open, b.high, b.low, b.close, b.volume, b.spread)
                        )
            if outbox.signal_rows:
                with cur.copy(
                    "COPY signals (timestamp, symbol, signal_type, strength, horizon_bars, regime, actionable)"
                    " FROM STDIN"
                ) as copy:
                    for s in outbox.signal_rows:
                        copy.write_row(s)
            if outbox.equity:
                with cur.copy(
                    "COPY equity (timestamp, total_value, cash, high_water_mark) FROM STDIN"
                ) as copy:
                    for e in outbox.equity:
                        copy.write_row((e.timestamp, e.total_value, e.cash, high_water_mark))
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
