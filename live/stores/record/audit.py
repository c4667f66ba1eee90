"""`audit_ledger`: the hash-chained entries covering orders, fills, risk events and control actions (live/audit.py),
appended in the transaction that writes the rows they cover, and read back to verify.

Every writer of a covered row appends its entries here, last thing before its commit (`append` in the engine's
batch, `record_control_action_async` for the API): the ledger lock (a transaction-level advisory lock) is the one
point where the engine and every API process take their turn at the end of the chain, held from the read of the
head to the commit."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any, NamedTuple

import psycopg

from live import audit
from live.audit import Breach, Entry, Head, Pending
from live.domain import ControlAction, Fill, Order, RiskEvent
from live.stores.record import book, decisions, events
from live.stores.record.statements import (
    COMMIT_WITHOUT_FLUSH,
    Batch,
    Query,
    Row,
    Statement,
    SyncTarget,
    column_list,
    execute,
    execute_async,
    execute_many,
    execute_many_async,
    fetch,
    fetch_async,
    insert_sql,
    rows_of,
)

LEDGER_COLUMNS = ("seq", "recorded_at", "kind", "ref", "actor", "origin", "payload", "prev_hash", "hash")

# pg_advisory_xact_lock key: one writer at a time at the end of the chain (any constant unique in the database).
LEDGER_LOCK = 0x54524144454F_4C67


class CoveredTable(NamedTuple):
    """Where the rows of one kind of entry live, and the columns its payload is made of."""

    table: str
    columns: tuple[str, ...]


_ORDER_SEALED = tuple(name for name in book.ORDER_COLUMNS if name not in ("tick_to_order_us", "updated_at"))
_RISK_EVENT_SEALED = tuple(name for name in events.RISK_EVENT_COLUMNS if name != "recorded_at")

COVERED: dict[str, CoveredTable] = {
    audit.ORDER: CoveredTable("orders", _ORDER_SEALED),
    audit.FILL: CoveredTable("fills", book.FILL_COLUMNS),
    audit.RISK_EVENT: CoveredTable("risk_events", _RISK_EVENT_SEALED),
    audit.CONTROL_ACTION: CoveredTable("control_actions", decisions.CONTROL_ACTION_COLUMNS),
}


def order_entry(order: Order) -> Pending:
    """An order intent, as the engine made it (refused ones too)."""
    params = book.order_params(order, tick_to_order_us=None)
    written = dict(zip(book.ORDER_COLUMNS[: len(params)], params, strict=True))
    return Pending(
        kind=audit.ORDER,
        ref=order.id,
        actor=audit.ENGINE_ACTOR,
        origin=audit.ENGINE_ACTOR,
        payload=audit.payload_of(_ORDER_SEALED, [written[name] for name in _ORDER_SEALED]),
    )


def fill_entry(fill: Fill) -> Pending:
    return Pending(
        kind=audit.FILL,
        ref=fill.id,
        actor=audit.ENGINE_ACTOR,
        origin=audit.ENGINE_ACTOR,
        payload=audit.payload_of(book.FILL_COLUMNS, book.fill_params(fill)),
    )


def risk_event_entry(row_id: int, event: RiskEvent) -> Pending:
    """A risk verdict (a rejection, a breaker trip, an outage) as its row `row_id` holds it."""
    return Pending(
        kind=audit.RISK_EVENT,
        ref=str(row_id),
        actor=audit.ENGINE_ACTOR,
        origin=audit.ENGINE_ACTOR,
        payload=audit.payload_of(_RISK_EVENT_SEALED, (row_id, *events.risk_event_params(event))),
    )


def control_action_entry(row_id: int, action: ControlAction) -> Pending:
    """An operator's (or the engine's own) decision: who, from where, when, why."""
    return Pending(
        kind=audit.CONTROL_ACTION,
        ref=str(row_id),
        actor=action.actor,
        origin=action.origin,
        payload=audit.payload_of(
            decisions.CONTROL_ACTION_COLUMNS, (row_id, *decisions.control_action_params(action))
        ),
    )


def take_ledger_lock() -> Statement:
    """Waits for, then holds until the transaction ends, the turn at the end of the chain."""
    return Statement(sql="SELECT pg_advisory_xact_lock(%s)", params=(LEDGER_LOCK,))


def _head(rows: list[Row]) -> Head:
    return Head(seq=int(rows[0][0]), hash=rows[0][1]) if rows else audit.START


def ledger_head() -> Query[Head]:
    """The last entry (`audit.START` for an empty ledger); under the ledger lock, the one to chain to."""
    return Query(sql="SELECT seq, hash FROM audit_ledger ORDER BY seq DESC LIMIT 1", decode=_head)


def _entry_params(entry: Entry) -> Row:
    return (
        entry.seq,
        entry.recorded_at,
        entry.kind,
        entry.ref,
        entry.actor,
        entry.origin,
        entry.payload,
        entry.prev_hash,
        entry.hash,
    )


def insert_entries(entries: Sequence[Entry]) -> Batch:
    return Batch(sql=insert_sql("audit_ledger", LEDGER_COLUMNS), rows=[_entry_params(e) for e in entries])


def _entry(row: Row) -> Entry:
    seq, recorded_at, kind, ref, actor, origin, payload, prev_hash, digest = row
    return Entry(
        seq=int(seq),
        recorded_at=recorded_at,
        kind=kind,
        ref=ref,
        actor=actor,
        origin=origin,
        payload=payload,
        prev_hash=prev_hash,
        hash=digest,
    )


_entries = rows_of(_entry)


def entries_after(*, seq: int, limit: int) -> Query[list[Entry]]:
    """Up to `limit` entries after `seq`, in chain order: a walk of the chain one page at a time."""
    return Query(
        sql=f"SELECT {column_list(LEDGER_COLUMNS)} FROM audit_ledger WHERE seq > %(seq)s ORDER BY seq"
        " LIMIT %(limit)s",
        params={"seq": seq, "limit": limit},
        decode=_entries,
    )


def _covered_payloads(columns: tuple[str, ...], rows: list[Row]) -> dict[str, str]:
    return {str(row[0]): audit.payload_of(columns, row) for row in rows}


def covered_rows(kind: str, refs: Sequence[str]) -> Query[dict[str, str]]:
    """The rows of `kind` with these ids as they read now, as payloads (canonical JSON) by id."""
    covered = COVERED[kind]
    id_type = "bigint" if kind in (audit.RISK_EVENT, audit.CONTROL_ACTION) else "text"
    return Query(
        sql=f"SELECT {column_list(covered.columns)} FROM {covered.table} WHERE id = ANY(%(refs)s::{id_type}[])",
        params={"refs": list(refs)},
        decode=partial(_covered_payloads, covered.columns),
    )


def _last_seq(rows: list[Row]) -> int:
    return int(rows[0][0]) if rows and rows[0][0] is not None else 0


def last_seq() -> Query[int]:
    """The highest seq on record (0 for an empty ledger): how far a walk of the chain has to go."""
    return Query(sql="SELECT max(seq) FROM audit_ledger", decode=_last_seq)


def append(on: SyncTarget, pending: Sequence[Pending], *, key: bytes) -> list[Entry]:
    """Seals `pending` onto the end of the chain, inside the caller's transaction (which must commit right after:
    the ledger lock is held until it does)."""
    if not pending:
        return []
    execute(on, take_ledger_lock())
    entries = audit.seal(pending, head=fetch(on, ledger_head()), key=key, recorded_at=datetime.now(UTC))
    execute_many(on, insert_entries(entries))
    return entries


async def append_async(
    on: psycopg.AsyncConnection[Any], pending: Sequence[Pending], *, key: bytes
) -> list[Entry]:
    """`append` on an API connection, inside the caller's transaction."""
    if not pending:
        return []
    await execute_async(on, take_ledger_lock())
    head = await fetch_async(on, ledger_head())
    entries = audit.seal(pending, head=head, key=key, recorded_at=datetime.now(UTC))
    await execute_many_async(on, insert_entries(entries))
    return entries


def record_control_action(on: psycopg.Connection[Any], action: ControlAction, *, key: bytes) -> int:
    """`record_control_action_async` for a process with a plain connection (the watchdog's halt)."""
    with on.transaction():
        row_id = fetch(on, decisions.insert_control_action(action))
        append(on, [control_action_entry(row_id, action)], key=key)
    return row_id


async def record_control_action_async(
    on: psycopg.AsyncConnection[Any], action: ControlAction, *, key: bytes, wait_for_flush: bool = True
) -> int:
    """Records an operator's action and its ledger entry in one transaction; returns the row's id.
    `wait_for_flush=False` commits without waiting for the WAL flush (a halt, already in force through Redis:
    api/control.py says why that is safe).

    Two round trips on an autocommit connection, the statements of each sent as one simple query with the
    parameters bound on the client: the transaction's opening (the row, the ledger's turn, the head of the chain),
    then the sealed entry and the commit. The operator waits for this record, and each further round trip is one
    more wake-up of a process the engine shares the cores with."""
    if not on.autocommit or on.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        # Inside the caller's transaction (a profile saved with its record): a savepoint of it, one statement
        # at a time.
        async with on.transaction():
            if not wait_for_flush:
                await execute_async(on, COMMIT_WITHOUT_FLUSH)
            row_id = await fetch_async(on, decisions.insert_control_action(action))
            await append_async(on, [control_action_entry(row_id, action)], key=key)
        return row_id
    insert, lock, head = decisions.insert_control_action(action), take_ledger_lock(), ledger_head()
    opening = ["BEGIN", insert.sql, lock.sql, head.sql]
    if not wait_for_flush:
        opening.insert(1, COMMIT_WITHOUT_FLUSH.sql)
    async with psycopg.AsyncClientCursor(on) as cursor:
        try:
            await cursor.execute("; ".join(opening), (*insert.params, *lock.params))
            returned = await _result_sets(cursor)
            row_id = insert.decode(returned[0])
            entries = audit.seal(
                [control_action_entry(row_id, action)],
                head=head.decode(returned[2]),
                key=key,
                recorded_at=datetime.now(UTC),
            )
            appended = insert_entries(entries)
            await cursor.execute(f"{appended.sql}; COMMIT", appended.rows[0])
        except BaseException:
            if not on.closed:
                with contextlib.suppress(psycopg.Error):
                    await on.execute("ROLLBACK")
            raise
    return row_id


async def _result_sets(cursor: psycopg.AsyncClientCursor[Any]) -> list[list[Row]]:
    """The rows of each statement of a simple query that returns rows, in order."""
    found: list[list[Row]] = []
    while True:
        if cursor.description is not None:
            found.append(await cursor.fetchall())
        if not cursor.nextset():
            return found


def check_page(
    on: SyncTarget, check: audit.ChainCheck, *, limit: int, covered: bool
) -> tuple[int, Breach | None]:
    """Reads the next `limit` entries after `check.head` and checks them: the chain, and with `covered` the rows
    they cover as those read now. Returns how many entries were read and the first breach among them (by seq)."""
    entries = fetch(on, entries_after(seq=check.head.seq, limit=limit))
    chained: list[Entry] = []
    chain_breach: Breach | None = None
    for entry in entries:
        chain_breach = check.check(entry)
        if chain_breach is not None:
            break
        chained.append(entry)
    breaches = [chain_breach] if chain_breach is not None else []
    if covered and chained:
        breaches += _covered_breaches(on, chained)
    return len(entries), min(breaches, key=lambda breach: breach.seq, default=None)


def _covered_breaches(on: SyncTarget, entries: Sequence[Entry]) -> list[Breach]:
    found: list[Breach] = []
    for kind, table in COVERED.items():
        of_kind = [entry for entry in entries if entry.kind == kind]
        if not of_kind:
            continue
        current = fetch(on, covered_rows(kind, [entry.ref for entry in of_kind]))
        for entry in of_kind:
            breach = audit.covered_row_breach(entry, current.get(entry.ref), table=table.table)
            if breach is not None:
                found.append(breach)
                break
    unknown = next((entry for entry in entries if entry.kind not in COVERED), None)
    if unknown is not None:
        found.append(
            Breach(seq=unknown.seq, kind=unknown.kind, ref=unknown.ref, why=f"unknown kind {unknown.kind!r}")
        )
    return found
