"""`tradeos notify` against real PostgreSQL and a local webhook receiver: at least once and de-duplicated across a
`kill -9`, a storm coalesced into one message, retries then a dead letter, and secrets kept out of the log."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from live.alerts.channels import channel_name
from live.domain import ControlAction, Order, OrderStatus, Side
from live.stores import record
from tests.factories import T0
from tests.support import Service, eventually, run_cli
from tests.webhook import WebhookReceiver

CURSOR_KINDS = 7  # fill, rejection, risk_event, halt (and resume), daily_report, flow_failed, flow_late


def _notifier(home: Path, database_url: str, urls: str, **settings: str) -> Service:
    env = {"TRADEOS_DATABASE_URL": database_url, "TRADEOS_ALERT_URLS": urls, **settings}
    return Service(home, ["notify"], env)


def _rows(url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchall()


def _started(url: str, service: Service) -> None:
    """The notifier has its cursors: what is recorded from now on is alerted."""
    eventually(
        lambda: _rows(url, "SELECT count(*) FROM alert_cursors")[0][0] == CURSOR_KINDS,
        timeout=60,
        what=f"the notifier's cursors; its output so far: {service.output[-2000:]}",
    )


def _record_action(url: str, action: str, actor: str, reason: str) -> None:
    with psycopg.connect(url) as conn:
        record.execute(
            conn,
            record.decisions.insert_control_action(
                ControlAction(timestamp=datetime.now(UTC), action=action, actor=actor, reason=reason)
            ),
        )


def _delivered(url: str, kind: str) -> list[tuple[Any, ...]]:
    return _rows(url, "SELECT event_id, channel, message_id FROM alert_deliveries WHERE kind = %s", (kind,))


def test_an_alert_is_delivered_once_per_event_across_a_notifier_killed_between_deliveries(
    tmp_path: Path, database_url: str
) -> None:
    with WebhookReceiver() as hook:
        with _notifier(tmp_path, database_url, hook.url) as first:
            _started(database_url, first)
            _record_action(database_url, "halt", "ops-alice", "before the close")
            eventually(lambda: _delivered(database_url, "halt"), what="the halt's delivery on record")
            first.kill()
        # Recorded while no notifier runs: the restarted one finds it after its cursor.
        _record_action(database_url, "resume", "ops-bob", "all clear")
        with _notifier(tmp_path, database_url, hook.url) as second:
            eventually(lambda: _delivered(database_url, "resume"), what="the resume's delivery on record")
            # A few passes more, each re-reading the halt in its overlap, must not send it again.
            passes = second.output.count("delivered to")
            _record_action(database_url, "halt", "ops-bob", "a second halt")
            eventually(lambda: len(_delivered(database_url, "halt")) == 2, what="the second halt delivered")
            eventually(lambda: second.output.count("delivered to") > passes, what="its log line")
            assert second.output.count("delivered to") == passes + 1

    titles = [received.title for received in hook.received]
    assert titles == [
        "TRADEOS: Trading halted by ops-alice",
        "TRADEOS: Trading resumed by ops-bob",
        "TRADEOS: Trading halted by ops-bob",
    ]
    assert "before the close" in hook.received[0].message
    assert {channel for _, channel, _ in _delivered(database_url, "halt")} == {channel_name(hook.url)}


def test_a_storm_of_50_rejections_becomes_one_message(tmp_path: Path, database_url: str) -> None:
    rejected = [
        Order(
            id=f"storm-{n}-{uuid.uuid4().hex[:6]}",
            timestamp=T0,
            symbol="AAA",
            side=Side.BUY,
            quantity=10,
            signal_type="momentum",
            reduces_position=False,
            status=OrderStatus.REJECTED,
            reason="PRICE_BAND",
        )
        for n in range(50)
    ]
    with (
        WebhookReceiver() as hook,
        _notifier(tmp_path, database_url, hook.url, TRADEOS_ALERT_COALESCE_SECONDS="1") as service,
    ):
        _started(database_url, service)
        with psycopg.connect(database_url) as conn:
            record.execute_many(conn, record.book.insert_orders(rejected, latencies_us={}))
        eventually(lambda: len(_delivered(database_url, "rejection")) == 50, what="all 50 rejections settled")

    (message,) = hook.received
    assert message.title == "TRADEOS: 50 x Order rejected: buy 10 AAA"
    assert "50 rejection events" in message.message
    assert "PRICE_BAND x50" in message.message
    assert len({message_id for _, _, message_id in _delivered(database_url, "rejection")}) == 1


def test_a_receiver_answering_500_gets_retries_then_a_dead_letter_and_the_url_stays_out_of_the_log(
    tmp_path: Path, database_url: str
) -> None:
    token = f"s3cr3t-{uuid.uuid4().hex}"
    with WebhookReceiver(status=500, path=f"/hooks/{token}") as hook:
        settings = {"TRADEOS_ALERT_RETRY_SECONDS": "0.1", "TRADEOS_ALERT_MAX_ATTEMPTS": "3"}
        with _notifier(tmp_path, database_url, hook.url, **settings) as service:
            _started(database_url, service)
            _record_action(database_url, "halt", "ops-carol", "receiver is down")
            dead = eventually(
                lambda: _rows(
                    database_url,
                    "SELECT kind, channel, attempts, title, last_error FROM alert_dead_letters",
                ),
                what="the dead letter",
            )
            eventually(lambda: "dead-lettered" in service.output, what="the dead letter's log line")
            output = service.output

    assert [(r.title, r.answered) for r in hook.received] == [
        ("TRADEOS: Trading halted by ops-carol", 500)
    ] * 3
    assert dead == [("halt", channel_name(hook.url), 3, "TRADEOS: Trading halted by ops-carol", dead[0][4])]
    assert _delivered(database_url, "halt") == []
    assert output.count("not delivered to") == 2
    assert token not in output
    assert token not in (tmp_path / "logs" / "notifier.log").read_text()


def test_notify_without_urls_or_with_one_apprise_does_not_know_exits_2_naming_the_variable(
    tmp_path: Path, database_url: str
) -> None:
    code, output = run_cli(tmp_path, ["notify"], {"TRADEOS_DATABASE_URL": database_url})
    assert code == 2
    assert output.strip() == "tradeos: TRADEOS_ALERT_URLS: not set; the notifier has nowhere to send alerts"

    secret = "nosuchscheme://user:hunter2@example.invalid/x"
    code, output = run_cli(
        tmp_path, ["notify"], {"TRADEOS_DATABASE_URL": database_url, "TRADEOS_ALERT_URLS": secret}
    )
    assert code == 2
    assert output.strip().startswith("tradeos: TRADEOS_ALERT_URLS: URL #1 (nosuchscheme:")
    assert "hunter2" not in output


def test_events_held_for_their_window_when_the_notifier_dies_are_sent_after_its_restart(
    tmp_path: Path, database_url: str
) -> None:
    rejected = [
        Order(
            id=f"held-{n}",
            timestamp=T0,
            symbol="CCC",
            side=Side.SELL,
            quantity=5,
            signal_type="mean_reversion",
            reduces_position=True,
            status=OrderStatus.REJECTED,
            reason="MAX_ORDERS_PER_MINUTE",
        )
        for n in range(3)
    ]
    with WebhookReceiver() as hook:
        held = {"TRADEOS_ALERT_COALESCE_SECONDS": "600"}
        with _notifier(tmp_path, database_url, hook.url, **held) as first:
            _started(database_url, first)
            with psycopg.connect(database_url) as conn:
                record.execute_many(conn, record.book.insert_orders(rejected, latencies_us={}))
            # Recorded after the rejections, sent at once: once it is delivered, the rejections were read too, and
            # are held for their (long) window.
            _record_action(database_url, "halt", "ops-dan", "barrier")
            eventually(lambda: _delivered(database_url, "halt"), what="the halt delivered")
            first.kill()
        assert _delivered(database_url, "rejection") == []
        with _notifier(tmp_path, database_url, hook.url, TRADEOS_ALERT_COALESCE_SECONDS="0.5"):
            eventually(lambda: len(_delivered(database_url, "rejection")) == 3, what="the held rejections")

    assert [r.title for r in hook.received] == [
        "TRADEOS: Trading halted by ops-dan",
        "TRADEOS: 3 x Order rejected: sell 5 CCC",
    ]
