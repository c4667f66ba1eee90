"""The embedded PostgreSQL and Redis are private to the OS account that runs TRADEOS, whatever TRADEOS_HOME's
length: another local user (here `nobody`, through the system's own python3, psql and redis-cli) is refused at the
socket, and would still be refused by the password if the socket were open; no TCP port is listened on; and
TRADEOS_HOME is the owner's alone (0700, files 0600), also for files an earlier version left readable.

One `tradeos up` per home path for the module (each start runs initdb, many seconds): the tests on it leave it as
they found it, and the test that stops it comes last."""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pytest
import redis

from live.stores import redis_keys as keys
from live.stores.embedded import POSTGRES_ACCOUNT
from tests.support import Service, eventually, folder_for_embedded_home

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="running a client as another OS user needs root")

ENGINE_ONLY = ["up", "--no-api", "--no-flows", "--speed", "1"]
STRANGER = "nobody"

# Run by /usr/bin/python3 as the stranger: what each attempt raised (or what the server answered).
PROBE = r"""
import json, socket, sys
out = {}
for name, address in json.loads(sys.argv[1]).items():
    try:
        if name.startswith(("unix:", "tcp:")):
            family, target = (socket.AF_UNIX, address) if name.startswith("unix:") else (socket.AF_INET, tuple(address))
            with socket.socket(family) as s:
                s.settimeout(5)
                s.connect(target)
                s.sendall(b"PING\r\n")
                out[name] = "answered " + s.recv(200).decode(errors="replace").strip()
        else:
            open(address).read()
            out[name] = "read"
    except OSError as exc:
        out[name] = type(exc).__name__
print(json.dumps(out))
"""


def _as_stranger(argv: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    entry = pwd.getpwnam(STRANGER)
    return subprocess.run(
        argv,
        user=entry.pw_uid,
        group=entry.pw_gid,
        extra_groups=[],
        cwd="/",
        env={"PATH": "/usr/bin:/bin", **(env or {})},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def _probe(targets: dict[str, object]) -> dict[str, str]:
    result = _as_stranger(["/usr/bin/python3", "-c", PROBE, json.dumps(targets)])
    assert result.returncode == 0, result.stderr
    answers: dict[str, str] = json.loads(result.stdout)
    return answers


def _listeners(pid: int) -> tuple[list[str], list[int]]:
    """The unix socket paths and the TCP ports process `pid` listens on, as the kernel has them."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = os.readlink(fd)
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    unix = []
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        fields = line.split()
        if (
            len(fields) >= 8 and fields[6] in inodes and int(fields[3], 16) & 0x10000
        ):  # __SO_ACCEPTCON: listening
            unix.append(fields[7])
    tcp = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # LISTEN
                tcp.append(int(fields[1].rsplit(":", 1)[1], 16))
    return unix, tcp


def _an_earlier_home(home: Path) -> None:
    """A home as earlier versions left it: world-readable book."""
    home.mkdir(parents=True)
    (home / "logs").mkdir()
    (home / "logs" / "tradeos.log").write_text("an earlier run\n")
    (home / "reports").mkdir()
    (home / "reports" / "2026-01-05.html").write_text("<html>the book</html>")
    duckdb.connect(str(home / "analytics.duckdb")).close()
    for path in (home, *home.rglob("*")):
        path.chmod(0o755 if path.is_dir() else 0o644)


@contextlib.contextmanager
def _up(home: Path) -> Iterator[tuple[Service, dict[str, dict[str, Any]]]]:
    """`tradeos up` (engine only) on its embedded stores, with what it recorded in TRADEOS_HOME/run."""
    with Service(home, ENGINE_ONLY) as service:
        eventually(
            lambda: service.process.poll() is not None or "TRADEOS up at" in service.output,
            timeout=90,
            what="tradeos up on its embedded stores",
        )
        assert service.process.poll() is None, service.output
        yield (
            service,
            {name: json.loads((home / "run" / f"{name}.json").read_text()) for name in ("postgres", "redis")},
        )


@pytest.fixture
def base() -> Iterator[Path]:
    with folder_for_embedded_home() as folder:
        yield folder


@pytest.fixture(scope="module", params=["short", "long"])
def running(request: pytest.FixtureRequest) -> Iterator[tuple[Service, dict[str, dict[str, Any]]]]:
    """`tradeos up` under a short TRADEOS_HOME, or one longer than a unix socket path (where Redis fell back to an
    open TCP port and PostgreSQL to a world-writable socket directory), left world-readable by an earlier version."""
    with folder_for_embedded_home() as base:
        home = base / "home" if request.param == "short" else base / ("long-" + "x" * 100) / "home"
        assert request.param == "short" or len(str(home)) > 107
        _an_earlier_home(home)
        with _up(home) as running:
            yield running


def test_another_local_user_cannot_reach_the_embedded_stores_whatever_the_home_path(
    running: tuple[Service, dict[str, dict[str, Any]]],
) -> None:
    service, info = running
    home = service.home
    listening = {name: _listeners(int(info[name]["pid"])) for name in ("postgres", "redis")}

    # The owner gets in, through the URLs `tradeos up` recorded for `tradeos api` and the flows.
    with psycopg.connect(info["postgres"]["url"]) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == ("tradeos",)
    assert redis.Redis.from_url(info["redis"]["url"]).ping() is True

    # The stranger is refused by every socket either server listens on, and cannot read the URLs or passwords.
    targets: dict[str, object] = {
        "run file": str(home / "run" / "redis.json"),
        "credentials": str(home / "credentials" / "postgres.password"),
    }
    for name, (unix, tcp) in listening.items():
        targets.update({f"unix:{name}:{path}": path for path in unix})
        targets.update({f"tcp:{name}:{port}": ["127.0.0.1", port] for port in tcp})
    assert _probe(targets) == dict.fromkeys(targets, "PermissionError")
    assert [(name, tcp) for name, (_, tcp) in listening.items() if tcp] == []
    pg_socket, redis_socket = listening["postgres"][0][0], listening["redis"][0][0]
    psql = _as_stranger(["psql", "-w", f"host={Path(pg_socket).parent} user=postgres dbname=tradeos"])
    assert psql.returncode != 0
    assert f'socket "{pg_socket}" failed: Permission denied' in psql.stderr
    cli = _as_stranger(["redis-cli", "-s", redis_socket, "DEL", keys.KILL_SWITCH])
    assert f"Could not connect to Redis at {redis_socket}: Permission denied" in cli.stdout + cli.stderr

    # Even with both sockets opened to everyone, the stores ask for the password the stranger does not have.
    opened = [
        Path(path)
        for socket_path in (pg_socket, redis_socket)
        for path in (socket_path, Path(socket_path).parent)
    ]
    modes = {path: stat.S_IMODE(path.stat().st_mode) for path in opened}
    try:
        for socket_path in (pg_socket, redis_socket):
            Path(socket_path).parent.chmod(0o711)
            Path(socket_path).chmod(0o777)
        assert _probe({"unix:redis": redis_socket}) == {
            "unix:redis": "answered -NOAUTH Authentication required."
        }
        psql = _as_stranger(
            ["psql", f"host={Path(pg_socket).parent} user=postgres dbname=tradeos", "-c", "SELECT 1"],
            env={"PGPASSWORD": "guessed"},
        )
        assert psql.returncode != 0
        assert 'password authentication failed for user "postgres"' in psql.stderr
    finally:  # the service is shared with the module's other tests: as private as it was
        for path, mode in modes.items():
            path.chmod(mode)


def test_tradeos_home_and_everything_in_it_are_the_owners_alone(
    running: tuple[Service, dict[str, dict[str, Any]]],
) -> None:
    service, info = running
    home = service.home
    mode = stat.S_IMODE(home.stat().st_mode)
    # Under root, PostgreSQL runs as its own service account, which may traverse (not list) the home to its data.
    if os.geteuid() == 0:
        assert (mode, home.stat().st_gid) == (0o710, pwd.getpwnam(POSTGRES_ACCOUNT).pw_gid)
    else:
        assert mode == 0o700
    opened = {
        str(path.relative_to(home)): oct(stat.S_IMODE(path.lstat().st_mode))
        for path in home.rglob("*")
        if stat.S_IMODE(path.lstat().st_mode) & 0o077
    }
    assert opened == {}
    for expected in (
        "logs/tradeos.log",
        "reports/2026-01-05.html",
        "analytics.duckdb",
        "run/postgres.json",
        "run/redis.json",
        "credentials/postgres.password",
        "credentials/redis.password",
        "redis/redis.log",
    ):
        assert stat.S_IMODE((home / expected).stat().st_mode) == 0o600, expected
    # What the service and its children write later (the flows' DuckDB and reports) is 0600 too.
    status = Path(f"/proc/{service.process.pid}/status").read_text()
    assert "Umask:\t0077" in status


def test_an_orderly_stop_exits_0_and_removes_the_private_socket_folders(
    running: tuple[Service, dict[str, dict[str, Any]]],
) -> None:
    """Stops the module's shared service: the last test on `running`."""
    service, info = running
    socket_dirs = [Path(_listeners(int(info[name]["pid"]))[0][0]).parent for name in ("postgres", "redis")]
    assert service.stop() == 0
    assert [folder for folder in socket_dirs if folder.exists()] == []


def test_after_a_kill_9_the_next_start_re_attaches_to_the_same_private_postgres(base: Path) -> None:
    home = base / "home"
    with _up(home) as (service, before):
        service.kill()
    assert Path(f"/proc/{before['postgres']['pid']}").exists()  # PostgreSQL outlives a killed `tradeos up`
    with _up(home) as (service, after):
        assert after["postgres"] == before["postgres"]  # same server, same private socket, same password
        with psycopg.connect(after["postgres"]["url"]) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        assert service.stop() == 0
    eventually(
        lambda: not Path(f"/proc/{before['postgres']['pid']}").exists(), timeout=30, what="postgres to stop"
    )


def test_a_postgres_an_earlier_version_left_open_is_restarted_private_and_password_protected(
    base: Path,
) -> None:
    import pgserver

    home = base / "home"
    home.mkdir()
    # What earlier versions ran: pgserver's trust authentication, its socket wherever pgserver put it.
    legacy = pgserver.get_server(  # type: ignore[attr-defined]
        home / "postgres", cleanup_mode=None
    )
    legacy_pid, legacy_url = legacy.get_pid(), legacy.get_uri()
    with _up(home) as (_, info):
        assert not Path(f"/proc/{legacy_pid}").exists()
        socket_dir = Path(_listeners(int(info["postgres"]["pid"]))[0][0]).parent
        assert stat.S_IMODE(socket_dir.stat().st_mode) == 0o700
        with pytest.raises(psycopg.OperationalError, match="no password supplied"):
            psycopg.connect(f"postgresql://postgres@/tradeos?host={socket_dir}").close()
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(legacy_url).close()
        with psycopg.connect(info["postgres"]["url"]) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
