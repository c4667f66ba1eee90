"""`tradeos up` serves the flows itself (a private Prefect server under TRADEOS_HOME, no network, closed by this
home's credentials): the interval flows run once at start-up, so the Metrics API has rollups within a minute instead
of 503 for five, and the console says where the Prefect UI is."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx

from tests.support import Service, eventually, free_port

TOKEN = "served-flows-token"


def test_tradeos_up_serves_the_flows_and_the_metrics_api_has_rollups_within_two_minutes(
    tmp_path: Path, database_url: str, redis_url: str
) -> None:
    api_port, metrics_port = free_port(), free_port()
    args = [
        "up",
        "--speed",
        "0",
        "--sim-days",
        "1",
        "--api-port",
        str(api_port),
        "--metrics-port",
        str(metrics_port),
        "--dashboard-port",
        str(free_port()),
    ]
    env = {"TRADEOS_DATABASE_URL": database_url, "TRADEOS_REDIS_URL": redis_url, "TRADEOS_TOOL_TOKEN": TOKEN}
    headers = {"Authorization": f"Bearer {TOKEN}"}
    base = f"http://127.0.0.1:{metrics_port}"
    home = tmp_path / "home"
    with Service(home, args, env) as service:
        eventually(lambda: "feed finished" in service.output, timeout=60, what="the one-day feed to finish")
        started = time.monotonic()

        def rolled_up() -> httpx.Response | None:
            response = httpx.get(f"{base}/metrics/performance", headers=headers, timeout=5)
            return response if response.status_code == 200 else None

        performance = eventually(
            rolled_up, timeout=120, interval=1.0, what="a served metrics-rollup run"
        ).json()
        print(f"Metrics API answered 200 {time.monotonic() - started:.0f}s after the feed finished")
        assert performance["first_day"] == "2026-01-05"
        signals = eventually(
            lambda: (
                (r := httpx.get(f"{base}/metrics/signals", headers=headers, timeout=5)).status_code == 200
                and r.json()["signals"]
            ),
            timeout=60,
            interval=1.0,
            what="a served signal-ic run",
        )
        assert {s["signal_type"] for s in signals} == {"momentum", "mean_reversion", "breakout", "vol_trend"}
        assert all(s["n_periods"] > 1000 for s in signals)
        # The console shows where the Prefect UI is, and how to log in: its API refuses anyone without that.
        shown = re.search(
            r"Prefect UI on (http://127\.0\.0\.1:\d+) \(log in with the auth string in (\S+)\)",
            service.output,
        )
        assert shown is not None, service.output
        ui_url, auth_path = shown.groups()
        assert Path(auth_path) == home.resolve() / "credentials" / "prefect-api-auth"
        assert httpx.get(ui_url, timeout=5, trust_env=False).status_code == 200
        assert (
            httpx.post(f"{ui_url}/api/flows/filter", json={}, timeout=5, trust_env=False).status_code == 401
        )
        user, _, password = Path(auth_path).read_text().strip().partition(":")
        flows = httpx.post(
            f"{ui_url}/api/flows/filter", json={}, auth=(user, password), timeout=5, trust_env=False
        )
        assert {flow["name"] for flow in flows.json()} >= {"metrics-rollup", "signal-ic"}
        flows_log = (home / "logs" / "flows.log").read_text()
        assert "first metrics-rollup run requested" in flows_log
        assert "first signal-ic run requested" in flows_log
        assert any("prefect server start" in line for line in _processes_of(home)), _processes_of(home)
    # Stopping the service stops its children, the private Prefect server included: none is left behind.
    eventually(lambda: not _processes_of(home), timeout=20, what="every process of the service to exit")


def _processes_of(home: Path) -> list[str]:
    """Command lines of the processes started with TRADEOS_HOME=home (the service and everything it started)."""
    marker = f"TRADEOS_HOME={home}".encode()
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if marker in (proc / "environ").read_bytes().split(b"\0"):
                found.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            continue
    return found
