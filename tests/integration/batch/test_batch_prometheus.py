"""`GET /metrics` on the Metrics API over HTTP, parsed with prometheus_client's own parser: every counter equals
the rows recorded in the realistic system of record, each histogram equals the recorded latencies bucketed here, and
each flow's last success is its latest completed run on the Prefect server."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from batch_records import SystemOfRecord
from prometheus_client.parser import text_string_to_metric_families

from api.metrics import create_app
from api.prometheus import API_LATENCY_BUCKETS_MS, TICK_TO_ORDER_BUCKETS_US
from live.settings import Settings
from tests.support import AppServer

TOKEN = "s3cret-prometheus-token"


@pytest.fixture
def metrics(tradeos_home: Path, loaded_database: str, redis_url: str) -> Iterator[str]:
    settings = Settings(
        home=tradeos_home, database_url=loaded_database, redis_url=redis_url, tool_token=TOKEN
    )
    with AppServer(create_app(settings)) as server:
        yield server.base_url


def _scrape(base: str) -> dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    """Family name -> {(sample name, sorted labels): value}, as prometheus_client parses the exposition."""
    response = httpx.get(base + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        family.name: {(s.name, tuple(sorted(s.labels.items()))): s.value for s in family.samples}
        for family in text_string_to_metric_families(response.text)
    }


def _counter(families: dict[str, Any], name: str, **labels: str) -> float:
    return families[name][(name + "_total", tuple(sorted(labels.items())))]


def _histogram(
    families: dict[str, Any], name: str, bounds_seconds: list[float], **labels: str
) -> tuple[list[float], float, float]:
    """(cumulative bucket counts at each bound and +Inf, count, sum) of one series."""
    series = families[name]
    key = tuple(sorted(labels.items()))
    buckets = []
    for bound in [*bounds_seconds, float("inf")]:
        le = "+Inf" if bound == float("inf") else repr(bound)
        buckets.append(series[(name + "_bucket", tuple(sorted({**labels, "le": le}.items())))])
    return buckets, series[(name + "_count", key)], series[(name + "_sum", key)]


def _expected_buckets(samples: list[float], bounds: tuple[float, ...]) -> list[float]:
    return [float(sum(1 for s in samples if s <= b)) for b in bounds] + [float(len(samples))]


def test_every_counter_equals_the_rows_recorded(
    metrics: str, loaded_database: str, system_of_record: SystemOfRecord
) -> None:
    with psycopg.connect(loaded_database, autocommit=True) as pg:
        for actor in ("alice", "breaker", "bob"):
            pg.execute(
                "INSERT INTO control_actions (action, actor) VALUES ('halt', %s), ('resume', %s)",
                (actor, actor),
            )

    families = _scrape(metrics)

    assert _counter(families, "tradeos_bars_processed") == len(system_of_record.bars)
    statuses = Counter(o["status"] for o in system_of_record.orders)
    for status, count in statuses.items():
        assert _counter(families, "tradeos_orders", status=status) == count
    reasons = Counter(o["reason"] for o in system_of_record.orders if o["status"] == "rejected")
    assert len(reasons) > 1
    assert {
        dict(labels)["reason"]: value for (_, labels), value in families["tradeos_order_rejections"].items()
    } == dict(reasons)
    trips = Counter(e["code"] for e in system_of_record.risk_events if e["halts_trading"])
    assert {
        dict(labels)["code"]: value
        for (_, labels), value in families["tradeos_circuit_breaker_trips"].items()
    } == (dict(trips))
    assert _counter(families, "tradeos_halts") == 3
    assert families["tradeos_store_up"] == {
        ("tradeos_store_up", (("store", "postgres"),)): 1.0,
        ("tradeos_store_up", (("store", "redis"),)): 1.0,
    }


def test_the_bar_tally_counts_bars_recorded_after_a_scrape_once(
    metrics: str, loaded_database: str, system_of_record: SystemOfRecord
) -> None:
    before = _counter(_scrape(metrics), "tradeos_bars_processed")
    last = max(b.timestamp for b in system_of_record.bars)
    with psycopg.connect(loaded_database, autocommit=True) as pg:
        for step in range(1, 4):
            for symbol in ("AAA", "BBB"):
                pg.execute(
                    "INSERT INTO bars (timestamp, symbol, open, high, low, close, volume) VALUES (%s, %s, 1, 1, 1, 1, 1)",
                    (last + timedelta(minutes=5 * step), symbol),
                )

    assert before == len(system_of_record.bars)
    assert _counter(_scrape(metrics), "tradeos_bars_processed") == before + 6
    assert _counter(_scrape(metrics), "tradeos_bars_processed") == before + 6


def test_the_latency_histograms_bucket_the_recorded_latencies_in_seconds(
    metrics: str, loaded_database: str, system_of_record: SystemOfRecord
) -> None:
    with psycopg.connect(loaded_database, autocommit=True) as pg:
        # 5.0 ms is on a bound: `le` buckets include it (le="0.005").
        for path, latency in (("/trading/halt", 5.0), ("/../../etc/passwd", 1.0), ("/no/such/route", 700.0)):
            pg.execute(
                "INSERT INTO api_requests (timestamp, method, path, status, latency_ms) VALUES (now(), 'POST', %s, 200, %s)",
                (path, latency),
            )

    families = _scrape(metrics)

    latencies_us = [o["tick_to_order_us"] for o in system_of_record.orders]
    buckets, count, total = _histogram(
        families, "tradeos_tick_to_order_seconds", [b / 1e6 for b in TICK_TO_ORDER_BUCKETS_US]
    )
    assert buckets == _expected_buckets(latencies_us, TICK_TO_ORDER_BUCKETS_US)
    assert count == len(latencies_us)
    assert total == pytest.approx(sum(latencies_us) / 1e6, rel=1e-12)

    portfolio_ms = [r["latency_ms"] for r in system_of_record.api_requests]
    api_bounds = [b / 1e3 for b in API_LATENCY_BUCKETS_MS]
    buckets, count, total = _histogram(
        families, "tradeos_api_request_duration_seconds", api_bounds, method="GET", route="/portfolio"
    )
    assert buckets == _expected_buckets(portfolio_ms, API_LATENCY_BUCKETS_MS)
    assert total == pytest.approx(sum(portfolio_ms) / 1e3, rel=1e-12)
    halt, _, _ = _histogram(
        families, "tradeos_api_request_duration_seconds", api_bounds, method="POST", route="/trading/halt"
    )
    assert halt == _expected_buckets([5.0], API_LATENCY_BUCKETS_MS)
    # Paths anyone may request are not labels: they count as `other`.
    other, _, _ = _histogram(
        families, "tradeos_api_request_duration_seconds", api_bounds, method="POST", route="other"
    )
    assert other == _expected_buckets([1.0, 700.0], API_LATENCY_BUCKETS_MS)
    routes = {dict(labels).get("route") for _, labels in families["tradeos_api_request_duration_seconds"]}
    assert routes == {"/portfolio", "/trading/halt", "other"}


@pytest.mark.usefixtures("prefect_harness")
def test_each_flows_last_success_is_its_latest_completed_run_on_prefect(
    tradeos_home: Path, loaded_database: str, redis_url: str
) -> None:
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL

    # The operator's own Prefect server (PREFECT_API_URL): the Metrics API asks it.
    settings = Settings(
        home=tradeos_home,
        database_url=loaded_database,
        redis_url=redis_url,
        tool_token=TOKEN,
        prefect_api_url=str(PREFECT_API_URL.value()),
    )

    @flow(name="signal-ic")
    def completes() -> None:
        return None

    @flow(name="daily-report")
    def fails() -> None:
        raise RuntimeError("no report today")

    runs = [completes(return_state=True), completes(return_state=True)]
    fails(return_state=True)
    with get_client(sync_client=True) as client:
        ended = client.read_flow_run(runs[-1].state_details.flow_run_id).end_time
    assert ended is not None

    with AppServer(create_app(settings)) as server:
        gauge = _scrape(server.base_url)["tradeos_flow_last_success_timestamp_seconds"]

    assert gauge == {
        ("tradeos_flow_last_success_timestamp_seconds", (("flow", "signal-ic"),)): ended.timestamp()
    }
