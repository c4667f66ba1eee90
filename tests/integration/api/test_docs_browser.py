"""`/docs` of both APIs in a real browser (Debian's chromium driven by Playwright): with a token set, the browser
signs in once with a form and then reads and uses Swagger UI; the data stays behind the token; nothing is
fetched from another host."""

from __future__ import annotations

import re
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest
import uvicorn
from fastapi import FastAPI
from operator_api_support import ServerThread, eventually_sync
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Locator,
    Page,
    Playwright,
    Route,
    expect,
    sync_playwright,
)

from api import metrics
from api.browser_session import CSRF_HEADER, SESSION_COOKIE
from live.settings import Settings

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost"})
UNRENDERABLE = "Unable to render this definition"
# Deadlines for polling, not speed limits: on a loaded machine Swagger UI may take more than expect()'s 5 s default.
WAIT_MS = 30_000
expect.set_options(timeout=WAIT_MS)

pytestmark = pytest.mark.skipif(
    shutil.which(CHROMIUM) is None,
    reason=f"{CHROMIUM} is missing: `apt-get install -y chromium` (make test does)",
)


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """One browser per module; each test gets its own context (its own cookies)."""
    chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield chromium
    chromium.close()


@dataclass
class Visit:
    """A fresh browser context whose requests to any host but this machine are refused and remembered."""

    context: BrowserContext
    page: Page
    foreign_requests: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)  # what the browser refused (CSP) or failed to run

    def session_cookie(self) -> str | None:
        return next((c["value"] for c in self.context.cookies() if c["name"] == SESSION_COOKIE), None)

    def assert_nothing_left_this_machine_and_nothing_was_refused(self) -> None:
        assert self.foreign_requests == []
        assert self.page_errors == []
        assert self.refusals == []


@pytest.fixture
def visit(browser: Browser) -> Iterator[Visit]:
    context = browser.new_context()
    context.set_default_timeout(WAIT_MS)
    visit = Visit(context=context, page=context.new_page())

    def only_this_machine(route: Route) -> None:
        url = route.request.url
        if urlsplit(url).hostname in LOCAL_HOSTS:
            route.continue_()
        else:
            visit.foreign_requests.append(url)
            route.abort()

    context.route("**/*", only_this_machine)
    visit.page.on("pageerror", lambda error: visit.page_errors.append(str(error)))
    visit.page.on(
        "console",
        lambda message: (
            visit.refusals.append(message.text)
            if message.type == "error" and "Failed to load resource" not in message.text
            else None
        ),
    )
    yield visit
    context.close()


class MetricsServer:
    """The Metrics API app served by uvicorn on a free port in a background thread."""

    def __init__(self, app: FastAPI) -> None:
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, access_log=False)
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run, name="metrics-api", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.servers[0].sockets[0].getsockname()[1]}"

    @contextmanager
    def running(self) -> Iterator[MetricsServer]:
        self._thread.start()
        eventually_sync(lambda: self.server.started or not self._thread.is_alive(), within=20)
        assert self.server.started, "the Metrics API did not start"
        try:
            yield self
        finally:
            self.server.should_exit = True
            self._thread.join(timeout=15)


@pytest.fixture
def metrics_api(token: str) -> Iterator[MetricsServer]:
    with (
        tempfile.TemporaryDirectory() as home,
        MetricsServer(metrics.create_app(Settings(home=Path(home), tool_token=token))).running() as server,
    ):
        yield server


def _operation(page: Page, method: str, path: str) -> Locator:
    return page.locator(f".opblock-{method.lower()}:has(.opblock-summary-path[data-path='{path}'])")


def sign_in(page: Page, base_url: str, token: str) -> None:
    """Opens /docs, is shown the sign-in form (a 401), and submits `token`."""
    response = page.goto(f"{base_url}/docs")
    assert response is not None
    assert response.status == 401
    assert response.headers["www-authenticate"] == "Bearer"
    expect(page.locator("#swagger-ui")).to_have_count(0)
    page.fill("#token", token)
    page.click("button[type=submit]")


def try_it_out(page: Page, method: str, path: str) -> str:
    """Expands one operation, presses "Try it out" then "Execute"; returns the response code Swagger UI shows."""
    operation = _operation(page, method, path)
    operation.locator(".opblock-summary-control").click()
    operation.locator("button.try-out__btn").click()
    operation.locator("button.execute").click()
    status = operation.locator(".live-responses-table .response .response-col_status")
    expect(status).to_have_text(re.compile(r"^\s*\d{3}"))
    return str(status.inner_text()).strip()[:3]


def assert_docs_rendered(page: Page, *operations: tuple[str, str]) -> None:
    for method, path in operations:
        expect(_operation(page, method, path)).to_be_visible()
    expect(page.get_by_text(UNRENDERABLE)).to_have_count(0)


def test_a_browser_signs_in_to_the_operator_docs_and_uses_try_it_out(
    visit: Visit, api: ServerThread, token: str, pg: psycopg.Connection
) -> None:
    page = visit.page
    sign_in(page, api.base_url, token)

    expect(page).to_have_url(f"{api.base_url}/docs")
    assert_docs_rendered(page, ("GET", "/portfolio"), ("GET", "/trading/status"), ("POST", "/trading/halt"))
    assert try_it_out(page, "GET", "/trading/status") == "200"
    # A state-changing call from the page: accepted only because the page sends its CSRF header.
    assert try_it_out(page, "POST", "/trading/halt") == "200"
    status = httpx.get(f"{api.base_url}/trading/status", headers={"Authorization": f"Bearer {token}"}).json()
    assert status["status"] == "halted"
    assert pg.execute("SELECT action FROM control_actions").fetchall() == [("halt",)]
    cookie = next(c for c in visit.context.cookies() if c["name"] == SESSION_COOKIE)
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert token not in cookie["value"]
    visit.assert_nothing_left_this_machine_and_nothing_was_refused()


def test_a_browser_signs_in_to_the_metrics_docs_and_uses_try_it_out(
    visit: Visit, metrics_api: MetricsServer, token: str
) -> None:
    page = visit.page
    sign_in(page, metrics_api.base_url, token)

    assert_docs_rendered(page, ("GET", "/metrics/performance"), ("GET", "/metrics/system"))
    # No rollup was ever made here: the API's own 503 ("run `tradeos flows run ...`"), reached through the session.
    assert try_it_out(page, "GET", "/metrics/system") == "503"
    expect(page.get_by_text("no rollup yet").first).to_be_visible()
    visit.assert_nothing_left_this_machine_and_nothing_was_refused()


def test_one_sign_in_opens_the_docs_of_both_apis_with_the_same_token(
    visit: Visit, api: ServerThread, metrics_api: MetricsServer, token: str
) -> None:
    """A cookie belongs to the host, not the port: the session made on one API is good on the other."""
    sign_in(visit.page, api.base_url, token)
    assert_docs_rendered(visit.page, ("GET", "/portfolio"))

    response = visit.page.goto(f"{metrics_api.base_url}/docs")

    assert response is not None
    assert response.status == 200
    assert_docs_rendered(visit.page, ("GET", "/metrics/system"))
    visit.assert_nothing_left_this_machine_and_nothing_was_refused()


def test_a_wrong_token_shows_an_error_and_no_docs(visit: Visit, metrics_api: MetricsServer) -> None:
    page = visit.page
    sign_in(page, metrics_api.base_url, "not-the-token")

    expect(page.get_by_role("alert")).to_contain_text("not the one")
    expect(page.locator("#swagger-ui")).to_have_count(0)
    assert visit.session_cookie() is None
    assert page.goto(f"{metrics_api.base_url}/openapi.json").status == 401  # type: ignore[union-attr]
    visit.assert_nothing_left_this_machine_and_nothing_was_refused()


def test_signing_out_ends_the_session(visit: Visit, metrics_api: MetricsServer, token: str) -> None:
    page = visit.page
    sign_in(page, metrics_api.base_url, token)
    assert_docs_rendered(page, ("GET", "/metrics/system"))

    page.click("#tradeos-signout button")

    expect(page.locator("#token")).to_be_visible()
    assert visit.session_cookie() is None
    assert page.goto(f"{metrics_api.base_url}/docs").status == 401  # type: ignore[union-attr]


def test_without_a_token_both_docs_render_directly(visit: Visit, api_settings: Settings) -> None:
    open_settings = api_settings.model_copy(update={"tool_token": None})
    with (
        ServerThread(open_settings) as open_api,
        MetricsServer(metrics.create_app(open_settings)).running() as open_metrics,
    ):
        for base_url, operation in (
            (open_api.base_url, "/portfolio"),
            (open_metrics.base_url, "/metrics/system"),
        ):
            response = visit.page.goto(f"{base_url}/docs")
            assert response is not None
            assert response.status == 200
            assert_docs_rendered(visit.page, ("GET", operation))
    visit.assert_nothing_left_this_machine_and_nothing_was_refused()


def _signed_in(client: httpx.Client, token: str) -> str:
    """Signs `client` in as the form does; returns the CSRF value the docs page hands to Swagger UI."""
    response = client.post("/session", data={"token": token})
    assert response.status_code == 303
    page = client.get("/docs")
    assert page.status_code == 200
    csrf = re.search(r'"csrf": "([^"]+)"', page.text)
    assert csrf is not None
    return csrf.group(1)


def test_a_session_cookie_without_the_csrf_header_cannot_change_anything(
    api: ServerThread, token: str, pg: psycopg.Connection
) -> None:
    with httpx.Client(base_url=api.base_url, timeout=15) as browser_like:
        csrf = _signed_in(browser_like, token)
        assert browser_like.get("/trading/status").status_code == 200  # reads need no CSRF header

        for headers in (
            {},
            {CSRF_HEADER: ""},
            {CSRF_HEADER: ("y" if csrf[0] == "x" else "x") + csrf[1:]},
            {CSRF_HEADER: csrf + "x"},
        ):
            refused = browser_like.post("/trading/halt", json={"reason": "csrf"}, headers=headers)
            assert refused.status_code == 403, headers
            assert CSRF_HEADER in refused.json()["detail"]
        assert pg.execute("SELECT count(*) FROM control_actions").fetchone() == (0,)

        accepted = browser_like.post("/trading/halt", json={"reason": "csrf"}, headers={CSRF_HEADER: csrf})
        assert accepted.status_code == 200
    # A bearer client needs no CSRF header: it cannot be driven by another site.
    bearer = httpx.post(
        f"{api.base_url}/trading/resume", headers={"Authorization": f"Bearer {token}"}, timeout=15
    )
    assert bearer.status_code == 200
    assert pg.execute("SELECT action FROM control_actions ORDER BY id").fetchall() == [("halt",), ("resume",)]
