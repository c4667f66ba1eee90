"""`.env.example` documents every setting TRADEOS reads, at its default, so it cannot drift from live/settings.py."""

from __future__ import annotations

import re
from pathlib import Path

from live.settings import environment_variables

EXAMPLE = Path(__file__).resolve().parents[2] / ".env.example"
ASSIGNMENT = re.compile(r"^#? ?(TRADEOS_[A-Z0-9_]+)=(.*)$")


def _documented() -> dict[str, str]:
    found: dict[str, str] = {}
    for line in EXAMPLE.read_text(encoding="utf-8").splitlines():
        if match := ASSIGNMENT.match(line):
            assert match[1] not in found, f"{match[1]} appears twice"
            found[match[1]] = match[2]
    return found


# The TRADEOS_ variables of every group of the settings tree (Prefect's own variables are Prefect's to document).
SETTINGS = {name: field for name, field in environment_variables().items() if name.startswith("TRADEOS_")}


def _default_text(name: str) -> str:
    default = SETTINGS[name].default
    return "" if default is None else str(default)


def test_the_example_names_every_setting_and_nothing_else() -> None:
    assert set(_documented()) == set(SETTINGS)


def test_the_example_shows_each_setting_at_its_default() -> None:
    documented = _documented()
    assert {name: documented.get(name) for name in SETTINGS} == {
        name: _default_text(name) for name in SETTINGS
    }


def test_each_setting_in_the_example_has_a_comment_above_it() -> None:
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()
    for n, line in enumerate(lines):
        if ASSIGNMENT.match(line):
            assert n > 0, line
            assert lines[n - 1].startswith("# "), line
            assert not ASSIGNMENT.match(lines[n - 1]), line
