"""Shared test helpers: polling instead of sleeping, and the real `tradeos` service as a child process."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

# The environment a `Service` keeps from the test's: the session's audit key (tests/conftest.py).
SHARED = frozenset({"TRADEOS_AUDIT_KEY"})


def free_port() -> int:
    """A TCP port on 127.0.0.1 free right now (for a server the test starts)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def eventually(
    predicate: Callable[[], T], *, timeout: float = 20.0, interval: float = 0.05, what: str = ""
) -> T:
    """Polls `predicate` until it returns something truthy; fails with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # the condition may not be checkable yet (table not created...)
            last_error = exc
        time.sleep(interval)
    raise AssertionError(
        f"timed out after {timeout}s waiting for {what or predicate}: last error {last_error!r}"
    )


class Service:
    """`tradeos <args>` in a child process with its own TRADEOS_HOME; output captured to a file."""

    def __init__(self, home: Path, args: list[str], env: dict[str, str] | None = None) -> None:
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        self.log_path = home / f"service-{time.monotonic_ns()}.log"
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEOS_") or k in SHARED}
        full_env.update({"TRADEOS_HOME": str(home), "DO_NOT_TRACK": "1", "PYTHONUNBUFFERED": "1"})
        full_env.update(env or {})
        self._log = open(self.log_path, "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", "api.cli", *args],
            env=full_env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=str(home),
        )

    @property
    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait(self, timeout: float = 60) -> int:
        try:
            return self.process.wait(timeout)
        finally:
            self._log.close()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.wait(timeout)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def __enter__(self) -> Service:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: Any) -> None:
        if self.process.poll() is None:
            self.stop()
        if exc_type is not None:  # the service's last words go into pytest's report of the failure
            print(f"--- last lines of {self.log_path} ---")
            print("\n".join(self.output.splitlines()[-60:]))


def run_cli(
    home: Path, args: list[str], env: dict[str, str] | None = None, timeout: float = 120
) -> tuple[int, str]:
    """Runs `tradeos <args>` to completion; returns (exit code, combined output)."""
    service = Service(home, args, env)
    code = service.wait(timeout)
    return code, service.output


class AppServer:
    """An API app served by uvicorn as `tradeos up` serves it (`api.operator.server_config`), on a free loopback
    port, in a thread with its own event loop: `with AppServer(create_app(settings)) as server: server.base_url`."""

    def __init__(self, app: Any) -> None:
        import threading

        import uvicorn

        from api.operator import server_config

        self.server = uvicorn.Server(server_config(app, host="127.0.0.1", port=0, log_config=None))
        self._thread = threading.Thread(target=self.server.run, name="app-server", daemon=True)

    def __enter__(self) -> AppServer:
        self._thread.start()
        eventually(lambda: self.server.started or not self._thread.is_alive(), what="the app server to start")
        if not self.server.started:
            raise RuntimeError("the app did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=15)

    @property
    def base_url(self) -> str:
        port = int(self.server.servers[0].sockets[0].getsockname()[1])
        return f"http://127.0.0.1:{port}"


@contextlib.contextmanager
def folder_for_embedded_home() -> Iterator[Path]:
    """A folder for a TRADEOS_HOME whose `tradeos up` starts its embedded PostgreSQL. Not under pytest's tmp_path:
    every pytest session started as root (another one on the machine, any time) resets /tmp/pytest-of-root to 0700,
    which takes back the traverse right `tradeos up` gave PostgreSQL's service account (initdb then fails)."""
    with tempfile.TemporaryDirectory(prefix="tradeos-test-home-") as folder:
        yield Path(folder)


def recorded_bars(database_url: str) -> Any:
    """The `bars` table of the system of record as a polars frame like `FakeBinance.minute_bars` (UTC, volume
    rounded to 8 places), sorted by time and symbol."""
    import polars as pl
    import psycopg

    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT timestamp, symbol, open, high, low, close, volume FROM bars ORDER BY timestamp, symbol"
        ).fetchall()
    schema = {
        "timestamp": pl.Datetime("us", "UTC"),
        "symbol": pl.String,
        "open": pl.Float64,
        "high": pl.Float64,
        "low": pl.Float64,
        "close": pl.Float64,
        "volume": pl.Float64,
    }
    return pl.DataFrame(rows, schema=schema, orient="row").with_columns(pl.col("volume").round(8))
