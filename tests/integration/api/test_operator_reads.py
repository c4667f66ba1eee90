"""GET /portfolio, /positions, /trades, /signals: contract shapes, filters, limits and 422s (docs/api.md)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest
import redis
from operator_api_support import SNAPSHOT, build_fills, insert_fills, insert_signal

from live.domain import SIGNAL_TYPES
from live.stores import redis_keys

POSITION_FIELDS = {"symbol", "quantity", "avg_price", "market_price", "market_value", "unrealized_pnl"}
PORTFOLIO_FIELDS = {"total_value", "cash", "unrealized_pnl", "realized_pnl_today", "drawdown", "positions"}
TRADE_FIELDS = {
    "id", "order_id", "symbol", "side", "quantity", "price", "fee", "timestamp", "signal_type", "realized_pnl",
}  # fmt: skip
SIGNAL_FIELDS = {"id", "timestamp", "symbol", "signal_type", "strength", "horizon_bars", "regime"}
START = datetime(2024, 3, 1, 14, 0, tzinfo=UTC)
TRADES = [
    ("AAPL", "buy", 10, "187.00", "momentum"),
    ("MSFT", "sell", 5, "410.00", "mean_reversion"),
    ("AAPL", "buy", 10, "189.00", "momentum"),
    ("AAPL", "sell", 5, "190.00", "breakout"),
    ("MSFT", "buy", 5, "405.00", "mean_reversion"),
]


def _is_utc_z(value: str) -> bool:
    return value.endswith("Z") and datetime.fromisoformat(value).utcoffset() == timedelta(0)


@pytest.fixture
def recorded(pg: psycopg.Connection) -> None:
    insert_fills(pg, build_fills(TRADES, start=START))
    for n, signal_type in enumerate(("momentum", "mean_reversion", "breakout", "momentum", "vol_trend")):
        insert_signal(
            pg,
            timestamp=START + timedelta(minutes=n),
            symbol="AAPL" if n % 2 == 0 else "MSFT",
            signal_type=signal_type,
            strength=0.1 * (n + 1),
            actionable=n != 4,
        )


async def test_portfolio_is_the_engines_snapshot(client: httpx.AsyncClient, rds: redis.Redis) -> None:
    rds.set(redis_keys.PORTFOLIO, json.dumps(SNAPSHOT))

    response = await client.get("/portfolio")

    assert response.status_code == 200
    body = response.json()
    assert body.keys() >= PORTFOLIO_FIELDS
    assert body["total_value"] == 101234.56
    assert body["drawdown"] == 0.0042
    assert body["timestamp"] == "2024-03-01T14:30:00Z"
    assert {p["symbol"] for p in body["positions"]} == {"AAPL", "MSFT"}
    assert all(p.keys() >= POSITION_FIELDS for p in body["positions"])


async def test_positions_lists_open_positions_only(client: httpx.AsyncClient, rds: redis.Redis) -> None:
    rds.set(redis_keys.PORTFOLIO, json.dumps(SNAPSHOT))

    response = await client.get("/positions")

    assert response.status_code == 200
    assert response.json() == [SNAPSHOT["positions"][0]]


async def test_portfolio_of_a_system_that_never_traded_is_its_initial_cash(client: httpx.AsyncClient) -> None:
    body = (await client.get("/portfolio")).json()

    assert body["total_value"] == body["cash"] == 100000
    assert body["positions"] == []
    assert body["drawdown"] == 0


@pytest.mark.usefixtures("recorded")
async def test_portfolio_without_a_snapshot_is_rebuilt_from_the_record(
    client: httpx.AsyncClient, pg: psycopg.Connection
) -> None:
    pg.execute(
        "INSERT INTO bars (timestamp, symbol, open, high, low, close, volume) VALUES"
        " (%s, 'AAPL', 190, 191, 189, 191.5, 1000), (%s, 'MSFT', 404, 406, 403, 404, 1000)",
        (START + timedelta(minutes=9), START + timedelta(minutes=9)),
    )

    body = (await client.get("/portfolio")).json()

    # AAPL: +20 at avg 188, then -5 at 190 (realized +10); MSFT: -5 at 410 then +5 at 405 (realized +25).
    assert body["positions"] == [
        {
            "symbol": "AAPL",
            "quantity": 15,
            "avg_price": 188.0,
            "market_price": 191.5,
            "market_value": 2872.5,
            "unrealized_pnl": 52.5,
        }
    ]
    assert body["cash"] == pytest.approx(100000 - 10 * 187 + 5 * 410 - 10 * 189 + 5 * 190 - 5 * 405 - 2.5)
    assert body["total_value"] == pytest.approx(body["cash"] + 2872.5)
    assert body["unrealized_pnl"] == 52.5
    assert (await client.get("/positions")).json() == body["positions"]


@pytest.mark.usefixtures("recorded")
async def test_trades_are_fills_newest_first(client: httpx.AsyncClient) -> None:
    response = await client.get("/trades")

    assert response.status_code == 200
    trades = response.json()
    assert [t["id"] for t in trades] == ["f-0004", "f-0003", "f-0002", "f-0001", "f-0000"]
    assert all(set(t) == TRADE_FIELDS for t in trades)
    first = trades[-1]
    assert first["side"] == "buy"
    assert first["quantity"] == 10
    assert first["price"] == 187.0
    assert first["fee"] == 0.5
    assert first["realized_pnl"] == 0
    assert trades[1]["realized_pnl"] == 10.0
    assert all(_is_utc_z(t["timestamp"]) for t in trades)
    assert first["timestamp"] == "2024-03-01T14:00:00Z"


@pytest.mark.usefixtures("recorded")
async def test_trades_filter_by_limit_symbol_and_since(client: httpx.AsyncClient) -> None:
    assert [t["id"] for t in (await client.get("/trades", params={"limit": 2})).json()] == [
        "f-0004",
        "f-0003",
    ]
    assert [t["id"] for t in (await client.get("/trades", params={"symbol": "MSFT"})).json()] == [
        "f-0004",
        "f-0001",
    ]
    since_z = (await client.get("/trades", params={"since": "2024-03-01T14:02:00Z"})).json()
    assert [t["id"] for t in since_z] == ["f-0004", "f-0003", "f-0002"]
    since_offset = (await client.get("/trades", params={"since": "2024-03-01T16:03:00+02:00"})).json()
    assert [t["id"] for t in since_offset] == ["f-0004", "f-0003"]
    unencoded_plus = (await client.get("/trades?since=2024-03-01T15:03:00+01:00")).json()
    assert [t["id"] for t in unencoded_plus] == ["f-0004", "f-0003"]
    assert (await client.get("/trades", params={"symbol": "NONE"})).json() == []


@pytest.mark.usefixtures("recorded")
async def test_signals_newest_first_filtered_by_type_and_symbol(client: httpx.AsyncClient) -> None:
    everything = (await client.get("/signals")).json()
    assert [s["signal_type"] for s in everything] == [
        "vol_trend",
        "momentum",
        "breakout",
        "mean_reversion",
        "momentum",
    ]
    assert all(s.keys() >= SIGNAL_FIELDS for s in everything)
    assert all(_is_utc_z(s["timestamp"]) and -1 <= s["strength"] <= 1 for s in everything)

    momentum = (await client.get("/signals", params={"signal_type": "momentum"})).json()
    assert [s["timestamp"] for s in momentum] == ["2024-03-01T14:03:00Z", "2024-03-01T14:00:00Z"]
    assert [s["symbol"] for s in (await client.get("/signals", params={"symbol": "MSFT"})).json()] == [
        "MSFT",
        "MSFT",
    ]
    assert len((await client.get("/signals", params={"limit": 1})).json()) == 1
    actionable = (await client.get("/signals", params={"actionable": "true"})).json()
    assert "vol_trend" not in {s["signal_type"] for s in actionable}


@pytest.mark.parametrize("path", ["/trades", "/signals"])
@pytest.mark.parametrize("limit", ["0", "1001", "-5", "abc", "1.5"])
async def test_a_bad_limit_is_422_naming_limit(client: httpx.AsyncClient, path: str, limit: str) -> None:
    response = await client.get(path, params={"limit": limit})

    assert response.status_code == 422
    assert [error["loc"] for error in response.json()["detail"]] == [["query", "limit"]]


@pytest.mark.parametrize("limit", ["1", "1000"])
async def test_limit_bounds_are_accepted(client: httpx.AsyncClient, limit: str) -> None:
    assert (await client.get("/trades", params={"limit": limit})).status_code == 200
    assert (await client.get("/signals", params={"limit": limit})).status_code == 200


@pytest.mark.parametrize("since", ["yesterday", "2024-13-01T00:00:00Z", "2024-03-01T14:00:00", ""])
async def test_an_unparsable_or_naive_since_is_422_naming_since(
    client: httpx.AsyncClient, since: str
) -> None:
    response = await client.get("/trades", params={"since": since})

    assert response.status_code == 422
    assert [error["loc"] for error in response.json()["detail"]] == [["query", "since"]]


async def test_an_unknown_signal_type_is_422_naming_the_valid_ones(client: httpx.AsyncClient) -> None:
    response = await client.get("/signals", params={"signal_type": "astrology"})

    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == ["query", "signal_type"]
    assert all(name in error["msg"] for name in SIGNAL_TYPES)
