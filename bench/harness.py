"""What every benchmark script shares: the figure record, scratch stores, the machine description, timing."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import redis

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# The same servers the test suite uses (tests/conftest.py); override for another machine.
ADMIN_URL = os.environ.get("TRADEOS_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_BASE = os.environ.get("TRADEOS_BENCH_REDIS_URL", "redis://127.0.0.1:6379")
# The sim seed every figure is measured with (the CLI default is 1; these figures were first taken with 7).
SIM_SEED = 7

Figure = dict[str, Any]


def figure(value: float | None, unit: str, target: str, holds: bool | None, **detail: Any) -> Figure:
    """One entry of results.json: value, unit, the target in words, whether it holds, and anything else."""
    return {"value": value, "unit": unit, "target": target, "holds": holds, **detail}


def stub(unit: str, target: str, needs: str) -> Figure:
    """A figure not measured yet: no number rather than a made-up one."""
    return {
        "value": None,
        "unit": unit,
        "target": target,
        "holds": None,
        "note": f"not measured yet: needs {needs}",
    }


def emit(figures: dict[str, Figure]) -> None:
    """Prints the figures as the last line of stdout (bench/run.py reads it)."""
    print(json.dumps(figures, default=str))


def load_average() -> float:
    return os.getloadavg()[0]


def best_of(runs: int, measure: Callable[[], float]) -> tuple[float, list[float]]:
    """Smallest of `runs` timings (seconds): the least disturbed by whatever else the machine does."""
    times = [measure() for _ in range(runs)]
    return min(times), times


def _with_db(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


@contextmanager
def scratch_database(prefix: str = "tradeos_bench") -> Iterator[str]:
    """A brand-new PostgreSQL database, dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_db(ADMIN_URL, name)
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def scratch_redis() -> Iterator[str]:
    """An empty Redis DB index (claimed like the test suite claims one, so parallel runs do not share keys)."""
    admin = redis.Redis.from_url(f"{REDIS_BASE}/0")
    token = uuid.uuid4().hex
    try:
        for index in range(15, 0, -1):
            if admin.set(f"tradeos:test_claim:{index}", token, nx=True, ex=3600):
                url = f"{REDIS_BASE}/{index}"
                client = redis.Redis.from_url(url)
                client.flushdb()
                try:
                    yield url
                finally:
                    client.flushdb()
                    client.close()
                    if admin.get(f"tradeos:test_claim:{index}") == token.encode():
                        admin.delete(f"tradeos:test_claim:{index}")
                return
        raise RuntimeError("no free Redis DB index (1..15)")
    finally:
        admin.close()


def machine() -> dict[str, Any]:
    """CPU model, cores, RAM, Python version and date of this run."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                ram_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gb": ram_gb,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "load_average_at_start": round(load_average(), 2),
    }


class Stopwatch:
    """Wall and CPU time of a block."""

    def __enter__(self) -> Stopwatch:
        self.wall0, self.cpu0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall0
        self.cpu = time.process_time() - self.cpu0
