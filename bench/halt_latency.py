"""Halt latency: `POST /trading/halt` sent → the engine refuses the next order, measured from the client.

The real `tradeos up --speed 0 --no-flows` runs against a scratch database and Redis DB index and trades at full
speed. 50 times: halt (timed on one keep-alive connection until the response, which the API sends only once the
engine has confirmed), hold it 0.4 s, resume, let it trade 0.2 s. The figure is the response time; the records
then check that no order was decided while halted: the engine's `portfolio_update`s (taken under the engine
lock after each commit, with the sim time and trading state) bracket each halt in sim time, and `orders` must
hold nothing strictly after the first halted snapshot and up to the last one.
"""

from __future__ import annotations

import http.client
import json
import statistics
import threading
import time
from datetime import datetime
from typing import Any

import psycopg
import redis
from harness import Figure, emit, figure, load_average
from live_service import LiveService, cpu_seconds, live_service

from live.stores import redis_keys

CYCLES = 50
HOLD_SECONDS = 0.4
ACTIVE_SECONDS = 0.2
WARM_UP_ORDERS = 20
SIM_DAYS = 400  # more than the run needs: the feed must not end while halts are timed


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Snapshots(threading.Thread):
    """Every `portfolio_update` the engine publishes: (sim time, trading state), in order."""

    def __init__(self, redis_url: str, db: int) -> None:
        super().__init__(name="bench-snapshots", daemon=True)
        self.client = redis.Redis.from_url(redis_url)
        self.pubsub = self.client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
        self.pubsub.subscribe(redis_keys.events_channel(db))
        self.seen: list[tuple[float, datetime, str]] = []  # (received, perf_counter), sim time, state
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            message = self.pubsub.get_message(timeout=0.1)
            if not message or message.get("type") != "message":
                continue
            received = time.perf_counter()
            event = json.loads(message["data"])
            if event.get("type") == "portfolio_update" and event["data"].get("timestamp"):
                data = event["data"]
                ts = datetime.fromisoformat(data["timestamp"].replace("Z", "+00:00"))
                self.seen.append((received, ts, str(data.get("trading_state"))))

    def stop(self) -> None:
        self.stopping.set()
        self.join(5)
        self.pubsub.close()
        self.client.close()


def _post(conn: http.client.HTTPConnection, path: str) -> tuple[float, dict[str, Any]]:
    """(seconds from sending to the whole response, the body)."""
    started = time.perf_counter()
    conn.request("POST", path, body=b"{}", headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    body = response.read()
    elapsed = time.perf_counter() - started
    if response.status != 200:
        raise RuntimeError(f"POST {path}: HTTP {response.status} {body[:200]!r}")
    return elapsed, json.loads(body)


def _orders(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        return int(conn.execute("SELECT count(*) FROM orders WHERE status <> 'rejected'").fetchone()[0])  # type: ignore[index]


def _halted_windows(
    seen: list[tuple[float, datetime, str]], cycles: list[tuple[float, float]]
) -> list[tuple[datetime, datetime]]:
    """(first, last) sim time of the halted snapshots received while each halt was in force: after the halt was
    sent and before the resume was (the previous resume was confirmed, so a halted snapshot then is this halt's)."""
    windows: list[tuple[datetime, datetime]] = []
    for halt_sent, resume_sent in cycles:
        halted = [
            ts for received, ts, state in seen if halt_sent < received < resume_sent and state == "halted"
        ]
        if halted:
            windows.append((min(halted), max(halted)))
    return windows


def run_cycles(service: LiveService) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while _orders(service.database_url) < WARM_UP_ORDERS:
        if time.monotonic() > deadline:
            raise RuntimeError("the engine placed no orders within 60 s")
        time.sleep(0.2)
    snapshots = Snapshots(service.redis_url, service.redis_db)
    snapshots.start()
    conn = http.client.HTTPConnection(service.api_url.removeprefix("http://"), timeout=10)
    halts: list[float] = []
    resumes: list[float] = []
    cycles: list[tuple[float, float]] = []
    acknowledged = 0
    load = load_average()
    cpu0, wall0 = cpu_seconds(service.pid), time.perf_counter()
    orders_before = _orders(service.database_url)
    try:
        _post(conn, "/trading/resume")  # the connection is open and warm before the first timed request
        time.sleep(ACTIVE_SECONDS)
        for _ in range(CYCLES):
            halt_sent = time.perf_counter()
            elapsed, body = _post(conn, "/trading/halt")
            if body.get("status") != "halted":
                raise RuntimeError(f"halt answered {body}")
            acknowledged += bool(body.get("engine_acknowledged"))
            halts.append(elapsed)
            time.sleep(HOLD_SECONDS)
            cycles.append((halt_sent, time.perf_counter()))
            elapsed, body = _post(conn, "/trading/resume")
            if body.get("status") != "active":
                raise RuntimeError(f"resume answered {body}")
            resumes.append(elapsed)
            time.sleep(ACTIVE_SECONDS)
        time.sleep(0.6)  # the last commit's snapshot
    finally:
        conn.close()
        snapshots.stop()
    wall = time.perf_counter() - wall0
    service_cpu = cpu_seconds(service.pid) - cpu0
    orders_during = _orders(service.database_url) - orders_before
    windows = _halted_windows(snapshots.seen, cycles)
    with psycopg.connect(service.database_url) as db:
        violations = 0
        for first, last in windows:
            violations += int(
                db.execute(  # type: ignore[index]
                    "SELECT count(*) FROM orders WHERE timestamp > %s AND timestamp <= %s", (first, last)
                ).fetchone()[0]
            )
        sim_span = db.execute("SELECT max(timestamp) - min(timestamp), count(*) FROM bars").fetchone()
    return {
        "halts": halts,
        "resumes": resumes,
        "acknowledged": acknowledged,
        "windows": len(windows),
        "violations": violations,
        "orders_during": orders_during,
        "wall": wall,
        "service_cpu": service_cpu,
        "load": load,
        "sim_span": sim_span,
    }


def measure() -> dict[str, Figure]:
    with live_service(sim_days=SIM_DAYS) as service:
        result = run_cycles(service)
    halts_ms = [s * 1000 for s in result["halts"]]
    resumes_ms = [s * 1000 for s in result["resumes"]]
    p50, p99 = percentile(halts_ms, 0.5), percentile(halts_ms, 0.99)
    span, bars = result["sim_span"]
    return {
        "halt_latency": figure(
            round(p99, 2),
            "ms",
            "<= 10",
            p99 <= 10 and result["violations"] == 0,
            p50_ms=round(p50, 2),
            p99_ms=round(p99, 2),
            max_ms=round(max(halts_ms), 2),
            mean_ms=round(statistics.fmean(halts_ms), 2),
            resume_p50_ms=round(percentile(resumes_ms, 0.5), 2),
            resume_p99_ms=round(percentile(resumes_ms, 0.99), 2),
            halts=len(halts_ms),
            engine_acknowledged=result["acknowledged"],
            halted_windows_checked=result["windows"],
            orders_decided_while_halted=result["violations"],
            orders_submitted_during_run=result["orders_during"],
            service_cpu_share=round(result["service_cpu"] / result["wall"], 2),
            bars_processed=bars,
            sim_days_processed=round(span.total_seconds() / 86400, 1) if span else None,
            load_average=round(result["load"], 2),
            note="p99 of POST /trading/halt response time (the API answers once the engine confirmed), "
            f"{CYCLES} halt/resume cycles on one keep-alive connection while `tradeos up --speed 0` trades; "
            "orders_decided_while_halted counts orders (any status) the records place strictly inside a halt",
        )
    }


if __name__ == "__main__":
    emit(measure())
