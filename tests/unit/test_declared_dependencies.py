"""What the program imports, it declares: every third-party distribution that `live/`, `analytics/`, `flows/` and
`api/` import is a main dependency in pyproject.toml (or comes with an extra of one that we ask for by name), never
only a test extra or a dependency's dependency that a new release of it may drop."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("live", "analytics", "flows", "api")
# FastAPI's API is Starlette's, and FastAPI pins the Starlette it works with: declaring it too could only conflict.
THROUGH_ITS_WRAPPER = {"starlette": "fastapi"}


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _imported_top_level_modules() -> dict[str, str]:
    """Top-level module -> the first file importing it, over the program's packages."""
    found: dict[str, str] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names: list[str] = []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                for name in names:
                    found.setdefault(name.split(".")[0], str(path.relative_to(ROOT)))
    return found


def _declared() -> set[str]:
    """The main dependencies, and what the extras we ask for (e.g. `uvicorn[standard]`) add to them."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared: set[str] = set()
    for line in project["dependencies"]:
        requirement = Requirement(line)
        declared.add(_normalise(requirement.name))
        for extra in requirement.extras:
            for nested in map(Requirement, importlib.metadata.requires(requirement.name) or []):
                if nested.marker is not None and nested.marker.evaluate({"extra": extra}):
                    declared.add(_normalise(nested.name))
    return declared


def test_every_distribution_the_program_imports_is_a_main_dependency() -> None:
    declared = _declared()
    distributions = importlib.metadata.packages_distributions()
    missing = {}
    for module, where in _imported_top_level_modules().items():
        if module in PACKAGES or module in sys.stdlib_module_names or module == "__future__":
            continue
        provided_by = {_normalise(d) for d in distributions.get(module, [module])}
        if not provided_by & declared and THROUGH_ITS_WRAPPER.get(module) not in declared:
            missing[module] = f"imported by {where}, from {sorted(provided_by)}"
    assert missing == {}, f"imported at run time but not in [project].dependencies: {missing}"
