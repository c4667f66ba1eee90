"""The control protocol (live/control.py): each message round-trips through its one codec, decoding is strict (an
unknown field or a wrong type is a `ControlMessageError`, never a `KeyError`), the kill switch has one reading, and
the engine dispatches on the command's type."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from live.assembly import build_engine
from live.control import (
    CommandAck,
    ControlMessageError,
    Flatten,
    Halt,
    Reduce,
    Resume,
    SetProfile,
    TradingStateRecord,
    decode_ack,
    decode_command,
    decode_trading_state,
    encode_ack,
    encode_command,
    encode_trading_state,
    kill_switch_is_set,
)
from live.domain import TradingState
from live.engine import Engine
from live.profiles import get_profile
from live.risk.kill_switch import KILL_SWITCH_ACTOR, kill_switch_halt
from live.settings import Settings

AT = datetime(2026, 3, 2, 14, 30, 0, 125000, tzinfo=UTC)

COMMANDS = [
    Halt(command_id="c-1", actor="api", reason="news pending"),
    Resume(command_id="c-2", actor="cli:ann", reason=""),
    Reduce(command_id="c-3", actor="api", reason="lunch"),
    Flatten(command_id="c-4", actor="api", reason="end of day"),
    SetProfile(command_id="c-5", actor="api", reason="calmer", profile="conservative"),
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: type(c).__name__)
def test_every_command_survives_its_codec(command: object) -> None:
    assert decode_command(encode_command(command)) == command  # type: ignore[arg-type]


def test_a_command_is_the_message_both_sides_have_always_exchanged() -> None:
    assert json.loads(encode_command(COMMANDS[4])) == {
        "id": "c-5",
        "command": "profile",
        "actor": "api",
        "reason": "calmer",
        "value": "conservative",
    }
    # As the fault tests' desk and a hand-written resume send it: no value, or an empty one.
    assert decode_command(b'{"id": "t", "command": "resume", "actor": "test", "reason": "done"}') == Resume(
        command_id="t", actor="test", reason="done"
    )
    assert decode_command('{"id": "t", "command": "halt", "value": ""}') == Halt(
        command_id="t", actor="api", reason=""
    )


@pytest.mark.parametrize(
    ("raw", "answerable"),
    [
        ("not json", False),
        ("[1, 2]", False),
        ('{"command": "halt"}', False),  # no id
        ('{"id": 7, "command": "halt"}', False),  # id of the wrong type
        ('{"id": "x", "command": "halt", "urgent": true}', False),  # unknown field
        ('{"id": "x"}', True),  # no command
        ('{"id": "x", "command": "panic"}', True),  # unknown command
        ('{"id": "x", "command": "halt", "actor": null}', True),  # wrong type
        ('{"id": "x", "command": "halt", "reason": 3}', True),
        ('{"id": "x", "command": "halt", "value": "aggressive"}', True),  # a value only a profile carries
        ('{"id": "x", "command": "profile"}', True),  # a profile without its name
        ('{"id": "x", "command": "profile", "value": ["balanced"]}', True),
    ],
)
def test_a_malformed_command_is_refused_with_its_id_when_it_has_one(raw: str, answerable: bool) -> None:
    with pytest.raises(ControlMessageError) as refused:
        decode_command(raw)
    assert (refused.value.command_id == "x") is answerable


@pytest.mark.parametrize(
    "ack",
    [
        CommandAck(command_id="c-1", applied=True, state=TradingState.HALTED, profile="balanced"),
        CommandAck(
            command_id="c-4",
            applied=True,
            state=TradingState.ACTIVE,
            profile="balanced",
            orders=("20260302T143000-AAPL-flatten",),
        ),
        CommandAck(
            command_id="c-5",
            applied=False,
            detail="unknown profile 'x'",
            state=TradingState.ACTIVE,
            profile="balanced",
        ),
    ],
)
def test_every_acknowledgement_survives_its_codec(ack: CommandAck) -> None:
    assert decode_ack(encode_ack(ack), command_id=ack.command_id) == ack


def test_an_acknowledgement_needs_only_ok_and_is_refused_when_malformed() -> None:
    assert decode_ack(b'{"ok": false, "detail": "stand-in refuses"}', command_id="c") == CommandAck(
        command_id="c", applied=False, detail="stand-in refuses"
    )
    for raw in (
        '{"ok": "yes"}',
        '{"detail": "no ok"}',
        '{"ok": true, "state": "paused"}',
        '{"ok": true, "orders": "o-1"}',
        '{"ok": true, "extra": 1}',
        '{"ok": true, "id": "another command"}',
        "null",
    ):
        with pytest.raises(ControlMessageError):
            decode_ack(raw, command_id="c")


def test_the_trading_state_record_survives_its_codec_in_utc() -> None:
    record = TradingStateRecord(state=TradingState.REDUCE_ONLY, since=AT, reason="lunch", actor="api")
    assert json.loads(encode_trading_state(record)) == {
        "state": "reduce_only",
        "since": "2026-03-02T14:30:00.125000Z",
        "reason": "lunch",
        "actor": "api",
    }
    assert decode_trading_state(encode_trading_state(record)) == record
    never = TradingStateRecord(state=TradingState.ACTIVE, since=None, actor="startup")
    assert decode_trading_state(encode_trading_state(never)) == never
    elsewhere = TradingStateRecord(
        state=TradingState.HALTED, since=AT.astimezone(timezone(timedelta(hours=2))), actor="api"
    )
    assert elsewhere.since == AT
    assert elsewhere.since.tzinfo is UTC


@pytest.mark.parametrize(
    "raw",
    [
        '{"since": null}',
        '{"state": "paused"}',
        '{"state": 1}',
        '{"state": "halted", "since": "2026-03-02T14:30:00"}',  # naive
        '{"state": "halted", "since": "yesterday"}',
        '{"state": "halted", "since": 5}',
        '{"state": "halted", "actor": null}',
        '{"state": "halted", "profile": "balanced"}',
    ],
)
def test_a_malformed_trading_state_is_refused(raw: str) -> None:
    with pytest.raises(ControlMessageError):
        decode_trading_state(raw)


@pytest.mark.parametrize(
    ("raw", "is_set"),
    [
        (None, False),
        (b"0", False),
        ("0", False),
        (b"1", True),
        ("1", True),
        (b"true", True),
        (b"", True),  # anything but absent or 0 fails closed
        (b"yes", True),
        (b"\xff", True),
    ],
)
def test_the_kill_switch_is_set_unless_absent_or_zero(raw: bytes | str | None, is_set: bool) -> None:
    assert kill_switch_is_set(raw) is is_set


def test_a_kill_switch_halt_belongs_to_the_operator_who_posted_it_else_to_the_switch() -> None:
    by_operator = TradingStateRecord(state=TradingState.HALTED, since=AT, reason="news", actor="cli:ann")
    assert kill_switch_halt(by_operator).actor == "cli:ann"
    assert kill_switch_halt(by_operator).recorded
    for posted in (
        None,
        TradingStateRecord(state=TradingState.ACTIVE, since=AT, actor="api"),
        TradingStateRecord(state=TradingState.HALTED, since=AT, actor=KILL_SWITCH_ACTOR),
        TradingStateRecord(state=TradingState.HALTED, since=AT, actor=""),
    ):
        halt = kill_switch_halt(posted)
        assert (halt.actor, halt.recorded) == (KILL_SWITCH_ACTOR, False)


def _engine() -> Engine:
    settings = Settings(commission_bps=Decimal("1"), slippage_bps=Decimal("2"))
    return build_engine(
        settings.engine,
        symbols=("AAPL",),
        profile=get_profile("balanced"),
        initial_cash=Decimal("100000"),
        wall_clock=lambda: AT,
    )


def test_the_engine_applies_each_command_by_its_type_without_recording_it_again() -> None:
    engine = _engine()
    ack = engine.apply(Halt(command_id="c-1", actor="cli:ann", reason="news"))
    assert ack == CommandAck(
        command_id="c-1",
        applied=True,
        state=TradingState.HALTED,
        profile="balanced",
        profile_hash=get_profile("balanced").content_hash,
    )
    assert (engine.state_actor, engine.state_reason, engine.state_since) == ("cli:ann", "news", AT)
    assert engine.apply(Reduce(command_id="c-2", actor="api")).state is TradingState.REDUCE_ONLY
    assert engine.apply(Resume(command_id="c-3", actor="api")).state is TradingState.ACTIVE
    assert engine.apply(Flatten(command_id="c-4", actor="api")).orders == ()
    assert (
        engine.apply(SetProfile(command_id="c-5", actor="api", profile="aggressive")).profile == "aggressive"
    )
    refused = engine.apply(SetProfile(command_id="c-6", actor="api", profile="reckless"))
    assert (refused.applied, refused.profile) == (False, "aggressive")
    assert "reckless" in refused.detail
    assert engine.outbox.control_actions == []  # the API recorded them
