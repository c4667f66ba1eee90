"""`POST /trading/halt` through the real HTTP API of `tradeos up`, while the engine trades as fast as it can, several
times (README, the halt guarantees): once the response is back, every fill belongs to an order submitted
before it. The bound on the engine step the halt landed on is computed as in test_halt_guarantees.py."""

from __future__ import annotations

import time
from datetime import timedelta

import httpx
import pytest

from tests.faults.api_support import Desk
from tests.faults.conftest import PrivateRedis
from tests.faults.desk import ControlDesk
from tests.faults.test_halt_guarantees import (
    HALTED_BARS,
    _committed_clock,
    _engine_clock_bound_after,
    _late_fills,
    _orders_between,
    _wait_clock_past,
    _wait_for_trading,
)

pytestmark = pytest.mark.faults

HALT_CYCLES = 5


def test_halting_through_the_http_api_under_full_load_lets_no_order_through_after_the_response(
    live_api_desk: tuple[Desk, PrivateRedis],
) -> None:
    api, _ = live_api_desk
    url = api.database_url
    desk = ControlDesk(redis_url=api.redis_url, database_url=url)
    response_ms: list[float] = []
    bound_bars: list[float] = []
    try:
        with httpx.Client(base_url=api.api_url, headers=api.auth, timeout=30) as client:
            for cycle in range(HALT_CYCLES):
                _wait_for_trading(desk, url)
                committed_before = _committed_clock(url)
                assert committed_before is not None
                sent = time.monotonic()
                response = client.post("/trading/halt", json={"reason": f"cycle {cycle}"})
                response_ms.append((time.monotonic() - sent) * 1000)
                assert response.status_code == 200, response.text
                assert response.json()["status"] == "halted"
                assert response.json()["engine_acknowledged"] is True
                bound = _engine_clock_bound_after(desk)
                bound_bars.append((bound - committed_before) / timedelta(minutes=1))
                halted_until = _wait_clock_past(url, bound + HALTED_BARS)
                assert client.get("/trading/status").json()["status"] == "halted"
                assert _orders_between(url, bound, halted_until) == [], f"cycle {cycle}: orders while halted"
                assert _late_fills(url, bound, halted_until) == [], (
                    f"cycle {cycle}: fills of post-halt orders"
                )
                resumed = client.post("/trading/resume", json={"reason": f"cycle {cycle} over"})
                assert resumed.status_code == 200, resumed.text
                assert resumed.json()["status"] == "active"
        assert api.service.process.poll() is None, api.service.output[-2000:]
    finally:
        desk.close()
    print(
        f"HTTP halt answered in {min(response_ms):.0f}..{max(response_ms):.0f} ms; halt step bounded within "
        f"{min(bound_bars):.0f}..{max(bound_bars):.0f} bars of the last commit before it"
    )
