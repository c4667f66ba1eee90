"""The operator API on port 18000 (docs/api.md): read the book, watch events, halt and steer the engine.

Handlers are thin: validate, call one function of `api.reads` or `api.control`, serialise.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import uvicorn
from fastapi import APIRouter, Body, FastAPI, Path, Query, Request, Response
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, AwareDatetime, BeforeValidator
from starlette.exceptions import HTTPException as StarletteHTTPException

from api import reads
from api.access_log import AccessLogMiddleware, AccessLogRecorder
from api.auth import redact_server_logs
from api.browser_session import install_browser_session
from api.control import (
    EngineNotRunning,
    EngineRefused,
    EngineTimeout,
    ProfileReadOnly,
    ProfileUntrusted,
    TradingControl,
    TradingHalted,
    UnknownProfile,
    audit_key_of,
)
from api.deps import ActorDep, ControlDep, OriginDep, SettingsDep, StoresDep, TokenDep
from api.docs import add_docs_routes
from api.http_protocol import DEFAULT_HEADER_READ_TIMEOUT_SECONDS, protocol_with_header_read_timeout
from api.request_limits import install_request_limits
from api.runtime import NO_TELEMETRY
from api.schemas import (
    ErrorResponse,
    FlattenRequest,
    Health,
    PlainText,
    Portfolio,
    Position,
    ProfileBody,
    ProfileRequest,
    ProfileResponse,
    ProfileSaved,
    ProfileVersion,
    ReasonRequest,
    Signal,
    StrategyRequest,
    StrategyResponse,
    Trade,
    TradingStatus,
)
from api.stores import Stores, StoreUnavailable
from api.ws import EventHub, serve_client
from api.ws_clients import ClientCensus
from live.domain import SIGNAL_TYPES
from live.profiles import PROFILE_NAME_PATTERN, PROFILE_NAME_RULE
from live.settings import Settings

API_TITLE = "TRADEOS operator API"

# Domain errors → HTTP, in one place.
ERROR_STATUS: dict[type[Exception], int] = {
    StoreUnavailable: 503,
    EngineTimeout: 503,
    EngineNotRunning: 409,
    EngineRefused: 409,
    TradingHalted: 409,
    ProfileReadOnly: 409,
    ProfileUntrusted: 409,
}

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "Missing or wrong bearer token."},
    503: {
        "model": ErrorResponse,
        "description": "PostgreSQL or Redis unreachable, or the engine did not confirm.",
    },
}
_COMMAND_ERRORS: dict[int | str, dict[str, Any]] = {
    **_ERRORS,
    409: {"model": ErrorResponse, "description": "Not possible in the current state (the detail says why)."},
}


def _plus_sign_back(value: object) -> object:
    # An unencoded `+00:00` in a query string arrives as ` 00:00`. A bare number would pass as Unix time
    # (pydantic's lax mode); the contract says ISO 8601 with a zone.
    if isinstance(value, str):
        if _NUMBER.fullmatch(value.strip()):
            raise ValueError("must be an ISO 8601 time with Z or an offset, not a number")
        return value.replace(" ", "+")
    return value


_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _known_signal_type(value: str | None) -> str | None:
    if value is not None and value not in SIGNAL_TYPES:
        raise ValueError(f"signal_type must be one of: {', '.join(SIGNAL_TYPES)}")
    return value


Limit = Annotated[int, Query(ge=1, le=1000, description="How many, newest first (1..1000).")]
Since = Annotated[
    AwareDatetime | None,
    BeforeValidator(_plus_sign_back),
    Query(
        description="Only fills at or after this ISO 8601 time; it must carry `Z` or an offset "
        "(naive times are refused rather than guessed).",
        examples=["2024-03-01T00:00:00Z"],
    ),
]
SignalType = Annotated[
    str | None,
    AfterValidator(_known_signal_type),
    Query(description="One of: " + ", ".join(SIGNAL_TYPES), json_schema_extra={"enum": list(SIGNAL_TYPES)}),
]
OptionalReason = Annotated[ReasonRequest | None, Body()]
Symbol = Annotated[PlainText | None, Query(max_length=64, description="Only this symbol.")]

router = APIRouter(dependencies=[TokenDep], responses=_ERRORS)


def _json(body: bytes) -> Response:
    """A body already in its response model's shape (the model still documents the route in /docs)."""
    return Response(content=body, media_type="application/json")


@router.get(
    "/healthz", response_model=Health, responses={503: {"model": Health, "description": "Not healthy."}}
)
async def healthz(stores: StoresDep, response: Response) -> Health:
    """Probes Redis, PostgreSQL and both engine heartbeats; 200 only when all are healthy."""
    health = await reads.probe_health(stores=stores)
    if health.status != "healthy":
        response.status_code = 503
    return health


@router.get("/portfolio", response_model=Portfolio)
async def portfolio(stores: StoresDep, settings: SettingsDep) -> Response:
    """The book as last marked by the engine."""
    # Already in the `Portfolio` shape: returned as is rather than validated and serialised again per request.
    return _json(await reads.read_portfolio_json(stores=stores, initial_cash=settings.engine.initial_cash))


@router.get("/positions", response_model=list[Position])
async def positions(stores: StoresDep, settings: SettingsDep) -> list[Position]:
    """Open positions only."""
    return await reads.read_positions(stores=stores, initial_cash=settings.engine.initial_cash)


@router.get("/trades", response_model=list[Trade])
async def trades(
    stores: StoresDep, limit: Limit = 50, symbol: Symbol = None, since: Since = None
) -> Response:
    """Fills, newest first."""
    return _json(await reads.read_trades_json(stores=stores, limit=limit, symbol=symbol, since=since))


@router.get("/signals", response_model=list[Signal])
async def signals(
    stores: StoresDep,
    limit: Limit = 100,
    signal_type: SignalType = None,
    symbol: Symbol = None,
    actionable: Annotated[bool | None, Query(description="Only those the engine acted on (or not).")] = None,
) -> list[Signal]:
    """Computed signal values, newest first."""
    return await reads.read_signals(
        stores=stores, limit=limit, signal_type=signal_type, symbol=symbol, actionable=actionable
    )


@router.get("/trading/status", response_model=TradingStatus)
async def trading_status(control: ControlDep) -> TradingStatus:
    """Active, reduce-only or halted; since when, why and by whom; and the active profile."""
    return await control.status()


@router.post("/trading/halt", response_model=TradingStatus, responses=_COMMAND_ERRORS)
async def halt(
    control: ControlDep, actor: ActorDep, origin: OriginDep, body: OptionalReason = None
) -> TradingStatus:
    """Stops all order submission; returns once a running engine has confirmed. Idempotent.

    With no engine running, the halt is stored and recorded (`engine_acknowledged: false`) and the engine starts
    halted. A 503 means the halt is stored but could not be confirmed or recorded: trading stays halted.
    """
    return await control.halt(actor=actor, origin=origin, reason=body.reason if body else "")


@router.post("/trading/resume", response_model=TradingStatus, responses=_COMMAND_ERRORS)
async def resume(
    control: ControlDep, actor: ActorDep, origin: OriginDep, body: OptionalReason = None
) -> TradingStatus:
    """Lifts a halt or reduce-only; the only way out of a halt. Idempotent."""
    return await control.resume(actor=actor, origin=origin, reason=body.reason if body else "")


@router.post("/trading/reduce", response_model=TradingStatus, responses=_COMMAND_ERRORS)
async def reduce_only(
    control: ControlDep, actor: ActorDep, origin: OriginDep, body: OptionalReason = None
) -> TradingStatus:
    """Reduce-only: no new exposure, exits and stops still managed. 409 while halted."""
    return await control.reduce(actor=actor, origin=origin, reason=body.reason if body else "")


@router.post("/trading/flatten", response_model=TradingStatus, responses=_COMMAND_ERRORS)
async def flatten(
    control: ControlDep, actor: ActorDep, origin: OriginDep, body: FlattenRequest
) -> TradingStatus:
    """Closes every position at market, also while halted (the state is unchanged). Needs `{"confirm": true}`."""
    return await control.flatten(actor=actor, origin=origin, reason=body.reason)


@router.post("/profile", response_model=ProfileResponse, responses=_COMMAND_ERRORS)
async def set_profile(
    control: ControlDep, actor: ActorDep, origin: OriginDep, body: ProfileRequest
) -> ProfileResponse:
    """Switches the risk profile: a built-in (conservative, balanced, aggressive) or a custom one, at its newest
    version. 422 names the valid profiles; 409 when a stored custom profile no longer matches its hash."""
    return await control.set_profile(actor=actor, origin=origin, profile=body.profile, reason=body.reason)


ProfileNameInPath = Annotated[
    str,
    Path(
        pattern=PROFILE_NAME_PATTERN,
        description=f"The custom profile's name: {PROFILE_NAME_RULE}.",
        examples=["cautious"],
    ),
]


@router.get("/profiles", response_model=list[ProfileVersion])
async def profiles(control: ControlDep) -> list[ProfileVersion]:
    """Every profile as data: the built-ins (read-only) and the newest version of each custom one, each with its
    version and content hash; the one in force is `active`."""
    return await control.profiles()


@router.put(
    "/profiles/{name}",
    response_model=ProfileSaved,
    responses={
        **_COMMAND_ERRORS,
        201: {"model": ProfileSaved, "description": "The profile's first version was stored."},
    },
)
async def save_profile(
    control: ControlDep,
    actor: ActorDep,
    origin: OriginDep,
    name: ProfileNameInPath,
    body: ProfileBody,
    response: Response,
) -> ProfileSaved:
    """Creates a custom profile (201) or stores its next version (200; nothing new if the body equals the newest
    version), recorded as a control action with the actor. Saving the profile in force switches the running
    engine to the new version. 409 for a built-in; 422 names the offending field."""
    saved = await control.save_profile(actor=actor, origin=origin, name=name, body=body)
    if saved.created and saved.version == 1:
        response.status_code = 201
    return saved


@router.post("/trading/strategy", response_model=StrategyResponse, responses=_COMMAND_ERRORS)
async def set_strategy(control: ControlDep, actor: ActorDep, body: StrategyRequest) -> StrategyResponse:
    """Switches the running engine to another strategy allowed at its start-up (the registered ones and the one
    `tradeos up --strategy` named), with validated parameters; recorded with the actor. 409 unless an engine runs,
    trading is halted and the book is flat, or when the engine refuses the strategy or its parameters."""
    return await control.set_strategy(
        actor=actor, strategy=body.strategy, params=dict(body.params), reason=body.reason
    )


def _add_docs_routes(app: FastAPI) -> None:
    add_docs_routes(app, title=API_TITLE, dependencies=[TokenDep])


def add_error_handlers(app: FastAPI) -> None:
    """Domain errors mapped to HTTP in one place (`ERROR_STATUS`), and an undecodable body answered as a 422."""

    async def domain_error(request: Request, exc: Exception) -> JSONResponse:
        status = next(code for kind, code in ERROR_STATUS.items() if isinstance(exc, kind))
        headers = {"Retry-After": "1"} if status == 503 else None
        return JSONResponse({"detail": str(exc)}, status_code=status, headers=headers)

    for kind in ERROR_STATUS:
        app.add_exception_handler(kind, domain_error)

    async def unknown_profile(request: Request, exc: Exception) -> JSONResponse:
        # A well-formed name that names no profile is a bad field value, answered like any other (422, `loc`).
        assert isinstance(exc, UnknownProfile)
        error = {"loc": list(exc.loc), "msg": str(exc), "type": "value_error", "input": exc.value[:200]}
        return JSONResponse({"detail": [error]}, status_code=422)

    app.add_exception_handler(UnknownProfile, unknown_profile)

    async def http_error(request: Request, exc: Exception) -> Response:
        # FastAPI answers a body it cannot decode (not UTF-8) with a bare 400; a bad body is a 422 here, as
        # documented, naming the body.
        if isinstance(exc, StarletteHTTPException) and exc.status_code == 400 and exc.detail == _UNPARSABLE:
            return JSONResponse(
                {
                    "detail": [
                        {"loc": ["body"], "msg": "the body is not valid UTF-8 JSON", "type": "json_invalid"}
                    ]
                },
                status_code=422,
            )
        assert isinstance(exc, StarletteHTTPException)
        return await http_exception_handler(request, exc)

    app.add_exception_handler(StarletteHTTPException, http_error)


_UNPARSABLE = "There was an error parsing the body"


def create_app(
    settings: Settings,
    *,
    ws_queue_size: int = 1024,
    portfolio_interval: float = 0.25,
    access_log_flush_interval: float = 1.0,
) -> FastAPI:
    """The operator app; `settings.stores`' URLs must be resolved (not None)."""
    if settings.stores.database_url is None or settings.stores.redis_url is None:
        raise ValueError("create_app needs resolved TRADEOS_DATABASE_URL and TRADEOS_REDIS_URL")
    database_url = settings.stores.database_url.get_secret_value()
    redis_url = settings.stores.redis_url.get_secret_value()
    recorder = AccessLogRecorder(flush_interval=access_log_flush_interval)
    audit_key = audit_key_of(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stores = await Stores.open(database_url=database_url, redis_url=redis_url)
        hub = EventHub(stores=stores, queue_size=ws_queue_size, portfolio_interval=portfolio_interval)
        app.state.stores = stores
        app.state.hub = hub
        app.state.control = TradingControl(
            stores=stores, default_profile=settings.engine.profile, audit_key=audit_key
        )
        census = ClientCensus(stores=stores, hub=hub)
        hub.start()
        census.start()
        recorder.start(stores)
        try:
            yield
        finally:
            await census.stop()
            await hub.stop()
            await recorder.stop()
            await stores.close()

    app = FastAPI(
        telemetry=NO_TELEMETRY,
        title=API_TITLE,
        version="1",
        description="Watch and steer the TRADEOS engine. With `TRADEOS_TOOL_TOKEN` set, every endpoint needs "
        "`Authorization: Bearer <token>` (the WebSocket also accepts `?token=`).",
        # No 307 to the slash-less path: it would answer before auth and echo the Host header.
        redirect_slashes=False,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.access_log = recorder
    app.add_middleware(AccessLogMiddleware, recorder=recorder)
    add_error_handlers(app)
    install_request_limits(app)
    app.include_router(router)
    app.add_api_websocket_route("/ws", serve_client)
    _add_docs_routes(app)
    install_browser_session(app)
    redact_server_logs()
    return app


def server_config(app: FastAPI, *, host: str, port: int, **overrides: Any) -> uvicorn.Config:
    """How to serve an API app: uvicorn's access log off (ours omits query strings, which may hold the token),
    `token=` scrubbed from what uvicorn still logs (it logs WebSocket paths with their query string), a connection
    that does not complete its request head in `TRADEOS_HEADER_READ_TIMEOUT_SECONDS` closed, and a WebSocket
    handshake too large for the WebSocket library answered rather than left hanging."""
    settings: Settings | None = getattr(app.state, "settings", None)
    timeout = settings.api.header_read_timeout_seconds if settings else DEFAULT_HEADER_READ_TIMEOUT_SECONDS
    options: dict[str, Any] = {
        "access_log": False,
        "lifespan": "on",
        "http": protocol_with_header_read_timeout(timeout),
    }
    config = uvicorn.Config(app, host=host, port=port, **(options | overrides))
    redact_server_logs()
    return config
