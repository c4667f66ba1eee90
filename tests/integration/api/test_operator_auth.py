"""TRADEOS_TOOL_TOKEN guards every HTTP endpoint and the WebSocket, and never reaches a log (docs/api.md)."""

from __future__ import annotations

import json
import logging

import httpx
import psycopg
import pytest
from operator_api_support import ServerThread, eventually
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from live.profiles import PROFILES, canonical_json
from live.settings import Settings

ENDPOINTS = [
    ("GET", "/healthz", None),
    ("GET", "/portfolio", None),
    ("GET", "/positions", None),
    ("GET", "/trades", None),
    ("GET", "/signals", None),
    ("GET", "/trading/status", None),
    ("POST", "/trading/halt", {"reason": "x"}),
    ("POST", "/trading/resume", None),
    ("POST", "/trading/reduce", None),
    ("POST", "/trading/flatten", {"confirm": True}),
    ("POST", "/profile", {"profile": "conservative"}),
    ("GET", "/profiles", None),
    ("PUT", "/profiles/cautious", json.loads(canonical_json(PROFILES["conservative"]))),
    ("GET", "/docs", None),
    ("GET", "/openapi.json", None),
]
CLIENT_LOGGERS = ("httpx", "httpcore", "websockets.client")  # the test's own clients log their URLs
BAD_CREDENTIALS = {
    "no header": {},
    "wrong token": {"Authorization": "Bearer not-the-token"},
    "bearer without token": {"Authorization": "Bearer"},
    "basic scheme": {"Authorization": "Basic dXNlcjpwYXNz"},
}


@pytest.mark.parametrize("credentials", BAD_CREDENTIALS.values(), ids=BAD_CREDENTIALS.keys())
async def test_every_endpoint_refuses_a_missing_or_wrong_token(
    api: ServerThread, pg: psycopg.Connection, credentials: dict[str, str]
) -> None:
    async with httpx.AsyncClient(base_url=api.base_url, headers=credentials, timeout=15) as anonymous:
        for method, path, body in ENDPOINTS:
            response = await anonymous.request(method, path, json=body)

            assert response.status_code == 401, (method, path)
            assert response.headers["www-authenticate"] == "Bearer"
            assert response.json() == {"detail": "missing or invalid bearer token"}
    assert pg.execute("SELECT count(*) FROM control_actions").fetchone() == (0,)
    assert pg.execute("SELECT count(*) FROM profile_versions").fetchone() == (0,)


async def test_the_token_in_the_query_string_does_not_open_http_endpoints(
    api: ServerThread, token: str
) -> None:
    async with httpx.AsyncClient(base_url=api.base_url, timeout=15) as anonymous:
        assert (await anonymous.get("/portfolio", params={"token": token})).status_code == 401


async def test_docs_and_openapi_document_every_endpoint_with_the_token(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    docs = await client.get("/docs")

    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()
    documented = {path.replace("/cautious", "/{name}") for _, path, _ in ENDPOINTS}
    assert documented - {"/docs", "/openapi.json"} <= schema["paths"].keys()
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert "examples" in schema["components"]["schemas"]["Trade"]


async def test_the_docs_page_loads_everything_from_our_own_server_and_nothing_from_a_cdn(
    client: httpx.AsyncClient,
) -> None:
    import re

    page = (await client.get("/docs")).text
    urls = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page)
    assert urls
    assert not [u for u in urls if "//" in u], "the docs page references another host"
    for url in urls:
        asset = await client.get(url)
        assert asset.status_code == 200, url
        assert asset.content, url


@pytest.mark.parametrize("query", ["", "?token=wrong", "?token="])
async def test_websocket_is_refused_before_any_message_without_the_right_token(
    api: ServerThread, query: str
) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(api.ws_url + query):
            pass
    assert refused.value.response.status_code == 403


async def test_websocket_refuses_a_wrong_bearer_header(api: ServerThread) -> None:
    with pytest.raises(InvalidStatus):
        async with connect(api.ws_url, additional_headers={"Authorization": "Bearer wrong"}):
            pass


async def test_websocket_accepts_the_token_in_the_query_or_the_header(api: ServerThread, token: str) -> None:
    async with connect(f"{api.ws_url}?token={token}") as ws:
        assert '"portfolio_update"' in await ws.recv()
    async with connect(api.ws_url, additional_headers={"Authorization": f"Bearer {token}"}) as ws:
        assert '"portfolio_update"' in await ws.recv()


async def test_without_a_configured_token_everything_is_open(api_settings: Settings) -> None:
    with ServerThread(api_settings.model_copy(update={"tool_token": None})) as open_api:
        async with httpx.AsyncClient(base_url=open_api.base_url, timeout=15) as anonymous:
            assert (await anonymous.get("/portfolio")).status_code == 200
        async with connect(open_api.ws_url) as ws:
            assert '"portfolio_update"' in await ws.recv()


async def test_the_token_never_appears_in_logs_or_the_access_record(
    api: ServerThread,
    client: httpx.AsyncClient,
    token: str,
    pg: psycopg.Connection,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    await client.get("/portfolio", params={"symbol": "x", "token": token})
    await client.post("/trading/halt", json={"reason": "log check"}, headers={"X-Actor": f"me {token}"})
    async with connect(f"{api.ws_url}?token={token}") as ws:
        await ws.recv()
    with pytest.raises(InvalidStatus):
        async with connect(f"{api.ws_url}?token={token}x"):
            pass

    paths = await eventually(
        lambda: [row[0] for row in pg.execute("SELECT path FROM api_requests ORDER BY id").fetchall()]
    )
    assert "/portfolio" in paths
    assert all("?" not in path and token not in path for path in paths)
    server_side = [r.getMessage() for r in caplog.records if not r.name.startswith(CLIENT_LOGGERS)]
    assert any("WebSocket /ws" in message for message in server_side)
    assert any("GET /portfolio 200" in message for message in server_side)
    assert not [message for message in server_side if token in message]
    actors = [row[0] for row in pg.execute("SELECT actor FROM control_actions").fetchall()]
    assert actors == ["api"]
