"""Prefect flows over `analytics/`: one module per flow, named as in the README (Flows).

Importing this package does not import Prefect, so a caller can point PREFECT_HOME under TRADEOS_HOME first
(`prefect_environment`) — Prefect reads its settings once, at import.

Settings are loaded once per process: by the command line for `tradeos flows run` (whose flows run in-process,
`using_settings`), else at the entry of the flow run (`flow_run_settings`: a deployment's flow run is a process of its
own). A flow passes its tasks plain values and the groups they need, never the whole tree: a secret only travels
inside a group, as a `SecretStr`, which serialises as `**********` if Prefect ever records a task's parameters.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import secrets
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from live.settings import Settings, load_settings

if TYPE_CHECKING:
    from prefect import Flow

# Contract name -> (module, flow function).
FLOWS: dict[str, tuple[str, str]] = {
    "metrics-rollup": ("flows.metrics_rollup", "metrics_rollup"),
    "signal-ic": ("flows.signal_ic", "signal_ic"),
    "regime-retrain": ("flows.regime_retrain", "regime_retrain"),
    "daily-report": ("flows.daily_report", "daily_report"),
    "walk-forward": ("flows.walk_forward", "walk_forward"),
}
FLOW_NAMES: tuple[str, ...] = tuple(FLOWS)

# One schedule per scheduled deployment (UTC); prefect.yaml declares the same (a test keeps them equal). The research
# flows (walk-forward) are served without one: a user starts them, with their parameters.
SCHEDULES: dict[str, dict[str, int | str]] = {
    "metrics-rollup": {"interval": 300},
    "signal-ic": {"interval": 300},
    "regime-retrain": {"cron": "30 0 * * *"},
    "daily-report": {"cron": "55 23 * * *"},
}
WORK_POOL = "tradeos"
# Flows that read the system of record (they sync it first): `tradeos flows run` needs a database for them.
READS_RECORD: frozenset[str] = frozenset(SCHEDULES)


PREFECT_AUTH_USER = "tradeos"
EPHEMERAL_SERVER_START_TIMEOUT_SECONDS = 90


def prefect_auth_path(settings: Settings) -> Path:
    """Where this TRADEOS_HOME keeps the credentials of its Prefect server (user:password, mode 0600), beside
    those of the embedded stores."""
    return settings.home_dir / "credentials" / "prefect-api-auth"


def prefect_auth_string(settings: Settings) -> SecretStr:
    """The `user:password` our Prefect server demands (API and UI): generated at the first start of this
    TRADEOS_HOME and kept 0600, never a default, so another local user can neither list nor trigger our flows."""
    path = prefect_auth_path(settings)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        fd = None
    if fd is not None:
        auth = f"{PREFECT_AUTH_USER}:{secrets.token_urlsafe(32)}"
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(auth + "\n")
        return SecretStr(auth)
    # Whatever mode an earlier version or an editor left it with, only we may read it.
    os.chmod(path, 0o600)
    auth = path.read_text(encoding="utf-8").strip()
    user, _, password = auth.partition(":")
    if not user or len(password) < 16:
        raise ValueError(
            f"{path}: not a Prefect auth string (user:password); delete it to generate a new one"
        )
    return SecretStr(auth)


def prefect_environment(
    settings: Settings, *, api_url: str | None = None, serving_on: tuple[str, int] | None = None
) -> dict[str, str]:
    """Prefect's environment, derived from the settings in this one place: its state under TRADEOS_HOME (unless
    the operator set PREFECT_HOME), no telemetry, and our server's credentials on both sides (a server we start,
    Prefect's temporary one included, refuses anyone without them; our clients present them), plus `api_url` when
    our server is known, and the address of the one we start `serving_on` (host, port). A PREFECT_API_URL the
    operator set (a dedicated Prefect server) is theirs, with their own PREFECT_API_AUTH_STRING: left alone."""
    env = {
        "TRADEOS_HOME": str(settings.home_dir),
        "PREFECT_HOME": str(settings.flows.prefect_home or settings.home_dir / "prefect"),
        "DO_NOT_TRACK": "1",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        # Prefect's temporary server (`flows run` with no `tradeos up`) gets 20 s by default: too few on a busy
        # machine, where it failed "Timed out while attempting to connect to ephemeral Prefect API server".
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": str(EPHEMERAL_SERVER_START_TIMEOUT_SECONDS),
    }
    if api_url or serving_on or not settings.flows.prefect_api_url:
        # Whatever the operator's environment says, a server we start is closed by our credentials.
        auth = prefect_auth_string(settings).get_secret_value()
        env.update(PREFECT_SERVER_API_AUTH_STRING=auth, PREFECT_API_AUTH_STRING=auth)
    if api_url:
        env["PREFECT_API_URL"] = api_url
    if serving_on:
        host, port = serving_on
        # The UI asks the API at PREFECT_SERVER_API_PORT, whatever `prefect server start --port` says.
        env.update(PREFECT_SERVER_API_HOST=host, PREFECT_SERVER_API_PORT=str(port))
    if settings.stores.database_url:
        # Flow-run processes inherit it and load their settings from it.
        env["TRADEOS_DATABASE_URL"] = settings.stores.database_url.get_secret_value()
    return env


def apply_prefect_environment(settings: Settings) -> dict[str, str]:
    """Export `prefect_environment` into this process (before Prefect is imported: it reads its settings once)
    and return it. The URL of our own server is not exported: it goes through `prefect_settings`, as it may
    change when the server is restarted."""
    env = prefect_environment(settings)
    os.environ.update(env)
    Path(env["PREFECT_HOME"]).mkdir(mode=0o700, parents=True, exist_ok=True)
    return env


def prefect_settings(env: dict[str, str]) -> dict[Any, Any]:
    """The Prefect settings among `prefect_environment`'s variables, for `prefect.settings.temporary_settings`
    (Prefect passes the settings in force on to the servers and flow-run processes it starts)."""
    import prefect.settings

    return {
        getattr(prefect.settings, name): value
        for name, value in env.items()
        if name.startswith("PREFECT_") and hasattr(prefect.settings, name)
    }


_SETTINGS: ContextVar[Settings | None] = ContextVar("tradeos_flow_settings", default=None)


@contextlib.contextmanager
def using_settings(settings: Settings) -> Iterator[None]:
    """Flows run in-process within the block (`tradeos flows run`) use these settings, already loaded."""
    token = _SETTINGS.set(settings)
    try:
        yield
    finally:
        _SETTINGS.reset(token)


def flow_run_settings() -> Settings:
    """The settings of a flow run, asked once at its entry: those of the command that runs it in-process, else
    loaded now (a flow run that Prefect starts is a process of its own)."""
    return _SETTINGS.get() or load_settings()


def get_flow(name: str) -> Flow[Any, Any]:
    """The flow object registered under a contract name; KeyError names the valid ones."""
    if name not in FLOWS:
        raise KeyError(f"unknown flow {name!r}; valid flows: {', '.join(FLOW_NAMES)}")
    module, attribute = FLOWS[name]
    flow: Flow[Any, Any] = getattr(importlib.import_module(module), attribute)
    return flow


def registry() -> dict[str, Flow[Any, Any]]:
    """Every flow by contract name (imports Prefect)."""
    return {name: get_flow(name) for name in FLOW_NAMES}
