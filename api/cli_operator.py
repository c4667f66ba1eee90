"""`tradeos api | status | halt | resume | reduce | flatten | profile`: serve the operator API alone, or call it."""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import sys
from typing import Any

import httpx

from live.settings import PROFILE_NAMES, ApiSettings, Settings

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_CONFIG = 2
REQUEST_TIMEOUT_SECONDS = 10.0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds the operator commands to the `tradeos` parser."""
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument("--host", type=str, default=None, help="API host (default TRADEOS_HOST)")
    where.add_argument("--api-port", type=int, default=None, help="API port (default TRADEOS_API_PORT)")
    subparsers.add_parser(
        "api", parents=[where], help="serve the operator API alone (needs TRADEOS_DATABASE_URL/REDIS_URL)"
    )
    subparsers.add_parser("status", parents=[where], help="trading state, profile and health")
    for name, text in (
        ("halt", "stop all order submission (returns once the engine confirms)"),
        ("resume", "lift a halt or reduce-only"),
        ("reduce", "reduce-only: no new exposure, exits still managed"),
    ):
        command = subparsers.add_parser(name, parents=[where], help=text)
        command.add_argument("--reason", default="", help="why, for the record")
    flatten = subparsers.add_parser(
        "flatten", parents=[where], help="close every position at market (also halted)"
    )
    flatten.add_argument("--yes", action="store_true", required=True, help="confirm: this trades")
    flatten.add_argument("--reason", default="")
    profile = subparsers.add_parser("profile", parents=[where], help="switch the risk profile")
    profile.add_argument(
        "name", help=f"{', '.join(PROFILE_NAMES)} or a custom profile's name (GET /profiles lists them)"
    )
    profile.add_argument("--reason", default="")


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Runs one operator command; prints the API's JSON answer; non-zero exit when it failed."""
    if args.command == "api":
        return serve(settings)
    reason = getattr(args, "reason", "")
    requests: dict[str, tuple[str, str, dict[str, Any] | None]] = {
        "halt": ("POST", "/trading/halt", {"reason": reason}),
        "resume": ("POST", "/trading/resume", {"reason": reason}),
        "reduce": ("POST", "/trading/reduce", {"reason": reason}),
        "flatten": ("POST", "/trading/flatten", {"confirm": True, "reason": reason}),
        "profile": ("POST", "/profile", {"profile": getattr(args, "name", None), "reason": reason}),
    }
    try:
        with _client(settings.api) as client:
            if args.command == "status":
                return _status(client)
            method, path, body = requests[args.command]
            return _show(client.request(method, path, json=body))
    except httpx.TransportError as exc:
        print(f"tradeos: cannot reach the operator API at {_base_url(settings.api)}: {exc}", file=sys.stderr)
        return EXIT_FAILED


def serve(settings: Settings) -> int:
    """Serves the operator API in the foreground against the configured PostgreSQL and Redis."""
    import uvicorn

    from api.operator import create_app, server_config
    from live.stores.embedded import running_embedded_url

    # Unset URLs mean the embedded servers of a `tradeos up` running under the same TRADEOS_HOME.
    resolved = {
        "database_url": settings.stores.database_url or running_embedded_url(settings.home_dir, "postgres"),
        "redis_url": settings.stores.redis_url or running_embedded_url(settings.home_dir, "redis"),
    }
    for name, value in resolved.items():
        if not value:
            print(
                f"tradeos: TRADEOS_{name.upper()} is not set and no embedded server runs under "
                f"{settings.home_dir}: start `tradeos up` or set it",
                file=sys.stderr,
            )
            return EXIT_BAD_CONFIG
    settings = settings.updated(**resolved)
    if not logging.getLogger().handlers:
        from api.cli import _configure_logging  # the one set-up: TRADEOS_LOG_FORMAT, rotation, 0600 files

        _configure_logging(settings, file_name="api.log")
    # log_config=None: uvicorn's records go through the handlers above (and TRADEOS_LOG_FORMAT), not its own.
    config = server_config(
        create_app(settings), host=settings.api.host, port=settings.api.api_port, log_config=None
    )
    uvicorn.Server(config).run()
    return EXIT_OK


def _base_url(api: ApiSettings) -> str:
    host = "127.0.0.1" if api.host in ("0.0.0.0", "::") else api.host  # noqa: S104
    return f"http://{host}:{api.api_port}"


def _client(api: ApiSettings) -> httpx.Client:
    try:
        user = getpass.getuser()
    except (OSError, KeyError):
        user = "unknown"
    headers = {"X-Actor": f"cli:{user}"}
    if api.tool_token:
        headers["Authorization"] = f"Bearer {api.tool_token.get_secret_value()}"
    return httpx.Client(base_url=_base_url(api), headers=headers, timeout=REQUEST_TIMEOUT_SECONDS)


def _status(client: httpx.Client) -> int:
    trading, health = client.get("/trading/status"), client.get("/healthz")
    if trading.status_code != 200:
        return _show(trading)
    print(json.dumps({"trading": trading.json(), "health": health.json()}, indent=2))
    return EXIT_OK if health.status_code == 200 else EXIT_FAILED


def _show(response: httpx.Response) -> int:
    try:
        body: Any = response.json()
    except ValueError:
        body = {"detail": response.text}
    if response.is_success:
        print(json.dumps(body, indent=2))
        return EXIT_OK
    print(f"tradeos: HTTP {response.status_code}: {json.dumps(body.get('detail', body))}", file=sys.stderr)
    return EXIT_FAILED
