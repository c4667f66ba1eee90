"""When each flow last completed, asked of the Prefect server the flows report to (docs/metrics.md, Prometheus).

Prefect is the record of flow runs: its REST API is asked directly (one small filtered query per flow), so the API
process never imports Prefect. The server is the operator's PREFECT_API_URL if set, else the one `tradeos up`
runs for this TRADEOS_HOME (verified as ours, and looked up again at most every `SERVER_LOOKUP_SECONDS`).
"""

from __future__ import annotations

import asyncio
import os
import time
from datetime import datetime

import httpx

from flows import FLOW_NAMES, prefect_auth_string
from live.settings import Settings

SERVER_LOOKUP_SECONDS = 30.0
QUERY_TIMEOUT_SECONDS = 2.0


class FlowRunsUnavailable(Exception):
    """No Prefect server to ask, or it did not answer."""


class FlowRuns:
    """Reads the end time of each flow's latest COMPLETED run."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._server: tuple[str, str | None] | None = None
        self._looked_up_at = float("-inf")

    async def _address(self) -> tuple[str, str | None]:
        """(API URL, `user:password` or None) of the Prefect server to ask."""
        operator_api = self._settings.flows.prefect_api_url
        if operator_api:
            return operator_api, os.environ.get("PREFECT_API_AUTH_STRING") or None
        now = time.monotonic()
        if self._server is None or now - self._looked_up_at > SERVER_LOOKUP_SECONDS:
            from flows.serve import running_prefect_server

            server = await asyncio.to_thread(running_prefect_server, self._settings)
            self._looked_up_at = now
            # Only once our server is known to run do its credentials exist: never create them from here.
            self._server = (
                (server.api_url, prefect_auth_string(self._settings).get_secret_value()) if server else None
            )
        if self._server is None:
            raise FlowRunsUnavailable("no Prefect server is running for this TRADEOS_HOME")
        return self._server

    async def last_successes(self) -> dict[str, datetime]:
        """Flow name -> end time of its latest completed run; flows that never completed are left out."""
        api_url, auth = await self._address()
        user, _, password = (auth or "").partition(":")
        try:
            async with httpx.AsyncClient(
                base_url=api_url.rstrip("/"),
                auth=(user, password) if auth else None,
                timeout=QUERY_TIMEOUT_SECONDS,
            ) as client:
                answers = await asyncio.gather(*(_last_completed(client, name) for name in FLOW_NAMES))
        except (httpx.HTTPError, ValueError) as exc:
            self._looked_up_at = float("-inf")  # the server may have moved: look it up again next time
            raise FlowRunsUnavailable(f"the Prefect server did not answer: {exc}") from exc
        return {name: ended for name, ended in zip(FLOW_NAMES, answers, strict=True) if ended is not None}


async def _last_completed(client: httpx.AsyncClient, flow_name: str) -> datetime | None:
    response = await client.post(
        "/flow_runs/filter",
        json={
            "flows": {"name": {"any_": [flow_name]}},
            "flow_runs": {"state": {"type": {"any_": ["COMPLETED"]}}},
            "sort": "END_TIME_DESC",
            "limit": 1,
        },
    )
    response.raise_for_status()
    runs = response.json()
    if not runs or not runs[0].get("end_time"):
        return None
    return datetime.fromisoformat(runs[0]["end_time"])
