"""The tamper-evident audit ledger, as pure functions: how an event becomes a ledger entry, how entries are chained
and sealed with HMAC-SHA256, and how a chain read back is checked. No I/O: the record module
(live/stores/record/audit.py) appends and reads the entries, the key comes from live/stores/audit_key.py.

Each entry's hash seals its place in the chain and everything it says:

    hash = hex(HMAC-SHA256(key, canonical_json([prev_hash, seq, kind, ref, actor, origin, recorded_at, payload])))

`payload` is the covered row as canonical JSON (keys sorted, no spaces, Decimals as strings, times as ISO 8601 UTC
with `Z`); the first entry's `prev_hash` is `GENESIS`. Without the key nobody can rewrite an entry, delete one or
splice the chain and make it verify again.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from live.domain import iso_utc, require_utc

GENESIS = "0" * 64

ORDER = "order"
FILL = "fill"
RISK_EVENT = "risk_event"
CONTROL_ACTION = "control_action"
KINDS: tuple[str, ...] = (ORDER, FILL, RISK_EVENT, CONTROL_ACTION)

ENGINE_ACTOR = "engine"
_MONEY_PLACES = Decimal("1e-8")  # numeric(24, 8): what PostgreSQL keeps of a Decimal


@dataclass(frozen=True, slots=True, kw_only=True)
class Pending:
    """An event to be appended: what it is, the id of the row it covers, who and from where, the row itself."""

    kind: str
    ref: str
    actor: str
    origin: str
    payload: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Entry:
    """One sealed ledger row."""

    seq: int
    recorded_at: datetime
    kind: str
    ref: str
    actor: str
    origin: str
    payload: str
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Head:
    """The last entry of a chain (or where a check resumes): its seq and hash."""

    seq: int
    hash: str


START = Head(seq=0, hash=GENESIS)


@dataclass(frozen=True, slots=True, kw_only=True)
class Breach:
    """The first record that does not verify: which, and why."""

    seq: int
    kind: str
    ref: str
    why: str

    def describe(self) -> str:
        return f"seq {self.seq} ({self.kind} {self.ref}): {self.why}"


def _canonical_value(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, int | str):
        return value
    if isinstance(value, Decimal):
        if value.is_zero():
            return "0"
        return format(value.quantize(_MONEY_PLACES, rounding=ROUND_HALF_UP).normalize(), "f")
    if isinstance(value, datetime):
        return iso_utc(require_utc(value))
    if isinstance(value, float):
        return repr(value)
    raise TypeError(f"no canonical form for {type(value).__name__}")


def canonical_json(value: Any) -> str:
    """Keys sorted, no spaces, non-ASCII kept as is: one text for one value, whoever writes it."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def payload_of(columns: Sequence[str], row: Sequence[Any]) -> str:
    """A covered row (its columns and values, as written or as read back) as canonical JSON: Decimals at
    numeric(24, 8) precision as plain strings, times in UTC, so the engine's values and PostgreSQL's read-back
    give the same text."""
    if len(columns) != len(row):
        raise ValueError(f"{len(columns)} columns, {len(row)} values")
    return canonical_json({name: _canonical_value(value) for name, value in zip(columns, row, strict=True)})


def entry_hash(
    key: bytes,
    *,
    prev_hash: str,
    seq: int,
    kind: str,
    ref: str,
    actor: str,
    origin: str,
    recorded_at: datetime,
    payload: str,
) -> str:
    """HMAC-SHA256 of the entry's fields (module docstring), hex."""
    message = canonical_json(
        [prev_hash, seq, kind, ref, actor, origin, iso_utc(require_utc(recorded_at)), payload]
    )
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).hexdigest()


def seal(pending: Iterable[Pending], *, head: Head, key: bytes, recorded_at: datetime) -> list[Entry]:
    """The entries that continue the chain ending at `head`, in order."""
    entries: list[Entry] = []
    prev = head
    for event in pending:
        seq = prev.seq + 1
        digest = entry_hash(
            key,
            prev_hash=prev.hash,
            seq=seq,
            kind=event.kind,
            ref=event.ref,
            actor=event.actor,
            origin=event.origin,
            recorded_at=recorded_at,
            payload=event.payload,
        )
        entries.append(
            Entry(
                seq=seq,
                recorded_at=recorded_at,
                kind=event.kind,
                ref=event.ref,
                actor=event.actor,
                origin=event.origin,
                payload=event.payload,
                prev_hash=prev.hash,
                hash=digest,
            )
        )
        prev = Head(seq=seq, hash=digest)
    return entries


class ChainCheck:
    """Walks a chain in seq order from `start` (the whole chain from `START`), entry by entry, so a ledger of any
    size is checked in constant memory. `check` returns the first breach and every later call returns it again."""

    def __init__(self, key: bytes, *, start: Head = START) -> None:
        self._key = key
        self.head = start
        self.checked = 0
        self.breach: Breach | None = None

    def check(self, entry: Entry) -> Breach | None:
        if self.breach is not None:
            return self.breach
        expected = self.head.seq + 1
        why = ""
        if entry.seq < expected:
            why = f"seq {entry.seq} out of order after seq {self.head.seq}"
        elif entry.seq > expected:
            missing = f"seq {expected}" if entry.seq == expected + 1 else f"seqs {expected}..{entry.seq - 1}"
            why = f"{missing} missing before it (deleted rows)"
        elif entry.prev_hash != self.head.hash:
            why = f"prev_hash mismatch: it does not chain to seq {self.head.seq}"
        elif not hmac.compare_digest(entry.hash, self._recomputed(entry)):
            why = "hash mismatch: the entry was changed after it was sealed"
        if why:
            self.breach = Breach(seq=entry.seq, kind=entry.kind, ref=entry.ref, why=why)
            return self.breach
        self.head = Head(seq=entry.seq, hash=entry.hash)
        self.checked += 1
        return None

    def _recomputed(self, entry: Entry) -> str:
        return entry_hash(
            self._key,
            prev_hash=entry.prev_hash,
            seq=entry.seq,
            kind=entry.kind,
            ref=entry.ref,
            actor=entry.actor,
            origin=entry.origin,
            recorded_at=entry.recorded_at,
            payload=entry.payload,
        )


def covered_row_breach(entry: Entry, current: str | None, *, table: str) -> Breach | None:
    """The row an entry covers, as it reads now (`current`, canonical JSON; None: gone), against what was sealed.
    An order's status moves on after its intent (submitted, then filled or cancelled), so only a refused order's
    status is held to what was sealed; every other field of every covered row is."""
    if current is None:
        return Breach(seq=entry.seq, kind=entry.kind, ref=entry.ref, why=f"its {table} row is gone")
    if current == entry.payload:
        return None
    sealed: Mapping[str, Any] = json.loads(entry.payload)
    now: Mapping[str, Any] = json.loads(current)
    changed = sorted(
        name
        for name in sealed.keys() | now.keys()
        if sealed.get(name) != now.get(name)
        and not (entry.kind == ORDER and name == "status" and sealed.get(name) != "rejected")
    )
    if not changed:
        return None
    detail = ", ".join(f"{name} {sealed.get(name)!r} -> {now.get(name)!r}" for name in changed)
    return Breach(
        seq=entry.seq,
        kind=entry.kind,
        ref=entry.ref,
        why=f"its {table} row was changed after it was sealed ({detail})",
    )
