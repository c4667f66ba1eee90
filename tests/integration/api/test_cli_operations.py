"""Operating `tradeos` as a user does, in real child processes: its version and help, JSON logs on request, a clean
start-up console, and the test-services script honouring the URLs it is given."""

from __future__ import annotations

import importlib.metadata
import json
import os
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from operator_api_support import eventually_sync

from tests.support import Service, free_port, run_cli

ROOT = Path(__file__).resolve().parents[3]

LOG_FIELDS = {"ts", "level", "logger", "message"}
A_FEW_BARS = ["--speed", "0", "--sim-days", "0.01"]


def test_version_prints_the_installed_version(tmp_path: Path) -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]

    code, output = run_cli(tmp_path, ["--version"])

    assert code == 0
    assert output == f"tradeos {declared}\n"
    assert importlib.metadata.version("tradeos") == declared


def test_help_offers_only_the_user_commands(tmp_path: Path) -> None:
    code, output = run_cli(tmp_path, ["--help"])

    assert code == 0
    assert "SUPPRESS" not in output
    assert "serve-apis" not in output
    for command in ("up", "flows", "status", "halt", "resume", "--version"):
        assert command in output


def _json_lines(text: str) -> list[dict[str, object]]:
    records = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert records
    return records


def test_with_log_format_json_every_log_line_is_one_json_object(
    tmp_path: Path, pg_url: str, redis_url: str
) -> None:
    env = {"TRADEOS_DATABASE_URL": pg_url, "TRADEOS_REDIS_URL": redis_url, "TRADEOS_LOG_FORMAT": "json"}
    with Service(tmp_path / "home", ["up", "--no-api", "--no-flows", *A_FEW_BARS], env) as service:
        eventually_sync(lambda: "feed finished" in service.output, within=60)
        assert service.stop() == 0
    log_file = tmp_path / "home" / "logs" / "tradeos.log"

    for text in (service.output, log_file.read_text()):
        records = _json_lines(text)
        assert all(set(record) >= LOG_FIELDS for record in records), records
        assert all(str(record["ts"]).endswith("Z") for record in records)
        assert any(
            record["logger"] == "tradeos.engine" and "feed finished" in str(record["message"])
            for record in records
        )
    assert stat.S_IMODE(log_file.stat().st_mode) == 0o600


def test_a_bad_log_format_stops_start_up_naming_the_variable(tmp_path: Path) -> None:
    code, output = run_cli(tmp_path, ["up", "--no-flows"], {"TRADEOS_LOG_FORMAT": "xml"})

    assert code == 2
    assert output.startswith("tradeos: TRADEOS_LOG_FORMAT:")


def test_start_up_prints_no_xdg_runtime_dir_warning(
    embedded_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Containers, CI runners, cron and `su` sessions have no XDG_RUNTIME_DIR: the embedded stores must not need one.
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    ports = ["--api-port", str(free_port()), "--metrics-port", str(free_port())]
    ports += ["--dashboard-port", str(free_port())]
    with Service(embedded_home, ["up", "--no-flows", *A_FEW_BARS, *ports]) as service:
        eventually_sync(
            lambda: "feed finished" in service.output and "operator API on" in service.output, within=120
        )
        assert service.stop() == 0

    assert "XDG_RUNTIME_DIR" not in service.output
    assert "Warning" not in service.output


def _ensure_services(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(ROOT / "tests" / "ensure_services.sh")],
        env={**os.environ, "PYTHON": sys.executable, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.usefixtures("pg_url", "redis_url")
def test_ensure_services_accepts_the_test_urls_in_use() -> None:
    done = _ensure_services({})

    assert done.returncode == 0, done.stdout + done.stderr


def test_ensure_services_checks_the_given_database_url_rather_than_the_local_server() -> None:
    elsewhere = f"postgresql://postgres:s3cret@127.0.0.1:{free_port()}/test"

    done = _ensure_services({"TRADEOS_TEST_DATABASE_URL": elsewhere})

    assert done.returncode == 1
    assert "PostgreSQL is not reachable" in done.stdout
    assert "TRADEOS_TEST_DATABASE_URL" in done.stdout
    assert "starting local" not in done.stdout
    assert "s3cret" not in done.stdout + done.stderr


def test_ensure_services_checks_the_given_redis_url_rather_than_the_local_server() -> None:
    done = _ensure_services({"TRADEOS_TEST_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"})

    assert done.returncode == 1
    assert "Redis is not reachable" in done.stdout
    assert "TRADEOS_TEST_REDIS_URL" in done.stdout
    assert "starting local" not in done.stdout
