"""A real `tradeos up` given a token and store URLs with passwords: none of them, nor the Prefect server's password,
reaches a log file, the console or an API response (README, Configuration; docs/api.md, Auth)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
from operator_api_support import eventually_sync

from tests.support import Service, free_port

TOKEN = "tok-never-in-a-log-7d1f"
DB_PASSWORD = "pg-never-in-a-log-93ab"
REDIS_PASSWORD = "redis-never-in-a-log-5e02"


def _with_password(url: str, user: str, password: str) -> str:
    """The same server (which trusts local connections) reached with a password in the URL."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{user}:{password}@{parts.hostname}:{parts.port}"))


def test_the_token_and_the_passwords_never_reach_a_log_a_console_or_a_response(
    tmp_path: Path, pg_url: str, redis_url: str
) -> None:
    home = tmp_path / "home"
    api_port, metrics_port = free_port(), free_port()
    env = {
        "TRADEOS_TOOL_TOKEN": TOKEN,
        "TRADEOS_DATABASE_URL": _with_password(pg_url, "postgres", DB_PASSWORD),
        "TRADEOS_REDIS_URL": _with_password(redis_url, "default", REDIS_PASSWORD),
    }
    args = ["up", "--speed", "0", "--sim-days", "0.05", "--api-port", str(api_port)]
    args += ["--dashboard-port", str(free_port())]
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with Service(home, [*args, "--metrics-port", str(metrics_port)], env) as service:
        eventually_sync(
            lambda: "feed finished" in service.output and "Prefect UI on" in service.output, within=240
        )
        responses = [
            httpx.get(f"http://127.0.0.1:{api_port}{path}", headers=auth, timeout=15)
            for path in ("/trading/status", "/healthz", "/portfolio")
        ]
        assert service.stop() == 0
    prefect_password = (home / "credentials" / "prefect-api-auth").read_text().strip().partition(":")[2]

    assert [response.status_code for response in responses] == [200, 200, 200]
    shown = [service.output, *(response.text for response in responses)]
    shown += [log.read_text(errors="replace") for log in (home / "logs").iterdir()]
    for secret in (TOKEN, DB_PASSWORD, REDIS_PASSWORD, prefect_password):
        assert not [text for text in shown if secret in text]
