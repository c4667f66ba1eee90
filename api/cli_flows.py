"""`tradeos flows run NAME [--param key=value ...]` and `tradeos flows serve` (README, Commands); wired into
`api/cli.py` by `register`."""

from __future__ import annotations

import argparse
import inspect
import sys
import typing
from typing import TYPE_CHECKING, Any, cast

from flows import (
    FLOW_NAMES,
    READS_RECORD,
    apply_prefect_environment,
    prefect_environment,
    using_settings,
)
from live.settings import Settings

if TYPE_CHECKING:
    from prefect import Flow

EXIT_FAILED = 1
EXIT_USAGE = 2


class FlowParameterError(ValueError):
    """A `--param` the flow cannot take; the message is the one line shown to the user."""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `flows` command with its `run NAME` and `serve` subcommands."""
    flows = subparsers.add_parser("flows", help="run a Prefect flow now, or serve all on their schedules")
    sub = flows.add_subparsers(dest="flows_command", required=True)
    run_parser = sub.add_parser(
        "run",
        help="run one flow now, to completion (on the Prefect server of a running `tradeos up`, if any)",
    )
    run_parser.add_argument("name", help=f"one of: {', '.join(FLOW_NAMES)}")
    run_parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a flow parameter, converted to its type (repeatable), e.g. --param window_days=30",
    )
    sub.add_parser("serve", help="serve every deployment on its schedule (foreground)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Carry out `flows run NAME` or `flows serve`: 0 on success, else one line on stderr and a non-zero code."""
    command = getattr(args, "flows_command", None)
    if command == "run":
        return run_flow(str(args.name), settings, list(getattr(args, "param", None) or []))
    if command == "serve":
        from flows.serve import run_service

        return run_service(settings)
    print("tradeos flows: expected `run NAME` or `serve`", file=sys.stderr)
    return EXIT_USAGE


def flow_parameters(flow: Flow[Any, Any], pairs: list[str]) -> dict[str, Any]:
    """`key=value` pairs checked against the flow's signature and converted to each parameter's type."""
    from pydantic import TypeAdapter, ValidationError

    accepted = inspect.signature(flow.fn).parameters
    hints = typing.get_type_hints(flow.fn)
    parameters: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise FlowParameterError(f"--param {pair!r}: expected KEY=VALUE")
        if name not in accepted:
            valid = ", ".join(accepted) or "none"
            raise FlowParameterError(
                f"--param {name}: {flow.name} has no such parameter (its parameters: {valid})"
            )
        if name in parameters:
            raise FlowParameterError(f"--param {name}: given more than once")
        try:
            parameters[name] = TypeAdapter(hints.get(name, Any)).validate_python(raw)
        except ValidationError as exc:
            raise FlowParameterError(f"--param {name}={raw}: {exc.errors()[0]['msg']}") from None
    return parameters


def run_flow(name: str, settings: Settings, params: list[str] | None = None) -> int:
    """Run one flow in this process and report how it ended. Its runs go to the operator's PREFECT_API_URL if set,
    else to the Prefect server of the `tradeos up` of this TRADEOS_HOME (verified as ours), else to a temporary one."""
    if name not in FLOW_NAMES:
        print(
            f"tradeos flows run: unknown flow {name!r}; valid flows: {', '.join(FLOW_NAMES)}", file=sys.stderr
        )
        return EXIT_USAGE
    apply_prefect_environment(settings)
    from flows import get_flow, prefect_settings
    from flows.serve import running_prefect_server
    from flows.sync import DatabaseNotConfiguredError, database_url

    flow = get_flow(name)
    try:
        parameters = flow_parameters(flow, params or [])
    except FlowParameterError as exc:
        print(f"tradeos flows run {name}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        if name in READS_RECORD:
            database_url(settings.stores, settings.home_dir)
    except DatabaseNotConfiguredError as exc:
        print(f"tradeos flows run {name}: {exc}", file=sys.stderr)
        return EXIT_USAGE

    from prefect.client.schemas.objects import State
    from prefect.settings import temporary_settings

    server = None if settings.flows.prefect_api_url else running_prefect_server(settings)
    if server is not None:
        print(f"tradeos flows run {name}: on the Prefect server of `tradeos up` ({server.ui_url})")
    env = prefect_environment(settings, api_url=server.api_url if server else None)
    try:
        with temporary_settings(updates=prefect_settings(env)), using_settings(settings):
            state = cast(State[Any], flow(return_state=True, **parameters))
    except Exception as exc:
        print(f"tradeos flows run {name}: failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if not state.is_completed():
        try:
            state.result()
        except Exception as exc:
            print(
                f"tradeos flows run {name}: {(state.name or state.type.value).lower()}: {exc}",
                file=sys.stderr,
            )
        else:
            print(f"tradeos flows run {name}: ended {state.name}", file=sys.stderr)
        return EXIT_FAILED
    where = f" ({server.ui_url}/runs/flow-run/{state.state_details.flow_run_id})" if server else ""
    print(f"tradeos flows run {name}: completed{where}")
    return 0
