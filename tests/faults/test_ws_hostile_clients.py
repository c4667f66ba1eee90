"""WebSocket clients that misbehave, against a real `tradeos up` whose engine trades at full speed (docs/api.md, WebSocket):
one that never reads is dropped while a normal client keeps receiving every event; one that floods the server does
not stop the others nor the hub; a bad token is refused at the handshake, before any message.

Besides the engine's own events, the test publishes numbered `signal` events (16 kB each) on the events channel,
paced on the normal client's progress, so a never-reading client fills its buffers quickly and every marker can be
accounted for."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from live.stores import redis_keys as keys
from tests.faults.api_support import Desk, ws_connect_raw
from tests.faults.conftest import PrivateRedis

pytestmark = pytest.mark.faults

PAD = "x" * 16_000
BATCH = 50
MAX_MARKERS = 6_000
DROP_LOG = "dropping a WebSocket client"


class Reader:
    """A normal client: reads everything, keeps the markers it saw in order."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self.markers: list[int] = []
        self.types: dict[str, int] = {}
        self.closed: ConnectionClosed | None = None
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for raw in self.connection:
                message = json.loads(raw)
                self.types[message["type"]] = self.types.get(message["type"], 0) + 1
                marker = message["data"].get("marker") if message["type"] == "signal" else None
                if marker is not None:
                    self.markers.append(marker)
        except ConnectionClosed as exc:
            self.closed = exc

    async def seen(self, marker: int, within: float = 30) -> None:
        deadline = time.monotonic() + within
        while not self.markers or self.markers[-1] < marker:
            assert self.closed is None, f"the normal client was closed: {self.closed}"
            assert time.monotonic() < deadline, f"marker {marker} not received (last {self.markers[-1:]})"
            await asyncio.sleep(0.005)


class Publisher:
    """Numbered events on the engine's events channel, in batches, each batch once the reader has it all."""

    def __init__(self, redis_url: str) -> None:
        self.client = aioredis.from_url(redis_url)
        self.channel = keys.events_channel(0)
        self.next = 0

    async def batch(self, reader: Reader, size: int = BATCH, within: float = 30) -> float:
        """Publishes `size` markers and waits until the reader has the last; returns how long that took (s)."""
        started = time.monotonic()
        for _ in range(size):
            event = {
                "type": "signal",
                "data": {"marker": self.next, "pad": PAD},
                "timestamp": "2026-01-05T00:00:00Z",
            }
            await self.client.publish(self.channel, json.dumps(event))
            self.next += 1
        await reader.seen(self.next - 1, within)
        return time.monotonic() - started

    async def close(self) -> None:
        await self.client.aclose()


async def _reader(desk: Desk) -> Reader:
    connection = await connect(f"{desk.ws_url}?token={desk.token}", max_size=None, max_queue=None)
    reader = Reader(connection)
    while not reader.types:  # the portfolio_update sent on connect
        assert reader.closed is None
        await asyncio.sleep(0.01)
    return reader


def _close_code(sock: socket.socket, timeout: float = 30) -> int | None:
    """Reads frames off a raw WebSocket until the server's close frame; its status code (None: none came)."""
    sock.settimeout(timeout)
    data, at = b"", 0
    try:
        while chunk := sock.recv(1 << 16):
            data += chunk
            while at + 2 <= len(data):  # server frames are unmasked
                opcode, length, start = data[at] & 0x0F, data[at + 1] & 0x7F, at + 2
                if len(data) < start + 8:  # room for the longest extended length
                    break
                if length == 126:
                    length, start = struct.unpack("!H", data[start : start + 2])[0], start + 2
                elif length == 127:
                    length, start = struct.unpack("!Q", data[start : start + 8])[0], start + 8
                if len(data) < start + length:
                    break
                if opcode == 0x8:
                    return int(struct.unpack("!H", data[start : start + 2])[0]) if length >= 2 else None
                at = start + length
    except (TimeoutError, ConnectionResetError):
        return None
    finally:
        sock.close()
    return None


def _drained_to_close(sock: socket.socket, timeout: float = 30) -> bool:
    """Reads the never-reading client's socket until the server has closed it; False if it stays open."""
    sock.settimeout(timeout)
    try:
        while sock.recv(1 << 20):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True
    return True


async def test_a_client_that_never_reads_is_dropped_while_a_normal_client_receives_everything(
    live_api_desk: tuple[Desk, PrivateRedis],
) -> None:
    desk, _ = live_api_desk
    assert DROP_LOG not in desk.service.output
    stalled, status = ws_connect_raw(desk.api_port, f"/ws?token={desk.token}")
    assert status == 101
    reader = await _reader(desk)
    publisher = Publisher(desk.redis_url)
    batch_seconds: list[float] = []
    try:
        while DROP_LOG not in desk.service.output:
            assert publisher.next < MAX_MARKERS, "the never-reading client was never dropped"
            batch_seconds.append(await publisher.batch(reader))
        dropped_after = publisher.next
        for _ in range(10):  # the normal client carries on after the drop
            batch_seconds.append(await publisher.batch(reader))
        assert reader.markers == list(range(publisher.next)), "the normal client missed or reordered events"
        assert reader.types.get("portfolio_update", 0) > 1, "engine events did not flow meanwhile"
        assert _drained_to_close(stalled), "the dropped client's connection was left open"
        assert desk.service.process.poll() is None
        print(
            f"never-reading client dropped after {dropped_after} markers of 16 kB; normal client got all "
            f"{publisher.next} markers and {reader.types}; batch of {BATCH}: "
            f"{min(batch_seconds) * 1000:.0f}..{max(batch_seconds) * 1000:.0f} ms"
        )
    finally:
        stalled.close()
        await reader.connection.close()
        await publisher.close()


FLOODER = """
import sys
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect
small, large, sent = "z" * 1024, "y" * (1 << 20), [0, 0]
try:
    with connect(sys.argv[1], max_size=None) as connection:
        print("connected", flush=True)
        while True:
            for _ in range(500):
                connection.send(small)
                sent[0] += 1
            connection.send(large)
            sent[1] += 1
            print(sent[0], sent[1], flush=True)
except ConnectionClosed as exc:
    print("closed", exc.rcvd.code if exc.rcvd else None, flush=True)
"""


def _start_flooder(url: str, log: Path) -> subprocess.Popen[bytes]:
    """A client in a process of its own (so it floods the server, not this test's event loop)."""
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-c", FLOODER, url], stdout=out, stderr=subprocess.STDOUT)


def _flooded(log: Path) -> tuple[int, int]:
    """The flooder's last complete progress line (small frames, 1 MB frames) sent so far.

    The flooder is still writing while we read: the text after the last newline may be half a line, so it is dropped.
    """
    complete = log.read_text().split("\n")[:-1]
    counts = [
        fields for fields in (line.split() for line in complete) if len(fields) == 2 and fields[0].isdigit()
    ]
    return (int(counts[-1][0]), int(counts[-1][1])) if counts else (0, 0)


async def test_a_client_that_floods_the_server_slows_no_one_and_the_hub_survives(
    live_api_desk: tuple[Desk, PrivateRedis], tmp_path: Path
) -> None:
    desk, _ = live_api_desk
    reader = await _reader(desk)
    publisher = Publisher(desk.redis_url)
    quiet = [await publisher.batch(reader) for _ in range(5)]
    # A message announced above the server's limit (uvicorn: 16 MiB) closes only that client, with 1009.
    oversized, status = ws_connect_raw(desk.api_port, f"/ws?token={desk.token}", receive_buffer=1 << 20)
    assert status == 101
    oversized.sendall(b"\x81\xff" + struct.pack("!Q", (16 << 20) + 1) + b"mask" + b"o" * 4096)
    assert _close_code(oversized) == 1009
    logs = [tmp_path / f"flooder-{n}.log" for n in range(2)]
    flooders = [_start_flooder(f"{desk.ws_url}?token={desk.token}", log) for log in logs]
    try:
        loud = []
        # While the flooders send (until each has sent 20 MB, at most 40 batches), every marker still arrives.
        for _ in range(40):
            assert all(f.poll() is None for f in flooders), [log.read_text()[-300:] for log in logs]
            loud.append(await publisher.batch(reader, within=120))
            if min(_flooded(log)[1] for log in logs) >= 20:
                break
        assert min(_flooded(log)[1] for log in logs) >= 1, (
            "the flooders never got going: the test proved nothing"
        )
    finally:
        for flooder in flooders:
            flooder.kill()
            flooder.wait(10)
    results = [_flooded(log) for log in logs]
    assert reader.markers == list(range(publisher.next)), "the normal client missed events during the flood"
    # The hub still takes new clients and serves them.
    late = await _reader(desk)
    await publisher.batch(late)
    assert desk.service.process.poll() is None
    assert desk.health().status_code == 200
    print(
        f"flood: (1 kB, 1 MB) messages sent by 2 clients: {results}; batch of {BATCH} markers to the normal client: "
        f"{sorted(quiet)[len(quiet) // 2] * 1000:.0f} ms median quiet, {sorted(loud)[len(loud) // 2] * 1000:.0f} ms "
        "median during the flood"
    )
    for connection in (reader.connection, late.connection):
        await connection.close()
    await publisher.close()


async def test_a_bad_token_on_the_websocket_is_refused_before_any_message(
    live_api_desk: tuple[Desk, PrivateRedis],
) -> None:
    desk, _ = live_api_desk
    token = desk.token
    refused = {
        "no token": ("/ws", {}),
        "empty token": ("/ws?token=", {}),
        "wrong token": ("/ws?token=wrong", {}),
        "token prefix": (f"/ws?token={token[:-1]}", {}),
        "token plus a char": (f"/ws?token={token}x", {}),
        "token in another parameter": (f"/ws?access_token={token}", {}),
        "8 kB token": ("/ws?token=" + "A" * 8000, {}),
        "wrong bearer header": ("/ws", {"Authorization": "Bearer wrong"}),
        "basic header": ("/ws", {"Authorization": f"Basic {token}"}),
        "token in a cookie": ("/ws", {"Cookie": f"token={token}"}),
        "token in the subprotocol": ("/ws", {"Sec-WebSocket-Protocol": token}),
        "wrong token, right header": ("/ws?token=wrong", {"Authorization": f"Bearer {token}"}),
    }
    outcomes = {}
    for what, (path, headers) in refused.items():
        sock, status = ws_connect_raw(desk.api_port, path, headers=headers)
        try:
            assert status != 101, f"{what}: handshake accepted"
            outcomes[what] = status
            sock.settimeout(5)
            rest = b""
            with contextlib.suppress(TimeoutError, ConnectionResetError):
                while chunk := sock.recv(65536):
                    rest += chunk
            assert b"portfolio_update" not in rest, what
        finally:
            sock.close()
    with pytest.raises(InvalidStatus):
        await connect(f"{desk.ws_url}?token=wrong")
    print("refused handshakes:", outcomes)
    # The control: the token as documented, in the query or in the header (any case of the scheme).
    for path, headers in (
        (f"/ws?token={token}", {}),
        ("/ws", {"Authorization": f"Bearer {token}"}),
        ("/ws", {"Authorization": f"bearer {token}"}),
    ):
        async with connect(f"ws://127.0.0.1:{desk.api_port}{path}", additional_headers=headers) as ws:
            assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "portfolio_update"


def _send_handshake(port: int, path: bytes, headers: list[bytes]) -> socket.socket:
    """A WebSocket handshake as raw bytes (the client libraries refuse to send oversized ones)."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(
        b"GET " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        + b"".join(header + b"\r\n" for header in headers)
        + b"\r\n"
    )
    sock.settimeout(10)  # a liveness bound, not a performance one: the answer comes at once or never
    return sock


def test_a_websocket_handshake_too_large_for_the_websocket_library_is_answered_not_left_hanging(
    live_api_desk: tuple[Desk, PrivateRedis],
) -> None:
    """Before: uvicorn handed such a handshake to `websockets`, which dropped it silently; the socket was held."""
    desk, _ = live_api_desk
    token = desk.token.encode()
    refused = {
        "64 kB token in the query": (b"/ws?token=" + b"A" * 65536, [], b"414"),
        "9 kB junk after the right token": (b"/ws?token=" + token + b"&x=" + b"A" * 9000, [], b"414"),
        "64 kB header": (b"/ws?token=" + token, [b"X-Junk: " + b"A" * 65536], b"431"),
        "200 headers": (b"/ws?token=" + token, [b"X-Junk-%d: 1" % n for n in range(200)], b"431"),
    }
    for what, (path, headers, status) in refused.items():
        with _send_handshake(desk.api_port, path, headers) as sock:
            answer = b""
            try:
                while chunk := sock.recv(65536):
                    answer += chunk
            except TimeoutError:
                pytest.fail(f"{what}: not closed 10 s after the handshake; answered: {answer[:200]!r}")
        assert answer.startswith(b"HTTP/1.1 " + status), f"{what}: {answer[:200]!r}"
        assert b"portfolio_update" not in answer, what

    # At the limits exactly (a request line and a header line of 8,192 bytes with their CRLF), with the right
    # token, the handshake succeeds; one byte more is refused.
    def padded_path(line_bytes: int) -> bytes:
        prefix = b"/ws?token=" + token + b"&x="
        return prefix + b"A" * (line_bytes - len(b"GET  HTTP/1.1\r\n") - len(prefix))

    at_limit_header = b"X-Junk: " + b"A" * (8192 - len(b"X-Junk: \r\n"))
    with _send_handshake(desk.api_port, padded_path(8192), [at_limit_header]) as sock:
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 101"), answer[:200]
    with _send_handshake(desk.api_port, padded_path(8193), []) as sock:
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 414"), answer[:200]
    with _send_handshake(desk.api_port, padded_path(100), [at_limit_header + b"A"]) as sock:
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 431"), answer[:200]
    assert desk.health().status_code == 200
