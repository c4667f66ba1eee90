"""`control_actions`: what operators and breakers decided, in order. The last halt, resume or reduce is the trading
state in force after a restart, the last profile switch the profile; switches are made one at a time under a lock.

A profile switch (`profile`) and a saved custom profile version (`profile_update`) carry as `value` the JSON
`{"content_hash", "name", "version"}` of the profile; switches recorded before profiles had versions carry the
built-in's bare name, and still read."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from live.domain import ControlAction, TradingState
from live.stores.record.statements import (
    Batch,
    Query,
    Row,
    Statement,
    column_list,
    insert_sql,
    optional_str,
    rows_of,
)

CONTROL_ACTION_COLUMNS = ("id", "timestamp", "action", "actor", "reason", "value", "origin")
_CONTROL_ACTION_WRITTEN = CONTROL_ACTION_COLUMNS[1:]

# pg_advisory_lock key serialising profile switches across API processes (any constant unique in the database).
PROFILE_LOCK = 0x54524144454F_5066

_STATE_OF_ACTION = {
    "halt": TradingState.HALTED,
    "resume": TradingState.ACTIVE,
    "reduce": TradingState.REDUCE_ONLY,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordedTradingState:
    """The trading state the last halt, resume or reduce on record put in force: who, why, since when."""

    state: TradingState
    actor: str
    reason: str
    since: datetime


def control_action_params(action: ControlAction) -> Row:
    return (action.timestamp, action.action, action.actor, action.reason, action.value, action.origin)


def _row_id(rows: list[Row]) -> int:
    return int(rows[0][0])


def insert_control_action(action: ControlAction) -> Query[int]:
    """The action's row; its id, for its ledger entry (record.audit: writers append one in the same transaction)."""
    return Query(
        sql=insert_sql("control_actions", _CONTROL_ACTION_WRITTEN, " RETURNING id"),
        params=control_action_params(action),
        decode=_row_id,
    )


def insert_control_actions(actions: Iterable[ControlAction]) -> Batch:
    """The actions' rows, each returning its id (`fetch_many`), for their ledger entries."""
    return Batch(
        sql=insert_sql("control_actions", _CONTROL_ACTION_WRITTEN, " RETURNING id"),
        rows=[control_action_params(a) for a in actions],
    )


def _trading_state(rows: list[Row]) -> RecordedTradingState | None:
    if not rows:
        return None
    action, actor, reason, since = rows[0]
    return RecordedTradingState(state=_STATE_OF_ACTION[action], actor=actor, reason=reason, since=since)


def recorded_trading_state() -> Query[RecordedTradingState | None]:
    """The state the last halt/resume/reduce on record put in force; None before any."""
    return Query(
        sql="SELECT action, actor, reason, timestamp FROM control_actions"
        " WHERE action IN ('halt', 'resume', 'reduce') ORDER BY id DESC LIMIT 1",
        decode=_trading_state,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordedProfile:
    """A profile as a control action names it. `version` and `content_hash` are None in a switch recorded before
    profiles had versions (a built-in, by name)."""

    name: str
    version: int | None = None
    content_hash: str | None = None


def profile_value(*, name: str, version: int, content_hash: str) -> str:
    """The `value` of a `profile` or `profile_update` control action."""
    return json.dumps(
        {"name": name, "version": version, "content_hash": content_hash},
        sort_keys=True,
        separators=(",", ":"),
    )


def read_profile_value(value: str) -> RecordedProfile:
    """The profile a `profile` or `profile_update` action's value names (either form)."""
    if not value.startswith("{"):
        return RecordedProfile(name=value)
    named = json.loads(value)
    return RecordedProfile(name=named["name"], version=named["version"], content_hash=named["content_hash"])


def _recorded_profile(rows: list[Row]) -> RecordedProfile | None:
    value = optional_str(rows)
    return None if value is None else read_profile_value(value)


def recorded_profile() -> Query[RecordedProfile | None]:
    """The profile of the last switch on record (what the engine restores at start-up); None before any."""
    return Query(
        sql="SELECT value FROM control_actions WHERE action = 'profile' ORDER BY id DESC LIMIT 1",
        decode=_recorded_profile,
    )


def take_profile_lock() -> Statement:
    """Waits for, then holds for the session, the lock that makes profile switches one at a time."""
    return Statement(sql="SELECT pg_advisory_lock(%s)", params=(PROFILE_LOCK,))


def release_profile_lock() -> Statement:
    return Statement(sql="SELECT pg_advisory_unlock(%s)", params=(PROFILE_LOCK,))


class RecordedControlAction(NamedTuple):
    id: int
    timestamp: datetime
    action: str
    actor: str
    reason: str
    value: str
    origin: str


_control_actions = rows_of(RecordedControlAction._make)


def recent_control_actions(*, limit: int) -> Query[list[RecordedControlAction]]:
    """Operator and breaker decisions, newest first."""
    return Query(
        sql=f"SELECT {column_list(CONTROL_ACTION_COLUMNS)} FROM control_actions ORDER BY id DESC LIMIT %(limit)s",
        params={"limit": limit},
        decode=_control_actions,
    )


def _action_tally(rows: list[Row]) -> dict[str, int]:
    return {action: int(count) for action, count in rows}


def control_action_tally() -> Query[dict[str, int]]:
    """Control actions on record counted by action (halt, resume, reduce, flatten, profile), by anyone."""
    return Query(sql="SELECT action, count(*) FROM control_actions GROUP BY 1", decode=_action_tally)
