"""What a hostile or broken client may cost the operator API, over a real uvicorn: a 422 does not echo the body
back, a body over the limit gets a 413, a connection that never completes its request head is closed, a WebSocket
handshake from another site's page is refused, and the handshake limits are the WebSocket library's own."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from operator_api_support import ServerThread, eventually
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from api.request_limits import MAX_BODY_BYTES
from live.settings import Settings
from tests.support import Service, free_port

SMALL_ANSWER = 4096  # bytes: room for every error's loc, msg and type, and a short echo


async def test_a_422_names_the_field_without_echoing_a_large_value(client: httpx.AsyncClient) -> None:
    near_the_limit = MAX_BODY_BYTES - 100
    cases = {
        "long reason": (
            "/trading/halt",
            {"reason": "x" * near_the_limit},
            ["body", "reason"],
            "string_too_long",
        ),
        "long profile": ("/profile", {"profile": "y" * near_the_limit}, ["body", "profile"], "value_error"),
        "long unknown key": ("/trading/halt", {"z" * near_the_limit: 1}, ["body"], "extra_forbidden"),
    }
    for what, (path, body, loc, kind) in cases.items():
        response = await client.post(path, json=body)

        assert response.status_code == 422, what
        assert len(response.content) < SMALL_ANSWER, (what, len(response.content))
        (error,) = response.json()["detail"]
        assert error["type"] == kind, what
        assert error["loc"][: len(loc)] == loc, what
        assert error["msg"], what
    # A short value is still echoed as it was sent.
    (error,) = (await client.post("/profile", json={"profile": "yolo"})).json()["detail"]
    assert error["input"] == "yolo"
    assert "conservative" in error["msg"]


async def test_a_body_over_the_limit_gets_a_413_and_nothing_else(client: httpx.AsyncClient) -> None:
    twenty_mb = json.dumps({"profile": "z" * (20 << 20)}).encode()

    declared = await client.post("/profile", content=twenty_mb, headers={"Content-Type": "application/json"})

    async def chunks() -> object:
        for start in range(0, len(twenty_mb), 1 << 16):
            yield twenty_mb[start : start + (1 << 16)]

    streamed = await client.post("/profile", content=chunks(), headers={"Content-Type": "application/json"})  # type: ignore[arg-type]

    for response in (declared, streamed):
        assert response.status_code == 413
        assert response.json() == {"detail": f"the request body is over {MAX_BODY_BYTES} bytes"}
    assert (await client.get("/trading/status")).json()["profile"] == "balanced"


@pytest.fixture
def impatient_api(api_settings: Settings) -> Iterator[ServerThread]:
    settings = api_settings.model_copy(update={"header_read_timeout_seconds": 0.5})
    with ServerThread(settings) as server:
        yield server


def _read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes; fails if it has not closed 20 s later (a liveness bound far
    above the 0.5 s configured, not a measure of it)."""
    sock.settimeout(20)
    answer = b""
    try:
        while chunk := sock.recv(65536):
            answer += chunk
    except TimeoutError:
        pytest.fail(f"the connection was still open 20 s later; received {answer[:200]!r}")
    except ConnectionResetError:
        pass
    return answer


def test_a_connection_that_never_completes_its_request_head_is_closed(impatient_api: ServerThread) -> None:
    with socket.create_connection(("127.0.0.1", impatient_api.port)) as silent:
        assert _read_until_closed(silent) == b""
    with socket.create_connection(("127.0.0.1", impatient_api.port)) as halfway:
        halfway.sendall(b"GET /heal")
        assert _read_until_closed(halfway).startswith(b"HTTP/1.1 408 ")
    with socket.create_connection(("127.0.0.1", impatient_api.port)) as no_blank_line:
        no_blank_line.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        assert _read_until_closed(no_blank_line).startswith(b"HTTP/1.1 408 ")
    # A complete request on a connection is answered as usual.
    with socket.create_connection(("127.0.0.1", impatient_api.port)) as complete:
        complete.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        assert _read_until_closed(complete).startswith(b"HTTP/1.1 401 ")


async def _first_message(url: str, origin: str | None) -> str:
    async with connect(url, origin=origin) as ws:  # type: ignore[arg-type]
        return str(json.loads(await asyncio.wait_for(ws.recv(), 10))["type"])


@pytest.fixture
def api_with_allowed_origin(api_settings: Settings) -> Iterator[ServerThread]:
    settings = api_settings.model_copy(update={"ws_allowed_origins": "https://desk.example.com"})
    with ServerThread(settings) as server:
        yield server


async def test_a_websocket_from_another_sites_page_is_refused_at_the_handshake(
    api_with_allowed_origin: ServerThread, token: str
) -> None:
    api = api_with_allowed_origin
    url = f"{api.ws_url}?token={token}"
    for refused_origin in (
        "http://evil.example.com",
        f"http://evil.example.com:{api.port}",
        "http://127.0.0.1",
        "http://127.0.0.1:1",
        f"https://127.0.0.1.evil.example.com:{api.port}",
        "null",
        "https://desk.example.com:8443",
    ):
        with pytest.raises(InvalidStatus) as refused:
            await _first_message(url, refused_origin)
        assert refused.value.response.status_code == 403, refused_origin
    for origin in (
        None,  # not a browser
        f"http://127.0.0.1:{api.port}",  # the API's own
        "http://127.0.0.1:18002",  # the dashboard's (TRADEOS_DASHBOARD_PORT)
        "https://desk.example.com",  # TRADEOS_WS_ALLOWED_ORIGINS
    ):
        assert await _first_message(url, origin) == "portfolio_update", origin


def test_an_origin_that_is_not_an_origin_is_refused_at_start_up() -> None:
    with pytest.raises(ValueError, match="not an origin"):
        Settings(ws_allowed_origins="https://desk.example.com, *")


def _handshake(port: int, path: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(
            b"GET " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        sock.settimeout(20)  # liveness: the answer comes at once or never
        try:
            return sock.recv(65536)
        except TimeoutError:
            return b""


async def test_the_websocket_handshake_limits_follow_the_websocket_librarys_settings(
    api_settings: Settings, token: str, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        "TRADEOS_DATABASE_URL": api_settings.stores.database_url.get_secret_value(),
        "TRADEOS_REDIS_URL": api_settings.stores.redis_url.get_secret_value(),
        "TRADEOS_TOOL_TOKEN": token,
        "WEBSOCKETS_MAX_LINE_LENGTH": "4096",
    }
    with Service(tmp_path / "api", ["api", "--api-port", str(port)], env) as api:
        headers = {"Authorization": f"Bearer {token}"}
        await eventually(lambda: _answers(f"http://127.0.0.1:{port}/healthz", headers), within=60)
        prefix = b"/ws?token=" + token.encode() + b"&x="

        def padded(line_bytes: int) -> bytes:
            return prefix + b"A" * (line_bytes - len(b"GET  HTTP/1.1\r\n") - len(prefix))

        assert _handshake(port, padded(4096)).startswith(b"HTTP/1.1 101"), api.output[-2000:]
        assert _handshake(port, padded(4097)).startswith(b"HTTP/1.1 414"), api.output[-2000:]


def _answers(url: str, headers: dict[str, str]) -> bool:
    try:
        return httpx.get(url, headers=headers, timeout=2).status_code in (200, 503)
    except httpx.TransportError:
        return False
