"""The dashboard app: the page, its assets, its overview read, the reports, and the operator API's routes."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.resources import files
from typing import Any, Final

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

from api import operator
from api.auth import redact_server_logs
from api.browser_session import CSRF_HEADER, csrf_for, install_browser_session
from api.control import TradingControl, audit_key_of
from api.dashboard.overview import Overview, read_overview
from api.dashboard.rolling_ic import RollingIc, RollingIcReader
from api.deps import SettingsDep, StoresDep, TokenDep
from api.flow_runs import FlowRuns, FlowRunsUnavailable
from api.metrics import SignalsMetrics, get_warehouse
from api.metrics import signals as signal_metrics
from api.request_limits import install_request_limits
from api.runtime import NO_TELEMETRY
from api.stores import Stores
from live.domain import iso_utc
from live.settings import Settings

DASHBOARD_TITLE: Final = "TRADEOS dashboard"
PAGE: Final = "/"
_STATIC = files("api.dashboard") / "static"
# The assets a page may load, with their types; nothing else under static/ is served.
_ASSETS: Final = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
_CONFIG_MARK: Final = "<!--tradeos-config-->"
_REPORT_NAME: Final = re.compile(r"\d{4}-\d{2}-\d{2}\.html")
_HOST_NAME: Final = re.compile(r"[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\]")
# A report is our own static HTML (inline style and SVG, no scripts): shown sandboxed, fetching nothing.
REPORT_POLICY: Final = "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:"
_NO_STORE: Final = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


def page_policy(ws_origin: str | None) -> str:
    """Scripts, styles and images from this server only; fetches to it and to the API's WebSocket; no framing."""
    connect = f"'self' {ws_origin}" if ws_origin else "'self'"
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        f"connect-src {connect}; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )


def _ws_origin(request: Request, settings: Settings) -> str | None:
    """The API's WebSocket origin as this browser reaches it: the host it used for the page, the API's port."""
    host = request.url.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if not _HOST_NAME.fullmatch(host):
        return None
    scheme = "wss" if request.url.scheme == "https" else "ws"
    return f"{scheme}://{host}:{settings.api.api_port}"


def _script_json(value: object) -> str:
    """JSON safe inside a `<script>` element: no `</script>` or `<!--` can end or bend it."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def dashboard_page(request: Request, settings: Settings) -> HTMLResponse:
    ws_origin = _ws_origin(request, settings)
    csrf = csrf_for(request)
    config = {
        "title": DASHBOARD_TITLE,
        "wsUrl": f"{ws_origin}/ws" if ws_origin else None,
        "csrf": csrf,
        "csrfHeader": CSRF_HEADER,
        "signedIn": csrf is not None,
    }
    template = (_STATIC / "index.html").read_text(encoding="utf-8")
    element = f'<script id="tradeos-config" type="application/json">{_script_json(config)}</script>'
    return HTMLResponse(
        template.replace(_CONFIG_MARK, element),
        headers={"Content-Security-Policy": page_policy(ws_origin), **_NO_STORE},
    )


router = APIRouter(dependencies=[TokenDep], include_in_schema=False)


@router.get(PAGE)
async def page(request: Request, settings: SettingsDep) -> HTMLResponse:
    return dashboard_page(request, settings)


@router.get("/static/{name}")
async def asset(name: str) -> Response:
    media_type = _ASSETS.get(name)
    if media_type is None:
        raise HTTPException(status_code=404, detail="not found")
    return FileResponse(
        str(_STATIC / name),
        media_type=media_type,
        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
    )


@router.get("/dashboard/overview", response_model=Overview)
async def overview(stores: StoresDep, settings: SettingsDep) -> Overview:
    return await read_overview(stores=stores, initial_cash=settings.engine.initial_cash)


@router.get("/dashboard/rolling-ic", response_model=RollingIc)
async def live_rolling_ic(request: Request, stores: StoresDep) -> RollingIc:
    """IC per signal type over the latest bars of the record (the flow's definition on a rolling window)."""
    reader: RollingIcReader = request.app.state.rolling_ic
    return await reader.read(stores)


@router.get("/dashboard/signal-ic", response_model=SignalsMetrics | None)
def signal_ic(request: Request) -> SignalsMetrics | None:
    """The Metrics API's `/metrics/signals` (IC per signal type from the last `signal-ic` run), read here so the
    page needs no second origin; null before the flow's first run."""
    try:
        return signal_metrics(get_warehouse(request))
    except HTTPException as exc:
        if exc.status_code == 503:
            return None
        raise


def _reports_and_prefect_ui(settings: Settings) -> tuple[list[str], str | None]:
    from flows.serve import read_run_file

    try:
        names = sorted(
            (p.name for p in settings.reports_dir.iterdir() if _REPORT_NAME.fullmatch(p.name)), reverse=True
        )
    except OSError:
        names = []
    ui_url = (read_run_file(settings) or {}).get("ui_url")
    return [f"/reports/{name}" for name in names[:60]], ui_url if isinstance(ui_url, str) else None


@router.get("/dashboard/links")
async def links(request: Request, settings: SettingsDep) -> dict[str, Any]:
    """The reports on disk (newest first), the Prefect UI of this home's running flows, and when each flow last
    completed (asked of that Prefect server as the Metrics API asks it; empty when none answers)."""
    reports, prefect_ui = await asyncio.to_thread(_reports_and_prefect_ui, settings)
    flow_runs: FlowRuns = request.app.state.flow_runs
    try:
        completed = await flow_runs.last_successes()
    except FlowRunsUnavailable:
        completed = {}
    return {
        "reports": reports,
        "prefect_ui": prefect_ui,
        "flows_last_completed": {name: iso_utc(ended) for name, ended in sorted(completed.items())},
    }


@router.get("/reports/{name}")
def report(name: str, settings: SettingsDep) -> Response:
    path = settings.reports_dir / name
    if not _REPORT_NAME.fullmatch(name) or not path.is_file():
        raise HTTPException(status_code=404, detail="no such report")
    return FileResponse(
        str(path),
        media_type="text/html; charset=utf-8",
        headers={"Content-Security-Policy": REPORT_POLICY, **_NO_STORE},
    )


def create_app(settings: Settings) -> FastAPI:
    """The dashboard app; `settings.stores`' URLs must be resolved (not None)."""
    if settings.stores.database_url is None or settings.stores.redis_url is None:
        raise ValueError("the dashboard needs resolved TRADEOS_DATABASE_URL and TRADEOS_REDIS_URL")
    database_url = settings.stores.database_url.get_secret_value()
    redis_url = settings.stores.redis_url.get_secret_value()
    audit_key = audit_key_of(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stores = await Stores.open(database_url=database_url, redis_url=redis_url)
        app.state.stores = stores
        app.state.control = TradingControl(
            stores=stores, default_profile=settings.engine.profile, audit_key=audit_key
        )
        try:
            yield
        finally:
            await stores.close()

    app = FastAPI(
        telemetry=NO_TELEMETRY,
        title=DASHBOARD_TITLE,
        redirect_slashes=False,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.flow_runs = FlowRuns(settings)
    app.state.rolling_ic = RollingIcReader()
    operator.add_error_handlers(app)
    install_request_limits(app)
    app.include_router(router)
    app.include_router(operator.router)
    install_browser_session(app, pages=(PAGE,))
    redact_server_logs()
    return app
