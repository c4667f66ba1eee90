"""`tradeos up --strategy SPEC --param KEY=VALUE`: whatever is wrong with the strategy or its parameters stops
start-up before anything starts, with one line naming the flag (or variable) and the problem, and exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import run_cli

ROOT = Path(__file__).resolve().parents[3]
SMA = f"{ROOT / 'docs' / 'examples' / 'sma_crossover.py'}:SmaCrossover"
ENGINE_ONLY = ["up", "--no-api", "--no-flows"]
BROKEN = "class Broken(:\n"
NOT_A_STRATEGY = "class Plain:\n    name = 'plain'\n"


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (
            ["--strategy", "nope"],
            {},
            "tradeos: --strategy: unknown 'nope'; valid: builtin, package.module:Class",
        ),
        ([], {"TRADEOS_STRATEGY": "nope"}, "tradeos: TRADEOS_STRATEGY: unknown 'nope'; valid: builtin,"),
        (["--strategy", "no_such_package.strategies:Mine"], {}, "--strategy: no module named"),
        (["--strategy", "STRATEGY_FILE:Missing"], {}, "has no class 'Missing'"),
        (["--strategy", "STRATEGY_FILE:Plain"], {}, "is not a Strategy (it has no warm_up() method)"),
        (["--strategy", "BROKEN_FILE:Broken"], {}, "--strategy: importing BROKEN_FILE failed: SyntaxError"),
        (
            ["--strategy", SMA, "--param", "fastt=5"],
            {},
            "tradeos: --param: sma_crossover: unknown parameter 'fastt'",
        ),
        (
            ["--strategy", SMA, "--param", "fast=x"],
            {},
            "--param: sma_crossover: parameter 'fast': Input should be",
        ),
        (["--strategy", SMA, "--param", "fast"], {}, "tradeos: --param: 'fast': expected key=value"),
        (
            ["--strategy", SMA],
            {"TRADEOS_STRATEGY_PARAMS": '{"slow": 3, "fast": 5}'},
            "tradeos: TRADEOS_STRATEGY_PARAMS: sma_crossover: fast (5) must be shorter than slow (3)",
        ),
        (["--strategy", SMA], {"TRADEOS_STRATEGY_PARAMS": "{fast"}, "TRADEOS_STRATEGY_PARAMS: not JSON"),
    ],
)
def test_a_bad_strategy_or_parameter_stops_startup_with_one_line_and_exit_code_2(
    tmp_path: Path, database_url: str, redis_url: str, args: list[str], env: dict[str, str], expected: str
) -> None:
    plain = tmp_path / "plain.py"
    plain.write_text(NOT_A_STRATEGY)
    broken = tmp_path / "broken.py"
    broken.write_text(BROKEN)
    swap = {"STRATEGY_FILE": str(plain), "BROKEN_FILE": str(broken)}
    for name, path in swap.items():
        args = [arg.replace(name, path) for arg in args]
        expected = expected.replace(name, path)

    code, output = run_cli(
        tmp_path / "home",
        [*ENGINE_ONLY, "--speed", "0", *args],
        {"TRADEOS_DATABASE_URL": database_url, "TRADEOS_REDIS_URL": redis_url, **env},
    )

    assert code == 2
    assert len(output.strip().splitlines()) == 1, output
    assert expected in output
