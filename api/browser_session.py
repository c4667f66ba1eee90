"""Browser sessions for a holder of `TRADEOS_TOOL_TOKEN` (the docs pages now, the dashboard next).

A browser cannot send `Authorization: Bearer` when it opens a page, so it trades the token once for a cookie:
`POST /session` checks the token in constant time and sets `tradeos_session` (HttpOnly, SameSite=Strict, Path=/,
12 h). The cookie holds only its expiry and an HMAC of it, so it is stateless and valid in every API process that
has the same token; the HMAC key is derived from the token, so rotating the token ends every session.

A request carrying a valid session is accepted like a bearer request (`api.auth.require_token`), except that a
state-changing method also needs `X-CSRF-Token`: a value derived from the session and handed only to our own pages
(which a cross-site page cannot read). SameSite alone is not enough: every port of a host is the same site.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import time
from typing import Final
from urllib.parse import parse_qs

from fastapi import FastAPI, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from live.settings import Settings

SESSION_COOKIE: Final = "tradeos_session"
CSRF_HEADER: Final = "X-CSRF-Token"
SESSION_SECONDS: Final = 12 * 3600
SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
DOCS_PAGE: Final = "/docs"
_KEY_LABEL: Final = b"tradeos browser session v1"
_MAX_COOKIE_LENGTH: Final = 128
# API replicas on other hosts may run a little behind the one that issued a session.
_CLOCK_SKEW_SECONDS: Final = 60
_MAX_FORM_BYTES: Final = 8192


class LoginRequired(HTTPException):
    """A 401 for a browser opening a guarded page: answered with the sign-in form instead of JSON.

    A subclass of HTTPException, so an app that has not installed the form still answers the plain JSON 401."""

    def __init__(self, *, next_path: str) -> None:
        super().__init__(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="missing or invalid bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )
        self.next_path = next_path


def _key(token: str) -> bytes:
    return hmac.new(token.encode(), _KEY_LABEL, hashlib.sha256).digest()


def _mac(token: str, purpose: str, value: str) -> str:
    digest = hmac.new(_key(token), f"{purpose}:{value}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def issue_session(token: str, *, now: float) -> str:
    """A session cookie value valid for `SESSION_SECONDS` from `now` (Unix seconds)."""
    expires = int(now) + SESSION_SECONDS
    return f"{expires}.{_mac(token, 'session', str(expires))}"


def session_valid(token: str, cookie: str | None, *, now: float) -> bool:
    """True when `cookie` was issued with this token and has not expired."""
    if not cookie or len(cookie) > _MAX_COOKIE_LENGTH:
        return False
    expires, _, mac = cookie.partition(".")
    if not expires.isascii() or not expires.isdigit():
        return False
    if not hmac.compare_digest(mac.encode(), _mac(token, "session", expires).encode()):
        return False
    return now < int(expires) <= now + SESSION_SECONDS + _CLOCK_SKEW_SECONDS


def csrf_token(token: str, cookie: str) -> str:
    """The `X-CSRF-Token` value that goes with one session cookie."""
    return _mac(token, "csrf", cookie)


def csrf_valid(token: str, cookie: str, presented: str | None) -> bool:
    return presented is not None and hmac.compare_digest(
        presented.encode(errors="replace"), csrf_token(token, cookie).encode()
    )


def configured_token(app: FastAPI) -> str | None:
    """The app's TRADEOS_TOOL_TOKEN (None: no auth), revealed only for a comparison or a signature."""
    settings: Settings = app.state.settings
    token = settings.api.tool_token
    return None if token is None else token.get_secret_value()


def session_of(request: Request) -> str | None:
    """The request's session cookie when it is valid for the app's token; None otherwise or with no token."""
    token = configured_token(request.app)
    cookie = request.cookies.get(SESSION_COOKIE)
    if token is None or not session_valid(token, cookie, now=time.time()):
        return None
    return cookie


def csrf_for(request: Request) -> str | None:
    """The CSRF value a page served to this request should send back, when it came with a valid session."""
    token = configured_token(request.app)
    cookie = session_of(request)
    return csrf_token(token, cookie) if cookie and token else None


def wants_login_page(request: Request) -> bool:
    """A browser opening one of the app's pages (not a script's fetch, which asks for JSON or anything; not a
    JSON endpoint, which keeps its JSON 401)."""
    pages: tuple[str, ...] = getattr(request.app.state, "login_pages", ())
    return (
        request.method == "GET"
        and request.url.path in pages
        and "text/html" in request.headers.get("accept", "")
    )


_STYLE: Final = (
    "body{font:16px system-ui,sans-serif;background:#f4f5f7;color:#1d2330;margin:0}"
    "main{max-width:26rem;margin:12vh auto;background:#fff;padding:2rem;border-radius:8px;"
    "box-shadow:0 1px 4px #0002}h1{font-size:1.3rem;margin:0 0 1rem}label{display:block;margin:1rem 0 .3rem}"
    "input{width:100%;box-sizing:border-box;padding:.5rem;font:inherit}"
    "button{margin-top:1rem;padding:.5rem 1.2rem;font:inherit;cursor:pointer}"
    ".error{color:#a40000;font-weight:600}.note{color:#5b6270;font-size:.85rem}"
)
_STYLE_HASH: Final = base64.b64encode(hashlib.sha256(_STYLE.encode()).digest()).decode()
# Nothing but our inline style and a form posting to ourselves; no script, no other host, no framing.
LOGIN_PAGE_POLICY: Final = (
    f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


def login_page(*, next_path: str, error: str | None = None) -> HTMLResponse:
    """The 401 a browser sees on a guarded page: a self-contained form that trades the token for a session."""
    message = f'<p class="error" role="alert">{html.escape(error)}</p>' if error else ""
    body = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>TRADEOS - sign in</title><style>{_STYLE}</style></head>
<body><main>
<h1>TRADEOS - sign in</h1>
<p>This page needs the tool token (<code>TRADEOS_TOOL_TOKEN</code>).</p>
{message}
<form method="post" action="/session">
<label for="token">Token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
<input type="hidden" name="next" value="{html.escape(next_path, quote=True)}">
<button type="submit">Sign in</button>
</form>
<p class="note">This browser stays signed in for {SESSION_SECONDS // 3600} hours, until you sign out or the
token changes.</p>
</main></body></html>
"""
    return HTMLResponse(
        body,
        status_code=status.HTTP_401_UNAUTHORIZED,
        headers={
            "WWW-Authenticate": "Bearer",
            "Content-Security-Policy": LOGIN_PAGE_POLICY,
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )


async def _read_form(request: Request) -> dict[str, str]:
    """The urlencoded form, read up to `_MAX_FORM_BYTES` (a token is short; a huge body is refused, not held)."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_FORM_BYTES:
            raise HTTPException(413, detail="the sign-in form is too large")
    fields = parse_qs(body.decode("utf-8", errors="replace"), max_num_fields=8)
    return {name: values[0] for name, values in fields.items() if values}


def _set_session_cookie(response: Response, request: Request, value: str, *, max_age: int) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def install_browser_session(app: FastAPI, *, pages: tuple[str, ...] = (DOCS_PAGE,)) -> None:
    """Adds `POST /session`, `POST /session/logout`, and the sign-in form as the 401 of `pages`, to an app whose
    `app.state.settings` holds the token. A sign-in lands on the page it came from, or the first of `pages`:
    never on a place the form names (no open redirect)."""
    app.state.login_pages = pages
    home = pages[0]

    async def login_required(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, LoginRequired)
        return login_page(next_path=exc.next_path)

    app.add_exception_handler(LoginRequired, login_required)

    @app.post("/session", include_in_schema=False)
    async def sign_in(request: Request) -> Response:
        token = configured_token(request.app)
        form = await _read_form(request)
        landing = form.get("next", home)
        landing = landing if landing in pages else home
        response = RedirectResponse(landing, status_code=status.HTTP_303_SEE_OTHER)
        if token is None:
            return response  # no token: everything is open, nothing to sign in to
        presented = form.get("token", "")
        if not hmac.compare_digest(presented.encode(errors="replace"), token.encode()):
            return login_page(
                next_path=landing, error="That token is not the one this service was started with."
            )
        _set_session_cookie(response, request, issue_session(token, now=time.time()), max_age=SESSION_SECONDS)
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.post("/session/logout", include_in_schema=False)
    async def sign_out(request: Request) -> Response:
        # No credentials needed: ending a session gives nothing away, and a stale page must still be able to.
        response = RedirectResponse(home, status_code=status.HTTP_303_SEE_OTHER)
        _set_session_cookie(response, request, "", max_age=0)
        return response
