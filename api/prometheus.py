"""`GET /metrics` on the Metrics API: the Prometheus text exposition of what operators graph and alert on.

The engine runs in another process and its counts are what it recorded, so a scrape reads them from the system of
record rather than from counters kept in memory: every counter equals the rows recorded, and survives a restart of
the engine or of the API. Latency histograms are bucketed from the latencies recorded with each row
(`orders.tick_to_order_us`, measured by the engine; `api_requests.latency_ms`, measured by the operator API).
Gauges come from Redis (WebSocket clients per API process, engine heartbeats) and Prefect (flows' last success).

What a scrape costs is bounded: the bars (by far the largest table) are tallied incrementally -- only the bars
recorded since the last scrape are counted, by a range scan of their primary key -- and the other tables are read
by one aggregate each. A store that cannot be reached leaves its metrics out and sets `tradeos_store_up` to 0, so
the scrape still answers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime

import psycopg
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from api import operator, reads
from api.browser_session import DOCS_PAGE
from api.flow_runs import FlowRuns, FlowRunsUnavailable
from api.stores import Stores, StoreUnavailable
from api.ws_clients import websocket_clients
from live.stores import record
from live.stores.record.book import OrderTally
from live.stores.record.statements import LatencyBuckets

log = logging.getLogger("tradeos.api.metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Bucket bounds in the unit each latency is recorded in (exposed in seconds): an engine step takes tens of
# microseconds to milliseconds, an API request milliseconds to seconds.
TICK_TO_ORDER_BUCKETS_US = (
    50,
    100,
    250,
    500,
    1_000,
    2_500,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    1e6,
)
API_LATENCY_BUCKETS_MS = (1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000)

# The operator API's routes: any other path requested (anyone may request any) is labelled `other`.
OPERATOR_ROUTES: tuple[str, ...] = (
    *(getattr(route, "path", "") for route in operator.router.routes),
    "/ws",
    DOCS_PAGE,
    "/openapi.json",
    "/session",
    "/session/logout",
)
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


class BarTally:
    """Bars recorded so far, counted once each: the engine records a step's bars in one transaction and steps in
    bar-time order, so a bar recorded after a scrape is always later than every bar that scrape counted."""

    def __init__(self) -> None:
        self._count = 0
        self._through: datetime | None = None
        self._lock = asyncio.Lock()

    async def count(self, conn: psycopg.AsyncConnection) -> int:
        async with self._lock:
            added, through = await record.fetch_async(
                conn, record.market.bars_recorded_after(after=self._through)
            )
            self._count += added
            self._through = through or self._through
            return self._count


@dataclass(slots=True)
class RecordCounts:
    """One snapshot of the record's counts, read in one transaction."""

    bars: int
    orders: OrderTally
    control_actions: dict[str, int]
    risk_events: dict[tuple[str, bool], int]
    api_latency: dict[tuple[str, str], LatencyBuckets]


@dataclass(slots=True)
class Scrape:
    """Everything one scrape exposes; a part is None when its store could not be read."""

    stores_up: dict[str, bool] = field(default_factory=dict)
    counts: RecordCounts | None = None
    websocket_clients: int | None = None
    heartbeat_ages: Mapping[str, float | None] | None = None
    flow_successes: Mapping[str, datetime] | None = None


class Exposition:
    """The scrape's state kept between scrapes (the bar tally, where Prefect is) and the scrape itself."""

    def __init__(self, flow_runs: FlowRuns) -> None:
        self._bars = BarTally()
        self._flow_runs = flow_runs

    async def _record_counts(self, stores: Stores) -> RecordCounts:
        async with stores.postgres() as conn, conn.transaction():
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            return RecordCounts(
                bars=await self._bars.count(conn),
                orders=await record.fetch_async(
                    conn, record.book.order_tally(bounds_us=TICK_TO_ORDER_BUCKETS_US)
                ),
                control_actions=await record.fetch_async(conn, record.decisions.control_action_tally()),
                risk_events=await record.fetch_async(conn, record.events.risk_event_tally()),
                api_latency=await record.fetch_async(
                    conn,
                    record.events.api_latency_by_route(
                        routes=OPERATOR_ROUTES,
                        methods=HTTP_METHODS,
                        bounds_ms=API_LATENCY_BUCKETS_MS,
                    ),
                ),
            )

    async def scrape(self, stores: Stores) -> Scrape:
        """Reads every part at once; a part whose store fails is left out."""
        counts, clients, ages, flows = await asyncio.gather(
            self._record_counts(stores),
            websocket_clients(stores),
            reads.heartbeat_ages(stores),
            self._flow_runs.last_successes(),
            return_exceptions=True,
        )
        scrape = Scrape()
        scrape.stores_up["postgres"] = not isinstance(counts, BaseException)
        scrape.stores_up["redis"] = not isinstance(clients, BaseException)
        for part, value in (("record", counts), ("redis", clients), ("heartbeats", ages), ("flows", flows)):
            if isinstance(value, BaseException) and not isinstance(
                value, StoreUnavailable | FlowRunsUnavailable
            ):
                raise value
            if isinstance(value, BaseException):
                log.debug("/metrics: %s left out: %s", part, value)
        scrape.counts = None if isinstance(counts, BaseException) else counts
        scrape.websocket_clients = None if isinstance(clients, BaseException) else clients
        scrape.heartbeat_ages = None if isinstance(ages, BaseException) else ages
        scrape.flow_successes = None if isinstance(flows, BaseException) else flows
        return scrape


class ScrapeCollector(Collector):
    """The families of one `Scrape`, for `generate_latest`."""

    def __init__(self, scrape: Scrape) -> None:
        self._scrape = scrape

    def collect(self) -> Iterable[Metric]:
        scrape = self._scrape
        up = GaugeMetricFamily(
            "tradeos_store_up", "Whether the store answered this scrape (1) or not (0).", labels=["store"]
        )
        for store, answered in sorted(scrape.stores_up.items()):
            up.add_metric([store], 1.0 if answered else 0.0)
        yield up
        if scrape.counts is not None:
            yield from _record_families(scrape.counts)
        if scrape.websocket_clients is not None:
            yield GaugeMetricFamily(
                "tradeos_websocket_clients",
                "WebSocket clients connected to the operator API (all its processes).",
                value=scrape.websocket_clients,
            )
        if scrape.heartbeat_ages is not None:
            ages = GaugeMetricFamily(
                "tradeos_heartbeat_age_seconds",
                "Seconds since the engine service's last heartbeat (absent: never seen).",
                labels=["service"],
            )
            for service, age in sorted(scrape.heartbeat_ages.items()):
                if age is not None:
                    ages.add_metric([service], age)
            yield ages
        if scrape.flow_successes is not None:
            flows = GaugeMetricFamily(
                "tradeos_flow_last_success_timestamp_seconds",
                "Unix time the flow's latest completed run ended (absent: none completed).",
                labels=["flow"],
            )
            for flow, ended in sorted(scrape.flow_successes.items()):
                flows.add_metric([flow], ended.timestamp())
            yield flows


def _record_families(counts: RecordCounts) -> Iterator[Metric]:
    yield CounterMetricFamily(
        "tradeos_bars_processed", "Bars the engine processed and recorded.", value=counts.bars
    )
    orders = CounterMetricFamily(
        "tradeos_orders", "Orders the engine decided, by their current status.", labels=["status"]
    )
    for status, count in sorted(counts.orders.by_status.items()):
        orders.add_metric([status], count)
    yield orders
    rejections = CounterMetricFamily(
        "tradeos_order_rejections",
        "Orders refused by a pre-trade check or the kill switch, by reason.",
        labels=["reason"],
    )
    for reason, count in sorted(counts.orders.rejections_by_reason.items()):
        rejections.add_metric([reason], count)
    yield rejections
    yield _seconds_histogram(
        "tradeos_tick_to_order_seconds",
        "From the start of the engine's step on a bar to an order's submission to the broker.",
        {(): counts.orders.tick_to_order},
        labels=[],
        unit_per_second=1e6,
    )
    yield CounterMetricFamily(
        "tradeos_halts",
        "Halts on record: by operators, the kill switch and the circuit breakers.",
        value=counts.control_actions.get("halt", 0),
    )
    trips = CounterMetricFamily(
        "tradeos_circuit_breaker_trips", "Risk events that halted trading, by code.", labels=["code"]
    )
    for (code, halts), count in sorted(counts.risk_events.items()):
        if halts:
            trips.add_metric([code], count)
    yield trips
    yield _seconds_histogram(
        "tradeos_api_request_duration_seconds",
        "Operator API requests, from arrival to the end of the response, by method and route.",
        counts.api_latency,
        labels=["method", "route"],
        unit_per_second=1e3,
    )


def _seconds_histogram(
    name: str,
    documentation: str,
    series: Mapping[tuple[()], LatencyBuckets] | Mapping[tuple[str, str], LatencyBuckets],
    *,
    labels: list[str],
    unit_per_second: float,
) -> HistogramMetricFamily:
    """Histogram series recorded in another unit (µs, ms), exposed in seconds as Prometheus wants."""
    family = HistogramMetricFamily(name, documentation, labels=labels)
    for label_values, buckets in sorted(series.items()):
        points = [
            (_bound(bound / unit_per_second), float(count))
            for bound, count in zip(buckets.bounds, buckets.cumulative, strict=True)
        ]
        points.append(("+Inf", float(buckets.count)))
        family.add_metric(list(label_values), points, sum_value=buckets.total / unit_per_second)
    return family


def _bound(seconds: float) -> str:
    """A bucket bound as written in the exposition (the shortest decimal: 0.00005, not 5.0000000000000002e-05)."""
    return repr(round(seconds, 12))


def render(scrape: Scrape) -> bytes:
    """The scrape in the Prometheus text format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ScrapeCollector(scrape))
    return generate_latest(registry)
