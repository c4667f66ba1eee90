"""The audit ledger end to end: a real `tradeos up` (engine and APIs) on the sim, halted and resumed through the
API, leaves a ledger `tradeos audit verify` passes; each kind of tampering with the record or the ledger is named;
the running service halts on a broken ledger; the key file is the owner's alone; the ledger reaches DuckDB."""

from __future__ import annotations

import json
import os
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import httpx
import psycopg
import pytest
import redis

from live.stores import redis_keys
from tests.support import Service, eventually, free_port, run_cli

COVERED = {
    "order": "orders",
    "fill": "fills",
    "risk_event": "risk_events",
    "control_action": "control_actions",
}
ENGINE_ONLY = ["up", "--no-api", "--no-flows", "--speed", "0", "--profile", "aggressive"]


def _rows(url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchall()


def _scalar(url: str, sql: str, params: tuple[Any, ...] = ()) -> Any:
    found = _rows(url, sql, params)
    return found[0][0] if found else None


def _tamper(url: str, sql: str, params: tuple[Any, ...] = ()) -> None:
    """As a superuser who switches the ledger's append-only trigger off for the session."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute(sql, params)


def _with_db(url: str, name: str) -> str:
    return f"{url.rsplit('/', 1)[0]}/{name}"


def _post(port: int, path: str, actor: str, reason: str = "") -> dict[str, Any]:
    response = httpx.post(
        f"http://127.0.0.1:{port}{path}", json={"reason": reason}, headers={"X-Actor": actor}, timeout=30
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


@pytest.fixture(scope="module")
def traded(tmp_path_factory: pytest.TempPathFactory, pg_admin_url: str, redis_db_index: int) -> Iterator[str]:
    """A database a real `tradeos up` (engine, APIs) traded in on the sim, halted and resumed twice through the
    API, then stopped in order: the template each test copies."""
    name = f"tradeos_t_audit_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = _with_db(pg_admin_url, name)
    redis_url = f"{os.environ.get('TRADEOS_TEST_REDIS_URL', 'redis://127.0.0.1:6379')}/{redis_db_index}"
    redis.Redis.from_url(redis_url).flushdb()
    api_port = free_port()
    args = [
        "up",
        "--no-flows",
        "--speed",
        "0",
        "--sim-days",
        "3",
        "--profile",
        "aggressive",
        "--api-port",
        str(api_port),
        "--metrics-port",
        str(free_port()),
        "--dashboard-port",
        str(free_port()),
    ]
    env = {"TRADEOS_DATABASE_URL": url, "TRADEOS_REDIS_URL": redis_url}
    try:
        with Service(tmp_path_factory.mktemp("audit") / "home", args, env) as service:
            eventually(
                lambda: (_scalar(url, "SELECT count(*) FROM fills") or 0) > 0, timeout=120, what="fills"
            )
            eventually(lambda: httpx.get(f"http://127.0.0.1:{api_port}/healthz", timeout=2), what="the API")
            for n in range(2):
                assert _post(api_port, "/trading/halt", "cli:alice", f"check {n}")["status"] == "halted"
                assert _post(api_port, "/trading/resume", "cli:bob")["status"] == "active"
            eventually(lambda: "feed finished" in service.output, timeout=180, what="the feed to finish")
            assert service.stop() == 0
        redis.Redis.from_url(redis_url).flushdb()
        yield url
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def record_copy(traded: str, pg_admin_url: str) -> Iterator[str]:
    """This test's own copy of the traded database, to verify or tamper with."""
    name = f"tradeos_t_audit_copy_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{traded.rsplit("/", 1)[1]}"')
    try:
        yield _with_db(pg_admin_url, name)
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _verify(tmp_path: Path, url: str, **env: str) -> tuple[int, str]:
    return run_cli(tmp_path / "verifier", ["audit", "verify"], {"TRADEOS_DATABASE_URL": url, **env})


def test_verify_passes_on_the_untouched_ledger_of_a_real_run_with_halts_and_resumes(
    tmp_path: Path, record_copy: str
) -> None:
    url = record_copy
    code, output = _verify(tmp_path, url)

    last = _scalar(url, "SELECT max(seq) FROM audit_ledger")
    assert code == 0, output
    assert output.strip() == (
        f"audit ledger intact: {last} entries, last seq {last}, head "
        f"{_scalar(url, 'SELECT hash FROM audit_ledger WHERE seq = %s', (last,))}"
    )
    # Every covered row has exactly one entry, and every entry its row.
    for kind, table in COVERED.items():
        ids = {str(row[0]) for row in _rows(url, f"SELECT id FROM {table}")}  # noqa: S608 - our own table names
        refs = [row[0] for row in _rows(url, "SELECT ref FROM audit_ledger WHERE kind = %s", (kind,))]
        assert sorted(refs) == sorted(ids), kind
    assert _scalar(url, "SELECT count(*) FROM orders") > 0
    operators = _rows(
        url,
        "SELECT actor, origin, payload FROM audit_ledger WHERE kind = 'control_action' AND actor LIKE 'cli:%%'"
        " ORDER BY seq",
    )
    assert [(actor, origin, json.loads(payload)["action"]) for actor, origin, payload in operators] == [
        ("cli:alice", "127.0.0.1", "halt"),
        ("cli:bob", "127.0.0.1", "resume"),
        ("cli:alice", "127.0.0.1", "halt"),
        ("cli:bob", "127.0.0.1", "resume"),
    ]


def test_verify_names_the_fill_whose_price_was_updated_and_its_ledger_seq(
    tmp_path: Path, record_copy: str
) -> None:
    url = record_copy
    fill_id, seq = _rows(
        url, "SELECT ref, seq FROM audit_ledger WHERE kind = 'fill' ORDER BY seq OFFSET 3 LIMIT 1"
    )[0]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE fills SET price = price + 1 WHERE id = %s", (fill_id,))

    code, output = _verify(tmp_path, url)

    assert code == 1, output
    assert f"BROKEN at seq {seq} (fill {fill_id}): its fills row was changed" in output
    assert "price" in output


def test_verify_names_the_record_after_a_deleted_ledger_row(tmp_path: Path, record_copy: str) -> None:
    url = record_copy
    deleted, (after, kind, ref) = 7, _rows(url, "SELECT seq, kind, ref FROM audit_ledger WHERE seq = 8")[0]
    _tamper(url, "DELETE FROM audit_ledger WHERE seq = %s", (deleted,))

    code, output = _verify(tmp_path, url)

    assert code == 1, output
    assert f"BROKEN at seq {after} ({kind} {ref}): seq {deleted} missing before it (deleted rows)" in output


def test_verify_names_a_ledger_row_whose_payload_was_updated(tmp_path: Path, record_copy: str) -> None:
    url = record_copy
    seq, kind, ref, payload = _rows(
        url,
        "SELECT seq, kind, ref, payload FROM audit_ledger WHERE kind = 'control_action' ORDER BY seq LIMIT 1",
    )[0]
    forged = json.dumps({**json.loads(payload), "actor": "nobody"}, sort_keys=True, separators=(",", ":"))
    _tamper(url, "UPDATE audit_ledger SET payload = %s WHERE seq = %s", (forged, seq))

    code, output = _verify(tmp_path, url)

    assert code == 1, output
    assert f"BROKEN at seq {seq} ({kind} {ref}): hash mismatch" in output


def test_the_ledger_refuses_updates_and_deletes(record_copy: str) -> None:
    with psycopg.connect(record_copy, autocommit=True) as conn:
        for statement in ("UPDATE audit_ledger SET actor = 'x' WHERE seq = 1", "DELETE FROM audit_ledger"):
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                conn.execute(statement)
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            conn.execute("TRUNCATE audit_ledger")
    assert _scalar(record_copy, "SELECT count(*) FROM audit_ledger") == _scalar(
        record_copy, "SELECT max(seq) FROM audit_ledger"
    )


def test_verify_without_the_key_cannot_check_and_with_another_key_finds_the_first_entry_broken(
    tmp_path: Path, record_copy: str
) -> None:
    code, output = _verify(tmp_path, record_copy, TRADEOS_AUDIT_KEY="")
    assert code == 2, output
    assert "TRADEOS_AUDIT_KEY is unset" in output

    code, output = _verify(tmp_path, record_copy, TRADEOS_AUDIT_KEY="w" * 40)
    assert code == 1, output
    assert "BROKEN at seq 1 " in output
    assert "hash mismatch" in output


def test_analysts_find_who_halted_when_and_why_in_duckdb(tmp_path: Path, record_copy: str) -> None:
    from flows.sync import sync

    added = sync(tmp_path, record_copy)

    assert added["audit_ledger"] == _scalar(record_copy, "SELECT count(*) FROM audit_ledger")
    with duckdb.connect(str(tmp_path / "analytics.duckdb"), read_only=True) as conn:
        halts = conn.execute(
            "SELECT actor, origin, json_extract_string(payload, '$.reason') FROM audit_ledger"
            " WHERE kind = 'control_action' AND json_extract_string(payload, '$.action') = 'halt'"
            " AND actor LIKE 'cli:%' ORDER BY seq"
        ).fetchall()
        origins = conn.execute("SELECT DISTINCT origin FROM control_actions ORDER BY 1").fetchall()
    assert halts == [("cli:alice", "127.0.0.1", "check 0"), ("cli:alice", "127.0.0.1", "check 1")]
    assert ("127.0.0.1",) in origins


def test_the_running_service_halts_with_audit_chain_broken_when_its_ledger_is_tampered_with(
    tmp_path: Path, database_url: str, redis_url: str
) -> None:
    env = {"TRADEOS_DATABASE_URL": database_url, "TRADEOS_REDIS_URL": redis_url}
    with Service(tmp_path / "home", [*ENGINE_ONLY, "--sim-days", "1"], env) as service:
        eventually(
            lambda: (_scalar(database_url, "SELECT count(*) FROM audit_ledger") or 0) > 10,
            timeout=120,
            what="ledger entries",
        )
        eventually(lambda: "feed finished" in service.output, timeout=120, what="the feed to finish")
        assert not _rows(database_url, "SELECT 1 FROM risk_events WHERE code = 'AUDIT_CHAIN_BROKEN'")
        seq, payload = _rows(
            database_url, "SELECT seq, payload FROM audit_ledger ORDER BY seq OFFSET 5 LIMIT 1"
        )[0]
        _tamper(
            database_url,
            "UPDATE audit_ledger SET payload = %s WHERE seq = %s",
            (payload.replace("1", "2"), seq),
        )

        event = eventually(
            lambda: _rows(
                database_url,
                "SELECT detail, halts_trading FROM risk_events WHERE code = 'AUDIT_CHAIN_BROKEN'",
            ),
            timeout=30,
            what="the AUDIT_CHAIN_BROKEN risk event",
        )
        assert event == [(event[0][0], True)]
        assert f"seq {seq} " in event[0][0]
        assert "hash mismatch" in event[0][0]
        halt = eventually(
            lambda: _rows(
                database_url,
                "SELECT actor FROM control_actions WHERE action = 'halt' ORDER BY id DESC LIMIT 1",
            ),
            what="the breaker's halt on record",
        )
        assert halt == [("circuit_breaker:AUDIT_CHAIN_BROKEN",)]
        posted = redis.Redis.from_url(redis_url).get(redis_keys.TRADING_STATE)
        assert posted is not None
        assert json.loads(posted)["state"] == "halted"


def test_tradeos_up_makes_an_owner_only_key_file_and_refuses_one_others_can_read(
    tmp_path: Path, database_url: str, redis_url: str
) -> None:
    home = tmp_path / "home"
    env = {"TRADEOS_DATABASE_URL": database_url, "TRADEOS_REDIS_URL": redis_url, "TRADEOS_AUDIT_KEY": ""}
    with Service(home, [*ENGINE_ONLY, "--sim-days", "1"], env) as service:
        eventually(lambda: "feed finished" in service.output, timeout=120, what="the feed to finish")
        assert service.stop() == 0
    key_file = home / "audit.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.read_text().strip() not in service.output
    code, output = _verify(tmp_path, database_url, TRADEOS_AUDIT_KEY="", TRADEOS_HOME=str(home))
    assert code == 0, output

    key_file.chmod(0o640)
    code, output = run_cli(home, [*ENGINE_ONLY, "--sim-days", "1"], env)
    assert code == 2, output
    assert output.strip().splitlines()[-1] == (
        f"tradeos: TRADEOS_AUDIT_KEY: {key_file}: mode 0640 lets others read it; refused (chmod 600 it, and treat "
        "the key as leaked)"
    )
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o640
