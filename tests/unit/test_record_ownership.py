"""The record module (live/stores/record/) owns every statement on the system-of-record tables: the API keeps no SQL
of its own on them, and the analysts' DuckDB copy names the columns the record names."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from analytics.warehouse import SYNCED_TABLES, SyncedTable
from live.stores import record

ROOT = Path(__file__).resolve().parents[2]

ENGINE_TABLES = (
    "bars",
    "signals",
    "orders",
    "fills",
    "positions",
    "equity",
    "risk_events",
    "regime_changes",
    "control_actions",
    "engine_lease",
    "engine_state",
    "api_requests",
    "profile_versions",
)
_TABLE = rf"\b(?:{'|'.join(ENGINE_TABLES)})\b"
_STATEMENT = re.compile(
    rf"\bSELECT\b.*\b(?:FROM|JOIN)\s+{_TABLE}"
    rf"|\bINSERT\s+INTO\s+{_TABLE}"
    rf"|\bUPDATE\s+{_TABLE}\s+SET\b"
    rf"|\bDELETE\s+FROM\s+{_TABLE}"
    rf"|\bCOPY\s+{_TABLE}",
    re.IGNORECASE | re.DOTALL,
)


def _strings(source: str) -> list[tuple[int, str]]:
    """Every string literal of a module with its line; an f-string is read as its literal parts joined, so
    `f"SELECT {columns} FROM fills"` is seen whole."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.JoinedStr):
            parts = [v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str)]
            found.append((node.lineno, " ".join(parts)))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            found.append((node.lineno, node.value))
    return found


def sql_on_engine_tables(source: str) -> list[tuple[int, str]]:
    """(line, statement) of each string literal in `source` that is a statement on a system-of-record table."""
    return [(line, text) for line, text in _strings(source) if _STATEMENT.search(text)]


def _offences(package: Path) -> list[str]:
    return [
        f"{path.relative_to(package.parent)}:{line}: {text[:80]!r}"
        for path in sorted(package.rglob("*.py"))
        for line, text in sql_on_engine_tables(path.read_text())
    ]


def test_the_api_keeps_no_sql_on_engine_tables() -> None:
    assert _offences(ROOT / "api") == []


@pytest.mark.parametrize(
    "source",
    [
        'q = "SELECT initial_cash FROM engine_state WHERE id = 1"',
        'q = ("SELECT id, order_id, realized_pnl"\n     " FROM fills ORDER BY timestamp, id")',
        "q = f\"SELECT {', '.join(COLUMNS)} FROM fills\"",
        'q = "SELECT DISTINCT ON (symbol) symbol, close FROM bars ORDER BY symbol, timestamp DESC"',
        'q = "INSERT INTO control_actions (timestamp, action) VALUES (%s, %s)"',
        'q = "COPY api_requests (timestamp, method, path, status, latency_ms) FROM STDIN"',
        'q = "UPDATE engine_lease SET expires_at = now() WHERE id = 1"',
        'q = "delete from orders where id = %s"',
    ],
)
def test_the_scan_finds_a_statement_on_an_engine_table(source: str) -> None:
    assert sql_on_engine_tables(source) != []


@pytest.mark.parametrize(
    "source",
    [
        'q = "SELECT * EXCLUDE (as_of) FROM performance_summary"',
        'q = "SELECT 1"',
        '"""The book rebuilt from PostgreSQL\'s fills, marked at each symbol\'s last recorded close."""',
        'q = "SELECT pg_advisory_lock(%s)"',
    ],
)
def test_the_scan_leaves_other_strings_alone(source: str) -> None:
    assert sql_on_engine_tables(source) == []


@pytest.mark.parametrize("table", SYNCED_TABLES, ids=lambda t: t.name)
def test_the_warehouse_copies_the_columns_the_record_names(table: SyncedTable) -> None:
    assert table.column_names == record.COLUMNS[table.name]
