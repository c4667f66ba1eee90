"""REST load: `GET /portfolio` and `GET /trades?limit=50` (alternating) on 64 keep-alive connections while the
engine trades at full speed, against the real `tradeos up --speed 0 --no-flows` (scratch database and Redis).

The load generator is `wrk` when installed (`apt-get install -y wrk`), else an asyncio HTTP/1.1 client in this
process. Either way it shares the machine's cores with the service (engine thread, API event loop, PostgreSQL,
Redis): the figure is what the API serves under that contention, and the CPU each side used is recorded.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
from harness import Figure, emit, figure, load_average
from live_service import LiveService, cpu_seconds, live_service

CONNECTIONS = 64
SECONDS = 10.0
WARM_UP_SECONDS = 2.0
PATHS = ("/portfolio", "/trades?limit=50")
SIM_DAYS = 400  # more than the run needs: the engine trades for the whole measurement

_WRK_SCRIPT = """
local paths = {%(paths)s}
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", paths[(n %% #paths) + 1])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %%d, "seconds": %%f, "errors": %%d, "non_2xx": %%d, '
    .. '"p50_ms": %%f, "p90_ms": %%f, "p99_ms": %%f, "max_ms": %%f}\\n',
    summary.requests, summary.duration / 1e6, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000))
end
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run_wrk(url: str, seconds: float, paths: tuple[str, ...] = PATHS) -> tuple[dict[str, Any], float]:
    """wrk's summary, and the CPU seconds wrk itself used (`paths` requested in turn on every connection)."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_WRK_SCRIPT % {"paths": ", ".join(json.dumps(p) for p in paths)})
    try:
        done = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{CONNECTIONS}",
                f"-d{seconds:g}s",
                "--timeout",
                "5s",
                "-s",
                script.name,
                url,
            ],
            capture_output=True,
            text=True,
            timeout=seconds + 30,
            check=True,
        )
    finally:
        Path(script.name).unlink()
    line = next(x for x in done.stdout.splitlines() if x.startswith("WRKJSON "))
    summary = json.loads(line.removeprefix("WRKJSON "))
    return summary, _children_cpu()


def _children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def _client(
    host: str,
    port: int,
    stop_at: float,
    latencies: list[float],
    failures: list[int],
    offset: int,
    paths: tuple[str, ...],
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    requests = [f"GET {p} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode() for p in paths]
    n = offset
    try:
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            writer.write(requests[n % len(requests)])
            n += 1
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            if not head.startswith(b"HTTP/1.1 200"):
                failures.append(1)
    finally:
        writer.close()


def run_python(url: str, seconds: float, paths: tuple[str, ...] = PATHS) -> tuple[dict[str, Any], float]:
    """The same load from asyncio in this process (when wrk is absent)."""
    host, _, port = url.removeprefix("http://").partition(":")
    latencies: list[float] = []
    failures: list[int] = []

    async def main() -> float:
        started = time.perf_counter()
        stop_at = started + seconds
        await asyncio.gather(
            *(_client(host, int(port), stop_at, latencies, failures, i, paths) for i in range(CONNECTIONS))
        )
        return time.perf_counter() - started

    cpu0 = time.process_time()
    elapsed = asyncio.run(main())
    ms = [x * 1000 for x in latencies]
    summary = {
        "requests": len(ms),
        "seconds": elapsed,
        "errors": 0,
        "non_2xx": len(failures),
        "p50_ms": percentile(ms, 0.5),
        "p90_ms": percentile(ms, 0.9),
        "p99_ms": percentile(ms, 0.99),
        "max_ms": max(ms),
    }
    return summary, time.process_time() - cpu0


def load(service: LiveService) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while not service.get_json("/trades?limit=50"):
        if time.monotonic() > deadline:
            raise RuntimeError("no fill within 60 s")
        time.sleep(0.2)
    generator = run_wrk if shutil.which("wrk") else run_python
    generator(service.api_url, WARM_UP_SECONDS)
    with psycopg.connect(service.database_url) as conn:
        bars0 = int(conn.execute("SELECT count(*) FROM bars").fetchone()[0])  # type: ignore[index]
    load_avg = load_average()
    generator_cpu0 = _children_cpu()
    service_cpu0 = cpu_seconds(service.pid)
    summary, generator_cpu = generator(service.api_url, SECONDS)
    service_cpu = cpu_seconds(service.pid) - service_cpu0
    if generator is run_wrk:
        generator_cpu -= generator_cpu0
    with psycopg.connect(service.database_url) as conn:
        bars1 = int(conn.execute("SELECT count(*) FROM bars").fetchone()[0])  # type: ignore[index]
        fills = int(conn.execute("SELECT count(*) FROM fills").fetchone()[0])  # type: ignore[index]
    return {
        **summary,
        "generator": "wrk -t1" if generator is run_wrk else "python asyncio (in-process)",
        "generator_cpu_share": round(generator_cpu / summary["seconds"], 2),
        "service_cpu_share": round(service_cpu / summary["seconds"], 2),
        "engine_bars_per_s_during_load": round((bars1 - bars0) / summary["seconds"]),
        "fills_in_record": fills,
        "load_average": round(load_avg, 2),
    }


def measure() -> dict[str, Figure]:
    with live_service(sim_days=SIM_DAYS) as service:
        result = load(service)
    rate = result["requests"] / result["seconds"]
    ok = result["errors"] == 0 and result["non_2xx"] == 0
    return {
        "rest_load": figure(
            round(rate),
            "req/s",
            ">= 3000 at p99 <= 25 ms",
            ok and rate >= 3000 and result["p99_ms"] <= 25,
            p50_ms=round(result["p50_ms"], 2),
            p90_ms=round(result["p90_ms"], 2),
            p99_ms=round(result["p99_ms"], 2),
            max_ms=round(result["max_ms"], 2),
            connections=CONNECTIONS,
            seconds=round(result["seconds"], 1),
            **{k: result[k] for k in ("requests", "errors", "non_2xx", "generator", "generator_cpu_share")},
            **{
                k: result[k]
                for k in (
                    "service_cpu_share",
                    "engine_bars_per_s_during_load",
                    "fills_in_record",
                    "load_average",
                )
            },
            note="GET /portfolio and GET /trades?limit=50 alternating on 64 keep-alive connections while "
            "`tradeos up --speed 0` trades; the load generator runs on the same 2 cores as the service",
        )
    }


if __name__ == "__main__":
    emit(measure())
