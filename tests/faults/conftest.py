"""Private servers the fault tests may stop, start and empty at will (never the shared ones on 5432/6379).

- `PrivateRedis`: a `redis-server` child on a free TCP port, no persistence; restarting it comes back empty.
- `PrivatePostgres`: a cluster of its own (initdb once per session, run as an unprivileged user when we are root),
  on a free TCP port of 127.0.0.1, so its URL survives a stop and a start; each test gets a fresh database in it.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from tests.support import eventually, free_port


class PrivateRedis:
    """A redis-server child we own: `stop` kills it (an outage), `start` brings it back on the same port, empty."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed")
        self.folder.mkdir(parents=True, exist_ok=True)
        log = open(self.folder / f"redis-{self.port}.log", "ab")  # noqa: SIM115 - handed to the child
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.folder),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        eventually(self.ping, timeout=10, what=f"private Redis on port {self.port}")

    def ping(self) -> bool:
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5, socket_timeout=0.5)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def stop(self) -> None:
        """SIGKILL: the abrupt outage; whatever it held is gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=5)


def _run_as(user: str | None, args: list[str], **kwargs: object) -> subprocess.CompletedProcess[bytes]:
    command = ["runuser", "-u", user, "--", *args] if user else args
    return subprocess.run(command, check=True, capture_output=True, timeout=60, **kwargs)  # type: ignore[call-overload]


def _postgres_bin() -> Path | None:
    """The bin folder of an installed PostgreSQL (newest), else the one pgserver ships."""
    installed = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if installed:
        return installed[-1].parent
    with contextlib.suppress(ImportError):
        import pgserver

        folder = Path(pgserver.__file__).parent / "pginstall" / "bin"
        if (folder / "pg_ctl").exists():
            return folder
    return None


class PrivatePostgres:
    """A PostgreSQL cluster we own: `stop` (immediate, like a crash) and `start` keep its port and data."""

    def __init__(self) -> None:
        binaries = _postgres_bin()
        if binaries is None:
            pytest.skip("no PostgreSQL binaries (initdb/pg_ctl) found")
        self.bin = binaries
        self.user: str | None = None
        if os.geteuid() == 0:
            for name in ("postgres", "pgserver"):
                with contextlib.suppress(KeyError):
                    pwd.getpwnam(name)
                    self.user = name
                    break
            if self.user is None:
                pytest.skip("running as root and no unprivileged user to run PostgreSQL as")
        self.root = Path(tempfile.mkdtemp(prefix="tradeos-faults-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.admin_url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.root.chmod(0o755)
        if self.user:
            entry = pwd.getpwnam(self.user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        _run_as(
            self.user,
            [str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
        )

    def start(self) -> None:
        # fsync off is safe here (the machine does not crash, only the server); synchronous_commit stays on, or an
        # immediate stop would lose commits the engine was told had succeeded.
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
            " -c full_page_writes=off -c max_connections=200"
        )
        _run_as(
            self.user,
            [
                str(self.bin / "pg_ctl"),
                "-D",
                str(self.data),
                "-o",
                options,
                "-l",
                str(self.root / "log"),
                "-w",
                "start",
            ],
        )
        eventually(self.ping, timeout=20, what=f"private PostgreSQL on port {self.port}")

    def stop(self) -> None:
        """Immediate shutdown: every connection is cut at once, as when the server dies."""
        with contextlib.suppress(subprocess.CalledProcessError):
            _run_as(
                self.user, [str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"]
            )

    def running(self) -> bool:
        result = subprocess.run(
            [str(self.bin / "pg_ctl"), "-D", str(self.data), "status"], capture_output=True, check=False
        )
        return result.returncode == 0

    def ping(self) -> bool:
        try:
            with psycopg.connect(self.admin_url, connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False

    def ensure_running(self) -> None:
        if not self.ping():
            self.start()

    def create_database(self) -> str:
        name = f"tradeos_f_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def private_postgres_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivatePostgres]:
    cluster = PrivatePostgres()
    cluster.start()
    try:
        yield cluster
    finally:
        # The server's log (its ERROR lines name the statement that failed) outlives the cluster, for diagnosis.
        with contextlib.suppress(OSError):
            shutil.copy(cluster.root / "log", tmp_path_factory.getbasetemp() / "private-postgres.log")
        cluster.destroy()


@pytest.fixture
def private_postgres(private_postgres_cluster: PrivatePostgres) -> Iterator[PrivatePostgres]:
    """The private cluster, running at the start of the test (and after it: a test may have stopped it)."""
    private_postgres_cluster.ensure_running()
    yield private_postgres_cluster
    private_postgres_cluster.ensure_running()


@pytest.fixture
def private_database_url(private_postgres: PrivatePostgres) -> Iterator[str]:
    """A fresh database in the private cluster, dropped afterwards."""
    url = private_postgres.create_database()
    try:
        yield url
    finally:
        private_postgres.ensure_running()
        private_postgres.drop_database(url)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def stores(private_database_url: str, private_redis: PrivateRedis) -> dict[str, str]:
    """The environment that points `tradeos up` at the private servers."""
    return {"TRADEOS_DATABASE_URL": private_database_url, "TRADEOS_REDIS_URL": private_redis.url}


@pytest.fixture(scope="module")
def api_desk(
    private_postgres_cluster: PrivatePostgres, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[object]:
    """`tradeos up` serving both APIs with a token, after a finished one-day sim and its rollups
    (tests/faults/api_support.py `quiet_desk`); one per module."""
    from tests.faults.api_support import quiet_desk

    with quiet_desk(private_postgres_cluster, tmp_path_factory.mktemp("api-desk")) as desk:
        yield desk


@pytest.fixture(scope="module")
def live_api_desk(
    private_postgres_cluster: PrivatePostgres, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[object]:
    """`tradeos up` with the sim at full speed, never ending, both APIs with a token; yields (desk, its private
    Redis) (tests/faults/api_support.py `live_desk`); one per module."""
    from tests.faults.api_support import live_desk

    with live_desk(private_postgres_cluster, tmp_path_factory.mktemp("live-api-desk")) as running:
        yield running
