"""Alerts, pure: what a message says, when events of a kind are coalesced, the backoff, the dead-man's switch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from live.alerts import events
from live.alerts.channels import channel_name
from live.alerts.events import AlertEvent, compose, message_of, retry_delay
from live.alerts.watchdog import DeadMansSwitch
from live.stores.record.alerts import RejectionEvent
from live.stores.record.decisions import RecordedControlAction
from live.stores.record.events import RecordedRiskEvent

T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def _rejection(n: int, reason: str = "PRICE_BAND") -> AlertEvent:
    return events.rejection_event(
        RejectionEvent(
            id=f"o-{n}",
            recorded_at=T0,
            timestamp=T0 + timedelta(seconds=n),
            symbol="AAA",
            side="buy",
            quantity=10,
            signal_type="momentum",
            reason=reason,
        )
    )


def _halt(row_id: int = 7) -> AlertEvent:
    return events.trading_state_event(
        RecordedControlAction(
            id=row_id,
            timestamp=T0,
            action="halt",
            actor="watchdog",
            reason="silent",
            value="",
            origin="watchdog",
        )
    )


def test_a_storm_of_rejections_inside_the_window_becomes_one_digest_naming_the_count_and_the_reason() -> None:
    storm = [_rejection(n, "MAX_ORDER_NOTIONAL" if n % 10 == 0 else "PRICE_BAND") for n in range(50)]
    seen = {event.key: 100.0 for event in storm}

    assert compose(storm, first_seen=seen, now=104.9, window_seconds=5.0) == []
    (message,) = compose(storm, first_seen=seen, now=105.0, window_seconds=5.0)

    assert len(message.events) == 50
    assert message.title.startswith("TRADEOS: 50 x ")
    assert "50 rejection events" in message.body
    assert "PRICE_BAND x45" in message.body
    assert "MAX_ORDER_NOTIONAL x5" in message.body
    assert "... and 45 more" in message.body


def test_a_halt_is_sent_at_once_and_alone_while_the_rejections_wait_for_their_window() -> None:
    pending = [_rejection(1), _halt(), _rejection(2)]
    seen = {event.key: 100.0 for event in pending}

    (message,) = compose(pending, first_seen=seen, now=100.0, window_seconds=5.0)

    assert message.keys == [("halt", "7")]
    assert message.title == "TRADEOS: Trading halted by watchdog"


def test_a_single_event_is_its_own_message_with_its_own_line() -> None:
    message = message_of([_rejection(3, "KILL_SWITCH_UNREACHABLE")])
    assert message.body.endswith("buy 10 AAA rejected: KILL_SWITCH_UNREACHABLE")


def test_the_message_id_depends_on_its_events_only_so_it_is_the_same_after_a_restart() -> None:
    storm = [_rejection(n) for n in range(3)]
    assert message_of(storm).message_id == message_of(list(reversed(storm))).message_id
    assert message_of(storm).message_id != message_of(storm[:2]).message_id


def test_a_risk_event_that_halts_trading_is_a_breaker_trip_and_urgent() -> None:
    row = RecordedRiskEvent(
        id=3, timestamp=T0, code="MAX_DRAWDOWN", detail="10% down", symbol=None, halts_trading=True
    )
    tripped = events.risk_event(row)
    warned = events.risk_event(row._replace(halts_trading=False))
    assert (tripped.kind, tripped.urgent) == ("breaker_trip", True)
    assert (warned.kind, warned.urgent) == ("risk_event", False)


def test_retries_back_off_exponentially_up_to_a_ceiling() -> None:
    assert [retry_delay(attempts=n, base_seconds=1.0) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]


def test_a_channel_is_named_by_its_scheme_and_a_hash_never_its_token() -> None:
    name = channel_name("tgram://123456:SECRET-BOT-TOKEN/987654")
    assert name.startswith("tgram:")
    assert "SECRET" not in name
    assert "123456" not in name
    assert name == channel_name("tgram://123456:SECRET-BOT-TOKEN/987654")


def test_the_dead_mans_switch_fires_once_on_a_stale_heartbeat_and_re_arms_on_a_fresh_one() -> None:
    switch = DeadMansSwitch(timeout_seconds=10.0)
    never_seen_alive = [switch.observe(age) for age in (None, 30.0)]
    assert never_seen_alive == [False, False]  # nothing to watch yet
    assert switch.observe(0.4) is False
    assert switch.observe(10.0) is False
    assert switch.observe(10.1) is True
    assert [switch.observe(age) for age in (12.0, None, 60.0)] == [False, False, False]  # fired once only
    assert switch.observe(0.2) is False  # the engine came back
    assert switch.observe(None) is True  # and went silent again (its key expired)


def test_the_dead_mans_switch_takes_no_heartbeat_for_a_dead_engine_while_redis_itself_was_unreachable() -> (
    None
):
    switch = DeadMansSwitch(timeout_seconds=10.0)
    assert switch.observe(1.0) is False
    assert (
        switch.observe(25.0, watched_for=0.3) is False
    )  # Redis just came back: the engine had no way to beat
    assert switch.observe(25.0, watched_for=9.9) is False
    assert switch.observe(35.0, watched_for=10.2) is True
