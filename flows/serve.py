"""Serve every deployment on its schedule: `tradeos flows serve`, and `python -m flows.serve` under `tradeos up`.

Prefect's schedules are turned into runs by its server's scheduler, which an ephemeral API does not run. So unless
PREFECT_API_URL names a server, `serve_all` starts a private one (`prefect server start`, SQLite under
`$TRADEOS_HOME/prefect`, loopback only, no network needed) and stops it on the way out; its UI shows the runs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from flows import FLOW_NAMES, SCHEDULES, apply_prefect_environment, get_flow
from live.settings import Settings, load_settings

log = logging.getLogger("tradeos.flows")
SERVER_START_TIMEOUT_SECONDS = 90.0
DEFAULT_PREFECT_PORT = 4200


def deployments() -> list[Any]:
    """One RunnerDeployment per flow, named like the flow, with its schedule from `flows.SCHEDULES`."""
    from prefect.types.entrypoint import EntrypointType

    result = []
    for name in FLOW_NAMES:
        schedule = SCHEDULES[name]
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


INTERVAL_FLOWS = tuple(name for name in FLOW_NAMES if "interval" in SCHEDULES[name])
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


def _free_port(host: str, preferred: int) -> int:
    for port in (preferred, 0):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            # As uvicorn binds: a port left in TIME_WAIT by the last run is free to use.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise OSError("no free port for the Prefect server")


def _healthy(api_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=2) as response:  # noqa: S310 - loopback URL we built
            return bool(response.status == 200)
    except OSError:
        return False


@contextlib.contextmanager
def local_prefect_server(settings: Settings, *, host: str = "127.0.0.1") -> Iterator[str]:
    """A private Prefect server (API + scheduler + UI) for the duration of the block; yields its API URL."""
    port = _free_port(host, int(os.environ.get("PREFECT_SERVER_API_PORT", DEFAULT_PREFECT_PORT)))
    api_url = f"http://{host}:{port}/api"
    env = dict(os.environ)
    # The UI asks the API at PREFECT_SERVER_API_PORT, whatever --port says.
    env.update(PREFECT_SERVER_API_HOST=host, PREFECT_SERVER_API_PORT=str(port))
    env.pop("PREFECT_API_URL", None)
    settings.logs_dir.mkdir(parents=True, exist_ok=True)
    with (settings.logs_dir / "prefect-server.log").open("ab") as server_log:
        server = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", host, "--port", str(port)],
            env=env,
            stdout=server_log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_SECONDS
        while not _healthy(api_url):
            if server.poll() is not None:
                raise RuntimeError(
                    f"the Prefect server exited with code {server.returncode}; see {settings.logs_dir}/prefect-server.log"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the Prefect server did not answer on {api_url} within {SERVER_START_TIMEOUT_SECONDS:.0f} s"
                )
            time.sleep(0.5)
        log.info("Prefect server (UI and API) on http://%s:%d", host, port)
        yield api_url
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def serve_all(settings: Settings) -> None:
    """Serve all four deployments on their schedules until SIGINT/SIGTERM; blocking, call from a main thread."""
    apply_prefect_environment(settings)
    configured = os.environ.get("PREFECT_API_URL")
    with contextlib.ExitStack() as stack:
        api_url = configured or stack.enter_context(local_prefect_server(settings))
        os.environ["PREFECT_API_URL"] = api_url
        from prefect import serve
        from prefect.settings import PREFECT_API_URL, temporary_settings

        stack.enter_context(temporary_settings(updates={PREFECT_API_URL: api_url}))
        stop = threading.Event()
        stack.callback(stop.set)
        threading.Thread(target=request_first_runs, args=(stop,), name="first-runs", daemon=True).start()
        serve(*deployments(), print_starting_message=False, pause_on_shutdown=False)


def main() -> int:
    """`python -m flows.serve`: settings from the environment, then `serve_all`."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # One line per poll of the Prefect API is noise in flows.log.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    settings = load_settings()
    apply_prefect_environment(settings)

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


if __name__ == "__main__":
    sys.exit(main())
