"""The connection to PostgreSQL dies after the server committed a batch but before the engine heard so: the commit's
outcome is unknown to the engine, which retries the same batch. The retry must neither fail forever nor write twice.

Inflicted with a byte-level TCP proxy in front of the private PostgreSQL that, once armed, forwards the next COMMIT
to the server and then cuts the connection without passing the server's reply back."""

from __future__ import annotations

import contextlib
import socket
import threading
from pathlib import Path

import pytest

from tests.faults.conftest import PrivatePostgres, PrivateRedis
from tests.faults.desk import ENGINE_ONLY, rows, scalar
from tests.support import Service, eventually

pytestmark = pytest.mark.faults

FULL_SPEED = [*ENGINE_ONLY, "--speed", "0", "--profile", "aggressive", "--seed", "1"]


class CommitCutter:
    """A TCP proxy to PostgreSQL; `arm()` makes it swallow the reply to the next COMMIT and drop that connection."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.armed = threading.Event()
        self.cut = threading.Event()
        self.closing = False
        threading.Thread(target=self._accept, daemon=True).start()

    def arm(self) -> None:
        self.armed.set()

    def close(self) -> None:
        self.closing = True
        self.listener.close()

    def _accept(self) -> None:
        while not self.closing:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.upstream_port))
            swallow = threading.Event()
            threading.Thread(target=self._pump_up, args=(client, server, swallow), daemon=True).start()
            threading.Thread(target=self._pump_down, args=(server, client, swallow), daemon=True).start()

    def _pump_up(self, client: socket.socket, server: socket.socket, swallow: threading.Event) -> None:
        with contextlib.suppress(OSError):
            while chunk := client.recv(65536):
                server.sendall(chunk)
                if self.armed.is_set() and b"COMMIT\x00" in chunk:
                    self.armed.clear()
                    swallow.set()
                    # Let the server finish the commit, then cut both sides: the client never hears the outcome.
                    threading.Timer(0.5, self._cut, args=(client, server)).start()
                    return

    def _pump_down(self, server: socket.socket, client: socket.socket, swallow: threading.Event) -> None:
        with contextlib.suppress(OSError):
            while chunk := server.recv(65536):
                if swallow.is_set():
                    continue
                client.sendall(chunk)

    def _cut(self, client: socket.socket, server: socket.socket) -> None:
        for sock in (client, server):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self.cut.set()


def test_a_batch_whose_commit_succeeded_unseen_is_not_written_twice_and_the_engine_carries_on(
    tmp_path: Path, private_database_url: str, private_postgres: PrivatePostgres, private_redis: PrivateRedis
) -> None:
    cutter = CommitCutter(private_postgres.port)
    proxied = private_database_url.replace(f":{private_postgres.port}/", f":{cutter.port}/")
    env = {"TRADEOS_DATABASE_URL": proxied, "TRADEOS_REDIS_URL": private_redis.url}
    url = private_database_url
    try:
        service = Service(tmp_path / "home", FULL_SPEED, env)
        try:
            eventually(lambda: scalar(url, "SELECT count(*) FROM orders"), timeout=60, what="orders to flow")
            cutter.arm()
            eventually(cutter.cut.is_set, timeout=20, what="a COMMIT to be cut")
            committed = scalar(url, "SELECT count(*) FROM bars")
            eventually(
                lambda: scalar(url, "SELECT count(*) FROM bars") > committed + 8 * 600,
                timeout=10,
                what="the engine to carry on after the unseen commit",
            )
            assert service.process.poll() is None
        finally:
            service.kill()  # a stuck engine would spend its 10 s shutdown grace retrying
        count, distinct = rows(url, "SELECT count(*), count(DISTINCT (timestamp, symbol)) FROM bars")[0]
        assert count == distinct
        assert not rows(url, "SELECT timestamp FROM equity GROUP BY timestamp HAVING count(*) > 1")
    finally:
        cutter.close()
