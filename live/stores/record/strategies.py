"""`strategy_runs`: the strategy every engine start traded, with its parameters and their hash. With the switches
recorded in `control_actions` (action `strategy`), the record says which strategy decided every order."""

from __future__ import annotations

import json
from dataclasses import dataclass

from live.stores.record.statements import Query, Row, Statement, insert_sql

STRATEGY_RUN_COLUMNS = ("id", "started_at", "holder", "spec", "name", "version", "params", "params_hash")
_WRITTEN = STRATEGY_RUN_COLUMNS[2:]


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordedStrategy:
    """A strategy as recorded: name, version, canonical parameters JSON and its sha256."""

    name: str
    version: str
    params_json: str
    params_hash: str


def insert_strategy_run(
    *, holder: str, spec: str, name: str, version: str, params_json: str, params_hash: str
) -> Statement:
    return Statement(
        sql=insert_sql("strategy_runs", _WRITTEN),
        params=(holder, spec, name, version, params_json, params_hash),
    )


def _current(rows: list[Row]) -> RecordedStrategy | None:
    if not rows:
        return None
    name, version, params_json, params_hash, switch = rows[0]
    if switch:
        to = json.loads(switch)["to"]
        return RecordedStrategy(
            name=to["name"],
            version=to["version"],
            params_json=json.dumps(to["params"], sort_keys=True, separators=(",", ":")),
            params_hash=to["params_hash"],
        )
    return RecordedStrategy(name=name, version=version, params_json=params_json, params_hash=params_hash)


def current_strategy() -> Query[RecordedStrategy | None]:
    """The strategy of the last engine start, or of the last switch made since; None before any start."""
    return Query(
        sql="SELECT r.name, r.version, r.params, r.params_hash, c.value"
        " FROM (SELECT * FROM strategy_runs ORDER BY id DESC LIMIT 1) AS r"
        " LEFT JOIN LATERAL (SELECT value FROM control_actions WHERE action = 'strategy'"
        "  AND timestamp >= r.started_at ORDER BY id DESC LIMIT 1) AS c ON true",
        decode=_current,
    )
