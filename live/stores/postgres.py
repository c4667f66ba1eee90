"""PostgreSQL adapter: migrations, the engine lease with its fencing token, batched event writes, recovery reads.
The statements themselves and their row mappings are in live/stores/record.py, shared with the API."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from importlib import resources
from typing import Any

import psycopg

from live.audit import Pending
from live.domain import Fill, Order, TradingState
from live.engine import Outbox
from live.stores import record
from live.strategy.loading import StrategyChoice

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
    profile_version: (
        int | None
    )  # the version of the last switch on record (None: a built-in, or none recorded)
    profile_hash: str | None  # the content hash recorded with that switch
    trading_state: TradingState
    state_actor: str
    state_reason: str
    state_since: datetime | None


class PostgresStore:
    """The engine's connection to the system of record. Not thread-safe: one per thread. `audit_key` seals the
    ledger entries of what this connection writes (`write_outbox`); a connection that writes no covered row
    (the lease thread's) has none."""

    def __init__(self, url: str, *, audit_key: bytes | None = None) -> None:
        self.url = url
        self.audit_key = audit_key
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

    def acquire_lease(self, *, holder: str, ttl_seconds: float) -> int | None:
        """Takes the lease if it is free or expired; returns the new fencing token, or None if another holds it."""
        return record.fetch(self.conn, record.lease.take_lease(holder=holder, ttl_seconds=ttl_seconds))

    def lease_holder(self) -> tuple[str, datetime] | None:
        return record.fetch(self.conn, record.lease.lease_holder())

    def renew_lease(self, *, holder: str, token: int, ttl_seconds: float) -> bool:
        return record.fetch(
            self.conn, record.lease.renew_lease(holder=holder, token=token, ttl_seconds=ttl_seconds)
        )

    def release_lease(self, *, holder: str, token: int) -> None:
        record.execute(self.conn, record.lease.release_lease(holder=holder, token=token))

    def load_engine_record(self, *, initial_cash: Decimal, default_profile: str) -> EngineRecord:
        """Reads (creating on first start) the engine's anchors and the last operator decisions."""
        record.execute(
            self.conn, record.lease.create_engine_state(initial_cash=initial_cash, profile=default_profile)
        )
        anchors = record.fetch(self.conn, record.lease.engine_anchors())
        recorded = record.fetch(self.conn, record.decisions.recorded_profile())
        trading_state, actor, reason, since = self.recorded_trading_state() or (
            TradingState.ACTIVE,
            "startup",
            "",
            None,
        )
        return EngineRecord(
            last_bar_ts=anchors.last_bar_ts,
            initial_cash=anchors.initial_cash,
            high_water_mark=anchors.high_water_mark,
            profile=recorded.name if recorded is not None else anchors.profile,
            profile_version=recorded.version if recorded is not None else None,
            profile_hash=recorded.content_hash if recorded is not None else None,
            trading_state=trading_state,
            state_actor=actor,
            state_reason=reason,
            state_since=since,
        )

    def recorded_trading_state(self) -> tuple[TradingState, str, str, datetime] | None:
        """(state, actor, reason, when) of the last halt/resume/reduce on record, if any."""
        recorded = record.fetch(self.conn, record.decisions.recorded_trading_state())
        if recorded is None:
            return None
        return recorded.state, recorded.actor, recorded.reason, recorded.since

    def stored_profile(
        self, *, name: str, version: int | None = None
    ) -> record.profiles.StoredProfile | None:
        """A custom profile's `version` (default: its newest) as stored; None if there is no such row."""
        if version is None:
            return record.fetch(self.conn, record.profiles.latest_profile_version(name=name))
        return record.fetch(self.conn, record.profiles.profile_version(name=name, version=version))

    def custom_profile_names(self) -> list[str]:
        """Every custom profile ever saved, by name."""
        return [row.name for row in record.fetch(self.conn, record.profiles.latest_profile_versions())]

    def load_fills(self) -> list[Fill]:
        return record.fetch(self.conn, record.book.all_fills())

    def load_pending_orders(self) -> list[Order]:
        return record.fetch(self.conn, record.book.pending_orders())

    def start_of_day_value(self, *, before: datetime, initial_cash: Decimal) -> Decimal:
        """The last recorded equity before `before` (the start of the engine clock's current UTC day)."""
        value = record.fetch(self.conn, record.book.equity_before(before=before))
        return value if value is not None else initial_cash

    def actionable_signal_ids(
        self, *, since: datetime, until: datetime
    ) -> dict[tuple[datetime, str, str], int]:
        """Row ids of the committed actionable signals stamped `since`..`until`, by (timestamp, symbol, signal
        type): the ids the COPY gave them, which a published `signal` carries like `GET /signals` does."""
        return record.fetch(self.conn, record.market.actionable_signal_ids(since=since, until=until))

    def record_strategy_run(self, choice: StrategyChoice, *, holder: str) -> None:
        """The strategy this engine start trades (live/stores/record/strategies.py)."""
        record.execute(
            self.conn,
            record.strategies.insert_strategy_run(
                holder=holder,
                spec=choice.spec,
                name=choice.name,
                version=choice.version,
                params_json=choice.params_json,
                params_hash=choice.params_hash,
            ),
        )

    def write_outbox(
        self,
        outbox: Outbox,
        *,
        token: int,
        high_water_mark: Decimal,
        profile: str,
        trading_state: str,
        positions: dict[str, tuple[Decimal, Decimal, Decimal]],
    ) -> None:
        """Writes one batch of engine events atomically, after checking the fencing token, with the audit ledger's
        entries for its orders, fills, risk events and control actions; returns once it is durable.
        `positions` holds (quantity, avg_price, realized_pnl) of the symbols the batch's fills touched."""
        unflushed = self._write_batch(
            outbox,
            token=token,
            high_water_mark=high_water_mark,
            profile=profile,
            trading_state=trading_state,
            positions=positions,
        )
        if unflushed:
            # The batch is visible from its commit, durable from the end of this flush (a synchronous commit after
            # it: the WAL is flushed in order); only then does the caller publish it. If PostgreSQL crashes in
            # between, this raises, and the caller's retry finds the batch committed or writes it again. Entries
            # others chained to the batch's meanwhile come later in the WAL: no crash keeps them and loses it.
            record.execute(self.conn, record.lease.touch_engine_state())

    def _write_batch(
        self,
        outbox: Outbox,
        *,
        token: int,
        high_water_mark: Decimal,
        profile: str,
        trading_state: str,
        positions: dict[str, tuple[Decimal, Decimal, Decimal]],
    ) -> bool:
        """`write_outbox`'s transaction; True when its commit may not be flushed yet."""
        conn = self.conn
        with conn.transaction(), conn.cursor() as cur:
            current = record.fetch(cur, record.lease.lease_token_for_batch())
            if current != token:
                raise FencedError(f"lease token {token} is stale (current: {current})")
            # A retry after a COMMIT whose reply was lost must not write the batch twice.
            done = record.fetch(cur, record.lease.last_committed_bar_for_batch())
            if outbox.last_bar_ts is not None and done is not None and done >= outbox.last_bar_ts:
                log.warning("batch up to %s was already committed; not writing it again", outbox.last_bar_ts)
                return True  # perhaps without the flush (below)
            if outbox.bars:
                record.copy(cur, record.market.copy_bars(outbox.bars))
            if outbox.signal_rows:
                record.copy(cur, record.market.copy_signals(outbox.signal_rows))
            if outbox.equity:
                record.copy(cur, record.book.copy_equity(outbox.equity, high_water_mark=high_water_mark))
            sealed: list[Pending] = []
            if outbox.orders:
                written = _ids(
                    record.fetch_many(
                        cur, record.book.insert_orders(outbox.orders, latencies_us=outbox.latencies_us)
                    )
                )
                sealed += [record.audit.order_entry(o) for o in outbox.orders if o.id in written]
            if outbox.order_updates:
                record.execute_many(cur, record.book.update_order_statuses(outbox.order_updates))
            if outbox.fills:
                written = _ids(record.fetch_many(cur, record.book.insert_fills(outbox.fills)))
                sealed += [record.audit.fill_entry(f) for f in outbox.fills if f.id in written]
            if outbox.risk_events:
                ids = record.fetch_many(cur, record.events.insert_risk_events(outbox.risk_events))
                sealed += [
                    record.audit.risk_event_entry(row_id, event)
                    for (row_id,), event in zip(ids, outbox.risk_events, strict=True)
                ]
            if outbox.regime_changes:
                record.execute_many(cur, record.events.insert_regime_changes(outbox.regime_changes))
            if outbox.control_actions:
                ids = record.fetch_many(cur, record.decisions.insert_control_actions(outbox.control_actions))
                sealed += [
                    record.audit.control_action_entry(row_id, action)
                    for (row_id,), action in zip(ids, outbox.control_actions, strict=True)
                ]
            if positions:
                record.execute_many(
                    cur, record.book.upsert_positions(positions, updated_at=outbox.last_bar_ts)
                )
            record.execute(
                cur,
                record.lease.advance_engine_state(
                    last_bar_ts=outbox.last_bar_ts,
                    high_water_mark=high_water_mark,
                    profile=profile,
                    trading_state=trading_state,
                ),
            )
            if not sealed:
                return False
            # Last, so the ledger lock is held only from here to the commit; and the commit does not wait for the
            # WAL flush under it (the batch's bars and signals are megabytes of WAL at full speed: the API's halt
            # would queue behind that flush for the ledger's turn). `write_outbox` waits for durability instead.
            record.execute(cur, record.statements.COMMIT_WITHOUT_FLUSH)
            record.audit.append(cur, sealed, key=self._sealing_key())
        return True

    def _sealing_key(self) -> bytes:
        if self.audit_key is None:
            raise RuntimeError("this PostgresStore has no audit key: it cannot write rows the ledger covers")
        return self.audit_key


def _ids(rows: list[tuple[Any, ...]]) -> set[str]:
    return {str(row[0]) for row in rows}
