"""`tradeos flows run NAME` and `tradeos flows serve` (CONTRACT.md §1); wired into `api/cli.py` by `register`."""

from __future__ import annotations

import argparse
import sys
from typing import Any, cast

from flows import FLOW_NAMES, apply_prefect_environment
from live.settings import Settings

EXIT_FAILED = 1
EXIT_USAGE = 2


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the `flows` command with its `run NAME` and `serve` subcommands."""
    flows = subparsers.add_parser("flows", help="run a Prefect flow now, or serve all on their schedules")
    sub = flows.add_subparsers(dest="flows_command", required=True)
    run_parser = sub.add_parser("run", help="run one flow now, to completion")
    run_parser.add_argument("name", help=f"one of: {', '.join(FLOW_NAMES)}")
    sub.add_parser("serve", help="serve every deployment on its schedule (foreground)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Carry out `flows run NAME` or `flows serve`: 0 on success, else one line on stderr and a non-zero code."""
    command = getattr(args, "flows_command", None)
    if command == "run":
        return run_flow(str(args.name), settings)
    if command == "serve":
        apply_prefect_environment(settings)
        from flows.serve import serve_all

        try:
            serve_all(settings)
        except KeyboardInterrupt:
            return 0
        except Exception as exc:
            print(f"tradeos flows serve: {exc}", file=sys.stderr)
            return EXIT_FAILED
        return 0
    print("tradeos flows: expected `run NAME` or `serve`", file=sys.stderr)
    return EXIT_USAGE


def run_flow(name: str, settings: Settings) -> int:
    """Run one flow in this process (Prefect's ephemeral API unless PREFECT_API_URL is set) and report how it ended."""
    if name not in FLOW_NAMES:
        print(
            f"tradeos flows run: unknown flow {name!r}; valid flows: {', '.join(FLOW_NAMES)}", file=sys.stderr
        )
        return EXIT_USAGE
    apply_prefect_environment(settings)
    from flows import get_flow
    from flows.sync import DatabaseNotConfiguredError, database_url

    try:
        database_url(settings)
    except DatabaseNotConfiguredError as exc:
        print(f"tradeos flows run {name}: {exc}", file=sys.stderr)
        return EXIT_USAGE

    from prefect.client.schemas.objects import State

    flow = get_flow(name)
    try:
        state = cast(State[Any], flow(return_state=True))
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
    print(f"tradeos flows run {name}: completed")
    return 0
