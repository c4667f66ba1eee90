"""The real `tradeos up` in a child process, for the benchmarks that drive the operator API while the engine runs
(halt latency, REST load, WebSocket fan-out): a scratch database, a claimed Redis DB index, free ports."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from harness import ROOT, SIM_SEED, scratch_database, scratch_redis

START_TIMEOUT = 90.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class LiveService:
    """Where the running service answers, and the stores it uses."""

    pid: int
    api_url: str
    ws_url: str
    dashboard_url: str
    database_url: str
    redis_url: str
    redis_db: int
    log_path: Path

    def get_json(self, path: str, *, timeout: float = 5.0) -> object:
        with urllib.request.urlopen(self.api_url + path, timeout=timeout) as response:
            return json.loads(response.read())

    def post_json(self, path: str, body: object | None = None, *, timeout: float = 5.0) -> object:
        data = json.dumps(body).encode() if body is not None else b""
        request = urllib.request.Request(
            self.api_url + path, data=data, method="POST", headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())


def _healthz(url: str) -> dict[str, object] | None:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=2) as response:
            return json.loads(response.read())  # type: ignore[no-any-return]
    except urllib.error.HTTPError as exc:
        return json.loads(exc.read())  # type: ignore[no-any-return]
    except (OSError, ValueError):
        return None


@contextmanager
def live_service(*, sim_days: float, extra: tuple[str, ...] = ()) -> Iterator[LiveService]:
    """`tradeos up --speed 0 --sim-days N --no-flows` until the block ends (then SIGINT, an orderly stop).
    Yields once /healthz says every service is healthy, i.e. the engine is trading."""
    with (
        scratch_database() as database_url,
        scratch_redis() as redis_url,
        tempfile.TemporaryDirectory() as home,
    ):
        api_port, metrics_port, dashboard_port = free_port(), free_port(), free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEOS_")}
        env.update(
            TRADEOS_DATABASE_URL=database_url,
            TRADEOS_REDIS_URL=redis_url,
            TRADEOS_HOME=home,
            DO_NOT_TRACK="1",
            PYTHONUNBUFFERED="1",
        )
        args = [
            "up",
            "--speed",
            "0",
            "--sim-days",
            str(sim_days),
            "--seed",
            str(SIM_SEED),
            "--no-flows",
            "--api-port",
            str(api_port),
            "--metrics-port",
            str(metrics_port),
            "--dashboard-port",
            str(dashboard_port),
            *extra,
        ]
        log_path = Path(home) / "service.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "api.cli", *args],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        api_url = f"http://127.0.0.1:{api_port}"
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"tradeos up exited ({proc.returncode}): {_tail(log_path)}")
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"tradeos up not healthy after {START_TIMEOUT:.0f}s: {_tail(log_path)}"
                    )
                health = _healthz(api_url)
                if health is not None and health.get("status") == "healthy":
                    break
                time.sleep(0.1)
            yield LiveService(
                pid=proc.pid,
                api_url=api_url,
                ws_url=f"ws://127.0.0.1:{api_port}/ws",
                dashboard_url=f"http://127.0.0.1:{dashboard_port}",
                database_url=database_url,
                redis_url=redis_url,
                redis_db=int(redis_url.rsplit("/", 1)[1]),
                log_path=log_path,
            )
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def _tail(path: Path) -> str:
    lines = path.read_text(errors="replace").strip().splitlines()
    return " | ".join(lines[-3:])[-400:]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
