"""The Metrics API's reads of the system of record over HTTP: `/metrics/portfolio` and `/summary` recomputed here
from the recorded positions, closes and equity; `/metrics` counting WebSocket clients; bearer auth on all three."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import psycopg
import pytest
import redis
import websockets
from operator_api_support import ServerThread, eventually
from prometheus_client.parser import text_string_to_metric_families

from api.metrics import create_app
from live.profiles import PROFILES
from live.settings import Settings
from live.stores import redis_keys
from tests.support import AppServer

DAY_1 = datetime(2026, 3, 2, tzinfo=UTC)
DAY_2 = datetime(2026, 3, 3, tzinfo=UTC)
MARKED_AT = DAY_2 + timedelta(hours=14, minutes=30)
CASH = Decimal("93790.56")
HIGH_WATER_MARK = Decimal("101660.00")
START_OF_DAY = Decimal("100800.25")
# symbol: (quantity, average price, realized P&L); CCC is flat, DDD has no bar at all.
POSITIONS = {
    "AAA": (100, Decimal("50.12345678"), Decimal("12.50")),
    "BBB": (-40, Decimal("187.25"), Decimal("-3.10")),
    "CCC": (0, Decimal("0"), Decimal("20.00")),
    "DDD": (7, Decimal("12.5"), Decimal("0")),
}
# symbol: [(minutes after 14:00 on day 2, close)]: the last one is the mark.
CLOSES = {"AAA": [(29, 51.0), (30, 51.37)], "BBB": [(28, 187.0), (30, 186.1)], "CCC": [(30, 9.99)]}
CENT = Decimal("0.01")


@pytest.fixture
def metrics(api_settings: Settings) -> Iterator[str]:
    with AppServer(create_app(api_settings)) as server:
        yield server.base_url


def _get(base: str, path: str, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.get(base + path, headers=headers, timeout=15)


def _json(response: httpx.Response) -> Any:
    """The body with every JSON number read as the exact decimal it is written as."""
    assert response.status_code == 200, response.text
    return json.loads(response.text, parse_float=Decimal)


def _record_book(pg: psycopg.Connection) -> None:
    pg.execute(
        "INSERT INTO engine_state (id, initial_cash, high_water_mark, profile) VALUES (1, 100000, 100000, 'balanced')"
    )
    for symbol, (quantity, avg_price, realized) in POSITIONS.items():
        pg.execute(
            "INSERT INTO positions (symbol, quantity, avg_price, realized_pnl, updated_at) VALUES (%s, %s, %s, %s, %s)",
            (symbol, quantity, avg_price, realized, MARKED_AT),
        )
    for symbol, closes in CLOSES.items():
        for minute, close in closes:
            pg.execute(
                "INSERT INTO bars (timestamp, symbol, open, high, low, close, volume) VALUES (%s, %s, %s, %s, %s, %s, 1)",
                (DAY_2 + timedelta(hours=14, minutes=minute), symbol, close, close, close, close),
            )
    equity = [
        (DAY_1 + timedelta(hours=15), Decimal("100500.00"), Decimal("100000"), Decimal("100500.00")),
        (DAY_1 + timedelta(hours=20, minutes=55), START_OF_DAY, Decimal("99000"), Decimal("100800.25")),
        (MARKED_AT, Decimal("101000.00"), CASH, HIGH_WATER_MARK),
    ]
    for row in equity:
        pg.execute(
            "INSERT INTO equity (timestamp, total_value, cash, high_water_mark) VALUES (%s, %s, %s, %s)", row
        )
    pg.execute(
        "INSERT INTO regime_changes (timestamp, previous, current, model) VALUES (%s, NULL, 'crisis', 'rules-v1'),"
        " (%s, 'crisis', 'trending', 'rules-v1')",
        (DAY_1 + timedelta(hours=9), DAY_2 + timedelta(hours=10, minutes=5)),
    )
    pg.execute("INSERT INTO control_actions (action, actor, value) VALUES ('profile', 'bob', 'conservative')")


def _fraction(value: Decimal) -> Decimal:
    """How an exact fraction reads once answered as a JSON number."""
    return Decimal(repr(float(value)))


def _expected_book() -> dict[str, Any]:
    marks = {symbol: Decimal(repr(closes[-1][1])) for symbol, closes in CLOSES.items()}
    held = {s: p for s, p in POSITIONS.items() if p[0] != 0}
    value = {s: q * marks.get(s, avg) for s, (q, avg, _) in held.items()}
    pnl = {s: q * (marks.get(s, avg) - avg) for s, (q, avg, _) in held.items()}
    equity = CASH + sum(value.values())
    gross = sum(abs(v) for v in value.values())
    largest = max(held, key=lambda s: abs(value[s]))
    return {
        "marks": marks,
        "value": value,
        "pnl": pnl,
        "equity": equity,
        "gross": gross,
        "net": sum(value.values()),
        "largest": largest,
        "hhi": sum((abs(v) / gross) ** 2 for v in value.values()),
    }


def test_the_portfolio_is_the_recorded_positions_marked_at_their_last_closes(
    metrics: str, pg: psycopg.Connection, token: str
) -> None:
    _record_book(pg)
    expected = _expected_book()
    equity, gross = expected["equity"], expected["gross"]
    conservative = PROFILES["conservative"]

    body = _json(_get(metrics, "/metrics/portfolio", token))

    assert body["equity"] == equity.quantize(CENT)
    assert body["cash"] == CASH
    assert body["exposure"] == {
        "gross": gross.quantize(CENT),
        "net": expected["net"].quantize(CENT),
        "gross_fraction": _fraction(gross / equity),
        "net_fraction": _fraction(expected["net"] / equity),
    }
    assert body["concentration"] == {
        "largest_position": "BBB",
        "largest_position_fraction": _fraction(abs(expected["value"]["BBB"]) / equity),
        "hhi": _fraction(expected["hhi"]),
        "effective_positions": _fraction(1 / expected["hhi"]),
    }
    assert [p["symbol"] for p in body["positions"]] == ["AAA", "BBB", "DDD"]
    for position in body["positions"]:
        symbol = position["symbol"]
        quantity, avg_price, realized = POSITIONS[symbol]
        value, pnl = expected["value"][symbol], expected["pnl"][symbol]
        assert position == {
            "symbol": symbol,
            "quantity": quantity,
            "avg_price": _fraction(avg_price),
            "market_price": _fraction(expected["marks"].get(symbol, avg_price)),
            "market_value": value.quantize(CENT),
            "unrealized_pnl": pnl.quantize(CENT),
            "realized_pnl": realized.quantize(CENT),
            "weight": _fraction(value / equity),
            "exposure_share": _fraction(abs(value) / gross),
            "contribution": _fraction(pnl / equity),
            "limit_utilisation": _fraction(abs(value) / equity / conservative.max_position_fraction),
        }, symbol
    day_loss = (START_OF_DAY - equity) / START_OF_DAY
    drawdown = (HIGH_WATER_MARK - equity) / HIGH_WATER_MARK
    limits = body["limits"]
    assert limits["profile"] == "conservative"  # the last switch on record, as the engine restores it
    assert limits["open_positions"] == 3
    assert limits["gross_exposure"] == {
        "used": _fraction(gross / equity),
        "limit": _fraction(conservative.max_gross_exposure),
        "utilisation": _fraction(gross / equity / conservative.max_gross_exposure),
    }
    assert limits["position_size"]["used"] == body["concentration"]["largest_position_fraction"]
    assert limits["daily_loss"] == {
        "used": _fraction(max(day_loss, Decimal(0))),
        "limit": _fraction(conservative.daily_loss_limit),
        "utilisation": _fraction(max(day_loss, Decimal(0)) / conservative.daily_loss_limit),
    }
    assert limits["drawdown"]["used"] == _fraction(drawdown)
    assert body["marked_at"] == "2026-03-03T14:30:00Z"


def test_an_empty_record_is_a_flat_book_of_the_initial_cash(metrics: str, token: str) -> None:
    body = _json(_get(metrics, "/metrics/portfolio", token))

    assert body["equity"] == body["cash"] == Decimal("100000")
    assert body["positions"] == []
    assert body["concentration"] == {
        "largest_position": None,
        "largest_position_fraction": None,
        "hhi": None,
        "effective_positions": None,
    }
    assert body["limits"]["gross_exposure"]["utilisation"] == 0
    assert body["marked_at"] is None


def test_the_summary_reads_state_book_day_regime_and_health_in_one_call(
    metrics: str, pg: psycopg.Connection, rds: redis.Redis, token: str
) -> None:
    _record_book(pg)
    pg.execute("INSERT INTO control_actions (action, actor, reason) VALUES ('halt', 'alice', 'news')")
    equity = _expected_book()["equity"]

    body = _json(_get(metrics, "/summary", token))

    assert (body["trading"]["status"], body["trading"]["actor"], body["trading"]["reason"]) == (
        "halted",
        "alice",
        "news",
    )
    assert body["portfolio"]["equity"] == equity.quantize(CENT)
    assert body["portfolio"]["open_positions"] == 3
    assert body["today"] == {
        "day": "2026-03-03",
        "start_of_day_equity": START_OF_DAY,
        "pnl": (equity - START_OF_DAY).quantize(CENT),
        "return_fraction": _fraction((equity - START_OF_DAY) / START_OF_DAY),
    }
    assert body["regime"] == {"current": "trending", "since": "2026-03-03T10:05:00Z"}
    assert body["performance"] is None  # no rollup made yet
    assert body["health"]["status"] == "degraded"  # stores up, no engine heartbeat
    assert body["health"]["heartbeat_age_seconds"] == {"signal_engine": None, "execution": None}

    now = datetime.now(UTC).timestamp()
    for service in redis_keys.HEARTBEAT_SERVICES:
        rds.set(redis_keys.heartbeat_key(service), str(now))
    health = _json(_get(metrics, "/summary", token))["health"]
    assert health["status"] == "healthy"
    assert all(
        0 <= age < redis_keys.HEARTBEAT_MAX_AGE_SECONDS for age in health["heartbeat_age_seconds"].values()
    )


@pytest.mark.parametrize("path", ["/metrics/portfolio", "/summary", "/metrics"])
def test_the_record_endpoints_need_the_bearer_token(metrics: str, token: str, path: str) -> None:
    for presented in (None, "wrong-" + token):
        response = _get(metrics, path, presented)
        assert response.status_code == 401, path
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json() == {"detail": "missing or invalid bearer token"}
    assert _get(metrics, path, token).status_code == 200


def _gauge(base: str, token: str, name: str) -> float | None:
    text = _get(base, "/metrics", token).text
    for family in text_string_to_metric_families(text):
        if family.name == name:
            return family.samples[0].value
    return None


async def test_the_exposition_counts_the_websocket_clients_of_the_operator_api(
    api: ServerThread, metrics: str, token: str
) -> None:
    def clients(expected: float) -> Any:
        async def counted() -> bool:
            return await asyncio.to_thread(_gauge, metrics, token, "tradeos_websocket_clients") == expected

        return counted

    await eventually(clients(0))
    first = await websockets.connect(f"{api.ws_url}?token={token}")
    second = await websockets.connect(f"{api.ws_url}?token={token}")
    try:
        await eventually(clients(2))
        await first.close()
        await eventually(clients(1))
    finally:
        await first.close()
        await second.close()
