"""Serve every deployment on its schedule: `tradeos flows serve`, and `python -m flows.serve` under `tradeos up`.

Prefect's schedules are turned into runs by its server's scheduler, which an ephemeral API does not run. So unless
the operator's PREFECT_API_URL names a dedicated server, `serve_all` starts a private one (`prefect server start`,
SQLite under `$TRADEOS_HOME/prefect`, loopback only, on a free port, no network needed) and supervises it:

- Identity, not health: the server is used only while our child is alive, holds the listening socket itself, refuses
  a request without credentials (401) and accepts ours (`$TRADEOS_HOME/credentials/prefect-api-auth`, 0600). A stranger
  answering /api/health on the port is never adopted, and no other local user can list or trigger our flows.
- If it dies, the runner stops and the server is restarted (at most MAX_RESTARTS an hour); then the process stops
  with a clear error, which `tradeos up` notices.
- `$TRADEOS_HOME/run/prefect.json` names it (pids, API and UI addresses), for `tradeos up` to print and for
  `tradeos flows run` to run against it so its runs appear in the UI the user watches.
"""

from __future__ import annotations

import _thread
import asyncio
import base64
import collections
import contextlib
import contextvars
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from flows import (
    FLOW_NAMES,
    SCHEDULES,
    apply_prefect_environment,
    get_flow,
    prefect_auth_path,
    prefect_auth_string,
    prefect_environment,
    prefect_settings,
)
from live.settings import Settings, load_settings

log = logging.getLogger("tradeos.flows")
SERVER_START_TIMEOUT_SECONDS = 90.0
MAX_RESTARTS = 3
RESTART_WINDOW_SECONDS = 3600.0
RUN_FILE_NAME = "prefect.json"
LAST_WORDS_CHARS = 300
# Answered only to a client holding the credentials once the server demands them (unlike /health and /ready).
IDENTITY_PROBE_PATH = "/hello"


class PrefectServerError(RuntimeError):
    """Our Prefect server could not be started, or died too often; the message says why and where its log is."""


def deployments() -> list[Any]:
    """One RunnerDeployment per flow, named like the flow, with its schedule from `flows.SCHEDULES` (none for a
    research flow: it runs when a user starts it)."""
    from prefect.types.entrypoint import EntrypointType

    result = []
    for name in FLOW_NAMES:
        schedule = SCHEDULES.get(name, {})
        interval = schedule.get("interval")
        cron = schedule.get("cron")
        result.append(
            get_flow(name).to_deployment(
                name=name,
                interval=timedelta(seconds=int(interval)) if interval is not None else None,
                cron=str(cron) if cron is not None else None,
                # A module path works from any working directory once the project is installed.
                entrypoint_type=EntrypointType.MODULE_PATH,
                tags=["tradeos"],
                # A restart must find its schedules active, whatever the last shutdown left behind.
                paused=False,
            )
        )
    return result


INTERVAL_FLOWS = tuple(name for name in FLOW_NAMES if "interval" in SCHEDULES.get(name, {}))
FIRST_RUNS_WITHIN_SECONDS = 120.0


def request_first_runs(stop: threading.Event) -> None:
    """One run now of each interval flow. Their first scheduled run comes up to one interval (5 minutes) after
    start-up, and until a rollup exists the Metrics API can only answer 503. Waits for `serve` to register the
    deployments; gives up quietly after two minutes (the schedules still apply)."""
    from prefect.deployments import run_deployment

    pending = list(INTERVAL_FLOWS)
    deadline = time.monotonic() + FIRST_RUNS_WITHIN_SECONDS
    while pending and not stop.is_set() and time.monotonic() < deadline:
        name = pending[0]
        try:
            run_deployment(f"{name}/{name}", timeout=0, tags=["tradeos", "first-run"])
        except Exception as exc:  # the deployment is not registered yet, or the API is still starting
            log.debug("first %s run not requested yet: %s", name, exc)
            stop.wait(1.0)
            continue
        log.info("first %s run requested (then every %s s)", name, SCHEDULES[name]["interval"])
        pending.pop(0)
    if pending:
        log.warning("no first run of %s: they start on their schedules", ", ".join(pending))


@dataclass(frozen=True, kw_only=True)
class PrefectServerAddress:
    """A Prefect server of ours, verified: its process, API and UI."""

    pid: int
    api_url: str
    ui_url: str


def _status(url: str, auth_string: str | None) -> int | None:
    """The HTTP status `url` answers (None if nothing does), with our credentials or none."""
    import httpx

    headers = {}
    if auth_string is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(auth_string.encode()).decode()
    try:
        # trust_env=False: a loopback probe must not go through an HTTP proxy from the environment.
        return httpx.get(url, headers=headers, timeout=2.0, trust_env=False).status_code
    except httpx.HTTPError:
        return None


def _listening_socket_inodes(port: int) -> set[str]:
    """Inodes of the TCP sockets listening on `port` (Linux /proc/net)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and int(local.rpartition(":")[2], 16) == port:  # 0A = LISTEN
                inodes.add(inode)
    return inodes


def holds_listener(pid: int, port: int) -> bool:
    """Whether process `pid` itself holds the socket listening on `port`."""
    wanted = {f"socket:[{inode}]" for inode in _listening_socket_inodes(port)}
    if not wanted:
        return False
    try:
        descriptors = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False
    for descriptor in descriptors:
        with contextlib.suppress(OSError):
            if os.readlink(descriptor) in wanted:
                return True
    return False


def is_our_server(*, pid: int, api_url: str, auth_string: SecretStr) -> bool:
    """Identity, not health: process `pid` holds the listener of `api_url`, which refuses a request without
    credentials and accepts ours. Any server answers /health; only ours passes this."""
    port = urllib.parse.urlsplit(api_url).port
    if port is None or not holds_listener(pid, port):
        return False
    probe = f"{api_url}{IDENTITY_PROBE_PATH}"
    return _status(probe, None) == 401 and _status(probe, auth_string.get_secret_value()) == 200


def _free_port(host: str, preferred: int | None) -> int:
    for port in (preferred, 0):
        if port is None:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            # As uvicorn binds: a port left in TIME_WAIT by the last run is free to use.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise PrefectServerError("no free port for the Prefect server")


class PrefectServer:
    """Our own `prefect server start` child on loopback, closed by our credentials."""

    def __init__(
        self, settings: Settings, *, host: str, port: int, process: subprocess.Popen[bytes], log_offset: int
    ) -> None:
        self.settings = settings
        self.host = host
        self.port = port
        self.process = process
        self.log_offset = log_offset  # where this server's lines start in the shared log

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.port}/api"

    @property
    def ui_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.settings.logs_dir / "prefect-server.log"

    def address(self) -> PrefectServerAddress:
        return PrefectServerAddress(pid=self.process.pid, api_url=self.api_url, ui_url=self.ui_url)

    def exit_reason(self) -> str:
        """How the server exited: the signal that killed it, or its code and the last words of its log (Prefect
        says there why it stopped, e.g. "Port 4200 is already in use")."""
        code = self.process.returncode
        if code is not None and code < 0:
            return f"the Prefect server was killed by {signal.Signals(-code).name}; see {self.log_path}"
        last = ""
        with contextlib.suppress(OSError), self.log_path.open("rb") as server_log:
            server_log.seek(self.log_offset)
            # Prefect's console wraps its lines: the last words, unwrapped, say why it stopped.
            last = " ".join(server_log.read().decode(errors="replace").split())[-LAST_WORDS_CHARS:]
        detail = f" ({last})" if last else ""
        return f"the Prefect server exited with code {code}{detail}; see {self.log_path}"

    def wait_until_verified(self, timeout: float = SERVER_START_TIMEOUT_SECONDS) -> None:
        """Until `is_our_server`; PrefectServerError if the child exits or the deadline passes first."""
        auth = prefect_auth_string(self.settings)
        deadline = time.monotonic() + timeout
        while not is_our_server(pid=self.process.pid, api_url=self.api_url, auth_string=auth):
            if self.process.poll() is not None:
                raise PrefectServerError(self.exit_reason())
            if time.monotonic() > deadline:
                raise PrefectServerError(
                    f"the Prefect server did not answer as ours on {self.api_url} within {timeout:.0f} s;"
                    f" see {self.log_path}"
                )
            time.sleep(0.5)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@contextlib.contextmanager
def local_prefect_server(
    settings: Settings, *, host: str = "127.0.0.1", port: int | None = None
) -> Iterator[PrefectServer]:
    """A private Prefect server (API + scheduler + UI) for the duration of the block, verified as ours
    (PrefectServerError otherwise); on `port`, else on a free one."""
    from live.stores.embedded import die_with_parent

    port = port or _free_port(host, None)
    # The server inherits this process's environment (PATH, ...), but not a PREFECT_API_URL: it is the API.
    env = {name: value for name, value in os.environ.items() if name != "PREFECT_API_URL"}
    env.update(prefect_environment(settings, serving_on=(host, port)))
    settings.logs_dir.mkdir(parents=True, exist_ok=True)
    with (settings.logs_dir / "prefect-server.log").open("ab") as server_log:
        log_offset = server_log.tell()
        process = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", host, "--port", str(port)],
            env=env,
            stdout=server_log,
            stderr=subprocess.STDOUT,
            # A kill -9 of this process must not leave the server running on its own...
            preexec_fn=die_with_parent,
            # ...and a Ctrl-C or a signal to the whole process group stops it through us, in order, rather than
            # killing it under the runner (which would take it for a crash and restart it).
            start_new_session=True,
        )
    server = PrefectServer(settings, host=host, port=port, process=process, log_offset=log_offset)
    try:
        server.wait_until_verified()
        log.info(
            "Prefect UI on %s (API %s; log in with the auth string in %s)",
            server.ui_url,
            server.api_url,
            prefect_auth_path(settings),
        )
        yield server
    finally:
        server.stop()


def run_file_path(settings: Settings) -> Path:
    return settings.home_dir / "run" / RUN_FILE_NAME


@contextlib.contextmanager
def _run_file(settings: Settings, server: PrefectServer) -> Iterator[None]:
    """`run/prefect.json` names the server while it serves, for `tradeos up` and `tradeos flows run`."""
    path = run_file_path(settings)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    record = {
        "pid": os.getpid(),
        "server_pid": server.process.pid,
        "api_url": server.api_url,
        "ui_url": server.ui_url,
    }
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        json.dump(record, file)
    tmp.replace(path)
    try:
        yield
    finally:
        with contextlib.suppress(OSError, ValueError):
            if json.loads(path.read_text(encoding="utf-8")).get("server_pid") == server.process.pid:
                path.unlink()


def read_run_file(settings: Settings) -> dict[str, Any] | None:
    """What `run/prefect.json` says, unverified (None if there is none)."""
    try:
        record: dict[str, Any] = json.loads(run_file_path(settings).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record


def running_prefect_server(settings: Settings) -> PrefectServerAddress | None:
    """The Prefect server the `tradeos up` (or `flows serve`) of this TRADEOS_HOME runs, if it is up and
    verified as ours (`is_our_server`); None otherwise."""
    record = read_run_file(settings)
    if record is None:
        return None
    try:
        address = PrefectServerAddress(
            pid=int(record["server_pid"]), api_url=str(record["api_url"]), ui_url=str(record["ui_url"])
        )
    except (KeyError, TypeError, ValueError):
        return None
    if is_our_server(pid=address.pid, api_url=address.api_url, auth_string=prefect_auth_string(settings)):
        return address
    return None


def _watch_server(server: PrefectServer, stop: threading.Event, died: threading.Event) -> None:
    """Supervisor thread: when the server dies, interrupt the runner in the main thread (as a Ctrl-C would)."""
    while not stop.wait(0.5):
        if server.process.poll() is not None:
            log.error("%s", server.exit_reason())
            died.set()
            _thread.interrupt_main(signal.SIGINT)
            return


def _serve_deployments(settings: Settings, api_url: str, server: PrefectServer | None) -> bool:
    """Run the deployments against `api_url` until a signal (False) or, when `server` is ours, its death (True)."""
    from prefect.runner import Runner
    from prefect.settings import temporary_settings

    env = prefect_environment(settings, api_url=api_url)
    with temporary_settings(updates=prefect_settings(env)):
        runner = Runner(pause_on_shutdown=False)
        stop, died = threading.Event(), threading.Event()
        # Threads do not inherit context variables: each gets a copy of this one, where the settings above hold.
        first_runs = contextvars.copy_context()
        threading.Thread(
            target=first_runs.run, args=(request_first_runs, stop), name="first-runs", daemon=True
        ).start()
        if server is not None:
            threading.Thread(
                target=_watch_server, args=(server, stop, died), name="prefect-server-watch", daemon=True
            ).start()
        try:
            # Registering the deployments is the first use of the API: the watcher is already on guard.
            for deployment in deployments():
                runner.add_deployment(deployment)
            asyncio.run(runner.start())
        except KeyboardInterrupt:
            if not died.is_set():
                raise
        except Exception:
            # The runner's API calls fail once the server is gone: that is the server's death, not the runner's.
            if not died.is_set():
                raise
        finally:
            stop.set()
        return died.is_set()


def serve_all(settings: Settings) -> None:
    """Serve every deployment (the scheduled ones on their schedules) until SIGINT/SIGTERM; blocking, call from a main thread.
    Raises PrefectServerError if our server cannot start, or dies more than MAX_RESTARTS times in an hour."""
    apply_prefect_environment(settings)
    configured = settings.flows.prefect_api_url
    if configured:
        _serve_deployments(settings, configured, None)
        return
    deaths: collections.deque[float] = collections.deque()
    port: int | None = None
    while True:
        # A restart keeps the address the user's UI tab has open, if it is still free.
        with (
            local_prefect_server(settings, port=_free_port("127.0.0.1", port)) as server,
            _run_file(settings, server),
        ):
            port = server.port
            if not _serve_deployments(settings, server.api_url, server):
                return
        now = time.monotonic()
        deaths.append(now)
        while now - deaths[0] > RESTART_WINDOW_SECONDS:
            deaths.popleft()
        if len(deaths) > MAX_RESTARTS:
            raise PrefectServerError(
                f"the Prefect server died {len(deaths)} times within an hour; the flows stop"
                f" (see {server.log_path})"
            )
        log.warning("restarting the Prefect server (%d of at most %d an hour)", len(deaths), MAX_RESTARTS)


def run_service(settings: Settings) -> int:
    """`tradeos flows serve` / `python -m flows.serve`: serve until a signal; exit 1 with one line on a failure."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # One line per poll of the Prefect API is noise in flows.log.
    logging.getLogger("httpx").setLevel(logging.WARNING)

    def stop(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    # Until Prefect's runner installs its own handler, SIGTERM must still unwind (and stop the Prefect server).
    signal.signal(signal.SIGTERM, stop)
    try:
        serve_all(settings)
    except KeyboardInterrupt:
        pass
    except Exception as exc:
        print(f"tradeos flows serve: {exc}", file=sys.stderr)
        return 1
    return 0


def main() -> int:
    """`python -m flows.serve` (started by `tradeos up`): settings from the environment, then `run_service`."""
    return run_service(load_settings())


if __name__ == "__main__":
    sys.exit(main())
