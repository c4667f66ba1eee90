"""The flows' own Prefect server: ours by identity (not by health), closed to anyone without this TRADEOS_HOME's
credentials, supervised, and the one `tradeos flows run` records its runs on when `tradeos up` is running.

One `tradeos flows serve` for the module (a Prefect server takes 10-20 s to start); the test that kills its server
comes last."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from flows import FLOW_NAMES, prefect_auth_path, prefect_auth_string
from flows.serve import (
    PrefectServerError,
    is_our_server,
    local_prefect_server,
    read_run_file,
    running_prefect_server,
)
from live.settings import Settings
from tests.support import Service, eventually, run_cli

# Reading a Python is all a client needs; the venv's interpreter lives under root's home, out of nobody's reach.
SYSTEM_PYTHON = shutil.which("python3", path="/usr/bin:/bin")
NOBODY_LISTS_FLOWS = """
import sys, urllib.error, urllib.request
request = urllib.request.Request(sys.argv[1] + "/flows/filter", data=b"{}", headers={"Content-Type": "application/json"})
try:
    status = urllib.request.urlopen(request, timeout=10).status
except urllib.error.HTTPError as exc:
    status = exc.code
try:
    open(sys.argv[2]).read()
    credentials = "read"
except OSError as exc:
    credentials = type(exc).__name__
print(status, credentials)
"""


@dataclass(frozen=True)
class Served:
    service: Service
    settings: Settings

    @property
    def api_url(self) -> str:
        record = read_run_file(self.settings)
        assert record is not None
        return str(record["api_url"])

    def client(self) -> httpx.Client:
        user, _, password = prefect_auth_string(self.settings).get_secret_value().partition(":")
        return httpx.Client(
            base_url=self.api_url, auth=httpx.BasicAuth(user, password), timeout=10, trust_env=False
        )


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    home = tmp_path_factory.mktemp("served") / "home"
    with Service(home, ["flows", "serve"], {"PREFECT_HOME": str(home / "prefect")}) as service:
        settings = Settings(home=home)
        eventually(
            lambda: running_prefect_server(settings),
            timeout=120,
            interval=0.5,
            what="our Prefect server, verified",
        )
        yield Served(service, settings)


def _deployment_names(client: httpx.Client) -> set[str]:
    response = client.post("/deployments/filter", json={})
    response.raise_for_status()
    return {deployment["name"] for deployment in response.json()}


def test_our_prefect_api_answers_only_to_this_homes_credentials(served: Served) -> None:
    anonymous = httpx.post(f"{served.api_url}/flows/filter", json={}, timeout=10, trust_env=False)
    wrong = httpx.post(
        f"{served.api_url}/flows/filter", json={}, auth=("tradeos", "guess"), timeout=10, trust_env=False
    )

    assert anonymous.status_code == 401
    assert wrong.status_code == 401
    with served.client() as client:
        eventually(
            lambda: _deployment_names(client) == set(FLOW_NAMES),
            timeout=60,
            what="the deployments registered",
        )
    assert prefect_auth_path(served.settings).stat().st_mode & 0o777 == 0o600


@pytest.mark.skipif(os.geteuid() != 0 or SYSTEM_PYTHON is None, reason="needs root and a system python3")
def test_another_os_user_can_neither_list_our_flows_nor_read_our_credentials(served: Served) -> None:
    assert SYSTEM_PYTHON is not None
    result = subprocess.run(  # noqa: S603 - our own script, run as nobody
        [
            SYSTEM_PYTHON,
            "-I",
            "-c",
            NOBODY_LISTS_FLOWS,
            served.api_url,
            str(prefect_auth_path(served.settings)),
        ],
        user="nobody",
        env={"PATH": "/usr/bin:/bin"},
        cwd="/",
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    status, credentials = result.stdout.split()
    assert status == "401"
    assert credentials == "PermissionError"


class _StrangerHandler(BaseHTTPRequestHandler):
    """Another local server on the port: healthy, and answering anything with 200."""

    def _answer(self) -> None:
        body = b"true"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = _answer
    do_POST = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_a_stranger_answering_health_on_the_port_is_not_adopted(tmp_path: Path) -> None:
    stranger = ThreadingHTTPServer(("127.0.0.1", 0), _StrangerHandler)
    threading.Thread(target=stranger.serve_forever, daemon=True).start()
    port = stranger.server_address[1]
    stranger_api = f"http://127.0.0.1:{port}/api"
    settings = Settings(home=tmp_path / "home")
    try:
        assert httpx.get(f"{stranger_api}/health", timeout=5, trust_env=False).status_code == 200

        with pytest.raises(PrefectServerError, match=f"Port {port} is already in use"):  # noqa: SIM117
            with local_prefect_server(settings, port=port):
                pytest.fail("the flows attached to a server that is not ours")

        assert not is_our_server(
            pid=os.getpid(), api_url=stranger_api, auth_string=prefect_auth_string(settings)
        )
    finally:
        stranger.shutdown()
        stranger.server_close()


def test_flows_run_records_its_run_with_its_parameters_on_the_running_server_of_the_same_home(
    served: Served, loaded_database: str
) -> None:
    home = served.settings.home_dir
    args = ["flows", "run", "regime-retrain", "--param", "window_days=30"]
    env = {"TRADEOS_DATABASE_URL": loaded_database, "PREFECT_HOME": str(home / "prefect")}

    code, output = run_cli(home, args, env, timeout=240)

    assert code == 0, output
    assert "Starting temporary server" not in output, output
    assert "on the Prefect server of `tradeos up`" in output
    with served.client() as client:
        response = client.post("/flow_runs/filter", json={"flows": {"name": {"any_": ["regime-retrain"]}}})
        response.raise_for_status()
    [flow_run] = [run for run in response.json() if run["deployment_id"] is None]
    assert flow_run["parameters"] == {"window_days": 30.0}
    assert flow_run["state_type"] == "COMPLETED"
    assert flow_run["id"] in output


def test_killing_our_prefect_server_is_noticed_and_a_verified_one_takes_over(served: Served) -> None:
    before = running_prefect_server(served.settings)
    assert before is not None

    os.kill(before.pid, signal.SIGKILL)

    after = eventually(
        lambda: (
            (server := running_prefect_server(served.settings)) is not None
            and server.pid != before.pid
            and server
        ),
        timeout=180,
        interval=0.5,
        what="a restarted Prefect server, verified as ours",
    )
    assert "the Prefect server was killed by SIGKILL" in served.service.output
    assert (
        json.loads((served.settings.home_dir / "run" / "prefect.json").read_text())["server_pid"] == after.pid
    )
    with served.client() as client:
        eventually(
            lambda: _deployment_names(client) == set(FLOW_NAMES),
            timeout=60,
            what="the deployments served again",
        )
    assert served.service.process.poll() is None
