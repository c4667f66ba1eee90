"""`tradeos audit verify`: walks the whole audit ledger (live/audit.py) and the rows it covers, page by page in one
consistent snapshot, and names the first broken record. Exit 0 when intact, 1 when broken, 2 when it cannot check
(no key, no database)."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import Any

import psycopg

from live.audit import ChainCheck
from live.settings import Settings
from live.stores import record
from live.stores.audit_key import AuditKeyError, audit_key

EXIT_INTACT = 0
EXIT_BROKEN = 1
EXIT_CANNOT_CHECK = 2
PAGE = 5_000


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds `tradeos audit verify` to the `tradeos` parser."""
    audit = subparsers.add_parser("audit", help="the tamper-evident audit ledger")
    actions = audit.add_subparsers(dest="audit_command", required=True)
    actions.add_parser(
        "verify",
        help="check the whole hash chain and the rows it covers; exit 0 when intact, 1 naming the first broken "
        "record",
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    """`tradeos audit verify`: one line on stdout when intact, one on stderr naming the first broken record."""
    try:
        key = audit_key(settings.stores.audit_key, settings.home_dir, create=False)
    except AuditKeyError as exc:
        return _cannot_check(str(exc))
    url = _database_url(settings)
    if url is None:
        return _cannot_check(
            f"TRADEOS_DATABASE_URL is unset and no embedded PostgreSQL is running under {settings.home_dir}"
        )
    try:
        conn = psycopg.connect(url, connect_timeout=5)
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return _cannot_check(f"TRADEOS_DATABASE_URL: cannot connect to PostgreSQL ({first})")
    with conn:
        try:
            return _verify(conn, key)
        except psycopg.errors.UndefinedTable:
            return _cannot_check(
                "this database has no audit ledger yet (start `tradeos up` once to create it)"
            )


def _verify(conn: psycopg.Connection[Any], key: bytes) -> int:
    # One snapshot: the entries and the rows they cover as of one instant, whatever the engine writes meanwhile.
    conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
    check = ChainCheck(key)
    last = record.fetch(conn, record.audit.last_seq())
    with _progress(total=last) as advance:
        while True:
            read, breach = record.audit.check_page(conn, check, limit=PAGE, covered=True)
            advance(check.head.seq)
            if breach is not None:
                print(f"tradeos audit verify: BROKEN at {breach.describe()}", file=sys.stderr)
                return EXIT_BROKEN
            if read < PAGE:
                break
    print(f"audit ledger intact: {check.checked} entries, last seq {check.head.seq}, head {check.head.hash}")
    return EXIT_INTACT


@contextlib.contextmanager
def _progress(*, total: int) -> Iterator[Callable[[int], None]]:
    """A progress bar on a terminal (stderr), for a ledger big enough to wait for; nothing otherwise."""
    if total < PAGE or not sys.stderr.isatty():
        yield lambda _done: None
        return
    from rich.progress import Progress

    with Progress(transient=True) as progress:
        task = progress.add_task("verifying the audit ledger", total=total)
        yield lambda done: progress.update(task, completed=done)


def _database_url(settings: Settings) -> str | None:
    if settings.stores.database_url is not None:
        return settings.stores.database_url.get_secret_value()
    from live.stores.embedded import running_embedded_url

    return running_embedded_url(settings.home_dir, "postgres")


def _cannot_check(message: str) -> int:
    print(f"tradeos audit verify: {message}", file=sys.stderr)
    return EXIT_CANNOT_CHECK
