"""The operator dashboard in a real browser (Debian's chromium driven by Playwright) against a real `tradeos up
--speed 0` with PostgreSQL and Redis: the token asked for once, fills arriving live, halt/resume/flatten from the
page recorded under the operator's name, nothing fetched from another host, no console errors.

One service and one browser for the module; each test has its own browser context (its own cookies)."""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest
import redis
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, Route, expect, sync_playwright
from scipy.stats import spearmanr
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from api.browser_session import SESSION_COOKIE
from api.dashboard.rolling_ic import WINDOW_BARS
from live.profiles import PROFILES, canonical_json
from live.service.publisher import MAX_PENDING
from tests.support import Service, eventually, free_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
REDIS_BASE = os.environ.get("TRADEOS_TEST_REDIS_URL", "redis://127.0.0.1:6379")
TOKEN = f"dash-{uuid.uuid4().hex}"
OPERATOR = "alice"
WAIT_MS = 30_000  # a deadline for polling on a loaded machine, not a speed requirement
expect.set_options(timeout=WAIT_MS)

pytestmark = pytest.mark.skipif(
    shutil.which(CHROMIUM) is None,
    reason=f"{CHROMIUM} is missing: `apt-get install -y chromium` (make test does)",
)


@dataclass(frozen=True)
class Desk:
    """`tradeos up` with the dashboard, its ports, and the system of record it writes."""

    service: Service
    api_port: int
    dashboard_port: int
    database_url: str

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def api_get(self, path: str) -> httpx.Response:
        return httpx.get(
            f"http://127.0.0.1:{self.api_port}{path}",
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=10,
        )

    def control_actions(self) -> list[tuple[str, str]]:
        with psycopg.connect(self.database_url) as conn:
            rows = conn.execute("SELECT action, actor FROM control_actions ORDER BY id").fetchall()
        return [(action, actor) for action, actor in rows]

    def operator_actions_since(self, before: int) -> list[tuple[str, str]]:
        """The control actions recorded after the first `before`, less the circuit breakers' own: at `--speed 0`
        the engine trades on between two clicks, and a breaker may halt it at any bar (it records that itself)."""
        return [row for row in self.control_actions()[before:] if not row[1].startswith("circuit_breaker:")]

    def assert_resumed(self) -> None:
        """Active after a resume, unless a circuit breaker has halted it since (its record says so)."""
        status = self.api_get("/trading/status").json()
        if status["status"] != "active":
            assert status["status"] == "halted", status
            assert status["actor"].startswith("circuit_breaker:"), status

    def dashboard_get(self, path: str) -> httpx.Response:
        return httpx.get(self.dashboard_url + path, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)

    def fill_exists(self, fill_id: str) -> bool:
        with psycopg.connect(self.database_url) as conn:
            return conn.execute("SELECT 1 FROM fills WHERE id = %s", (fill_id,)).fetchone() is not None


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory, pg_admin_url: str, redis_db_index: int) -> Iterator[Desk]:
    name = f"tradeos_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    database_url = f"{pg_admin_url.rpartition('/')[0]}/{name}"
    redis_url = f"{REDIS_BASE}/{redis_db_index}"
    redis.Redis.from_url(redis_url).flushdb()
    api_port, metrics_port, dashboard_port = free_port(), free_port(), free_port()
    args = ["up", "--speed", "0", "--no-flows", "--profile", "aggressive", "--seed", "1"]
    args += ["--api-port", str(api_port), "--metrics-port", str(metrics_port)]
    args += ["--dashboard-port", str(dashboard_port)]
    env = {"TRADEOS_DATABASE_URL": database_url, "TRADEOS_REDIS_URL": redis_url, "TRADEOS_TOOL_TOKEN": TOKEN}
    try:
        with Service(tmp_path_factory.mktemp("dashboard"), args, env) as service:
            desk = Desk(service, api_port, dashboard_port, database_url)
            eventually(lambda: _answers(desk), timeout=60, what="the dashboard to answer")
            yield desk
    finally:
        redis.Redis.from_url(redis_url).flushdb()
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _answers(desk: Desk) -> bool:
    assert desk.service.process.poll() is None, desk.service.output[-2000:]
    try:
        return httpx.get(desk.dashboard_url + "/", timeout=2).status_code == 401
    except httpx.TransportError:
        return False


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    playwright: Playwright
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@dataclass
class Visit:
    """A fresh browser context that remembers every request, WebSocket and console error of its page."""

    context: BrowserContext
    page: Page
    hosts: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)

    def assert_only_this_host_and_no_errors(self) -> None:
        assert self.hosts <= {"127.0.0.1"}, self.hosts
        assert self.errors == []


@pytest.fixture
def visit(browser: Browser) -> Iterator[Visit]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    visit = Visit(context=context, page=page)

    def only_this_machine(route: Route) -> None:
        visit.hosts.add(urlsplit(route.request.url).hostname or "?")
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            route.abort()

    context.route("**/*", only_this_machine)
    page.on("websocket", lambda ws: visit.hosts.add(urlsplit(ws.url).hostname or "?"))
    page.on("pageerror", lambda error: visit.errors.append(str(error)))

    def console(message: object) -> None:
        text: str = getattr(message, "text", "")
        # The sign-in form itself is the 401 of the page (the browser logs that status); nothing else may fail.
        if getattr(message, "type", "") == "error" and not text.endswith("status of 401 (Unauthorized)"):
            visit.errors.append(text)

    page.on("console", console)
    yield visit
    context.close()


def sign_in(visit: Visit, desk: Desk, token: str = TOKEN) -> None:
    response = visit.page.goto(desk.dashboard_url + "/")
    assert response is not None
    assert response.status == 401
    expect(visit.page.locator("#controls")).to_have_count(0)
    visit.page.fill("#token", token)
    visit.page.click("button[type=submit]")


def signed_in(visit: Visit, desk: Desk) -> Page:
    sign_in(visit, desk)
    page = visit.page
    expect(page.locator("#link")).to_have_text("live")
    page.fill("#operator", OPERATOR)
    page.locator("#operator").dispatch_event("change")
    return page


def test_the_page_asks_for_the_token_and_refuses_a_wrong_one(visit: Visit, desk: Desk) -> None:
    assert httpx.get(desk.dashboard_url + "/static/dashboard.js").status_code == 401
    assert httpx.get(desk.dashboard_url + "/dashboard/overview").status_code == 401

    sign_in(visit, desk, token="not-the-token")

    expect(visit.page.get_by_role("alert")).to_contain_text("not the one")
    expect(visit.page.locator("#controls")).to_have_count(0)
    assert [c for c in visit.context.cookies() if c["name"] == SESSION_COOKIE] == []

    visit.page.fill("#token", TOKEN)
    visit.page.click("button[type=submit]")

    expect(visit.page.locator("#controls")).to_be_visible()
    expect(visit.page.locator("#link")).to_have_text("live")
    cookie = next(c for c in visit.context.cookies() if c["name"] == SESSION_COOKIE)
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    policy = httpx.get(desk.dashboard_url + "/", cookies={SESSION_COOKIE: cookie["value"]}).headers[
        "content-security-policy"
    ]
    assert "default-src 'none'" in policy
    assert f"connect-src 'self' ws://127.0.0.1:{desk.api_port}" in policy
    visit.assert_only_this_host_and_no_errors()


def test_fills_from_the_running_engine_appear_without_a_reload(visit: Visit, desk: Desk) -> None:
    page = signed_in(visit, desk)
    rows = page.locator("#fills tbody tr")
    expect(rows.first).to_be_visible()
    first_seen = rows.first.get_attribute("data-key")
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))

    expect(rows.first).not_to_have_attribute("data-key", first_seen or "")

    newest = rows.first.get_attribute("data-key")
    assert newest is not None
    assert desk.fill_exists(newest)
    assert navigations == []
    visit.assert_only_this_host_and_no_errors()


def test_halt_and_resume_from_the_page_change_the_state_and_record_the_operator(
    visit: Visit, desk: Desk
) -> None:
    page = signed_in(visit, desk)
    before = len(desk.control_actions())

    page.click("[data-command=halt]")

    expect(page.locator("#trading-state")).to_have_attribute("data-state", "halted")
    assert desk.api_get("/trading/status").json()["status"] == "halted"
    assert desk.operator_actions_since(before) == [("halt", f"dashboard:{OPERATOR}")]

    page.click("[data-command=resume]")

    expect(page.locator("#trading-state")).to_have_attribute("data-state", "active")
    desk.assert_resumed()
    assert desk.operator_actions_since(before) == [
        ("halt", f"dashboard:{OPERATOR}"),
        ("resume", f"dashboard:{OPERATOR}"),
    ]
    expect(page.locator("#control-actions tbody")).to_contain_text(f"dashboard:{OPERATOR}")
    visit.assert_only_this_host_and_no_errors()


def test_flatten_needs_its_confirmation(visit: Visit, desk: Desk) -> None:
    page = signed_in(visit, desk)
    before = len(desk.control_actions())

    page.click("#flatten")
    expect(page.locator("#flatten-dialog")).to_be_visible()
    page.click("#flatten-cancel")

    expect(page.locator("#flatten-dialog")).to_be_hidden()
    assert desk.operator_actions_since(before) == []

    page.click("#flatten")
    page.click("#flatten-confirm")

    expect(page.locator("#control-result")).to_contain_text("flatten")
    assert desk.operator_actions_since(before) == [("flatten", f"dashboard:{OPERATOR}")]
    visit.assert_only_this_host_and_no_errors()


def test_reduce_only_and_a_profile_switch_from_the_page_are_applied_and_recorded(
    visit: Visit, desk: Desk
) -> None:
    page = signed_in(visit, desk)
    before = len(desk.control_actions())

    page.click("[data-command=reduce]")
    expect(page.locator("#trading-state")).to_have_attribute("data-state", "reduce_only")
    page.select_option("#profile-select", "conservative")
    page.click("#profile-apply")
    expect(page.locator("#profile")).to_have_text("conservative")
    page.click("[data-command=resume]")
    expect(page.locator("#trading-state")).to_have_attribute("data-state", "active")

    assert desk.api_get("/trading/status").json()["profile"] == "conservative"
    # Under conservative limits a daily-loss breaker may well halt the engine right after the resume.
    desk.assert_resumed()
    actor = f"dashboard:{OPERATOR}"
    assert desk.operator_actions_since(before) == [("reduce", actor), ("profile", actor), ("resume", actor)]
    visit.assert_only_this_host_and_no_errors()


def test_the_reports_are_served_behind_the_session(visit: Visit, desk: Desk) -> None:
    reports = desk.service.home / "reports"  # TRADEOS_HOME/reports, where the daily-report flow writes
    reports.mkdir(parents=True, exist_ok=True)
    (reports / "2026-01-05.html").write_text("<!doctype html><title>report</title><h1>Daily report</h1>")
    assert httpx.get(desk.dashboard_url + "/reports/2026-01-05.html").status_code == 401

    page = signed_in(visit, desk)
    link = page.locator("#reports a", has_text="2026-01-05")
    expect(link).to_have_attribute("href", "/reports/2026-01-05.html")
    expect(page.locator("#flow-runs")).to_contain_text("no completed run found")  # --no-flows: no Prefect
    response = visit.context.request.get(desk.dashboard_url + "/reports/2026-01-05.html")

    assert response.status == 200
    assert "Daily report" in response.text()
    assert response.headers["content-security-policy"].startswith("sandbox;")
    assert visit.context.request.get(desk.dashboard_url + "/reports/..%2Fcredentials").status == 404
    visit.assert_only_this_host_and_no_errors()


def _handshake(desk: Desk, *, origin: str, cookie: str | None) -> None:
    """Opens the API's WebSocket as a browser page at `origin` would, and reads the first message."""
    headers = {"Origin": origin}
    if cookie:
        headers["Cookie"] = f"{SESSION_COOKIE}={cookie}"
    with connect(f"ws://127.0.0.1:{desk.api_port}/ws", additional_headers=headers, open_timeout=10) as ws:
        ws.recv(timeout=10)


def test_the_websocket_takes_the_session_only_from_the_dashboard_origin(visit: Visit, desk: Desk) -> None:
    signed_in(visit, desk)
    cookie = next(c["value"] for c in visit.context.cookies() if c["name"] == SESSION_COOKIE)
    dashboard = f"http://127.0.0.1:{desk.dashboard_port}"

    _handshake(desk, origin=dashboard, cookie=cookie)
    for origin, presented in (
        (dashboard, None),
        (dashboard, cookie[:-2] + ("AA" if not cookie.endswith("AA") else "BB")),
        # An allowed origin that is not the dashboard's (the API's own) does not open it by cookie.
        (f"http://127.0.0.1:{desk.api_port}", cookie),
        ("http://evil.example", cookie),
    ):
        with pytest.raises(InvalidStatus):
            _handshake(desk, origin=origin, cookie=presented)


def test_the_queue_panel_shows_the_engines_queues_and_the_websocket_clients(visit: Visit, desk: Desk) -> None:
    page = signed_in(visit, desk)  # the page's own WebSocket is a client of the API

    rows = page.locator("#queues tbody tr")
    expect(rows).to_have_count(4)
    expect(rows.nth(0).locator("td").nth(0)).to_have_text("events awaiting commit")
    expect(rows.nth(0).locator("td").nth(1)).to_have_text(re.compile(r"^\d+$"))  # the engine posted a reading
    expect(rows.nth(1).locator("td").nth(2)).to_have_text(str(MAX_PENDING))
    expect(rows.nth(3).locator("td").nth(2)).to_have_text("1024")
    expect(rows.nth(3).locator("td").nth(0)).to_have_attribute("title", re.compile(r"^[1-9]\d* clients?;"))
    queues = {q["name"]: q for q in desk.dashboard_get("/dashboard/overview").json()["queues"]}
    assert queues["events awaiting commit"]["depth"] >= 0
    assert queues["WebSocket: deepest client queue"]["depth"] is not None
    visit.assert_only_this_host_and_no_errors()


def _spearman_ic(database_url: str, first: str, last: str) -> dict[str, tuple[float, int]]:
    """(mean IC, timestamps with an IC) per signal type over the bars stamped `first`..`last`, computed apart
    from analytics/ic.py: scipy's Spearman per timestamp between strength and the forward return over the
    signal's horizon in the symbol's own bars within the window."""
    with psycopg.connect(database_url) as conn:
        bars = conn.execute(
            "SELECT symbol, timestamp, close FROM bars WHERE timestamp BETWEEN %s AND %s ORDER BY symbol, timestamp",
            (first, last),
        ).fetchall()
        signals = conn.execute(
            "SELECT timestamp, symbol, signal_type, strength, horizon_bars FROM signals"
            " WHERE timestamp BETWEEN %s AND %s",
            (first, last),
        ).fetchall()
    closes: dict[str, list[tuple[object, float]]] = {}
    for symbol, timestamp, close in bars:
        closes.setdefault(symbol, []).append((timestamp, close))
    index = {(symbol, t): i for symbol, series in closes.items() for i, (t, _) in enumerate(series)}
    cross: dict[tuple[str, object], list[tuple[float, float]]] = {}
    for timestamp, symbol, signal_type, strength, horizon in signals:
        i = index.get((symbol, timestamp))
        series = closes.get(symbol, [])
        if i is None or i + horizon >= len(series):
            continue
        forward = series[i + horizon][1] / series[i][1] - 1.0
        cross.setdefault((signal_type, timestamp), []).append((strength, forward))
    ics: dict[str, list[float]] = {}
    for (signal_type, _), pairs in cross.items():
        if len(pairs) < 2:
            continue
        strengths, forwards = zip(*pairs, strict=True)
        if len(set(strengths)) < 2 or len(set(forwards)) < 2:
            continue
        ics.setdefault(signal_type, []).append(float(spearmanr(strengths, forwards).statistic))
    return {t: (sum(v) / len(v), len(v)) for t, v in ics.items()}


def test_the_rolling_ic_is_the_flows_definition_over_the_latest_bars(desk: Desk) -> None:
    def a_window_with_ics() -> dict[str, object] | None:
        body = desk.dashboard_get("/dashboard/rolling-ic").json()
        return body if any(s["n_periods"] > 0 for s in body["signals"]) else None

    body = eventually(a_window_with_ics, timeout=60, what="a rolling IC with periods")

    expected = _spearman_ic(desk.database_url, body["first"], body["last"])
    got = {s["signal_type"]: (s["ic_mean"], s["n_periods"]) for s in body["signals"] if s["n_periods"]}
    assert got.keys() == expected.keys()
    for signal_type, (mean, periods) in expected.items():
        assert got[signal_type][1] == periods, signal_type
        assert got[signal_type][0] == pytest.approx(mean, abs=1e-9), signal_type
    assert body["window_bars"] == WINDOW_BARS


def test_a_stored_custom_profile_is_offered_by_the_profile_switch_and_applied_from_the_page(
    visit: Visit, desk: Desk
) -> None:
    # The aggressive built-in's content under a name of its own: the engine trades on as before.
    body = json.loads(canonical_json(PROFILES["aggressive"]))
    saved = httpx.put(
        f"http://127.0.0.1:{desk.api_port}/profiles/desk-custom",
        json=body,
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=10,
    )
    assert saved.status_code in (200, 201), saved.text
    page = signed_in(visit, desk)
    before = len(desk.control_actions())

    expect(page.locator("#profile-select option[value=desk-custom]")).to_have_count(1)
    page.select_option("#profile-select", "desk-custom")
    page.click("#profile-apply")
    expect(page.locator("#profile")).to_have_text("desk-custom")

    status = desk.api_get("/trading/status").json()
    assert (status["profile"], status["profile_hash"]) == ("desk-custom", saved.json()["content_hash"])
    assert desk.operator_actions_since(before) == [("profile", f"dashboard:{OPERATOR}")]
    visit.assert_only_this_host_and_no_errors()
