"""The control protocol between the operator API and the engine, in one place: both processes use these types.

- Commands (`Halt`, `Resume`, `Reduce`, `Flatten`, `SetProfile`, `SetStrategy`), published on
  `tradeos:<db>:control` as `{"id", "command", "actor", "reason", "value"}`; the engine dispatches on the command's
  type. A strategy switch's `value` is the JSON text `{"strategy": NAME_OR_SPEC, "params": {...}}`; a profile
  switch's is the built-in's name, or for a custom profile the JSON text `{"profile": NAME, "version": N,
  "body": {...}, "content_hash": SHA256}` of the stored version (the engine reads no PostgreSQL to apply it).
- `CommandAck`, the engine's answer, pushed to `tradeos:control_ack:<id>`: `{"id", "ok", "detail", "state",
  "profile", "profile_hash", "orders", "strategy"}`.
- `TradingStateRecord`, the JSON in `tradeos:trading_state`: `{"state", "since", "reason", "actor"}`.
- The kill-switch verdict on the value of `tradeos:kill_switch`: set unless the key is absent or holds `0`.

Each has one encoder and one strict decoder: a message with an unknown field, a missing required field or a value of
the wrong type raises `ControlMessageError` (a `ValueError`), never a `KeyError` further down.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from live.domain import TradingState, iso_utc, require_utc

KILL_SWITCH_ON = (
    "1"  # what the API and the engine write; any value but "0" reads as set (`kill_switch_is_set`)
)
DEFAULT_ACTOR = "api"  # a command that names nobody came from the API


class ControlMessageError(ValueError):
    """A control message that does not decode. `command_id` is set when the id itself could be read, so the engine
    can still answer the sender (with a refusal) instead of letting it wait for the timeout."""

    def __init__(self, detail: str, *, command_id: str | None = None) -> None:
        super().__init__(detail)
        self.command_id = command_id


@dataclass(frozen=True, slots=True, kw_only=True)
class _Command:
    """What every command carries: its id (the ack's key), who sent it and why."""

    command_id: str
    actor: str
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Halt(_Command):
    """No order at all until an explicit resume (the closing orders of a flatten excepted)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Resume(_Command):
    """The only way out of a halt or reduce-only."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Reduce(_Command):
    """Reduce-only: exits still managed, no new exposure."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Flatten(_Command):
    """Close every open position at market, also while halted; the trading state stays as it is."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SetProfile(_Command):
    """Trade under another risk profile from the next decision on: a built-in by name, or a stored version of a
    custom profile, carried whole (`body_json`, canonical) with its version and content hash, which the engine
    validates and checks before trading under it."""

    profile: str
    version: int | None = None
    body_json: str = ""
    content_hash: str = ""

    @property
    def is_custom(self) -> bool:
        return bool(self.body_json)


@dataclass(frozen=True, slots=True, kw_only=True)
class SetStrategy(_Command):
    """Trade another strategy from the next bar on: one the engine was allowed at start-up (its registered names
    and the spec `tradeos up` was given), named by its name or spec, with `params` (JSON object text) validated
    against its parameter model. The engine applies it only while halted with a flat book, and records it."""

    strategy: str
    params_json: str = "{}"


Command = Halt | Resume | Reduce | Flatten | SetProfile | SetStrategy

_NAME_OF: dict[type[Command], str] = {
    Halt: "halt",
    Resume: "resume",
    Reduce: "reduce",
    Flatten: "flatten",
    SetProfile: "profile",
    SetStrategy: "strategy",
}
_STATE_COMMANDS: dict[str, type[Halt | Resume | Reduce | Flatten]] = {
    "halt": Halt,
    "resume": Resume,
    "reduce": Reduce,
    "flatten": Flatten,
}
_COMMAND_FIELDS = frozenset({"id", "command", "actor", "reason", "value"})


def command_name(command: Command) -> str:
    """The command's name on the wire and in `control_actions.action`."""
    return _NAME_OF[type(command)]


def encode_command(command: Command) -> str:
    value = ""
    if isinstance(command, SetProfile):
        value = command.profile
        if command.is_custom:
            value = json.dumps(
                {
                    "profile": command.profile,
                    "version": command.version,
                    "body": json.loads(command.body_json),
                    "content_hash": command.content_hash,
                }
            )
    elif isinstance(command, SetStrategy):
        value = json.dumps({"strategy": command.strategy, "params": json.loads(command.params_json)})
    return json.dumps(
        {
            "id": command.command_id,
            "command": command_name(command),
            "actor": command.actor,
            "reason": command.reason,
            "value": value,
        }
    )


def decode_command(raw: bytes | str) -> Command:
    """The command in a control message. `actor` defaults to the API, `reason` and (but for a profile) `value` to
    empty; a `value` on any other command is refused, as is an unknown command (with its id, so it is answered)."""
    message = _object(raw, what="control message", allowed=_COMMAND_FIELDS)
    command_id = _text(message, "id", required=True)
    try:
        name = _text(message, "command", required=True)
        actor = _text(message, "actor") or DEFAULT_ACTOR
        reason = _text(message, "reason")
        value = _text(message, "value")
        if name == "profile":
            if not value:
                raise ControlMessageError("a profile command needs a value (the profile's name)")
            if value.startswith("{"):
                return _custom_profile(value, command_id=command_id, actor=actor, reason=reason)
            return SetProfile(command_id=command_id, actor=actor, reason=reason, profile=value)
        if name == "strategy":
            strategy, params_json = _strategy_value(value)
            return SetStrategy(
                command_id=command_id, actor=actor, reason=reason, strategy=strategy, params_json=params_json
            )
        variant = _STATE_COMMANDS.get(name)
        if variant is None:
            raise ControlMessageError(f"unknown command {name!r}")
        if value:
            raise ControlMessageError(f"a {name} command carries no value (got {value!r})")
        return variant(command_id=command_id, actor=actor, reason=reason)
    except ControlMessageError as exc:
        raise ControlMessageError(str(exc), command_id=command_id) from None


_CUSTOM_PROFILE_FIELDS = frozenset({"profile", "version", "body", "content_hash"})


def _custom_profile(value: str, *, command_id: str, actor: str, reason: str) -> SetProfile:
    """A switch to a stored custom profile's version, carried whole (its body is validated by the engine)."""
    message = _object(value, what="a profile command's value", allowed=_CUSTOM_PROFILE_FIELDS)
    missing = sorted(_CUSTOM_PROFILE_FIELDS - set(message))
    if missing:
        raise ControlMessageError(f"a custom profile command's value lacks {missing}")
    version, body = message["version"], message["body"]
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ControlMessageError(f"a custom profile's version must be a positive integer, not {version!r}")
    if not isinstance(body, dict):
        raise ControlMessageError(f"a custom profile's body must be a JSON object, not {body!r}")
    return SetProfile(
        command_id=command_id,
        actor=actor,
        reason=reason,
        profile=_text(message, "profile", required=True),
        version=version,
        body_json=json.dumps(body, sort_keys=True, separators=(",", ":")),
        content_hash=_text(message, "content_hash", required=True),
    )


def _strategy_value(value: str) -> tuple[str, str]:
    """(name or spec, canonical params JSON) of a strategy command's value."""
    message = _object(value, what="a strategy command's value", allowed=frozenset({"strategy", "params"}))
    strategy = _text(message, "strategy", required=True)
    params = message.get("params", {})
    if not isinstance(params, dict):
        raise ControlMessageError(f"a strategy command's params must be a JSON object, not {params!r}")
    return strategy, json.dumps(params, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandAck:
    """The engine's answer to one command: applied or refused (and why), and what is in force after it."""

    command_id: str
    applied: bool
    detail: str = ""
    state: TradingState | None = None
    profile: str | None = None
    profile_hash: str | None = None  # content hash of the profile in force
    orders: tuple[str, ...] = ()  # the closing orders a flatten submitted
    # The strategy traded (`live.wire.StrategyStatus` fields), when the engine knows what it was built from.
    strategy: Mapping[str, Any] | None = None


_ACK_FIELDS = frozenset({"id", "ok", "detail", "state", "profile", "profile_hash", "orders", "strategy"})


def encode_ack(ack: CommandAck) -> str:
    return json.dumps(
        {
            "id": ack.command_id,
            "ok": ack.applied,
            "detail": ack.detail,
            "state": None if ack.state is None else ack.state.value,
            "profile": ack.profile,
            "profile_hash": ack.profile_hash,
            "orders": list(ack.orders),
            "strategy": None if ack.strategy is None else dict(ack.strategy),
        }
    )


def decode_ack(raw: bytes | str, *, command_id: str) -> CommandAck:
    """The answer read from `command_id`'s ack key; only `ok` is required (an `id`, if present, must match)."""
    message = _object(raw, what="command acknowledgement", allowed=_ACK_FIELDS)
    if "id" in message and _text(message, "id") != command_id:
        raise ControlMessageError(f"an acknowledgement of {message['id']!r} under the key of {command_id!r}")
    applied = message.get("ok")
    if not isinstance(applied, bool):
        raise ControlMessageError(f"acknowledgement field 'ok' must be a boolean, not {applied!r}")
    state = message.get("state")
    profile = message.get("profile")
    orders = message.get("orders", [])
    profile_hash = message.get("profile_hash")
    for name, text in (("profile", profile), ("profile_hash", profile_hash)):
        if text is not None and not isinstance(text, str):
            raise ControlMessageError(
                f"acknowledgement field {name!r} must be a string or null, not {text!r}"
            )
    if not isinstance(orders, list) or not all(isinstance(o, str) for o in orders):
        raise ControlMessageError(f"acknowledgement field 'orders' must be a list of strings, not {orders!r}")
    strategy = message.get("strategy")
    if strategy is not None and not isinstance(strategy, dict):
        raise ControlMessageError(
            f"acknowledgement field 'strategy' must be an object or null, not {strategy!r}"
        )
    return CommandAck(
        command_id=command_id,
        applied=applied,
        detail=_text(message, "detail"),
        state=None if state is None else _state(state),
        profile=profile,
        profile_hash=profile_hash,
        orders=tuple(orders),
        strategy=strategy,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class TradingStateRecord:
    """The trading state in force as posted in Redis (by the API for an operator, by the engine otherwise)."""

    state: TradingState
    since: datetime | None
    reason: str = ""
    actor: str = ""

    def __post_init__(self) -> None:
        if self.since is not None:
            object.__setattr__(self, "since", require_utc(self.since))


_STATE_FIELDS = frozenset({"state", "since", "reason", "actor"})


def encode_trading_state(record: TradingStateRecord) -> str:
    return json.dumps(
        {
            "state": record.state.value,
            "since": iso_utc(record.since),
            "reason": record.reason,
            "actor": record.actor,
        }
    )


def decode_trading_state(raw: bytes | str) -> TradingStateRecord:
    message = _object(raw, what="trading state", allowed=_STATE_FIELDS)
    if "state" not in message:
        raise ControlMessageError("trading state without a 'state'")
    since = message.get("since")
    if since is not None and not isinstance(since, str):
        raise ControlMessageError(f"trading state field 'since' must be an ISO 8601 string, not {since!r}")
    try:
        when = None if since is None else require_utc(datetime.fromisoformat(since))
    except ValueError as exc:
        raise ControlMessageError(f"trading state field 'since': {exc}") from None
    return TradingStateRecord(
        state=_state(message["state"]),
        since=when,
        reason=_text(message, "reason"),
        actor=_text(message, "actor"),
    )


def kill_switch_is_set(raw: bytes | str | None) -> bool:
    """The one reading of `tradeos:kill_switch`, for the engine and the API alike: set unless the key is absent or
    holds `0`. Any other value (`1`, `true`, a typo) is set: a kill switch fails closed. Clearing it does not
    resume trading; only an explicit resume does."""
    if raw is None:
        return False
    value = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
    return value.strip() != "0"


def _object(raw: bytes | str, *, what: str, allowed: frozenset[str]) -> Mapping[str, Any]:
    try:
        message = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ControlMessageError(f"{what} is not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise ControlMessageError(f"{what} is not a JSON object")
    unknown = sorted(set(message) - allowed)
    if unknown:
        raise ControlMessageError(f"{what} has unknown fields {unknown}")
    return message


def _text(message: Mapping[str, Any], field: str, *, required: bool = False) -> str:
    if field not in message:
        if required:
            raise ControlMessageError(f"missing field {field!r}")
        return ""
    value = message[field]
    if not isinstance(value, str):
        raise ControlMessageError(f"field {field!r} must be a string, not {value!r}")
    if required and not value:
        raise ControlMessageError(f"field {field!r} is empty")
    return value


def _state(value: object) -> TradingState:
    if not isinstance(value, str):
        raise ControlMessageError(f"trading state must be a string, not {value!r}")
    try:
        return TradingState(value)
    except ValueError:
        raise ControlMessageError(f"unknown trading state {value!r}") from None
