"""docs/api.md cannot drift from the apps: its endpoint and model tables equal both apps' OpenAPI schemas (paths,
query parameters, response models; every field with its type), and its WebSocket tables equal the wire contract.
And the documents a user is pointed to exist in the repository."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from api.metrics import create_app as create_metrics_app
from api.operator import create_app as create_operator_app
from live import wire
from live.domain import RegimeChange, RiskEvent
from live.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
API_DOC = ROOT / "docs" / "api.md"
METRICS_DOC = ROOT / "docs" / "metrics.md"
OPERATOR, METRICS, WEBSOCKET = "Operator API (port 18000)", "Metrics API (port 18003)", "WebSocket `/ws`"
# FastAPI's own 422 body: documented in prose under ErrorResponse, not as our model.
FASTAPI_VALIDATION = {"HTTPValidationError", "ValidationError"}


@dataclass
class Section:
    """What one `## ` section of the document holds: its endpoint rows and its model tables."""

    endpoints: dict[tuple[str, str], tuple[list[str], str]] = field(default_factory=dict)
    models: dict[str, dict[str, str]] = field(default_factory=dict)
    events: dict[str, str] = field(default_factory=dict)


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _unquote(cell: str) -> str:
    return cell.strip().strip("`")


def _table_rows(lines: list[str], start: int) -> Iterator[list[str]]:
    """The body rows of the table that begins at or after `start` (header and rule skipped)."""
    n = start
    while n < len(lines) and not lines[n].startswith("|"):
        n += 1
    n += 2
    while n < len(lines) and lines[n].startswith("|"):
        yield _cells(lines[n])
        n += 1


def _document() -> dict[str, Section]:
    lines = API_DOC.read_text(encoding="utf-8").splitlines()
    sections: dict[str, Section] = {}
    app = subsection = ""
    for n, line in enumerate(lines):
        if line.startswith("## "):
            app = line[3:].strip()
            sections[app] = Section()
        elif line.startswith("### "):
            subsection = line[4:].strip()
            if subsection == "Endpoints":
                for method, path, query, response, _ in _table_rows(lines, n + 1):
                    names = [_unquote(q) for q in query.split(",") if q.strip()]
                    sections[app].endpoints[_unquote(method), _unquote(path)] = (names, _unquote(response))
            elif subsection == WEBSOCKET:
                sections[subsection] = Section()
                for event_type, data, _ in _table_rows(lines, n + 1):
                    sections[subsection].events[_unquote(event_type)] = _unquote(data)
        elif line.startswith("#### "):
            owner = subsection if subsection == WEBSOCKET else app
            sections[owner].models[_unquote(line[5:])] = {
                _unquote(name): kind for name, kind, _ in _table_rows(lines, n + 1)
            }
    return sections


def _rendered(schema: dict[str, Any]) -> str:
    """A JSON schema in the document's type vocabulary (docs/api.md, "Types")."""
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    if "anyOf" in schema:
        kinds = [_rendered(option) for option in schema["anyOf"] if option.get("type") != "null"]
        nullable = any(option.get("type") == "null" for option in schema["anyOf"])
        return " or ".join(kinds) + (" or null" if nullable else "")
    kind = schema.get("type")
    if kind == "array":
        return f"[{_rendered(schema['items'])}]"
    if kind == "object":
        return f"{{string: {_rendered(schema.get('additionalProperties', {}))}}}"
    if kind == "string" and schema.get("format") == "date-time":
        return "time"
    return str(kind) if kind else "any"


def _apps(tmp_path: Path) -> dict[str, FastAPI]:
    settings = Settings(
        home=tmp_path,
        tool_token="docs",
        database_url="postgresql://nobody@127.0.0.1:1/none",  # never connected: only the schema is read
        redis_url="redis://127.0.0.1:1/0",
    )
    return {OPERATOR: create_operator_app(settings), METRICS: create_metrics_app(settings)}


@pytest.fixture(scope="module")
def document() -> dict[str, Section]:
    return _document()


@pytest.fixture(scope="module")
def schemas(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    return {name: app.openapi() for name, app in _apps(tmp_path_factory.mktemp("home")).items()}


@pytest.mark.parametrize("app", [OPERATOR, METRICS])
def test_the_documented_endpoints_are_the_apps_routes(
    app: str, document: dict[str, Section], schemas: dict[str, dict[str, Any]]
) -> None:
    routes = {}
    for path, operations in schemas[app]["paths"].items():
        for method, operation in operations.items():
            query = [p["name"] for p in operation.get("parameters", []) if p["in"] == "query"]
            response = operation["responses"]["200"]["content"]["application/json"]["schema"]
            routes[method.upper(), path] = (query, _rendered(response))
    assert document[app].endpoints == routes


@pytest.mark.parametrize("app", [OPERATOR, METRICS])
def test_the_documented_models_are_the_apps_models_field_for_field(
    app: str, document: dict[str, Section], schemas: dict[str, dict[str, Any]]
) -> None:
    models = {
        name: {field_name: _rendered(spec) for field_name, spec in schema["properties"].items()}
        for name, schema in schemas[app]["components"]["schemas"].items()
        if name not in FASTAPI_VALIDATION
    }
    assert document[app].models == models


def test_the_documented_websocket_messages_are_the_wire_contract(document: dict[str, Section]) -> None:
    at = datetime(2026, 1, 5, tzinfo=UTC)
    websocket = document[WEBSOCKET]

    assert tuple(websocket.events) == wire.EVENT_TYPES
    assert {t: websocket.events[t] for t in ("portfolio_update", "signal", "fill")} == {
        "portfolio_update": "Portfolio",
        "signal": "Signal",
        "fill": "Trade",
    }
    risk_event = wire.risk_event_json(RiskEvent(timestamp=at, code="X", detail="x"))
    regime_change = wire.regime_change_json(RegimeChange(timestamp=at, previous=None, current="c", model="m"))
    assert list(websocket.models["RiskEvent"]) == list(risk_event)
    assert list(websocket.models["RegimeChange"]) == list(regime_change)


def test_every_figure_of_the_metrics_api_has_its_definition_in_metrics_md(
    schemas: dict[str, dict[str, Any]],
) -> None:
    defined = set()
    for line in METRICS_DOC.read_text(encoding="utf-8").splitlines():
        if line.startswith("| `"):
            defined |= {_unquote(name) for name in _cells(line)[0].split(",")}
    models = schemas[METRICS]["components"]["schemas"]
    figures = {
        name
        for model in ("PerformanceMetrics", "SignalMetrics", "SystemMetrics")
        for name in models[model]["properties"]
    } - {"as_of", "annualization", "signal_type", "n_periods", "latency_ms"}
    figures |= {f"latency_ms.{name}" for name in models["Latencies"]["properties"]}
    figures |= set(models["Percentiles"]["properties"])
    assert sorted(figures - defined) == []


USER_FACING = ["README.md", "docs", "api", "live", "flows", "analytics", "prefect.yaml", "pyproject.toml"]


def test_no_user_facing_file_points_to_a_document_the_repository_does_not_have() -> None:
    files = [
        p for entry in USER_FACING for p in ([ROOT / entry] if "." in entry else (ROOT / entry).rglob("*.*"))
    ]
    pointing = [
        str(p.relative_to(ROOT)) for p in files if p.is_file() and "CONTRACT" in p.read_text(errors="ignore")
    ]
    assert pointing == []
    linked = re.findall(r"\]\(((?:docs/)?[\w./-]+\.md)\)", (ROOT / "README.md").read_text(encoding="utf-8"))
    assert [link for link in linked if not (ROOT / link).is_file()] == []
