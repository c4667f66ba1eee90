"""Typed dependencies of the operator API's routes (`Annotated[..., Depends(...)]` aliases).

All `async def`: FastAPI runs a plain `def` dependency in its thread pool, a thread hand-off per request
that costs far more than the attribute read (and, next to the engine thread, a wait for the GIL)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from api.auth import require_token
from api.control import TradingControl
from api.stores import Stores
from api.ws import EventHub
from live.settings import Settings

DEFAULT_ACTOR = "api"
MAX_ACTOR_LENGTH = 64


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_stores(request: Request) -> Stores:
    return request.app.state.stores


async def get_control(request: Request) -> TradingControl:
    return request.app.state.control


async def get_hub(request: Request) -> EventHub:
    return request.app.state.hub


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoresDep = Annotated[Stores, Depends(get_stores)]
ControlDep = Annotated[TradingControl, Depends(get_control)]
HubDep = Annotated[EventHub, Depends(get_hub)]
TokenDep = Depends(require_token)
"""Route or router dependency: `dependencies=[TokenDep]`."""


async def get_actor(
    settings: SettingsDep,
    x_actor: Annotated[
        str | None,
        Header(
            description="Who is acting, for the record (e.g. `cli:alice`); default `api`.", max_length=200
        ),
    ] = None,
) -> str:
    """The name recorded with a control action; never the token, even if a client sends it as its name."""
    actor = "".join(ch for ch in (x_actor or "") if ch.isprintable()).strip()[:MAX_ACTOR_LENGTH]
    token = settings.api.tool_token
    if not actor or (token and token.get_secret_value() in actor):
        return DEFAULT_ACTOR
    return actor


ActorDep = Annotated[str, Depends(get_actor)]


async def get_origin(request: Request) -> str:
    """Where a control action came from, for the audit ledger: the client address of the connection (a proxy's
    own, behind one: no forwarded header is trusted)."""
    client = request.client
    return client.host if client is not None else "unknown"


OriginDep = Annotated[str, Depends(get_origin)]
