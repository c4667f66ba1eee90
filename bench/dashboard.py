"""The dashboard in headless chromium against the real `tradeos up` (no token: the session costs one request at
sign-in, not per paint).

- **First paint**: the sim feed runs 30 days at `--speed 0` (aggressive profile), so the record holds 30 days of
  one-minute equity; the fills are topped up to 10,000 (copies of the engine's own, with new ids, a day earlier).
  Then the page is opened in a fresh context, and timed from navigation start to the frame that drew the snapshot
  (`performance.mark("tradeos:first-paint")` in dashboard.js). Best and median of `LOADS` loads.
- **Fill to row**: with the feed finished (the engine idle), `FILLS` fills are published on the events channel in
  the engine's own envelope (`live.wire.fill_message`), one every `INTERVAL_SECONDS`; the page's MutationObserver
  stamps each row as it enters the fills table. Latency = row time - publish time, both this machine's wall clock.
"""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg
import redis
from harness import Figure, emit, figure, load_average
from live_service import LiveService, live_service
from playwright.sync_api import Page, sync_playwright

from live.domain import Fill, Side
from live.stores import redis_keys
from live.wire import fill_message

SIM_DAYS = 30
TARGET_FILLS = 10_000
LOADS = 5
FILLS = 200
INTERVAL_SECONDS = 0.05
MARKER = "bench-fill-"
CHROMIUM = "/usr/bin/chromium"
FEED_TIMEOUT_SECONDS = 600


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _feed_done(service: LiveService) -> None:
    deadline = time.monotonic() + FEED_TIMEOUT_SECONDS
    while "feed finished" not in service.log_path.read_text(errors="replace"):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the sim feed did not finish within {FEED_TIMEOUT_SECONDS} s")
        time.sleep(0.5)


def _top_up_fills(database_url: str) -> dict[str, int]:
    """Copies of the engine's fills (and their orders) a day earlier, with new ids, until there are 10,000."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        engine_fills = conn.execute("SELECT count(*) FROM fills").fetchone()[0]  # type: ignore[index]
        copy = 0
        while conn.execute("SELECT count(*) FROM fills").fetchone()[0] < TARGET_FILLS:  # type: ignore[index]
            copy += 1
            missing = TARGET_FILLS - conn.execute("SELECT count(*) FROM fills").fetchone()[0]  # type: ignore[index]
            shift = f"{copy} days"
            conn.execute(
                "INSERT INTO orders (id, timestamp, symbol, side, quantity, signal_type, reduces_position, status,"
                " reason) SELECT o.id || %(suffix)s, o.timestamp - %(shift)s::interval, o.symbol, o.side,"
                " o.quantity, o.signal_type, o.reduces_position, o.status, o.reason FROM orders o"
                " JOIN (SELECT order_id FROM fills WHERE id NOT LIKE '%%-copy-%%' ORDER BY timestamp, id LIMIT %(n)s)"
                " f ON f.order_id = o.id",
                {"suffix": f"-copy-{copy}", "shift": shift, "n": missing},
            )
            conn.execute(
                "INSERT INTO fills (id, order_id, timestamp, symbol, side, quantity, price, fee, signal_type,"
                " realized_pnl) SELECT id || %(suffix)s, order_id || %(suffix)s, timestamp - %(shift)s::interval,"
                " symbol, side, quantity, price, fee, signal_type, realized_pnl FROM fills"
                " WHERE id NOT LIKE '%%-copy-%%' ORDER BY timestamp, id LIMIT %(n)s",
                {"suffix": f"-copy-{copy}", "shift": shift, "n": missing},
            )
        fills = conn.execute("SELECT count(*) FROM fills").fetchone()[0]  # type: ignore[index]
        span = conn.execute("SELECT max(timestamp) - min(timestamp), count(*) FROM equity").fetchone()
    assert span is not None
    return {"fills": fills, "engine_fills": engine_fills, "equity_rows": span[1], "equity_days": span[0].days}


def _first_paint_ms(page: Page, url: str) -> float:
    page.goto(url)
    page.wait_for_function(
        "performance.getEntriesByName('tradeos:first-paint').length > 0", timeout=30_000, polling=50
    )
    rows = page.locator("#fills tbody tr").count()
    assert rows > 0, "the first paint showed no fills"
    return float(page.evaluate("performance.getEntriesByName('tradeos:first-paint')[0].startTime"))


_OBSERVE_FILLS = """(marker) => {
  window.__rowTimes = {};
  new MutationObserver((records) => {
    const now = Date.now();
    for (const record of records) for (const node of record.addedNodes) {
      const key = node.dataset && node.dataset.key;
      if (key && key.startsWith(marker) && !(key in window.__rowTimes)) window.__rowTimes[key] = now;
    }
  }).observe(document.querySelector('#fills tbody'), {childList: true});
}"""


def _fill_message(seq: int) -> str:
    fill = Fill(
        id=f"{MARKER}{seq}",
        order_id=f"bench-order-{seq}",
        timestamp=datetime.now(UTC),
        symbol="AAPL",
        side=Side.BUY,
        quantity=10,
        price=Decimal("187.25"),
        fee=Decimal("0.19"),
        signal_type="momentum",
        realized_pnl=Decimal("0"),
    )
    return fill_message(fill)


def _fill_to_row_ms(page: Page, service: LiveService) -> list[float]:
    page.goto(service.dashboard_url + "/")
    page.wait_for_function("document.querySelector('#link').textContent === 'live'", timeout=30_000)
    page.evaluate(_OBSERVE_FILLS, MARKER)
    publisher = redis.Redis.from_url(service.redis_url)
    channel = redis_keys.events_channel(service.redis_db)
    sent: dict[str, float] = {}
    try:
        for seq in range(FILLS):
            message = _fill_message(seq)
            sent[f"{MARKER}{seq}"] = time.time() * 1000
            publisher.publish(channel, message)
            time.sleep(INTERVAL_SECONDS)
    finally:
        publisher.close()
    page.wait_for_function(f"Object.keys(window.__rowTimes).length >= {FILLS}", timeout=30_000)
    seen: dict[str, float] = page.evaluate("window.__rowTimes")
    return [seen[key] - at for key, at in sent.items()]


# Playwright's wait_for_function evaluates its predicate from a string, which the page's CSP (no 'unsafe-eval')
# refuses; the bench's contexts bypass the CSP, which changes nothing the page itself loads or runs.


def measure() -> dict[str, Figure]:
    with live_service(sim_days=SIM_DAYS, extra=("--profile", "aggressive")) as service:
        _feed_done(service)
        record = _top_up_fills(service.database_url)
        load = load_average()
        with sync_playwright() as driver:
            browser = driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
            try:
                paints = []
                for _ in range(LOADS):
                    context = browser.new_context(viewport={"width": 1400, "height": 1000}, bypass_csp=True)
                    paints.append(_first_paint_ms(context.new_page(), service.dashboard_url + "/"))
                    context.close()
                context = browser.new_context(viewport={"width": 1400, "height": 1000}, bypass_csp=True)
                latencies = _fill_to_row_ms(context.new_page(), service)
                context.close()
            finally:
                browser.close()
    paint: dict[str, Any] = {
        "best_ms": min(paints),
        "median_ms": statistics.median(paints),
        "loads": LOADS,
        **record,
        "load": load,
    }
    p99 = percentile(latencies, 0.99)
    return {
        "dashboard_first_paint": figure(
            paint["median_ms"] / 1000, "s", "<= 1", paint["median_ms"] <= 1000, **paint
        ),
        "dashboard_fill_to_row_p99": figure(
            p99,
            "ms",
            "<= 500",
            p99 <= 500,
            p50_ms=percentile(latencies, 0.5),
            max_ms=max(latencies),
            fills=FILLS,
            interval_s=INTERVAL_SECONDS,
            load=load,
        ),
    }


if __name__ == "__main__":
    emit(measure())
