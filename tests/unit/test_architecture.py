"""The layering written in the README, checked on every import statement of the packages (STYLE.md §1).

`api` is the outermost layer and may use everything; `flows` uses `analytics` and the parts of `live` listed in
FLOWS_MAY_USE_FROM_LIVE; `analytics` uses no store, API or flow module; `live` uses neither `api` nor `flows`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("live", "analytics", "flows", "api")

# What the batch side may take from the live core: its settings, its domain types and the regime features the
# model is trained on, where a running `tradeos up` keeps its embedded servers, and the engine on a replay file
# (research: backtests, walk-forward) through its one port.
FLOWS_MAY_USE_FROM_LIVE = (
    "live.settings",
    "live.domain",
    "live.regime",
    "live.stores.embedded",
    "live.backtest",
)


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every module a file imports (absolute names), with its line, including imports inside functions."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.extend((node.lineno, f"{node.module}.{alias.name}") for alias in node.names)
            found.append((node.lineno, node.module))
    return found


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _violation(package: str, module: str) -> str | None:
    top = module.split(".")[0]
    if top not in PACKAGES or top == package:
        return None
    if package == "live" and top in ("api", "flows"):
        return "live imports neither api nor flows"
    if package == "analytics":
        if top in ("api", "flows"):
            return "analytics imports no API or flow module"
        if _within(module, "live.stores"):
            return "analytics imports no store module"
    if package == "flows":
        if top == "api":
            return "flows do not import api"
        # `from live import settings` is seen as `live.settings`; the bare package name `live` is harmless.
        allowed = module == "live" or any(_within(module, name) for name in FLOWS_MAY_USE_FROM_LIVE)
        if top == "live" and not allowed:
            return f"flows use only {', '.join(FLOWS_MAY_USE_FROM_LIVE)} from live"
    return None


def _violations() -> list[str]:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for line, module in _imports(path):
                why = _violation(package, module)
                if why:
                    found.append(f"{path.relative_to(ROOT)}:{line} imports {module}: {why}")
    return sorted(set(found))


def test_every_import_follows_the_layering() -> None:
    assert _violations() == []


@pytest.mark.parametrize(
    ("package", "module"),
    [
        ("live", "api.schemas"),
        ("live", "flows.sync"),
        ("analytics", "live.stores.postgres"),
        ("analytics", "api.metrics"),
        ("flows", "api.cli"),
        ("flows", "live.engine"),
    ],
)
def test_the_layering_check_refuses_an_import_against_it(package: str, module: str) -> None:
    assert _violation(package, module) is not None


def test_the_layering_check_sees_imports_inside_functions(tmp_path: Path) -> None:
    source = tmp_path / "late.py"
    source.write_text("def load() -> None:\n    from api.cli import main\n")
    assert (2, "api.cli") in _imports(source)
