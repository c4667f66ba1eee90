"""The Metrics API (port 18003). Shapes in docs/api.md, definitions in docs/metrics.md.

Performance, signal and system figures are read from the DuckDB rollups the flows publish: each request opens the
published `analytics.duckdb` read-only and closes it before answering, so the API never holds a lock a flow or an
analyst could trip over. The portfolio, the summary and the Prometheus exposition read the system of record
(PostgreSQL, Redis) as it stands, through the same connections as the operator API.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

import duckdb
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from analytics.rollups import PERFORMANCE, SIGNALS, SYSTEM
from analytics.warehouse import Warehouse, WarehouseMissingError, rollup_as_of
from api import metrics_reads, prometheus
from api.auth import redact_server_logs, require_token
from api.browser_session import install_browser_session
from api.control import TradingControl
from api.docs import add_docs_routes
from api.flow_runs import FlowRuns
from api.metrics_schemas import PerformanceHeadline, PortfolioMetrics, Summary
from api.request_limits import install_request_limits
from api.runtime import NO_TELEMETRY
from api.schemas import ErrorResponse, UtcDatetime
from api.stores import Stores, StoreUnavailable
from live.settings import Settings

API_TITLE = "TRADEOS Metrics API"
_FLOW_OF_ROLLUP = {PERFORMANCE: "metrics-rollup", SYSTEM: "metrics-rollup", SIGNALS: "signal-ic"}


class PerformanceMetrics(BaseModel):
    """Risk and return over daily returns, and closed-trade statistics; null where undefined."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "sharpe_ratio": 1.42,
                    "sortino_ratio": 2.1,
                    "max_drawdown": 0.034,
                    "total_return": 0.021,
                    "annualized_return": 0.19,
                    "win_rate": 0.54,
                    "average_trade_duration_seconds": 5400.0,
                    "total_trades": 212,
                    "profit_factor": 1.3,
                    "annualization": 252,
                    "initial_capital": 100000.0,
                    "first_day": "2026-01-05",
                    "last_day": "2026-01-16",
                    "as_of": "2026-01-16T12:05:00Z",
                }
            ]
        }
    )

    sharpe_ratio: float | None
    sortino_ratio: float | None
    max_drawdown: float | None = Field(description="Positive fraction below the high-water mark.")
    total_return: float | None
    annualized_return: float | None
    win_rate: float | None
    average_trade_duration_seconds: float | None
    total_trades: int
    profit_factor: float | None
    annualization: int
    initial_capital: float | None
    first_day: str | None
    last_day: str | None
    as_of: UtcDatetime


class SignalMetrics(BaseModel):
    """One signal type: IC statistics over its timestamps, and the closed trades it opened."""

    signal_type: str
    ic_mean: float | None
    ic_std: float | None
    ic_ir: float | None
    ic_t_stat: float | None
    n_periods: int
    trades_closed: int
    win_rate: float | None
    pnl_contribution: float


class SignalsMetrics(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "signals": [
                        {
                            "signal_type": "momentum",
                            "ic_mean": 0.031,
                            "ic_std": 0.29,
                            "ic_ir": 0.107,
                            "ic_t_stat": 4.2,
                            "n_periods": 1540,
                            "trades_closed": 88,
                            "win_rate": 0.52,
                            "pnl_contribution": 412.5,
                        }
                    ],
                    "as_of": "2026-01-16T12:05:00Z",
                }
            ]
        }
    )

    signals: list[SignalMetrics]
    as_of: UtcDatetime


class Percentiles(BaseModel):
    p50: float | None
    p95: float | None
    p99: float | None


class Latencies(BaseModel):
    tick_to_order: Percentiles
    api: Percentiles


class SystemMetrics(BaseModel):
    """Latency percentiles (ms), order counts and rejections, circuit-breaker activations."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "latency_ms": {
                        "tick_to_order": {"p50": 0.21, "p95": 0.48, "p99": 0.9},
                        "api": {"p50": 1.2, "p95": 3.4, "p99": 8.0},
                    },
                    "orders_submitted": 420,
                    "orders_rejected": 12,
                    "rejection_rate": 0.0286,
                    "rejections_by_reason": {"POSITION_LIMIT": 9, "KILL_SWITCH": 3},
                    "circuit_breaker_activations": 1,
                    "api_requests": 1830,
                    "as_of": "2026-01-16T12:05:00Z",
                }
            ]
        }
    )

    latency_ms: Latencies
    orders_submitted: int
    orders_rejected: int
    rejection_rate: float | None
    rejections_by_reason: dict[str, int]
    circuit_breaker_activations: int
    api_requests: int
    as_of: UtcDatetime


def _finite(value: Any) -> Any:
    """NaN and ±inf are not JSON numbers: they become null."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _rows(conn: duckdb.DuckDBPyConnection, sql: str) -> list[dict[str, Any]]:
    cursor = conn.execute(sql)
    names = [d[0] for d in cursor.description or []]
    return [{n: _finite(v) for n, v in zip(names, row, strict=True)} for row in cursor.fetchall()]


def _no_rollup(rollup: str) -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        detail=f"no rollup yet: run `tradeos flows run {_FLOW_OF_ROLLUP[rollup]}`",
        headers={"Retry-After": "60"},
    )


def get_warehouse(request: Request) -> Warehouse:
    settings: Settings = request.app.state.settings
    return Warehouse(settings.home_dir)


WarehouseDep = Annotated[Warehouse, Depends(get_warehouse)]


@contextmanager
def _rollup(warehouse: Warehouse, rollup: str) -> Iterator[tuple[duckdb.DuckDBPyConnection, datetime]]:
    """A read-only connection to the published file and the rollup's `as_of`; 503 if it was never made."""
    try:
        with warehouse.reader() as conn:
            as_of = rollup_as_of(conn, rollup)
            if as_of is None:
                raise _no_rollup(rollup)
            yield conn, as_of
    except WarehouseMissingError:
        raise _no_rollup(rollup) from None


router = APIRouter(prefix="/metrics", dependencies=[Depends(require_token)])
_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or wrong bearer token."},
    503: {"description": "The rollup has not been made yet; the detail names the flow to run."},
}


@router.get("/performance", responses=_ERRORS)
def performance(warehouse: WarehouseDep) -> PerformanceMetrics:
    """Sharpe, Sortino, drawdown, returns and closed-trade statistics from the `metrics-rollup` flow."""
    with _rollup(warehouse, PERFORMANCE) as (conn, as_of):
        rows = _rows(conn, "SELECT * EXCLUDE (as_of) FROM performance_summary")
    if not rows:
        raise _no_rollup(PERFORMANCE)
    row = rows[0]
    for day in ("first_day", "last_day"):
        row[day] = row[day].isoformat() if row[day] is not None else None
    return PerformanceMetrics(**row, as_of=as_of)


@router.get("/signals", responses=_ERRORS)
def signals(warehouse: WarehouseDep) -> SignalsMetrics:
    """IC, IR, t-statistic, win rate and P&L contribution per signal type from the `signal-ic` flow."""
    with _rollup(warehouse, SIGNALS) as (conn, as_of):
        rows = _rows(conn, "SELECT * EXCLUDE (as_of) FROM signal_summary ORDER BY signal_type")
    return SignalsMetrics(signals=[SignalMetrics(**row) for row in rows], as_of=as_of)


@router.get("/system", responses=_ERRORS)
def system(warehouse: WarehouseDep) -> SystemMetrics:
    """Tick-to-order and API latency percentiles, orders, rejections by reason, breaker activations."""
    with _rollup(warehouse, SYSTEM) as (conn, as_of):
        rows = _rows(conn, "SELECT * FROM system_metrics")
        reasons = _rows(conn, "SELECT reason, orders FROM rejections_by_reason ORDER BY orders DESC, reason")
    if not rows:
        raise _no_rollup(SYSTEM)
    row = rows[0]
    return SystemMetrics(
        latency_ms=Latencies(
            tick_to_order=Percentiles(
                p50=row["tick_to_order_p50_ms"],
                p95=row["tick_to_order_p95_ms"],
                p99=row["tick_to_order_p99_ms"],
            ),
            api=Percentiles(p50=row["api_p50_ms"], p95=row["api_p95_ms"], p99=row["api_p99_ms"]),
        ),
        orders_submitted=row["orders_submitted"],
        orders_rejected=row["orders_rejected"],
        rejection_rate=row["rejection_rate"],
        rejections_by_reason={r["reason"]: int(r["orders"]) for r in reasons},
        circuit_breaker_activations=row["circuit_breaker_activations"],
        api_requests=row["api_requests"],
        as_of=as_of,
    )


@dataclass(frozen=True, slots=True)
class RecordAccess:
    """What the reads of the system of record need, opened with the app."""

    stores: Stores
    control: TradingControl
    exposition: prometheus.Exposition


class RecordNotConfigured(StoreUnavailable):
    """The app was made without the stores' URLs (only the rollups' endpoints can answer)."""

    def __init__(self) -> None:
        super().__init__(
            "the system of record",
            "the Metrics API was started without TRADEOS_DATABASE_URL and TRADEOS_REDIS_URL",
        )


async def get_record(request: Request) -> RecordAccess:
    access: RecordAccess | None = getattr(request.app.state, "record", None)
    if access is None:
        raise RecordNotConfigured()
    return access


RecordDep = Annotated[RecordAccess, Depends(get_record)]

_RECORD_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "Missing or wrong bearer token."},
    503: {"model": ErrorResponse, "description": "PostgreSQL or Redis unreachable."},
}


@router.get("/portfolio", responses=_RECORD_ERRORS)
async def portfolio(access: RecordDep, request: Request) -> PortfolioMetrics:
    """Exposure, concentration, per-position P&L and contribution, and limit utilisation of the book as recorded:
    its open positions marked at their last recorded closes, against the active profile's limits."""
    settings: Settings = request.app.state.settings
    return await metrics_reads.read_portfolio_metrics(
        stores=access.stores, control=access.control, initial_cash=settings.engine.initial_cash
    )


def _performance_headline(warehouse: Warehouse) -> PerformanceHeadline | None:
    try:
        with _rollup(warehouse, PERFORMANCE) as (conn, as_of):
            rows = _rows(
                conn,
                "SELECT sharpe_ratio, max_drawdown, total_return, win_rate, total_trades FROM performance_summary",
            )
    except HTTPException:
        return None
    return PerformanceHeadline(**rows[0], as_of=as_of) if rows else None


summary_router = APIRouter(dependencies=[Depends(require_token)])


@summary_router.get("/summary", responses=_RECORD_ERRORS)
async def summary(access: RecordDep, warehouse: WarehouseDep, request: Request) -> Summary:
    """One call: trading state, portfolio headline, today's P&L, performance headline, regime and health. A part
    whose store is unreachable (or, for the performance, before the first rollup) is null."""
    settings: Settings = request.app.state.settings
    return await metrics_reads.read_summary(
        stores=access.stores,
        control=access.control,
        initial_cash=settings.engine.initial_cash,
        performance=asyncio.to_thread(_performance_headline, warehouse),
    )


@summary_router.get("/metrics", include_in_schema=False)
async def prometheus_metrics(access: RecordDep) -> Response:
    """The Prometheus text exposition (docs/metrics.md, Prometheus)."""
    scrape = await access.exposition.scrape(access.stores)
    return Response(content=prometheus.render(scrape), media_type=prometheus.CONTENT_TYPE)


def _lifespan(settings: Settings) -> Any:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database_url, redis_url = settings.stores.database_url, settings.stores.redis_url
        if database_url is None or redis_url is None:
            yield  # the rollups' endpoints still answer; the record's answer 503
            return
        stores = await Stores.open(
            database_url=database_url.get_secret_value(), redis_url=redis_url.get_secret_value()
        )
        app.state.record = RecordAccess(
            stores=stores,
            control=TradingControl(stores=stores, default_profile=settings.engine.profile, audit_key=None),
            exposition=prometheus.Exposition(FlowRuns(settings)),
        )
        try:
            yield
        finally:
            await stores.close()

    return lifespan


def _add_error_handlers(app: FastAPI) -> None:
    async def store_unavailable(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": "1"})

    app.add_exception_handler(StoreUnavailable, store_unavailable)


def create_app(settings: Settings) -> FastAPI:
    """The Metrics API app for port 18003; bearer auth on every route when `settings.api.tool_token` is set. With
    the stores' URLs resolved (`settings.stores`) it also serves the record's endpoints."""
    app = FastAPI(
        telemetry=NO_TELEMETRY,
        title=API_TITLE,
        description="Performance, signal and system figures from the DuckDB rollups; the portfolio, a one-call "
        "summary and the Prometheus exposition (`GET /metrics`, text) from the system of record (how each figure "
        "is computed: docs/metrics.md in the repository). With `TRADEOS_TOOL_TOKEN` set, every endpoint needs "
        "`Authorization: Bearer <token>`.",
        version="1",
        # No 307 to the slash-less path: it would answer before auth and echo the Host header.
        redirect_slashes=False,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=_lifespan(settings),
    )
    app.state.settings = settings
    app.include_router(router)
    app.include_router(summary_router)
    _add_error_handlers(app)

    add_docs_routes(app, title=API_TITLE, dependencies=[Depends(require_token)])
    install_request_limits(app)
    install_browser_session(app)
    redact_server_logs()
    return app
