"""The Metrics API on a real HTTP server: contract fields, 503 before a rollup, bearer auth."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import uvicorn

from api.metrics import create_app
from flows.metrics_rollup import rollup_metrics
from flows.signal_ic import rollup_signal_ic
from flows.sync import sync
from live.settings import Settings
from tests.support import free_port

TOKEN = "s3cret-metrics-token"
AS_OF = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)


@pytest.fixture
def metrics_server(tradeos_home: Path) -> Iterator[str]:
    """uvicorn serving the app on a free loopback port, in a thread."""
    settings = Settings(home=tradeos_home, tool_token=TOKEN)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(200):
            if server.started:
                break
            threading.Event().wait(0.05)
        assert server.started
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def _get(base: str, path: str, *, token: str | None = TOKEN) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.get(base + path, headers=headers, timeout=10)


def test_every_endpoint_answers_503_with_the_flow_to_run_before_any_rollup(metrics_server: str) -> None:
    for path, flow in (
        ("/metrics/performance", "metrics-rollup"),
        ("/metrics/system", "metrics-rollup"),
        ("/metrics/signals", "signal-ic"),
    ):
        response = _get(metrics_server, path)
        assert response.status_code == 503
        assert response.json() == {"detail": f"no rollup yet: run `tradeos flows run {flow}`"}


def test_a_request_without_the_right_token_gets_401(metrics_server: str) -> None:
    for path in ("/metrics/performance", "/metrics/signals", "/metrics/system", "/docs", "/openapi.json"):
        for token in (None, "wrong"):
            response = _get(metrics_server, path, token=token)
            assert response.status_code == 401, path
            assert response.headers["www-authenticate"] == "Bearer"
    assert _get(metrics_server, "/openapi.json").status_code == 200


def test_the_endpoints_serve_the_rollups_with_the_contract_fields(
    metrics_server: str, loaded_database: str, tradeos_home: Path
) -> None:
    sync(tradeos_home, loaded_database)
    rollup_metrics(tradeos_home, annualization=252, as_of=AS_OF)
    assert _get(metrics_server, "/metrics/signals").status_code == 503
    rollup_signal_ic(tradeos_home, as_of=AS_OF)

    performance = _get(metrics_server, "/metrics/performance").json()
    signals = _get(metrics_server, "/metrics/signals").json()
    system = _get(metrics_server, "/metrics/system").json()

    assert set(performance) >= {
        "sharpe_ratio",
        "sortino_ratio",
        "max_drawdown",
        "total_return",
        "annualized_return",
        "win_rate",
        "average_trade_duration_seconds",
        "total_trades",
        "profit_factor",
        "annualization",
        "as_of",
    }
    assert performance["as_of"] == "2026-01-10T12:00:00Z"
    assert performance["total_trades"] > 0
    assert performance["annualization"] == 252
    assert math.isfinite(performance["sharpe_ratio"])
    assert performance["max_drawdown"] >= 0
    # Money the rollups keep as exact DECIMAL still answers as JSON numbers (docs/api.md), not strings.
    assert type(performance["initial_capital"]) is float
    assert performance["initial_capital"] == 100_000
    assert all(type(s["pnl_contribution"]) is float for s in signals["signals"])
    assert signals["as_of"] == "2026-01-10T12:00:00Z"
    assert {s["signal_type"] for s in signals["signals"]} == {"momentum", "mean_reversion"}
    for row in signals["signals"]:
        assert set(row) >= {
            "signal_type",
            "ic_mean",
            "ic_std",
            "ic_ir",
            "ic_t_stat",
            "n_periods",
            "win_rate",
            "pnl_contribution",
        }
    assert set(system) >= {
        "latency_ms",
        "orders_submitted",
        "orders_rejected",
        "rejection_rate",
        "rejections_by_reason",
        "circuit_breaker_activations",
        "as_of",
    }
    assert set(system["latency_ms"]) == {"tick_to_order", "api"}
    assert set(system["latency_ms"]["tick_to_order"]) == {"p50", "p95", "p99"}
    assert system["orders_rejected"] == sum(system["rejections_by_reason"].values()) > 0
    assert system["circuit_breaker_activations"] == 2


def test_undefined_figures_are_null_not_nan(
    metrics_server: str, database_url: str, tradeos_home: Path
) -> None:
    from batch_records import apply_schema

    apply_schema(database_url)
    sync(tradeos_home, database_url)
    rollup_metrics(tradeos_home, annualization=252, as_of=AS_OF)

    response = _get(metrics_server, "/metrics/performance")
    system = _get(metrics_server, "/metrics/system").json()

    assert response.status_code == 200
    body = response.json()
    assert body["sharpe_ratio"] is None
    assert body["win_rate"] is None
    assert body["total_trades"] == 0
    assert "NaN" not in response.text
    assert system["rejection_rate"] is None
    assert system["latency_ms"]["api"] == {"p50": None, "p95": None, "p99": None}
