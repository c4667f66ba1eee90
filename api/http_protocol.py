"""uvicorn's httptools protocol, answering a WebSocket handshake too large for the WebSocket library.

uvicorn parses the upgrade request with httptools (no size limit), then hands it, re-serialised, to the
`websockets` implementation, which refuses a line over 8 kB or more than 128 headers by dropping the handshake
without a word: the client waits forever and the socket is held. A `/ws?token=<64 kB>` did exactly that. Here the
same limits are checked first and such a handshake gets a 414 or 431 and a close, like any other bad request.
"""

from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# The `websockets` handshake limits (websockets.legacy.http MAX_LINE_LENGTH, MAX_NUM_HEADERS; their defaults).
MAX_LINE_BYTES = 8192
MAX_HEADERS = 128


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
    """HttpToolsProtocol whose WebSocket upgrades are refused with an answer when `websockets` would not take them."""

    def handle_websocket_upgrade(self) -> None:
        refusal = self._oversized_handshake()
        if refusal is None:
            super().handle_websocket_upgrade()
            return
        self.logger.warning("WebSocket handshake refused: %s", refusal.split(b"\r\n", 1)[0].decode("ascii"))
        self.transport.write(refusal)
        self.transport.close()

    def _oversized_handshake(self) -> bytes | None:
        # The request line as re-serialised by uvicorn: METHOD SP URL " HTTP/1.1" CRLF (websockets counts the CRLF).
        if len(self.scope["method"]) + len(self.url) + 12 > MAX_LINE_BYTES:
            return _response(b"414 URI Too Long", f"request line over {MAX_LINE_BYTES} bytes")
        headers: list[tuple[bytes, bytes]] = self.scope["headers"]  # type: ignore[assignment]
        if len(headers) > MAX_HEADERS:
            return _response(b"431 Request Header Fields Too Large", f"more than {MAX_HEADERS} headers")
        if any(len(name) + len(value) + 4 > MAX_LINE_BYTES for name, value in headers):
            return _response(
                b"431 Request Header Fields Too Large", f"a header line over {MAX_LINE_BYTES} bytes"
            )
        return None
