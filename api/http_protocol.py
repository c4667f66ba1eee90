"""uvicorn's httptools protocol, with two bounds uvicorn lacks: a deadline for the request head, and an answer to a
WebSocket handshake too large for the WebSocket library.

uvicorn closes a keep-alive connection left idle after a response, but a connection that never completes its
request head (nothing sent, or half a request line) is held forever: each costs a socket and a file descriptor, so
a few thousand exhaust the server. Here the head must be complete within `header_read_timeout` seconds of the
connection (or of the first byte of a later request on it); otherwise the connection is closed, with a 408 when a
request had begun.

uvicorn parses the upgrade request with httptools (no size limit), then hands it, re-serialised, to the
`websockets` implementation, which refuses a request line or header line over its `MAX_LINE_LENGTH` or more than
its `MAX_NUM_HEADERS` headers by dropping the handshake without a word: the client waits forever and the socket is
held. A `/ws?token=<64 kB>` did exactly that. Here the library's own limits (read from it, so they follow its
settings, e.g. `WEBSOCKETS_MAX_LINE_LENGTH`) are checked first and such a handshake gets a 414 or 431 and a close,
like any other bad request.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from websockets import http11

DEFAULT_HEADER_READ_TIMEOUT_SECONDS = 10.0


def websocket_handshake_limits() -> tuple[int, int]:
    """(max bytes of a request or header line with its CRLF, max number of headers) of the `websockets` library
    in use: uvicorn's default WebSocket implementation parses the handshake with `websockets.http11`."""
    return http11.MAX_LINE_LENGTH, http11.MAX_NUM_HEADERS


def _response(status: bytes, message: str) -> bytes:
    body = message.encode("ascii")
    return b"".join(
        [
            b"HTTP/1.1 ",
            status,
            b"\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ",
            str(len(body)).encode("ascii"),
            b"\r\nconnection: close\r\n\r\n",
            body,
        ]
    )


class BoundedUpgradeProtocol(HttpToolsProtocol):
    """HttpToolsProtocol with a request-head deadline, whose WebSocket upgrades are refused with an answer when
    `websockets` would not take them."""

    header_read_timeout: float = DEFAULT_HEADER_READ_TIMEOUT_SECONDS
    _head_deadline: asyncio.TimerHandle | None = None
    _head_begun = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_deadline()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_begun = True
        if (
            self._head_deadline is None
        ):  # the first request's deadline runs from the connection, not its first byte
            self._arm_head_deadline()

    def on_headers_complete(self) -> None:
        self._disarm_head_deadline()
        self._head_begun = False
        super().on_headers_complete()

    def _arm_head_deadline(self) -> None:
        self._head_deadline = self.loop.call_later(self.header_read_timeout, self._head_not_complete)

    def _disarm_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_not_complete(self) -> None:
        self._head_deadline = None
        if self.transport.is_closing():
            return
        if self._head_begun:
            self.transport.write(
                _response(
                    b"408 Request Timeout", f"request head not complete within {self.header_read_timeout:g} s"
                )
            )
        self.transport.close()

    def handle_websocket_upgrade(self) -> None:
        refusal = self._oversized_handshake()
        if refusal is None:
            super().handle_websocket_upgrade()
            return
        self.logger.warning("WebSocket handshake refused: %s", refusal.split(b"\r\n", 1)[0].decode("ascii"))
        self.transport.write(refusal)
        self.transport.close()

    def _oversized_handshake(self) -> bytes | None:
        max_line, max_headers = websocket_handshake_limits()
        # The request line as re-serialised by uvicorn: METHOD SP URL " HTTP/1.1" CRLF (websockets counts the CRLF).
        if len(self.scope["method"]) + len(self.url) + 12 > max_line:
            return _response(b"414 URI Too Long", f"request line over {max_line} bytes")
        headers: list[tuple[bytes, bytes]] = self.scope["headers"]  # type: ignore[assignment]
        if len(headers) > max_headers:
            return _response(b"431 Request Header Fields Too Large", f"more than {max_headers} headers")
        if any(len(name) + len(value) + 4 > max_line for name, value in headers):
            return _response(b"431 Request Header Fields Too Large", f"a header line over {max_line} bytes")
        return None


def protocol_with_header_read_timeout(seconds: float) -> type[BoundedUpgradeProtocol]:
    """The protocol class for uvicorn's `http` option, with this request-head deadline."""

    class ConfiguredProtocol(BoundedUpgradeProtocol):
        header_read_timeout = seconds

    return ConfiguredProtocol
