"""The dead-man's switch and the alerts that outlive the engine: `kill -9` of `tradeos up`, and what follows.

The watchdog and the notifier `tradeos up` started survive it: the watchdog halts trading through the kill switch
once the engine's heartbeat is older than TRADEOS_WATCHDOG_TIMEOUT and records the halt (actor `watchdog`), and
the notifier delivers the alert on that record to a local webhook receiver (the outside world)."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from live.control import decode_trading_state
from live.stores import redis_keys as keys
from tests.faults.conftest import PrivateRedis
from tests.faults.desk import ENGINE_ONLY, ControlDesk, rows
from tests.support import Service, eventually
from tests.webhook import WebhookReceiver

pytestmark = pytest.mark.faults

TIMEOUT = 3.0
# One bar a second: the engine goes round its loop (and beats) without trading yet, so no circuit breaker halts
# trading on its own in the middle of a test about who halts it.
ARGS = [*ENGINE_ONLY, "--speed", "60"]


def _env(database_url: str, redis_url: str, hook_url: str) -> dict[str, str]:
    return {
        "TRADEOS_DATABASE_URL": database_url,
        "TRADEOS_REDIS_URL": redis_url,
        "TRADEOS_ALERT_URLS": hook_url,
        "TRADEOS_ALERT_KINDS": "halt,resume",
        "TRADEOS_WATCHDOG_TIMEOUT": str(TIMEOUT),
        "TRADEOS_ALERT_RETRY_SECONDS": "0.2",
        "TRADEOS_LEASE_TTL_SECONDS": "1",
    }


def _last_heartbeat(desk: ControlDesk) -> float | None:
    raw = desk.redis.get(keys.heartbeat_key("signal_engine"))
    return float(raw) if raw else None


def _engine_beating(desk: ControlDesk) -> bool:
    beat = _last_heartbeat(desk)
    return beat is not None and time.time() - beat < 1.0


def _watchdog_halts(url: str) -> list[tuple[Any, ...]]:
    return rows(
        url,
        "SELECT id, timestamp, reason FROM control_actions WHERE action = 'halt' AND actor = 'watchdog' ORDER BY id",
    )


def _guard_pids(home: Path) -> list[int]:
    found = []
    for name in ("watchdog", "notify"):
        with contextlib.suppress(OSError, ValueError):
            found.append(int((home / "run" / f"{name}.pid").read_text()))
    return found


def _stop_guards(home: Path) -> None:
    """The guards outlive `tradeos up` by design; the test stops those it caused to run."""
    for pid in _guard_pids(home):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)


def _log(service: Service) -> str:
    with contextlib.suppress(FileNotFoundError):
        return (service.home / "logs" / "watchdog.log").read_text()
    return ""


def _kill_and_wait_for_the_watchdog(
    service: Service, desk: ControlDesk, url: str, halts_before: int, arms_before: int = 0
) -> float:
    """kill -9 of `tradeos up`; returns how long after the engine's last heartbeat trading was halted."""
    eventually(lambda: _engine_beating(desk), timeout=60, what="the engine's heartbeat")
    armed = eventually(
        lambda: _log(service).count("heartbeat is fresh; armed") > arms_before,
        timeout=60,
        what="the watchdog armed",
    )
    assert armed
    service.kill()
    last_beat = _last_heartbeat(desk)
    assert last_beat is not None
    eventually(
        lambda: desk.redis.get(keys.KILL_SWITCH) == b"1", timeout=TIMEOUT + 20, what="the watchdog's halt"
    )
    halted_after = time.time() - last_beat
    halts = eventually(
        lambda: (found := _watchdog_halts(url)) and len(found) > halts_before and found,
        what="the watchdog's halt on record",
    )
    # Not before the timeout: the halt's own time is at least TIMEOUT after the last sign of life.
    assert halts[-1][1] >= datetime.fromtimestamp(last_beat, UTC) + timedelta(seconds=TIMEOUT)
    assert "dead-man's switch" in halts[-1][2]
    posted = decode_trading_state(desk.redis.get(keys.TRADING_STATE) or b"")
    assert (posted.state.value, posted.actor) == ("halted", "watchdog")
    return halted_after


def test_with_the_engine_killed_the_watchdog_halts_trading_and_an_alert_reaches_a_webhook_and_only_an_operator_resumes(
    tmp_path: Path, private_database_url: str, private_redis: PrivateRedis
) -> None:
    url = private_database_url
    home = tmp_path / "home"
    desk = ControlDesk(redis_url=private_redis.url, database_url=url)
    try:
        with WebhookReceiver() as hook:
            env = _env(url, private_redis.url, hook.url)
            service = Service(home, ARGS, env)
            try:
                first = _kill_and_wait_for_the_watchdog(service, desk, url, halts_before=0)
                print(f"halted {first:.2f} s after the engine's last heartbeat (timeout {TIMEOUT} s)")
                alert = eventually(
                    lambda: hook.titled("Trading halted by watchdog"), timeout=30, what="the halt's alert"
                )
                assert len(alert) == 1
                assert "dead-man's switch" in alert[0].message

                # The engine comes back halted (the halt is on record); it stays halted until an operator resumes.
                with Service(home, ARGS, env) as again:
                    eventually(lambda: "recovered:" in again.output, timeout=60, what="recovery")
                    assert "state halted" in again.output.split("recovered:", 1)[1].splitlines()[0]
                    eventually(lambda: _engine_beating(desk), timeout=60, what="the new engine's heartbeat")
                    assert desk.trading_state() == "halted"
                    desk.resume(reason="engine back, checked")
                    eventually(
                        lambda: hook.titled("Trading resumed by faults"), timeout=30, what="resume alert"
                    )
                    assert [
                        (action, actor)
                        for action, actor in rows(
                            url,
                            "SELECT action, actor FROM control_actions WHERE action IN ('halt', 'resume')"
                            " ORDER BY id",
                        )
                    ] == [("halt", "watchdog"), ("resume", "faults")]
                    assert desk.redis.get(keys.KILL_SWITCH) is None

                    # Back and silent again: the new watchdog halts again, and only once.
                    second = _kill_and_wait_for_the_watchdog(again, desk, url, halts_before=1, arms_before=1)
                    print(f"halted again {second:.2f} s after the last heartbeat")
                eventually(
                    lambda: len(hook.titled("Trading halted by watchdog")) == 2,
                    timeout=30,
                    what="second alert",
                )
                # The orphaned watchdog, its halt done and recorded, exits.
                eventually(
                    lambda: not any(Path(f"/proc/{pid}").exists() for pid in _guard_pids(home)[:1]),
                    timeout=30,
                    what="the orphaned watchdog to exit",
                )
                assert len(_watchdog_halts(url)) == 2
                assert [r.title for r in hook.received] == [
                    "TRADEOS: Trading halted by watchdog",
                    "TRADEOS: Trading resumed by faults",
                    "TRADEOS: Trading halted by watchdog",
                ]
            finally:
                if service.process.poll() is None:
                    service.kill()
                _stop_guards(home)
    finally:
        desk.close()


def test_an_orderly_stop_stops_the_watchdog_and_the_notifier_and_halts_nothing(
    tmp_path: Path, private_database_url: str, private_redis: PrivateRedis
) -> None:
    url = private_database_url
    home = tmp_path / "home"
    desk = ControlDesk(redis_url=private_redis.url, database_url=url)
    try:
        with WebhookReceiver() as hook:
            with Service(home, ARGS, _env(url, private_redis.url, hook.url)) as service:
                eventually(lambda: _engine_beating(desk), timeout=60, what="the engine's heartbeat")
                guards = eventually(lambda: len(_guard_pids(home)) == 2 and _guard_pids(home), what="guards")
                eventually(
                    lambda: (
                        "halting trading if the engine is silent"
                        in (home / "logs" / "watchdog.log").read_text()
                    ),
                    what="the watchdog watching",
                )
                assert service.stop() == 0
            assert not any(Path(f"/proc/{pid}").exists() for pid in guards)
            assert _guard_pids(home) == []
            assert desk.redis.get(keys.KILL_SWITCH) is None
            assert _watchdog_halts(url) == []
            assert hook.received == []
    finally:
        desk.close()


def test_the_watchdog_says_loudly_that_redis_is_down_keeps_trying_and_does_not_take_the_outage_for_a_death(
    tmp_path: Path, private_database_url: str, private_redis: PrivateRedis
) -> None:
    url = private_database_url
    home = tmp_path / "home"
    desk = ControlDesk(redis_url=private_redis.url, database_url=url)
    try:
        with (
            WebhookReceiver() as hook,
            Service(home, ARGS, _env(url, private_redis.url, hook.url)) as service,
        ):
            eventually(lambda: _engine_beating(desk), timeout=60, what="the engine's heartbeat")
            eventually(
                lambda: "heartbeat is fresh; armed" in _log(service), timeout=60, what="the watchdog armed"
            )
            private_redis.stop()
            down_at = time.monotonic()
            eventually(
                lambda: "watchdog: Redis is unreachable" in _log(service),
                timeout=20,
                what="the watchdog's alarm",
            )
            # Down for longer than the timeout: the engine cannot beat meanwhile, and that is not its death.
            eventually(
                lambda: time.monotonic() - down_at > 2 * TIMEOUT, timeout=20, what="a long Redis outage"
            )
            private_redis.start()  # empty: the heartbeat key is gone too
            eventually(
                lambda: "Redis is reachable again" in _log(service), timeout=30, what="the watchdog back"
            )
            eventually(lambda: _engine_beating(desk), timeout=30, what="the engine beating again")
            # Past the timeout after Redis's return, the engine still beating: no halt was, or is, due.
            back_at = time.monotonic()
            eventually(
                lambda: time.monotonic() - back_at > 2 * TIMEOUT, timeout=20, what="the timeout to pass"
            )
            assert _engine_beating(desk)
            assert _watchdog_halts(url) == []
            assert "trading HALTED" not in _log(service)
            assert "ERROR tradeos.watchdog: watchdog: Redis is unreachable" in _log(service)
    finally:
        desk.close()
