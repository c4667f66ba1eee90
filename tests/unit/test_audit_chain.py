"""The audit ledger's pure part (live/audit.py) and its key file (live/stores/audit_key.py): a sealed chain verifies,
and every kind of change to it is named by the first entry it breaks."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import os
import stat
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import SecretStr

from live import audit
from live.audit import GENESIS, ChainCheck, Entry, Pending
from live.stores.audit_key import KEY_FILE, AuditKeyError, audit_key

KEY = b"k" * 32
T0 = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)


def _pending(n: int) -> Pending:
    return Pending(
        kind=audit.FILL,
        ref=f"f-{n}",
        actor="engine",
        origin="engine",
        payload=audit.payload_of(("id", "price"), (f"f-{n}", Decimal("100.25") + n)),
    )


def _chain(length: int) -> list[Entry]:
    return audit.seal([_pending(n) for n in range(length)], head=audit.START, key=KEY, recorded_at=T0)


def _first_breach(entries: list[Entry], key: bytes = KEY) -> audit.Breach | None:
    check = ChainCheck(key)
    for entry in entries:
        if (breach := check.check(entry)) is not None:
            return breach
    return None


def test_a_sealed_chain_verifies_from_genesis_and_from_where_a_check_left_off() -> None:
    entries = _chain(5)
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5]
    assert entries[0].prev_hash == GENESIS
    assert all(later.prev_hash == earlier.hash for earlier, later in zip(entries, entries[1:], strict=False))
    assert _first_breach(entries) is None
    more = audit.seal(
        [_pending(9)], head=audit.Head(seq=5, hash=entries[-1].hash), key=KEY, recorded_at=T0 + timedelta(1)
    )
    resumed = ChainCheck(KEY, start=audit.Head(seq=5, hash=entries[-1].hash))
    assert resumed.check(more[0]) is None
    assert resumed.head.seq == 6


def test_the_hash_is_the_hmac_of_the_fields_written_in_the_readme() -> None:
    entry = _chain(1)[0]
    message = json.dumps(
        [GENESIS, 1, "fill", "f-0", "engine", "engine", "2026-03-02T14:30:00Z", entry.payload],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    assert entry.hash == hmac.new(KEY, message.encode(), hashlib.sha256).hexdigest()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("payload", '{"id":"f-2","price":"1"}'),
        ("actor", "someone-else"),
        ("origin", "10.0.0.9"),
        ("ref", "f-99"),
        ("kind", "order"),
        ("recorded_at", T0 + timedelta(seconds=1)),
    ],
)
def test_a_changed_entry_is_named_by_its_seq_with_a_hash_mismatch(field: str, value: object) -> None:
    entries = _chain(5)
    entries[2] = dataclasses.replace(entries[2], **{field: value})
    breach = _first_breach(entries)
    assert breach is not None
    assert breach.seq == 3
    assert "hash mismatch" in breach.why


def test_a_deleted_entry_is_named_as_the_missing_seq_before_the_next_one() -> None:
    entries = _chain(5)
    del entries[1]
    breach = _first_breach(entries)
    assert breach is not None
    assert (breach.seq, breach.kind, breach.ref) == (3, "fill", "f-2")
    assert "seq 2 missing" in breach.why


def test_an_entry_resealed_on_another_chain_does_not_chain() -> None:
    entries = _chain(4)
    forged = audit.seal([_pending(7)], head=audit.Head(seq=2, hash=GENESIS), key=KEY, recorded_at=T0)[0]
    entries[2] = forged
    breach = _first_breach(entries)
    assert breach is not None
    assert breach.seq == 3
    assert "prev_hash mismatch" in breach.why


def test_a_chain_sealed_with_another_key_does_not_verify() -> None:
    breach = _first_breach(_chain(2), key=b"x" * 32)
    assert breach is not None
    assert breach.seq == 1


def test_a_row_read_back_from_postgresql_gives_the_payload_the_engine_sealed() -> None:
    columns = ("id", "timestamp", "price", "fee", "quantity", "halts")
    written = ("f-1", T0, Decimal("101.5"), Decimal("0.123456789"), 7, True)
    read_back = (
        "f-1",
        T0.astimezone(timezone(timedelta(hours=-5))),
        Decimal("101.50000000"),
        Decimal("0.12345679"),
        7,
        True,
    )
    assert audit.payload_of(columns, written) == audit.payload_of(columns, read_back)
    assert audit.payload_of(columns, written) == (
        '{"fee":"0.12345679","halts":true,"id":"f-1","price":"101.5","quantity":7,"timestamp":"2026-03-02T14:30:00Z"}'
    )


def test_an_orders_status_may_move_on_but_a_refused_orders_may_not() -> None:
    def order(status: str) -> str:
        return audit.payload_of(("id", "quantity", "status"), ("o-1", 5, status))

    sealed = Entry(
        seq=4,
        recorded_at=T0,
        kind=audit.ORDER,
        ref="o-1",
        actor="engine",
        origin="engine",
        payload=order("submitted"),
        prev_hash=GENESIS,
        hash="",
    )
    assert audit.covered_row_breach(sealed, order("filled"), table="orders") is None
    changed = audit.covered_row_breach(
        sealed, audit.payload_of(("id", "quantity", "status"), ("o-1", 6, "filled")), table="orders"
    )
    assert changed is not None
    assert "quantity 5 -> 6" in changed.why
    refused = dataclasses.replace(sealed, payload=order("rejected"))
    assert audit.covered_row_breach(refused, order("filled"), table="orders") is not None
    gone = audit.covered_row_breach(sealed, None, table="orders")
    assert gone is not None
    assert "gone" in gone.why


def test_the_key_file_is_made_once_owner_only_and_reused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    key = audit_key(None, home)
    path = home / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(key) == 64
    assert audit_key(None, home) == key
    assert [p.name for p in home.iterdir()] == [KEY_FILE]  # no temporary file left behind


def test_a_key_file_others_can_read_is_refused_not_repaired(tmp_path: Path) -> None:
    audit_key(None, tmp_path)
    path = tmp_path / KEY_FILE
    os.chmod(path, 0o644)
    with pytest.raises(AuditKeyError, match="0644"):
        audit_key(None, tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_a_check_never_makes_a_key_and_a_configured_key_wins(tmp_path: Path) -> None:
    with pytest.raises(AuditKeyError, match="TRADEOS_AUDIT_KEY is unset"):
        audit_key(None, tmp_path, create=False)
    assert not (tmp_path / KEY_FILE).exists()
    configured = "c" * 40
    assert audit_key(SecretStr(configured), tmp_path) == configured.encode()
    assert not (tmp_path / KEY_FILE).exists()
