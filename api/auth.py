"""Bearer-token auth shared by both APIs (docs/api.md): constant-time, and the token never reaches a log.

An app that uses `require_token` keeps its `Settings` in `app.state.settings`; with no `api.tool_token` set,
everything is open. A browser that signed in with the token (`api.browser_session`) is accepted by its session
cookie, with a CSRF header on every state-changing request.
"""

from __future__ import annotations

import hmac
import logging
import re
import time
from typing import Annotated

from fastapi import Depends, HTTPException, Request, WebSocket, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.browser_session import (
    CSRF_HEADER,
    SAFE_METHODS,
    SESSION_COOKIE,
    LoginRequired,
    configured_token,
    csrf_valid,
    session_valid,
    wants_login_page,
)

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
    """Dependency for every HTTP route: 401 with `WWW-Authenticate: Bearer` unless the bearer token matches or
    the request carries a valid browser session; a session's POST/PUT/DELETE also needs its CSRF header (403)."""
    expected = configured_token(request.app)
    if expected is None:
        return
    # An Authorization header is judged alone: a wrong one is refused even beside a valid session cookie.
    if "authorization" in request.headers:
        if token_matches(expected, credentials.credentials if credentials else None):
            return
        raise _unauthorized(request)
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie is None or not session_valid(expected, cookie, now=time.time()):
        raise _unauthorized(request)
    if request.method in SAFE_METHODS:
        return
    if not csrf_valid(expected, cookie, request.headers.get(CSRF_HEADER)):
        raise HTTPException(
            status_code=status.HTTP_403_FORBIDDEN,
            detail=f"a request signed in by session cookie must carry the page's {CSRF_HEADER} header",
        )


def _unauthorized(request: Request) -> HTTPException:
    if wants_login_page(request):
        return LoginRequired(next_path=request.url.path)
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail="missing or invalid bearer token",
        headers={"WWW-Authenticate": "Bearer"},
    )


def websocket_authorized(
    websocket: WebSocket, expected: str | None, *, session_allowed: bool = False
) -> bool:
    """A WebSocket may present the token as `?token=` or as a bearer header; with `session_allowed` (the caller
    found the handshake's Origin to be the dashboard's) a valid session cookie instead. A token presented is
    judged alone, as on HTTP: a wrong one is refused even beside a valid cookie."""
    presented = websocket.query_params.get("token") or _bearer_token(websocket.headers.get("authorization"))
    if presented is not None or expected is None or not session_allowed:
        return token_matches(expected, presented)
    return session_valid(expected, websocket.cookies.get(SESSION_COOKIE), now=time.time())


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
