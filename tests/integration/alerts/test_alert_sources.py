"""What the notifier alerts on besides operators' halts: fills, risk events and breaker trips, the daily report
written, and a flow run Prefect recorded as failed, each once, read from where it is recorded."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from live.domain import Fill, Order, OrderStatus, RiskEvent, Side
from live.stores import record
from tests.factories import T0
from tests.integration.alerts.test_alert_notifier import _delivered, _notifier, _started
from tests.support import eventually
from tests.webhook import WebhookReceiver


def test_fills_risk_events_breaker_trips_and_the_daily_report_are_alerted(
    tmp_path: Path, database_url: str
) -> None:
    order = Order(
        id="o-fill-1",
        timestamp=T0,
        symbol="BBB",
        side=Side.BUY,
        quantity=25,
        signal_type="breakout",
        reduces_position=False,
        status=OrderStatus.FILLED,
    )
    fill = Fill(
        id="f-fill-1",
        order_id=order.id,
        timestamp=T0,
        symbol="BBB",
        side=Side.BUY,
        quantity=25,
        price=Decimal("101.25"),
        fee=Decimal("0.25"),
        signal_type="breakout",
        realized_pnl=Decimal("0"),
    )
    trip = RiskEvent(timestamp=T0, code="MAX_DRAWDOWN", detail="drawdown 12% > 10%", halts_trading=True)
    warning = RiskEvent(timestamp=T0, code="PRICE_BAND", detail="price off the band", symbol="BBB")
    with (
        WebhookReceiver() as hook,
        _notifier(tmp_path, database_url, hook.url, TRADEOS_ALERT_COALESCE_SECONDS="0") as service,
    ):
        _started(database_url, service)
        with psycopg.connect(database_url) as conn:
            record.execute_many(conn, record.book.insert_orders([order], latencies_us={}))
            record.execute_many(conn, record.book.insert_fills([fill]))
            record.execute_many(conn, record.events.insert_risk_events([trip, warning]))
        reports = tmp_path / "reports"
        reports.mkdir(mode=0o700)
        (reports / "2026-03-02.html").write_text("<html></html>")
        for kind in ("fill", "breaker_trip", "risk_event", "daily_report"):
            eventually(lambda kind=kind: _delivered(database_url, kind), what=f"the {kind} delivered")

    titles = sorted(received.title for received in hook.received)
    assert titles == [
        "TRADEOS: Circuit breaker tripped, trading halted: MAX_DRAWDOWN",
        "TRADEOS: Daily report written: 2026-03-02.html",
        "TRADEOS: Fill: buy 25 BBB",
        "TRADEOS: Risk event: PRICE_BAND",
    ]
    (fill_alert,) = hook.titled("Fill")
    assert "at 101.25" in fill_alert.message
    assert "realized P&L 0" in fill_alert.message


@pytest.mark.usefixtures("prefect_harness")
def test_a_flow_run_prefect_recorded_as_failed_is_alerted_once(tmp_path: Path, database_url: str) -> None:
    from prefect import flow
    from prefect.settings import PREFECT_API_URL

    @flow(name="alerts-test-report")
    def fails() -> None:
        raise RuntimeError("no report today")

    settings = {"PREFECT_API_URL": str(PREFECT_API_URL.value()), "TRADEOS_ALERT_KINDS": "flow_failed"}
    with WebhookReceiver() as hook, _notifier(tmp_path, database_url, hook.url, **settings) as service:
        _started(database_url, service)
        failed_at = datetime.now(UTC)
        state = fails(return_state=True)
        assert state.is_failed()
        run_id = str(state.state_details.flow_run_id)
        eventually(
            lambda: [row for row in _delivered(database_url, "flow_failed") if row[0] == run_id],
            timeout=60,
            what="the failed run's alert",
        )
    mine = [received for received in hook.received if "alerts-test-report" in received.title]
    assert len(mine) == 1
    assert mine[0].title.startswith("TRADEOS: Flow alerts-test-report/")
    assert mine[0].title.endswith("failed (Failed)")
    assert "RuntimeError: no report today" in mine[0].message
    assert failed_at.isoformat()[:10] in mine[0].message
