"""Memory: peak RSS of `tradeos up --speed 0 --sim-days 30 --no-flows` (engine + both APIs) once the 30 sim days
are done, against a fresh PostgreSQL database and an empty Redis DB index. If the APIs cannot start, the engine
alone (`--no-api`) is measured and the figure says so."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from harness import ROOT, SIM_SEED, Figure, emit, figure, scratch_database, scratch_redis
from live_service import free_port

DAYS = 30
TIMEOUT = 300


def _peak_rss_mb(pid: int) -> float:
    """Sum of the peak RSS (VmHWM) of `tradeos up` and its child processes (the APIs run in their own)."""
    total = 0
    for each in [pid, *_children(pid)]:
        for line in Path(f"/proc/{each}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                total += int(line.split()[1])
    if not total:
        raise RuntimeError("no VmHWM")
    return total / 1024


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        for child in children:
            found += [int(child), *_children(int(child))]
    return found


def _api_status(port: str) -> int | None:
    """HTTP status of GET /healthz on the operator API, None if nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return None


def run(extra: list[str]) -> tuple[float | None, float, str, int | None]:
    """(peak RSS in MB or None if it did not finish, seconds, the tail of its log, /healthz status)."""
    with (
        scratch_database() as database_url,
        scratch_redis() as redis_url,
        tempfile.TemporaryDirectory() as home,
    ):
        env = {
            **os.environ,
            "TRADEOS_DATABASE_URL": database_url,
            "TRADEOS_REDIS_URL": redis_url,
            "TRADEOS_HOME": home,
            "TRADEOS_API_PORT": str(free_port()),
            "TRADEOS_METRICS_PORT": str(free_port()),
            "TRADEOS_DASHBOARD_PORT": str(free_port()),
        }
        log_path = Path(home) / "out.log"
        args = ["up", "--speed", "0", "--sim-days", str(DAYS), "--seed", str(SIM_SEED), "--no-flows", *extra]
        with log_path.open("w") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "api.cli", *args],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        started = time.perf_counter()
        peak = None
        api = None
        try:
            while time.perf_counter() - started < TIMEOUT:
                if proc.poll() is not None:
                    break
                if "feed finished" in log_path.read_text(errors="replace"):
                    time.sleep(1.0)  # let the last flush and snapshot settle
                    api = _api_status(env["TRADEOS_API_PORT"]) if not extra else None
                    peak = _peak_rss_mb(proc.pid)
                    break
                time.sleep(0.2)
        finally:
            elapsed = time.perf_counter() - started
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        tail = log_path.read_text(errors="replace")[-2000:]
        return peak, elapsed, tail, api


def measure() -> dict[str, Figure]:
    peak, elapsed, tail, api = run([])
    scope = f"engine + REST/WS API + Metrics API processes, summed (GET /healthz answered {api})"
    if peak is None or api is None:
        failed = tail.strip().splitlines()[-1:] or ["?"]
        peak, elapsed, tail, _ = run(["--no-api"])
        scope = f"engine only (--no-api): `tradeos up` with the APIs did not finish ({failed[0][:200]})"
    if peak is None:
        return {
            "memory_peak_rss": figure(None, "MB", "report it", None, note=f"did not finish: {tail[-300:]}")
        }
    return {
        "memory_peak_rss": figure(
            round(peak, 1),
            "MB",
            "report it",
            None,
            scope=scope,
            command=f"tradeos up --speed 0 --sim-days {DAYS} --no-flows",
            seconds_to_finish=round(elapsed, 1),
        )
    }


if __name__ == "__main__":
    emit(measure())
