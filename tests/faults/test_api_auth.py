"""Auth bypass attempts on both ports of a real `tradeos up` with a token (docs/api.md): every attempt gets
401 with `WWW-Authenticate: Bearer` — or a 404/405/redirect/400 that carries no data — and never a 2xx. The browser
session (`api.browser_session`) is attacked too: forged, expired and foreign cookies, and a real session's
state-changing requests without their CSRF header (403).

Requests that a client library would normalise (`//portfolio`, `/./portfolio`, 1 MB headers, TRACE) are sent as
raw bytes, so the server sees exactly what an attacker would send."""

from __future__ import annotations

import base64
import json
import time
from http.cookies import SimpleCookie
from urllib.parse import urlencode

import httpx
import pytest

from api.browser_session import CSRF_HEADER, SESSION_COOKIE, SESSION_SECONDS, csrf_token, issue_session
from live.profiles import PROFILES, canonical_json
from tests.faults.api_support import Desk, http_request, leaks, raw_request, table_counts, ws_connect_raw

pytestmark = pytest.mark.faults

OPERATOR_GUARDED = [
    ("GET", "/healthz"),
    ("GET", "/portfolio"),
    ("GET", "/positions"),
    ("GET", "/trades"),
    ("GET", "/signals"),
    ("GET", "/trading/status"),
    ("POST", "/trading/halt"),
    ("POST", "/trading/resume"),
    ("POST", "/trading/reduce"),
    ("POST", "/trading/flatten"),
    ("POST", "/profile"),
    ("GET", "/profiles"),
    ("PUT", "/profiles/cautious"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/docs/assets/swagger-ui.css"),
]
METRICS_GUARDED = [
    ("GET", "/metrics/performance"),
    ("GET", "/metrics/signals"),
    ("GET", "/metrics/system"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
]
BODIES = {
    "/trading/halt": b'{"reason": "bypass"}',
    "/trading/flatten": b'{"confirm": true}',
    "/profile": b'{"profile": "conservative"}',
    "/profiles/cautious": canonical_json(PROFILES["conservative"]).encode(),
}
ONE_MB = "A" * (1 << 20)


def _bad_credentials(token: str) -> dict[str, dict[str, str]]:
    return {
        "no header": {},
        "empty header": {"Authorization": ""},
        "scheme only": {"Authorization": "Bearer"},
        "scheme and blank": {"Authorization": "Bearer    "},
        "wrong token": {"Authorization": "Bearer wrong"},
        "token prefix": {"Authorization": f"Bearer {token[:-1]}"},
        "token plus a char": {"Authorization": f"Bearer {token}x"},
        "token then junk": {"Authorization": f"Bearer {token} junk"},
        "token without scheme": {"Authorization": token},
        "basic with the token as password": {
            "Authorization": "Basic " + base64.b64encode(f"admin:{token}".encode()).decode()
        },
        "basic with the token": {"Authorization": f"Basic {token}"},
        "token as another scheme": {"Authorization": f"Token {token}"},
        "bearer glued": {"Authorization": f"Bearer{token}"},
        "token in a cookie": {"Cookie": f"token={token}; Authorization=Bearer {token}"},
        "token in X-Api-Key": {"X-Api-Key": token, "X-Auth-Token": token},
        "token in Proxy-Authorization": {"Proxy-Authorization": f"Bearer {token}"},
        "1 MB token": {"Authorization": f"Bearer {ONE_MB}"},
        "1 MB token after the real one": {"Authorization": f"Bearer {token}{ONE_MB}"},
        "NUL after the token": {"Authorization": f"Bearer {token}\x00"},
    }


def _assert_refused(
    desk: Desk, port: int, method: str, target: str, headers: dict[str, str], what: str
) -> int:
    """The request is refused without data: 401 + WWW-Authenticate, or a 4xx/redirect without a body of value,
    or the connection closed. Returns the status (0: closed)."""
    body = BODIES.get(target.split("?")[0], b"") if method in ("POST", "PUT") else b""
    if body:
        headers = {**headers, "Content-Type": "application/json"}
    response = raw_request(port, http_request(method, target, headers=headers, body=body))
    status = response.status or 0
    assert not 200 <= status < 300, f"{what}: {method} {target} answered {status}: {response.body[:200]!r}"
    assert status == 0 or status in (301, 307, 308, 400, 401, 404, 405, 413, 414, 431), (
        f"{what}: {method} {target} answered {status}: {response.body[:200]!r}"
    )
    if status == 401:
        assert response.headers.get("www-authenticate") == "Bearer", (what, method, target)
    assert not leaks(response.body, desk.token), (what, method, target, status, response.body[:300])
    return status


def _record_unchanged(desk: Desk, before: dict[str, int]) -> None:
    assert table_counts(desk.database_url) == before
    status = httpx.get(f"{desk.api_url}/trading/status", headers=desk.auth, timeout=10).json()
    assert status["status"] == "active", status
    assert status["profile"] == "aggressive", status


def test_every_guarded_endpoint_refuses_every_bad_credential_on_both_ports(api_desk: Desk) -> None:
    before = table_counts(api_desk.database_url)
    seen: dict[int, int] = {}
    for port, endpoints in ((api_desk.api_port, OPERATOR_GUARDED), (api_desk.metrics_port, METRICS_GUARDED)):
        for what, headers in _bad_credentials(api_desk.token).items():
            for method, path in endpoints:
                status = _assert_refused(api_desk, port, method, path, headers, what)
                seen[status] = seen.get(status, 0) + 1
    print(f"bad credentials: statuses {dict(sorted(seen.items()))}")
    _record_unchanged(api_desk, before)


def test_the_token_in_the_query_string_opens_no_http_endpoint(api_desk: Desk) -> None:
    before = table_counts(api_desk.database_url)
    for port, endpoints in ((api_desk.api_port, OPERATOR_GUARDED), (api_desk.metrics_port, METRICS_GUARDED)):
        for name in ("token", "access_token", "Authorization"):
            for method, path in endpoints:
                query = (
                    f"{name}={api_desk.token}"
                    if name != "Authorization"
                    else f"{name}=Bearer%20{api_desk.token}"
                )
                assert _assert_refused(api_desk, port, method, f"{path}?{query}", {}, name) == 401
    _record_unchanged(api_desk, before)


PATH_TRICKS = [
    "//portfolio",
    "///portfolio",
    "/PORTFOLIO",
    "/Portfolio",
    "/portfolio/",
    "/portfolio//",
    "/./portfolio",
    "/x/../portfolio",
    "/%2Fportfolio",
    "%2Fportfolio",
    "/%70ortfolio",
    "/portfolio%2F",
    "/portfolio%00",
    "/portfolio;x=1",
    "/portfolio%3Bx",
    "/portfolio#x",
    "/portfolio?",
    "/docs/assets/..%2F..%2Fportfolio",
    "/docs/assets/%2e%2e/%2e%2e/portfolio",
    "http://127.0.0.1/portfolio",
    "*",
    "/trading/../portfolio",
    "//metrics/performance",
    "/METRICS/PERFORMANCE",
    "/metrics/performance/",
    "/metrics/./performance",
    "/metrics%2Fperformance",
    "/metrics/%70erformance",
    "/openapi.json/",
    "/OPENAPI.JSON",
    "/docs/",
    "/redoc",
]


def test_path_tricks_reach_nothing_without_the_token(api_desk: Desk) -> None:
    before = table_counts(api_desk.database_url)
    seen: dict[int, int] = {}
    for port in (api_desk.api_port, api_desk.metrics_port):
        for target in PATH_TRICKS:
            for method in ("GET", "POST"):
                status = _assert_refused(api_desk, port, method, target, {}, "path trick")
                seen[status] = seen.get(status, 0) + 1
    print(f"path tricks: statuses {dict(sorted(seen.items()))}")
    _record_unchanged(api_desk, before)


def test_head_options_trace_and_other_methods_give_nothing_away(api_desk: Desk) -> None:
    before = table_counts(api_desk.database_url)
    seen: dict[str, int] = {}
    for port, endpoints in ((api_desk.api_port, OPERATOR_GUARDED), (api_desk.metrics_port, METRICS_GUARDED)):
        for _, path in endpoints:
            for method in (
                "HEAD",
                "OPTIONS",
                "TRACE",
                "PUT",
                "DELETE",
                "PATCH",
                "CONNECT",
                "PROPFIND",
                "GETX",
            ):
                for headers in (
                    {},
                    {"Access-Control-Request-Method": "POST", "Origin": "http://evil.example"},
                ):
                    status = _assert_refused(api_desk, port, method, path, headers, method)
                    seen[method] = status
    print("other methods:", seen)
    _record_unchanged(api_desk, before)


def test_the_right_token_opens_every_endpoint_and_the_scheme_is_case_insensitive(api_desk: Desk) -> None:
    """The control for the refusals above, and RFC 7235 §2.1: the auth scheme is case-insensitive."""
    for scheme in ("Bearer", "bearer", "BEARER", "bEaReR"):
        headers = {"Authorization": f"{scheme} {api_desk.token}"}
        for port, endpoints in (
            (api_desk.api_port, OPERATOR_GUARDED),
            (api_desk.metrics_port, METRICS_GUARDED),
        ):
            for method, path in endpoints:
                if method != "GET":
                    continue
                response = raw_request(port, http_request(method, path, headers=headers))
                assert response.status == 200, (scheme, path, response.status, response.body[:200])


def _session_cookie_header(value: str, name: str = SESSION_COOKIE) -> dict[str, str]:
    return {"Cookie": f"{name}={value}"}


def _sign_in(port: int, token: str) -> str:
    """The session cookie `POST /session` sets for the right token (as the browser's form sends it)."""
    response = raw_request(
        port,
        http_request(
            "POST",
            "/session",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            body=urlencode({"token": token}).encode(),
        ),
    )
    assert response.status == 303, response
    cookie = SimpleCookie(response.headers["set-cookie"])[SESSION_COOKIE]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "strict"
    return cookie.value


def _bad_session_cookies(token: str) -> dict[str, dict[str, str]]:
    now = time.time()
    real = issue_session(token, now=now)
    expires, _, mac = real.partition(".")
    return {
        "forged signature": _session_cookie_header(
            f"{int(now) + 3600}.{base64.urlsafe_b64encode(b'x' * 32).decode()}"
        ),
        "real signature, other expiry": _session_cookie_header(f"{int(expires) + 1}.{mac}"),
        "real signature, no expiry": _session_cookie_header(f".{mac}"),
        "expired": _session_cookie_header(issue_session(token, now=now - SESSION_SECONDS - 1)),
        "signed to outlive the session length": _session_cookie_header(issue_session(token, now=now + 86400)),
        "from another token": _session_cookie_header(issue_session(token + "x", now=now)),
        "the token itself": _session_cookie_header(token),
        "the CSRF value": _session_cookie_header(csrf_token(token, real)),
        "empty": _session_cookie_header(""),
        "negative expiry": _session_cookie_header(f"-{expires}.{mac}"),
        # `isdigit()` but not `int()`-able: must be a 401, never a 500.
        "superscript digits": _session_cookie_header(f"{chr(0xB2) * 10}.{mac}"),
        "10 kB": _session_cookie_header(f"{expires}.{mac}{'A' * 10_000}"),
        "valid cookie under another name": _session_cookie_header(real, name=SESSION_COOKIE.upper()),
        "valid cookie, wrong bearer": {**_session_cookie_header(real), "Authorization": "Bearer wrong"},
        "valid cookie, basic auth": {**_session_cookie_header(real), "Authorization": "Basic eDp5"},
    }


def test_forged_expired_and_foreign_session_cookies_open_nothing_on_both_ports(api_desk: Desk) -> None:
    before = table_counts(api_desk.database_url)
    for port, endpoints in ((api_desk.api_port, OPERATOR_GUARDED), (api_desk.metrics_port, METRICS_GUARDED)):
        for what, headers in _bad_session_cookies(api_desk.token).items():
            for method, path in endpoints:
                assert _assert_refused(api_desk, port, method, path, headers, what) == 401, (what, path)
                # A browser gets the sign-in form instead of JSON: it must carry nothing either.
                page = {**headers, "Accept": "text/html"}
                if method == "GET":
                    assert _assert_refused(api_desk, port, method, path, page, what) == 401, (what, path)
    _record_unchanged(api_desk, before)


def test_a_session_cookie_changes_nothing_without_its_own_csrf_header(api_desk: Desk) -> None:
    token = api_desk.token
    cookie = _sign_in(api_desk.api_port, token)
    other_session = issue_session(token, now=time.time() - 60)
    assert other_session != cookie
    csrf = csrf_token(token, cookie)
    attempts = {
        "no CSRF header": {},
        "empty CSRF header": {CSRF_HEADER: ""},
        "another session's CSRF": {CSRF_HEADER: csrf_token(token, other_session)},
        "CSRF from another token": {CSRF_HEADER: csrf_token(token + "x", cookie)},
        "the token as CSRF": {CSRF_HEADER: token},
        "the cookie as CSRF": {CSRF_HEADER: cookie},
        "CSRF plus a char": {CSRF_HEADER: csrf + "x"},
        "CSRF in a cookie": {"Cookie": f"{SESSION_COOKIE}={cookie}; csrf={csrf}; {CSRF_HEADER}={csrf}"},
        "CSRF under another header": {"X-CSRFToken": csrf, "X-XSRF-Token": csrf},
        "method override to GET": {"X-HTTP-Method-Override": "GET", "X-Method-Override": "GET"},
    }
    before = table_counts(api_desk.database_url)
    for what, extra in attempts.items():
        headers = {**_session_cookie_header(cookie), **extra}
        for method, path in OPERATOR_GUARDED:
            if method == "GET":
                continue
            body = BODIES.get(path, b"")
            if body:
                headers = {**headers, "Content-Type": "application/json"}
            for target in (path, f"{path}?{CSRF_HEADER}={csrf}&csrf={csrf}"):
                response = raw_request(
                    api_desk.api_port, http_request(method, target, headers=headers, body=body)
                )
                assert response.status == 403, (what, target, response.status, response.body[:200])
                assert CSRF_HEADER.encode() in response.body
                assert not leaks(response.body, token), (what, target)
    _record_unchanged(api_desk, before)

    # The control: the same cookie with its own CSRF header is accepted (resuming an active desk changes nothing).
    accepted = raw_request(
        api_desk.api_port,
        http_request(
            "POST", "/trading/resume", headers={**_session_cookie_header(cookie), CSRF_HEADER: csrf}
        ),
    )
    assert accepted.status == 200, accepted.body[:200]


def test_signing_in_needs_the_exact_token_and_goes_nowhere_but_home(api_desk: Desk) -> None:
    token = api_desk.token
    for port in (api_desk.api_port, api_desk.metrics_port):
        for what, form in {
            "no token": b"",
            "wrong token": urlencode({"token": "wrong"}).encode(),
            "token prefix": urlencode({"token": token[:-1]}).encode(),
            "token plus a char": urlencode({"token": token + "x"}).encode(),
            "token with a NUL": urlencode({"token": token + "\x00"}).encode(),
            "token as JSON": json.dumps({"token": token}).encode(),
            "token twice, wrong first": urlencode([("token", "wrong"), ("token", token)]).encode(),
        }.items():
            response = raw_request(
                port,
                http_request(
                    "POST",
                    "/session",
                    headers={"Content-Type": "application/x-www-form-urlencoded"},
                    body=form,
                ),
            )
            assert response.status == 401, (what, response.status)
            assert response.headers.get("www-authenticate") == "Bearer", what
            assert "set-cookie" not in response.headers, what
            assert not leaks(response.body, token), what
        in_query = raw_request(port, http_request("POST", f"/session?token={token}"))
        assert in_query.status == 401
        assert "set-cookie" not in in_query.headers
        huge = raw_request(port, http_request("POST", "/session", body=b"token=" + b"A" * 20_000))
        assert huge.status == 413
        assert "set-cookie" not in huge.headers
        for landing in (
            "//evil.example/docs",
            "https://evil.example/",
            "/\\evil.example",
            "javascript:alert(1)",
        ):
            body = urlencode({"token": token, "next": landing}).encode()
            response = raw_request(
                port,
                http_request(
                    "POST",
                    "/session",
                    headers={"Content-Type": "application/x-www-form-urlencoded"},
                    body=body,
                ),
            )
            assert response.status == 303
            assert response.headers["location"] == "/docs", landing


def test_a_session_cookie_does_not_open_the_websocket(api_desk: Desk) -> None:
    cookie = _sign_in(api_desk.api_port, api_desk.token)
    sock, status = ws_connect_raw(api_desk.api_port, "/ws", headers=_session_cookie_header(cookie))
    sock.close()
    assert status == 403
