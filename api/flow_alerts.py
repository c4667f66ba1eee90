"""Failed and late flow runs for the notifier (live/alerts/notifier.py `EventSource`), as Prefect recorded them.

Prefect is the record of flow runs (api/flow_runs.py): its REST API is asked for the runs that ended FAILED or
CRASHED, and for those Prefect marked `Late` (scheduled, not started on time), since the kind's cursor, with an
overlap of `OVERLAP` (the delivery table drops what was already sent). The server is the operator's
PREFECT_API_URL if set, else the one `tradeos up` runs for this TRADEOS_HOME; no server: nothing to read yet.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg

from live.alerts import events as alert_events
from live.alerts.notifier import ReadEvent
from live.settings import Settings
from live.stores.record.alerts import Cursor

log = logging.getLogger("tradeos.alerts")

OVERLAP = timedelta(minutes=10)
READ_EVERY_SECONDS = 5.0  # Prefect is asked at most this often (the notifier passes every 0.5 s)
SERVER_LOOKUP_SECONDS = 30.0
QUERY_TIMEOUT_SECONDS = 3.0
READ_LIMIT = 100
_FAILED_STATES = ["FAILED", "CRASHED"]


class FlowRunSource:
    """The kinds `flow_failed` (cursor: end time) and `flow_late` (cursor: expected start time)."""

    cursor_kinds = (alert_events.FLOW_FAILED, alert_events.FLOW_LATE)

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._unreachable_said = False
        self._read_at = float("-inf")
        self._server: tuple[str, str | None] | None = None
        self._looked_up_at = float("-inf")

    def start(self, conn: psycopg.Connection[Any]) -> dict[str, str]:
        now = datetime.now(UTC).isoformat()
        return dict.fromkeys(self.cursor_kinds, now)

    def read(self, conn: psycopg.Connection[Any], cursors: Mapping[str, Cursor]) -> list[ReadEvent]:
        """Nothing between two reads READ_EVERY_SECONDS apart: the kinds' cursors then stay where they are."""
        now = time.monotonic()
        if now - self._read_at < READ_EVERY_SECONDS:
            return []
        self._read_at = now
        address = self._address()
        if address is None:
            return []
        api_url, auth = address
        user, _, password = (auth or "").partition(":")
        try:
            with httpx.Client(
                base_url=api_url.rstrip("/"),
                auth=(user, password) if auth else None,
                timeout=QUERY_TIMEOUT_SECONDS,
            ) as client:
                failed = self._runs(
                    client,
                    cursors[alert_events.FLOW_FAILED],
                    state={"type": {"any_": _FAILED_STATES}},
                    time_field="end_time",
                )
                late = self._runs(
                    client,
                    cursors[alert_events.FLOW_LATE],
                    state={"name": {"any_": ["Late"]}},
                    time_field="expected_start_time",
                )
                names = self._flow_names(client, {run["flow_id"] for run in failed + late})
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            self._looked_up_at = float("-inf")  # the server may have moved: look it up again next time
            if not self._unreachable_said:
                log.warning(
                    "alerts: the Prefect server did not answer (%s); flow alerts wait", type(exc).__name__
                )
                self._unreachable_said = True
            return []
        self._unreachable_said = False
        return [
            *_chain(failed, alert_events.FLOW_FAILED, "end_time", names, cursors),
            *_chain(late, alert_events.FLOW_LATE, "expected_start_time", names, cursors),
        ]

    def _address(self) -> tuple[str, str | None] | None:
        operator_api = self._settings.flows.prefect_api_url
        if operator_api:
            # Prefect's own variable, read as Prefect reads it (api/flow_runs.py does the same).
            return operator_api, os.environ.get("PREFECT_API_AUTH_STRING") or None
        now = time.monotonic()
        if now - self._looked_up_at > SERVER_LOOKUP_SECONDS:
            from flows import prefect_auth_string
            from flows.serve import running_prefect_server

            self._looked_up_at = now
            server = running_prefect_server(self._settings)
            # Only once our server is known to run do its credentials exist: never create them from here.
            self._server = (
                (server.api_url, prefect_auth_string(self._settings).get_secret_value()) if server else None
            )
        return self._server

    @staticmethod
    def _runs(
        client: httpx.Client, cursor: Cursor, *, state: dict[str, Any], time_field: str
    ) -> list[dict[str, Any]]:
        since = max(datetime.fromisoformat(cursor.position) - OVERLAP, datetime.fromisoformat(cursor.floor))
        response = client.post(
            "/flow_runs/filter",
            json={
                "flow_runs": {"state": state, time_field: {"after_": since.isoformat()}},
                "sort": "END_TIME_DESC" if time_field == "end_time" else "EXPECTED_START_TIME_DESC",
                "limit": READ_LIMIT,
            },
        )
        response.raise_for_status()
        runs: list[dict[str, Any]] = response.json()
        return sorted((run for run in runs if run.get(time_field)), key=lambda run: run[time_field])

    @staticmethod
    def _flow_names(client: httpx.Client, flow_ids: set[str]) -> dict[str, str]:
        if not flow_ids:
            return {}
        response = client.post("/flows/filter", json={"flows": {"id": {"any_": sorted(flow_ids)}}})
        response.raise_for_status()
        return {flow["id"]: flow["name"] for flow in response.json()}


def _chain(
    runs: list[dict[str, Any]],
    kind: str,
    time_field: str,
    names: Mapping[str, str],
    cursors: Mapping[str, Cursor],
) -> list[ReadEvent]:
    read, before = [], cursors[kind].position
    for run in runs:
        at = datetime.fromisoformat(run[time_field]).astimezone(UTC)
        state = run.get("state") or {}
        event = alert_events.flow_event(
            kind=kind,
            run_id=str(run["id"]),
            flow=f"{names.get(run['flow_id'], 'flow')}/{run.get('name', '')}",
            state=str(state.get("name") or run.get("state_name") or ""),
            at=at,
            detail=str(state.get("message") or ""),
        )
        read.append(ReadEvent(event=event, position=at.isoformat(), before=before))
        before = at.isoformat()
    return read
