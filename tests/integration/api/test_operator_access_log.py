"""The access log (`api_requests`, the source of /metrics/system's API latency) over a real uvicorn and PostgreSQL:
whatever a client puts in a path, and whatever row PostgreSQL refuses, the other requests are still recorded, and
stopping the server writes what is buffered without failing the shutdown."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import psycopg
import pytest
from operator_api_support import ServerThread, eventually

from api.access_log import AccessLogRecorder
from live.settings import Settings

POISON = "/refused-by-postgres"


def _recorded(pg: psycopg.Connection) -> list[tuple[str, int]]:
    return [
        (path, status) for path, status in pg.execute("SELECT path, status FROM api_requests ORDER BY id")
    ]


def _recorder(api: ServerThread) -> AccessLogRecorder:
    app: Any = api.server.config.app
    recorder: AccessLogRecorder = app.state.access_log
    return recorder


def _refuse_the_poison_path(pg: psycopg.Connection) -> None:
    # A row PostgreSQL itself refuses (a CHECK violation), standing for whatever a future row may hold that it will
    # not take: the access log must isolate it, whatever the reason.
    pg.execute(f"ALTER TABLE api_requests ADD CONSTRAINT refuses_poison CHECK (path <> '{POISON}')")


async def test_a_nul_in_a_path_does_not_blind_the_access_log(
    api: ServerThread, client: httpx.AsyncClient, pg: psycopg.Connection
) -> None:
    async with httpx.AsyncClient(base_url=api.base_url, timeout=15) as anonymous:
        assert (await anonymous.get("/portfolio%00")).status_code == 404
        assert (await anonymous.get("/portfolio%0d%0aGET%20/forged%20200")).status_code == 404

    assert (await client.get("/trading/status")).status_code == 200

    recorded = await eventually(lambda: ("/trading/status", 200) in (rows := _recorded(pg)) and rows)
    assert ("/portfolio\\x00", 404) in recorded
    assert ("/portfolio\\x0d\\x0aGET /forged 200", 404) in recorded
    assert _recorder(api).rows_refused == 0


async def test_a_huge_path_is_recorded_cut_short(
    api: ServerThread, client: httpx.AsyncClient, pg: psycopg.Connection
) -> None:
    assert (await client.get("/" + "A" * 6000)).status_code == 404

    (path,) = await eventually(lambda: [p for p, _ in _recorded(pg) if p.startswith("/AAA")])
    assert len(path) == 512
    assert path.endswith("…")


async def test_a_row_postgresql_refuses_is_dropped_and_counted_and_the_others_are_recorded(
    api: ServerThread, client: httpx.AsyncClient, pg: psycopg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    _refuse_the_poison_path(pg)

    for path in ("/healthz", POISON, "/trading/status", POISON, "/portfolio"):
        await client.get(path)

    await eventually(lambda: ("/portfolio", 200) in _recorded(pg))
    await client.get("/positions")  # and the log keeps going after it
    await eventually(lambda: ("/positions", 200) in _recorded(pg))
    assert [path for path, _ in _recorded(pg)] == ["/healthz", "/trading/status", "/portfolio", "/positions"]
    assert _recorder(api).rows_refused == 2
    refusals = [r for r in caplog.records if "refused the record" in r.getMessage()]
    assert len(refusals) == 2


async def test_stopping_the_server_writes_the_buffered_records_and_does_not_fail_on_a_refused_one(
    api_settings: Settings, token: str, pg: psycopg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    _refuse_the_poison_path(pg)
    # No periodic flush while the test runs: everything waits for the final one, at shutdown.
    with ServerThread(api_settings, access_log_flush_interval=3600) as api:
        async with httpx.AsyncClient(
            base_url=api.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=15
        ) as client:
            for path in ("/healthz", POISON, "/portfolio%00", "/trading/status"):
                await client.get(path)
        assert _recorded(pg) == []
        recorder = _recorder(api)

    assert [path for path, _ in _recorded(pg)] == ["/healthz", "/portfolio\\x00", "/trading/status"]
    assert recorder.rows_refused == 1
    failures = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert failures == []
