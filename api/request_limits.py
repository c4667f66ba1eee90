"""Bounds on what a request may cost the API: a body over `max_body_bytes` gets a 413 before it is read, and a
422 names what was wrong without echoing the request back (FastAPI's default puts each bad value, whole, in the
answer: a 20 MB body got a 20 MB 422)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY_BYTES = 64 * 1024  # the largest command body (a profile, a 500-character reason) is well under 4 kB
MAX_ECHO_CHARS = 200


class BodyTooLarge(HTTPException):
    """Raised while the body is read; FastAPI passes HTTP exceptions through to the error handlers."""

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=f"the request body is over {limit} bytes")


class BodyLimitMiddleware:
    """Refuses a body over `max_bytes`: at once when its Content-Length says so, else as soon as that much has come."""

    def __init__(self, app: ASGIApp, *, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        received = 0

        async def bounded_receive() -> Message:
            nonlocal received
            if declared is not None and declared > self.max_bytes:
                raise BodyTooLarge(self.max_bytes)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        await self.app(scope, bounded_receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _bounded(value: Any) -> Any:
    """`value` as JSON when short; otherwise the start of its JSON text, marked with `…`."""
    if isinstance(value, str):
        return value if len(value) <= MAX_ECHO_CHARS else value[:MAX_ECHO_CHARS] + "…"
    encoded = jsonable_encoder(value)
    text = json.dumps(encoded, ensure_ascii=False)
    return encoded if len(text) <= MAX_ECHO_CHARS else text[:MAX_ECHO_CHARS] + "…"


def bounded_validation_errors(errors: Any) -> list[dict[str, Any]]:
    """Each error's `loc`, `msg` and `type` as FastAPI gives them, with every echoed value (`input`, `ctx`, long
    keys in `loc`) cut to a few hundred characters."""
    bounded = []
    for error in errors:
        entry: dict[str, Any] = {
            "type": error.get("type"),
            "loc": [_bounded(part) for part in error.get("loc", ())],
            "msg": _bounded(error.get("msg", "")),
        }
        if "input" in error:
            entry["input"] = _bounded(error["input"])
        if error.get("ctx"):
            entry["ctx"] = {key: _bounded(value) for key, value in error["ctx"].items()}
        bounded.append(entry)
    return bounded


def install_request_limits(app: FastAPI, *, max_body_bytes: int = MAX_BODY_BYTES) -> None:
    """The body limit and the bounded 422 on `app`."""

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return JSONResponse({"detail": bounded_validation_errors(exc.errors())}, status_code=422)

    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_body_bytes)
