"""The API-facing fault tests' desk: `tradeos up` serving both apps on free ports against the private servers, with a
token, and what those tests read and send (raw HTTP for requests no client library would send, row counts).

`quiet_desk` runs a short sim to its end (the service stays up, the engine idle but alive), then builds the DuckDB
rollups the Metrics API serves, so every endpoint has real data and the record only changes when a request does.
"""

from __future__ import annotations

import base64
import contextlib
import os
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg

from tests.faults.conftest import PrivatePostgres, PrivateRedis, free_port
from tests.faults.desk import wait_feed_done
from tests.support import Service, eventually

QUIET_SIM = ["--speed", "0", "--sim-days", "1", "--seed", "1", "--profile", "aggressive"]
# Tables that grow on every request by design: the access log (api_requests) is the Metrics API's source.
GROWS_PER_REQUEST = frozenset({"api_requests"})
# What must never come back to a client without the token: fields of every guarded response.
GUARDED_FIELDS = (
    b"total_value",
    b"positions",
    b"realized_pnl",
    b"order_id",
    b"signal_type",
    b"sharpe_ratio",
    b"latency_ms",
    b"openapi",
    b"swagger",
)


@dataclass
class Desk:
    """One running `tradeos up` and the way to reach it."""

    service: Service
    home: Path
    token: str
    api_port: int
    metrics_port: int
    database_url: str
    redis_url: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.api_port}/ws"

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(url, headers=self.auth, timeout=15, **kwargs)

    def health(self) -> httpx.Response:
        return self.get(f"{self.api_url}/healthz")


def start_desk(
    home: Path, *, database_url: str, redis_url: str, args: list[str], env: dict[str, str] | None = None
) -> Desk:
    """`tradeos up` on free ports with a fresh token; returns once the operator API answers."""
    token = "tok-" + uuid.uuid4().hex
    api_port, metrics_port = free_port(), free_port()
    service = Service(
        home,
        [
            "up",
            "--host",
            "127.0.0.1",
            "--api-port",
            str(api_port),
            "--metrics-port",
            str(metrics_port),
            "--dashboard-port",
            str(free_port()),
            "--no-flows",
            *args,
        ],
        {
            "TRADEOS_DATABASE_URL": database_url,
            "TRADEOS_REDIS_URL": redis_url,
            "TRADEOS_TOOL_TOKEN": token,
            **(env or {}),
        },
    )
    desk = Desk(
        service=service,
        home=home,
        token=token,
        api_port=api_port,
        metrics_port=metrics_port,
        database_url=database_url,
        redis_url=redis_url,
    )

    def answering() -> bool:
        assert service.process.poll() is None, service.output[-3000:]
        try:
            return desk.health().status_code in (200, 503) and _answers(desk.metrics_url)
        except httpx.HTTPError:
            return False

    eventually(answering, timeout=60, what="both APIs to answer")
    return desk


def _answers(url: str) -> bool:
    try:
        httpx.get(url + "/metrics/system", timeout=5)
    except httpx.HTTPError:
        return False
    return True


def build_rollups(desk: Desk) -> None:
    """What the flows do, run in-process: sync PostgreSQL into DuckDB, then every rollup the Metrics API reads."""
    from flows.metrics_rollup import rollup_metrics
    from flows.signal_ic import rollup_signal_ic
    from flows.sync import sync

    now = datetime.now(UTC)
    sync(desk.home, desk.database_url)
    rollup_metrics(desk.home, annualization=252, as_of=now)
    rollup_signal_ic(desk.home, as_of=now)


@contextlib.contextmanager
def quiet_desk(cluster: PrivatePostgres, folder: Path) -> Iterator[Desk]:
    """A finished one-day sim (trades, signals, rollups all present), the service up and idle."""
    cluster.ensure_running()
    database_url = cluster.create_database()
    server = PrivateRedis(folder / "redis")
    server.start()
    desk = start_desk(folder / "home", database_url=database_url, redis_url=server.url, args=QUIET_SIM)
    try:
        wait_feed_done(desk.service)
        eventually(lambda: desk.health().status_code == 200, timeout=30, what="a healthy service")
        build_rollups(desk)
        yield desk
    finally:
        desk.service.stop()
        server.stop()
        cluster.ensure_running()
        cluster.drop_database(database_url)


def table_counts(database_url: str) -> dict[str, int]:
    """Row count of every table of the record (the access log excepted: it grows with each request)."""
    with psycopg.connect(database_url) as conn:
        names = [
            name
            for (name,) in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
            ).fetchall()
            if name not in GROWS_PER_REQUEST
        ]
        return {name: int(conn.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]) for name in names}  # type: ignore[index]


@dataclass(frozen=True)
class RawResponse:
    status: int | None  # None: the server closed the connection without a status line
    headers: dict[str, str]
    body: bytes


def raw_request(port: int, request: bytes, *, timeout: float = 15) -> RawResponse:
    """Sends bytes exactly as given (no client normalises the path or the headers) and reads the reply to EOF."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            sock.sendall(request)
        chunks = []
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                chunks.append(chunk)
    data = b"".join(chunks)
    if not data.startswith(b"HTTP/"):
        return RawResponse(None, {}, data)
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return RawResponse(int(lines[0].split()[1]), headers, body)


def http_request(
    method: str, target: str, *, headers: dict[str, str] | None = None, body: bytes = b""
) -> bytes:
    """An HTTP/1.1 request with `Connection: close`, the target sent verbatim."""
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def leaks(body: bytes, token: str) -> list[bytes]:
    """The guarded fields (or the token) found in a response body."""
    found = [name for name in GUARDED_FIELDS if name in body]
    return found + ([b"<token>"] if token.encode() in body else [])


FULL_SPEED = ["--speed", "0", "--seed", "1", "--profile", "aggressive"]


@contextlib.contextmanager
def live_desk(
    cluster: PrivatePostgres, folder: Path, *, args: list[str] = FULL_SPEED, env: dict[str, str] | None = None
) -> Iterator[tuple[Desk, PrivateRedis]]:
    """The sim at full speed, never ending, both APIs up; with the private Redis it uses (a test may stop it)."""
    cluster.ensure_running()
    database_url = cluster.create_database()
    server = PrivateRedis(folder / "redis")
    server.start()
    desk = start_desk(folder / "home", database_url=database_url, redis_url=server.url, args=args, env=env)
    try:
        eventually(lambda: desk.health().status_code == 200, timeout=60, what="a healthy service")
        yield desk, server
    finally:
        desk.service.stop()
        server.stop()
        cluster.ensure_running()
        cluster.drop_database(database_url)


def ws_connect_raw(
    port: int, path: str, *, receive_buffer: int = 4096, headers: dict[str, str] | None = None
) -> tuple[socket.socket, int]:
    """A WebSocket handshake by hand on a socket with a tiny receive buffer; returns the socket (positioned right
    after the handshake response: nothing else is read) and the handshake's status code."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.settimeout(15)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        *(f"{name}: {value}" for name, value in (headers or {}).items()),
    ]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        byte = sock.recv(1)  # one byte at a time: not a byte of the stream after the handshake is consumed
        if not byte:
            break
        head += byte
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
    return sock, status
