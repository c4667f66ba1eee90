"""Bearer-token auth shared by both APIs (CONTRACT.md §3): constant-time, and the token never reaches a log.

An app that uses `require_token` keeps its `Settings` in `app.state.settings`; with no `tool_token` set,
everything is open.
"""

from __future__ import annotations

import hmac
import logging
import re
from typing import Annotated

from fastapi import Depends, HTTPException, Request, WebSocket, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from live.settings import Settings

_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <TRADEOS_TOOL_TOKEN>`")
_TOKEN_IN_TEXT = re.compile(r"(token=)[^&\s\"']+", re.IGNORECASE)


def token_matches(expected: str | None, presented: str | None) -> bool:
    """True when no token is configured, or when `presented` equals it (compared in constant time)."""
    if expected is None:
        return True
    if presented is None:
        return False
    return hmac.compare_digest(expected.encode(), presented.encode())


def _bearer_token(authorization: str | None) -> str | None:
    scheme, _, credentials = (authorization or "").partition(" ")
    return credentials.strip() or None if scheme.lower() == "bearer" else None


async def require_token(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> None:
    """Dependency for every HTTP route: 401 with `WWW-Authenticate: Bearer` unless the bearer token matches."""
    settings: Settings = request.app.state.settings
    presented = credentials.credentials if credentials else None
    if not token_matches(settings.tool_token, presented):
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="missing or invalid bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )


def websocket_authorized(websocket: WebSocket, expected: str | None) -> bool:
    """A WebSocket may present the token as `?token=` or as a bearer header."""
    presented = websocket.query_params.get("token") or _bearer_token(websocket.headers.get("authorization"))
    return token_matches(expected, presented)


class RedactTokens(logging.Filter):
    """Scrubs `token=...` from log records (uvicorn logs WebSocket paths with their query string)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _TOKEN_IN_TEXT.sub(r"\1***", a) if isinstance(a, str) else a for a in record.args
            )
        if isinstance(record.msg, str):
            record.msg = _TOKEN_IN_TEXT.sub(r"\1***", record.msg)
        return True


def redact_server_logs() -> None:
    """Installs `RedactTokens` on uvicorn's loggers, once per process."""
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in logger.filters):
            logger.addFilter(RedactTokens())
