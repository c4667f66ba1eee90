"""Crash: `kill -9` of the whole service (engine and APIs) while it trades at full speed and operators halt and
resume through the API. The ledger is written in the transactions it covers, so whatever was committed has its
entries and nothing else does: the chain verifies after each crash, and the restarted service continues it."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.support import Service, eventually, free_port, run_cli

pytestmark = pytest.mark.faults

COVERED = {
    "order": "orders",
    "fill": "fills",
    "risk_event": "risk_events",
    "control_action": "control_actions",
}


def _scalar(url: str, sql: str) -> Any:
    with psycopg.connect(url) as conn:
        row = conn.execute(sql).fetchone()
        return row[0] if row else None


class Operators(threading.Thread):
    """Halts and resumes through the API, over and over, until told to stop or the API is gone."""

    def __init__(self, port: int) -> None:
        super().__init__(name="operators", daemon=True)
        self.port = port
        self.stopping = threading.Event()
        self.answered = 0

    def run(self) -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=5) as client:
            while not self.stopping.is_set():
                for path in ("/trading/halt", "/trading/resume"):
                    try:
                        response = client.post(
                            path, json={"reason": "crash test"}, headers={"X-Actor": "cli:ops"}
                        )
                    except httpx.TransportError:
                        return
                    if response.status_code == 200:
                        self.answered += 1


def _every_covered_row_has_one_entry(url: str) -> None:
    with psycopg.connect(url) as conn:
        for kind, table in COVERED.items():
            unsealed = conn.execute(
                f"SELECT count(*) FROM {table} t WHERE NOT EXISTS"  # noqa: S608 - our own table names
                " (SELECT 1 FROM audit_ledger a WHERE a.kind = %s AND a.ref = t.id::text)",
                (kind,),
            ).fetchone()
            orphans = conn.execute(
                f"SELECT count(*) FROM audit_ledger a WHERE a.kind = %s AND NOT EXISTS"  # noqa: S608
                f" (SELECT 1 FROM {table} t WHERE t.id::text = a.ref)",
                (kind,),
            ).fetchone()
            assert (unsealed, orphans) == ((0,), (0,)), kind


def test_a_kill_9_while_trading_and_halting_leaves_a_chain_that_verifies_and_the_restart_continues_it(
    tmp_path: Path, database_url: str, redis_url: str
) -> None:
    env = {
        "TRADEOS_DATABASE_URL": database_url,
        "TRADEOS_REDIS_URL": redis_url,
        "TRADEOS_LEASE_TTL_SECONDS": "1",
    }
    home = tmp_path / "home"
    lengths = []
    for crash in range(2):
        api_port = free_port()
        args = [
            "up",
            "--no-flows",
            "--speed",
            "0",
            "--sim-days",
            "60",
            "--profile",
            "aggressive",
            "--api-port",
            str(api_port),
            "--metrics-port",
            str(free_port()),
            "--dashboard-port",
            str(free_port()),
        ]
        with Service(home, args, env) as service:
            before = lengths[-1] if lengths else 0
            eventually(
                lambda: httpx.get(f"http://127.0.0.1:{api_port}/healthz", timeout=2),  # noqa: B023
                timeout=60,
                what="the API",
            )
            operators = Operators(api_port)
            operators.start()
            eventually(
                lambda: (_scalar(database_url, "SELECT count(*) FROM audit_ledger") or 0) > before + 200,  # noqa: B023
                timeout=120,
                what="entries sealed by this run",
            )
            eventually(lambda: operators.answered >= 4, timeout=60, what="operators' halts and resumes")  # noqa: B023
            service.kill()
            operators.stopping.set()
            operators.join(10)

        code, output = run_cli(
            tmp_path / "verifier", ["audit", "verify"], {"TRADEOS_DATABASE_URL": database_url}
        )
        assert code == 0, f"after crash {crash}: {output}"
        _every_covered_row_has_one_entry(database_url)
        lengths.append(_scalar(database_url, "SELECT max(seq) FROM audit_ledger"))
        assert _scalar(database_url, "SELECT count(*) FROM control_actions WHERE actor = 'cli:ops'") >= 4 * (
            crash + 1
        )
    assert lengths[1] > lengths[0]
