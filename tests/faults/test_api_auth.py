"""Auth bypass attempts on both ports of a real `tradeos up` with a token (CONTRACT.md §3, §5): every attempt gets
401 with `WWW-Authenticate: Bearer` — or a 404/405/redirect/400 that carries no data — and never a 2xx.

Requests that a client library would normalise (`//portfolio`, `/./portfolio`, 1 MB headers, TRACE) are sent as
raw bytes, so the server sees exactly what an attacker would send."""

from __future__ import annotations

import base64

import httpx
import pytest

from tests.faults.api_support import Desk, http_request, leaks, raw_request, table_counts

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
    body = BODIES.get(target.split("?")[0], b"") if method == "POST" else b""
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
