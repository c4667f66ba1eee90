"""The book's lease: one engine trades it at a time, and a write with an older fencing token lands nothing.

Renewed every TTL/3 by a thread of its own, on a connection of its own: a renewal is a commit, and at full speed a
commit waits behind the engine's COPY batches (measured: up to 270 ms), which nothing else may wait behind.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time

import psycopg

from live.stores.postgres import PostgresStore

log = logging.getLogger("tradeos.engine")


class Lease:
    """A lease this engine holds (its fencing token is known): valid until the TTL from the last renewal asked."""

    def __init__(self, *, holder: str, token: int, ttl_seconds: float, asked_at: float) -> None:
        self.holder = holder
        self.token = token
        self.ttl_seconds = ttl_seconds
        self.valid_until = asked_at + ttl_seconds
        self.lost = threading.Event()

    @classmethod
    def acquire(
        cls, pg: PostgresStore, *, holder: str, ttl_seconds: float, stop: threading.Event
    ) -> Lease | None:
        """Waits (standing by, trading nothing) while another engine holds the book; None once `stop` is set."""
        announced = False
        while not stop.is_set():
            asked_at = time.monotonic()
            token = pg.acquire_lease(holder=holder, ttl_seconds=ttl_seconds)
            if token is not None:
                log.info("engine %s holds the book (fencing token %s)", holder, token)
                return cls(holder=holder, token=token, ttl_seconds=ttl_seconds, asked_at=asked_at)
            if not announced:
                current = pg.lease_holder()
                log.warning(
                    "the book is leased to another engine (%s) until %s; this one stands by and will not trade",
                    current[0] if current else "?",
                    current[1].isoformat() if current else "?",
                )
                announced = True
            stop.wait(min(1.0, ttl_seconds / 3))
        return None

    def valid(self) -> bool:
        """By our own clock: a frozen engine wakes up expired."""
        return not self.lost.is_set() and time.monotonic() <= self.valid_until

    def fenced_off(self) -> None:
        """A write was refused for our token: another engine holds the book."""
        self.lost.set()

    def keep(self, database_url: str, stop: threading.Event) -> None:
        """The renewal thread. Survives any error: without renewals the lease expires and the gate refuses orders."""
        pg: PostgresStore | None = None
        try:
            while not stop.is_set():
                try:
                    if pg is None:
                        pg = PostgresStore(database_url)
                    self._renew(pg)
                except psycopg.Error:
                    pass  # PostgreSQL unreachable: the next pass reconnects; the gate fails closed meanwhile
                except Exception:
                    log.exception("lease renewal: unexpected error; going on")
                stop.wait(self.ttl_seconds / 3)
        finally:
            if pg is not None:
                with contextlib.suppress(psycopg.Error):
                    pg.close()

    def release(self, pg: PostgresStore) -> None:
        """At a clean stop, so a standby takes over at once (it would otherwise wait for the TTL)."""
        if self.lost.is_set():
            return
        try:
            pg.release_lease(holder=self.holder, token=self.token)
        except psycopg.Error:
            log.warning("could not release the lease (it expires by itself)")

    def _renew(self, pg: PostgresStore) -> None:
        asked_at = time.monotonic()
        try:
            if pg.renew_lease(holder=self.holder, token=self.token, ttl_seconds=self.ttl_seconds):
                self.valid_until = asked_at + self.ttl_seconds
            else:
                log.error("lease lost to another engine: no further order is submitted")
                self.lost.set()
        except psycopg.Error:
            with contextlib.suppress(psycopg.Error):
                pg.reconnect()
