"""The WebSocket over a real engine (`tradeos up --no-api`, six simulated hours at full speed) and the real app: one
clock (every envelope is stamped with the engine's time of its event) and one shape per resource (a `signal` is the
`/signals` item, a `fill` the `/trades` item, a `portfolio_update` is `/portfolio`)."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from operator_api_support import ServerThread, eventually
from websockets.asyncio.client import ClientConnection, connect

from live.settings import Settings
from tests.support import Service

# Six simulated hours: 360 bars a symbol, so every (symbol, signal type) has fewer actionable values than one
# `/signals` page holds (1000) and each one sent over the WebSocket can be found there.
SIX_HOURS = ["up", "--no-api", "--no-flows", "--speed", "0", "--profile", "aggressive", "--seed", "1"]
SIX_HOURS += ["--sim-days", "0.25"]


@pytest.fixture
def api(api_settings: Settings) -> Iterator[ServerThread]:
    """The app with its production WebSocket queue: this test reads every message of a full-speed run."""
    with ServerThread(api_settings) as server:
        yield server


def _at(timestamp: str) -> datetime:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00"))


async def _receive_until(ws: ClientConnection, done: Any, messages: list[dict[str, Any]]) -> None:
    """Appends every message to `messages` until `done()` holds once the stream is quiet."""
    while True:
        try:
            messages.append(json.loads(await asyncio.wait_for(ws.recv(), 1)))
        except TimeoutError:
            if await done():
                return


async def _rest_items_by_id(client: httpx.AsyncClient, path: str, **params: Any) -> dict[Any, dict[str, Any]]:
    response = await client.get(path, params={"limit": 1000, **params})
    assert response.status_code == 200, response.text
    return {item["id"]: item for item in response.json()}


async def test_every_message_carries_the_engine_clock_and_the_rest_shape_of_its_resource(
    api: ServerThread, client: httpx.AsyncClient, pg: psycopg.Connection, token: str, tmp_path: Path
) -> None:
    env = {
        "TRADEOS_DATABASE_URL": api.settings.stores.database_url.get_secret_value(),
        "TRADEOS_REDIS_URL": api.settings.stores.redis_url.get_secret_value(),
    }
    messages: list[dict[str, Any]] = []
    async with connect(f"{api.ws_url}?token={token}", max_size=None) as ws:
        await eventually(lambda: api.hub_subscribed)
        with Service(tmp_path / "engine", SIX_HOURS, env) as engine:

            async def the_run_is_over_and_shown() -> bool:
                if "feed finished" not in engine.output:
                    return False
                shown = (await client.get("/portfolio")).json()
                updates = [m["data"] for m in messages if m["type"] == "portfolio_update"]
                return bool(updates) and updates[-1].get("timestamp") == shown["timestamp"]

            await asyncio.wait_for(_receive_until(ws, the_run_is_over_and_shown, messages), 120)
            portfolio = (await client.get("/portfolio")).json()
        first_bar, last_bar = pg.execute("SELECT min(timestamp), max(timestamp) FROM bars").fetchone()

    by_type: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for message in messages:
        by_type[message["type"]].append(message)
    assert by_type["fill"], "six simulated hours of the aggressive profile fill orders"
    assert by_type["signal"]
    assert by_type["portfolio_update"]

    # One clock: the envelope is stamped with the event's own engine time, inside the simulated run.
    for message in messages:
        assert message["timestamp"] == message["data"]["timestamp"], message
        if message["timestamp"] is not None:  # only the book shown before the engine's first bar is unstamped
            assert first_bar <= _at(message["timestamp"]) <= last_bar, message

    # One shape: each WebSocket resource equals the REST item with its id, key for key and value for value.
    signals = [m["data"] for m in by_type["signal"]]
    rest_signals: dict[Any, dict[str, Any]] = {}
    for symbol, signal_type in {(s["symbol"], s["signal_type"]) for s in signals}:
        rest_signals |= await _rest_items_by_id(
            client, "/signals", symbol=symbol, signal_type=signal_type, actionable="true"
        )
    for signal in signals:
        assert signal == rest_signals.get(signal.get("id")), signal
    fills = [m["data"] for m in by_type["fill"]]
    rest_fills: dict[Any, dict[str, Any]] = {}
    for symbol in {f["symbol"] for f in fills}:
        rest_fills |= await _rest_items_by_id(client, "/trades", symbol=symbol)
    for fill in fills:
        assert fill == rest_fills.get(fill["id"]), fill
    assert by_type["portfolio_update"][-1]["data"] == portfolio

    # A client connecting now gets the same book, stamped with the engine time it was marked at.
    async with connect(f"{api.ws_url}?token={token}", max_size=None) as late:
        first = json.loads(await asyncio.wait_for(late.recv(), 10))
    assert first == {"type": "portfolio_update", "data": portfolio, "timestamp": portfolio["timestamp"]}
    assert _at(portfolio["timestamp"]) == last_bar
