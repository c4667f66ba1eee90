"""The flows under Prefect: `tradeos flows run NAME`, the registry, and the deployments' schedules."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from analytics.warehouse import Warehouse, rollup_as_of
from api.cli_flows import register, run
from flows import FLOW_NAMES, SCHEDULES, WORK_POOL, registry
from live.settings import Settings

ROOT = Path(__file__).resolve().parents[3]


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="tradeos")
    register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(list(argv))


@pytest.fixture
def flow_env(monkeypatch: pytest.MonkeyPatch, tradeos_home: Path) -> None:
    """`flows run` exports TRADEOS_* for the flow's tasks and this home's Prefect credentials: undo it after."""
    for name in ("TRADEOS_HOME", "TRADEOS_DATABASE_URL"):
        monkeypatch.setenv(name, "")
    for name in (
        "PREFECT_API_AUTH_STRING",
        "PREFECT_SERVER_API_AUTH_STRING",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS",
    ):
        monkeypatch.setenv(name, "")  # recorded, so the value `flows run` exports is removed after the test
        monkeypatch.delenv(name)
    monkeypatch.setenv("TRADEOS_HOME", str(tradeos_home))


@pytest.mark.usefixtures("prefect_harness", "flow_env")
def test_flows_run_metrics_rollup_completes_and_publishes_the_rollup(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run(_args("flows", "run", "metrics-rollup"), settings)

    assert code == 0, capsys.readouterr().err
    assert "metrics-rollup: completed" in capsys.readouterr().out
    with Warehouse(settings.home_dir).reader() as conn:
        assert rollup_as_of(conn, "performance") is not None
        assert conn.execute("SELECT count(*) FROM fills").fetchall()[0][0] > 0


@pytest.mark.usefixtures("prefect_harness", "flow_env")
@pytest.mark.parametrize("name", ["signal-ic", "daily-report", "regime-retrain"])
def test_every_other_flow_runs_to_completion(name: str, settings: Settings) -> None:
    assert run(_args("flows", "run", name), settings) == 0


@pytest.mark.usefixtures("flow_env")
def test_an_unknown_flow_name_fails_with_the_valid_names(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run(_args("flows", "run", "metrics-rollupp"), settings)

    err = capsys.readouterr().err.strip()
    assert code != 0
    assert len(err.splitlines()) == 1
    assert "unknown flow 'metrics-rollupp'" in err
    assert all(name in err for name in FLOW_NAMES)


@pytest.mark.usefixtures("flow_env")
def test_without_a_database_the_run_fails_with_one_clear_line(
    tradeos_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run(_args("flows", "run", "metrics-rollup"), Settings(home=tradeos_home, database_url=None))

    err = capsys.readouterr().err.strip()
    assert code != 0
    assert len(err.splitlines()) == 1
    assert "TRADEOS_DATABASE_URL" in err


@pytest.mark.usefixtures("flow_env")
@pytest.mark.parametrize(
    ("param", "expected"),
    [
        ("windows=3", "--param windows: regime-retrain has no such parameter (its parameters: window_days)"),
        ("window_days=abc", "--param window_days=abc: Input should be a valid number"),
        ("window_days", "--param 'window_days': expected KEY=VALUE"),
    ],
)
def test_a_flow_parameter_the_flow_cannot_take_fails_with_one_line_and_exit_2(
    param: str, expected: str, tradeos_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(home=tradeos_home, database_url=None)

    code = run(_args("flows", "run", "regime-retrain", "--param", param), settings)

    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"tradeos flows run regime-retrain: {expected}"), err


def test_flow_parameters_are_converted_to_the_types_the_flow_declares() -> None:
    from api.cli_flows import flow_parameters
    from flows import get_flow

    assert flow_parameters(get_flow("regime-retrain"), ["window_days=2.5"]) == {"window_days": 2.5}
    assert flow_parameters(get_flow("daily-report"), ["day=2026-01-05"]) == {"day": "2026-01-05"}


def test_the_registry_maps_the_contract_names_to_flows_of_the_same_name() -> None:
    flows = registry()
    assert tuple(flows) == ("metrics-rollup", "signal-ic", "regime-retrain", "daily-report", "walk-forward")
    assert all(flow.name == name for name, flow in flows.items())


def test_served_deployments_carry_the_schedules_prefect_yaml_declares() -> None:
    import yaml

    from flows.serve import deployments

    declared = yaml.safe_load((ROOT / "prefect.yaml").read_text(encoding="utf-8"))["deployments"]
    assert [d["name"] for d in declared] == list(FLOW_NAMES)
    for entry in declared:
        if entry["name"] in SCHEDULES:
            [schedule] = entry["schedules"]
            expected = SCHEDULES[entry["name"]]
            assert {k: schedule[k] for k in expected} == expected
        else:  # a research flow: run on demand
            assert entry["schedules"] == []
        assert entry["work_pool"]["name"] == WORK_POOL
        module, _, function = entry["entrypoint"].partition(":")
        assert registry()[entry["name"]].fn.__name__ == function
        assert (ROOT / module).exists()
    served = {d.name: d for d in deployments()}
    assert set(served) == set(FLOW_NAMES)
    every_five_minutes = served["metrics-rollup"].schedules[0].schedule
    assert every_five_minutes.interval.total_seconds() == 300
    assert served["daily-report"].schedules[0].schedule.cron == "55 23 * * *"
    assert served["walk-forward"].schedules == []
