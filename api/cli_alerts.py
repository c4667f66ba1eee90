"""`tradeos notify` and `tradeos watchdog`: the notifier and the dead-man's switch, each in the foreground in a
process of its own (`tradeos up` starts both; README, Alerts and the dead-man's switch)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable

from live.settings import Settings

EXIT_OK = 0
EXIT_BAD_CONFIG = 2
NOTIFY = "notify"
WATCHDOG = "watchdog"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds `notify` and `watchdog` to the `tradeos` parser."""
    notify_command = subparsers.add_parser(
        NOTIFY,
        help="deliver alerts on the recorded events to TRADEOS_ALERT_URLS (foreground; started by `tradeos up`)",
    )
    watchdog_command = subparsers.add_parser(
        WATCHDOG,
        help="halt trading when the engine's heartbeat stops for TRADEOS_WATCHDOG_TIMEOUT s (foreground; started "
        "by `tradeos up`)",
    )
    for command in (notify_command, watchdog_command):
        # Internal: the `tradeos up` that started this one. Once it is gone, the guard finishes its work and exits.
        command.add_argument("--parent", type=int, default=None, help=argparse.SUPPRESS)


def _orphaned(args: argparse.Namespace) -> Callable[[], bool] | None:
    """None when run alone (forever); else whether the `tradeos up` that started us has gone (we were re-parented)."""
    parent = getattr(args, "parent", None)
    if parent is None:
        return None
    return lambda: os.getppid() != parent


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Runs `tradeos notify` or `tradeos watchdog` until SIGINT/SIGTERM; a start-up error exits 2 with one line."""
    try:
        if args.command == NOTIFY:
            return notify(settings, orphaned=_orphaned(args))
        return watchdog(settings, orphaned=_orphaned(args))
    except _StartupError as exc:
        print(f"tradeos: {exc}", file=sys.stderr)
        return EXIT_BAD_CONFIG


class _StartupError(Exception):
    pass


def _store_url(settings: Settings, name: str) -> str:
    """The configured URL, or (unset) the embedded server of a `tradeos up` running under the same TRADEOS_HOME."""
    from live.stores.embedded import running_embedded_url

    configured = getattr(settings.stores, name)
    if configured is not None:
        return str(configured.get_secret_value())
    running = running_embedded_url(settings.home_dir, "postgres" if name == "database_url" else "redis")
    if not running:
        raise _StartupError(
            f"TRADEOS_{name.upper()} is not set and no embedded server runs under {settings.home_dir}: "
            "start `tradeos up` or set it"
        )
    return running


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def handler(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return stop


def _logging(settings: Settings, file_name: str) -> None:
    if not logging.getLogger().handlers:
        from api.cli import _configure_logging  # the one set-up: TRADEOS_LOG_FORMAT, rotation, 0600 files

        _configure_logging(settings, file_name=file_name)


def notify(settings: Settings, *, orphaned: Callable[[], bool] | None = None) -> int:
    """The notifier: the record in PostgreSQL, the daily reports and Prefect's flow runs, to every channel."""
    from api.flow_alerts import FlowRunSource
    from live.alerts.channels import ChannelError, channels_from_urls
    from live.alerts.notifier import Notifier, RecordSource, ReportSource
    from live.stores.postgres import apply_migrations, connect

    if not settings.alerts.urls:
        raise _StartupError("TRADEOS_ALERT_URLS: not set; the notifier has nowhere to send alerts")
    try:
        channels = channels_from_urls(settings.alerts.urls)
    except ChannelError as exc:
        raise _StartupError(str(exc)) from None
    database_url = _store_url(settings, "database_url")
    _logging(settings, "notifier.log")
    with connect(database_url, autocommit=True) as conn:
        apply_migrations(conn)
    notifier = Notifier(
        database_url=database_url,
        channels=channels,
        settings=settings.alerts,
        sources=[RecordSource(), ReportSource(settings.reports_dir), FlowRunSource(settings)],
    )
    logging.getLogger("tradeos.alerts").info(
        "notifier: %s to %s",
        settings.alerts.alert_kinds,
        ", ".join(channel.name for channel in channels),
    )
    notifier.run(_stop_on_signals(), orphaned=orphaned, linger_seconds=_notifier_linger(settings))
    return EXIT_OK


def watchdog(settings: Settings, *, orphaned: Callable[[], bool] | None = None) -> int:
    """The dead-man's switch."""
    from api.control import audit_key_of
    from live.alerts.watchdog import Watchdog

    database_url, redis_url = _store_url(settings, "database_url"), _store_url(settings, "redis_url")
    _logging(settings, "watchdog.log")
    Watchdog(
        redis_url=redis_url,
        database_url=database_url,
        audit_key=audit_key_of(settings),
        timeout_seconds=settings.alerts.watchdog_timeout,
    ).run(_stop_on_signals(), orphaned=orphaned)
    return EXIT_OK


def _notifier_linger(settings: Settings) -> float:
    """How long a notifier outlives its `tradeos up`: time for the watchdog to halt, for the halt to be coalesced
    and for every retry of it, with a margin."""
    alerts = settings.alerts
    retries = sum(
        min(60.0, alerts.alert_retry_seconds * 2**attempt) for attempt in range(alerts.alert_max_attempts)
    )
    return alerts.watchdog_timeout + alerts.alert_coalesce_seconds + retries + 10.0
