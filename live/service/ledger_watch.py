"""The running service's watch over its audit ledger, on the housekeeping thread (off the engine's hot path).

Every few seconds it checks the entries appended since its last pass (the tail), and one page of a sweep that
walks the whole chain again from the start, the rows the entries cover included, over and over: an entry changed,
deleted or spliced anywhere is found within a sweep. On the first breach it raises `AUDIT_CHAIN_BROKEN` (a risk
event that halts trading, through the breaker path) and stops watching for this run: the ledger needs an operator
(`tradeos audit verify` names the broken record). A later start finds the breach again and halts again.
"""

from __future__ import annotations

import contextlib
import logging
import time
from datetime import UTC, datetime

import psycopg

from live.audit import Breach, ChainCheck
from live.domain import RiskEvent, TradingState
from live.risk import breakers
from live.service.book import Book
from live.stores import record
from live.stores.postgres import PostgresStore

log = logging.getLogger("tradeos.engine")

CHECK_SECONDS = 2.0
_PAGE = 2_000
_TAIL_PAGES = 10  # per pass: the tail catches up over a few passes after a long outage


class LedgerWatch:
    """Re-verifies the ledger continuously; see the module docstring."""

    def __init__(self, *, key: bytes, book: Book, interval_seconds: float = CHECK_SECONDS) -> None:
        self._key = key
        self._book = book
        self._interval = interval_seconds
        self._tail = ChainCheck(key)
        self._sweep = ChainCheck(key)
        self._next = 0.0
        self.breach: Breach | None = None

    def maybe_check(self, pg: PostgresStore) -> None:
        """One pass, when one is due and nothing was found yet; PostgreSQL errors wait for the next pass."""
        now = time.monotonic()
        if self.breach is not None or now < self._next:
            return
        self._next = now + self._interval
        try:
            breach = self._pass(pg)
        except psycopg.Error as exc:
            log.warning("audit ledger check postponed: %s", str(exc).strip()[:200])
            with contextlib.suppress(psycopg.Error):
                pg.reconnect()
            return
        if breach is not None:
            self._trip(breach)

    def _pass(self, pg: PostgresStore) -> Breach | None:
        verified = self._tail.head
        for _ in range(_TAIL_PAGES):
            read, breach = record.audit.check_page(pg.conn, self._tail, limit=_PAGE, covered=False)
            if breach is not None:
                return breach
            if read < _PAGE:
                break
        last = record.fetch(pg.conn, record.audit.last_seq())
        if last < verified.seq:
            return Breach(
                seq=verified.seq,
                kind="ledger",
                ref="",
                why=f"the ledger now ends at seq {last}: entries verified earlier were deleted",
            )
        read, breach = record.audit.check_page(pg.conn, self._sweep, limit=_PAGE, covered=True)
        if breach is None and read < _PAGE:
            self._sweep = ChainCheck(self._key)  # the sweep reached the end: start it again
        return breach

    def _trip(self, breach: Breach) -> None:
        self.breach = breach
        engine = self._book.engine
        event = RiskEvent(
            timestamp=engine.last_timestamp or datetime.now(UTC),
            code=breakers.AUDIT_CHAIN_BROKEN,
            detail=f"audit ledger broken at {breach.describe()}"[:1000],
            halts_trading=True,
        )
        log.critical("%s; trading halted (`tradeos audit verify` names the record)", event.detail)
        with self._book.lock:
            engine.outbox.risk_events.append(event)
            if engine.state is not TradingState.HALTED:
                engine.set_state(
                    TradingState.HALTED, actor=f"circuit_breaker:{event.code}", reason=event.detail
                )
