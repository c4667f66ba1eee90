"""A local webhook receiver: the outside world an alert goes to, speaking plain HTTP as a real one would.

apprise's `json://HOST:PORT/PATH` POSTs `{"version", "title", "message", "attachments", "type"}` to
`http://HOST:PORT/PATH`; the receiver keeps every request it got and answers `status` (200, or 500 to refuse)."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    path: str
    title: str
    message: str
    answered: int


class WebhookReceiver:
    """`with WebhookReceiver() as hook: hook.url` (an apprise URL); `hook.received` in arrival order."""

    def __init__(self, *, status: int = 200, path: str = "/hooks/tradeos") -> None:
        self.status = status
        self.path = path
        self._received: list[Received] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body: dict[str, Any] = json.loads(self.rfile.read(length) or b"{}")
                answered = receiver.status
                with receiver._lock:
                    receiver._received.append(
                        Received(
                            path=self.path,
                            title=str(body.get("title", "")),
                            message=str(body.get("message", "")),
                            answered=answered,
                        )
                    )
                self.send_response(answered)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The apprise URL of this receiver."""
        return f"json://127.0.0.1:{self.port}{self.path}"

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    def titled(self, text: str) -> list[Received]:
        return [r for r in self.received if text in r.title]

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
