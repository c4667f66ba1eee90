"""The `tradeos` command line: `up` runs the whole system; `flows`, `backtest`, `status`, `halt`, ... are registered
by their modules (api/cli_flows.py, api/cli_backtest.py, api/cli_operator.py)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import json
import logging
import logging.handlers
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from api import runtime
from live.settings import PROFILE_NAMES, Settings, SettingsError, load_settings

log = logging.getLogger("tradeos")
EXIT_BAD_CONFIG = 2
PRIVATE_UMASK = 0o077


class StartupError(Exception):
    """A bad value stops start-up: one clear line naming the variable or flag, exit code 2."""


# Internal: `tradeos up` starts its APIs' process with it. Not an argparse subcommand, so no help, usage line or
# error message offers it to users.
SERVE_APIS = "serve-apis"


def _version() -> str:
    try:
        return importlib.metadata.version("tradeos")
    except importlib.metadata.PackageNotFoundError:  # a source tree that was never installed
        return "unknown (not installed)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tradeos", description="TRADEOS: an operating system for automated trading"
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser(
        "up", help="live engine + REST/WS API + Metrics API + dashboard + scheduled flows, in the foreground"
    )
    up.add_argument(
        "--feed", default="sim", help="a feed registered in live/assembly.py: sim (default), replay, ccxt"
    )
    from api.cli_data import add_exchange_arguments

    add_exchange_arguments(up)
    up.add_argument("--data", type=Path, help="replay file (CSV or Parquet) for --feed replay")
    up.add_argument(
        "--speed", type=float, default=60.0, help="simulated seconds per wall second; 0 = max speed"
    )
    up.add_argument("--sim-days", type=float, default=None, help="sim feed stops after N simulated days")
    # Seed 1: the default demo trades from its third simulated hour on (seed 7, the old default, placed its first
    # order on day 6 — over two hours of waiting at the default speed before a new user saw a trade).
    up.add_argument("--seed", type=int, default=1, help="sim feed seed (default 1)")
    up.add_argument("--symbols", type=str, default=None, help="comma-separated symbols")
    up.add_argument("--api-port", type=int, default=None)
    up.add_argument("--metrics-port", type=int, default=None)
    up.add_argument("--dashboard-port", type=int, default=None, help="the operator dashboard's port (18002)")
    up.add_argument("--host", type=str, default=None)
    up.add_argument(
        "--profile",
        type=str,
        default=None,
        help=f"profile at first start: {', '.join(PROFILE_NAMES)} or a stored custom profile",
    )
    add_strategy_arguments(up)
    up.add_argument("--no-flows", action="store_true", help="do not serve the Prefect flows")
    up.add_argument("--no-api", action="store_true", help="engine only (no HTTP servers)")
    for module in (
        "api.cli_flows",
        "api.cli_backtest",
        "api.cli_data",
        "api.cli_operator",
        "api.cli_alerts",
        "api.cli_audit",
    ):
        with contextlib.suppress(ImportError):
            __import__(module, fromlist=["register"]).register(sub)
    return parser


def add_strategy_arguments(parser: argparse.ArgumentParser) -> None:
    """`--strategy SPEC` and `--param KEY=VALUE` (docs/strategies.md), for every command that runs a strategy."""
    parser.add_argument(
        "--strategy",
        default=None,
        metavar="SPEC",
        help="builtin (default; or TRADEOS_STRATEGY), package.module:Class or path/to/file.py:Class",
    )
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a strategy parameter (repeatable), validated against its parameter model; wins over "
        "TRADEOS_STRATEGY_PARAMS",
    )


def choose_strategy(args: argparse.Namespace, settings: Settings) -> Any:
    """The `live.strategy.loading.StrategyChoice` the flags (`add_strategy_arguments`) and the settings name;
    a bad spec or parameter is a StartupError naming the flag or variable it came from."""
    from live.strategy.loading import (
        StrategyLoadError,
        load_strategy,
        parse_param_pairs,
        parse_params_json,
    )

    spec_from = "--strategy" if args.strategy else "TRADEOS_STRATEGY"
    params_from = "/".join(
        name
        for name, given in (
            ("--param", args.param),
            ("TRADEOS_STRATEGY_PARAMS", settings.engine.strategy_params),
        )
        if given
    )
    try:
        params: dict[str, object] = {}
        params.update(parse_params_json(settings.engine.strategy_params))
        params.update(parse_param_pairs(args.param))
        return load_strategy(args.strategy or settings.engine.strategy, params)
    except StrategyLoadError as exc:
        raise StartupError(f"{params_from if exc.about == 'params' else spec_from}: {exc}") from None


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `tradeos` console script."""
    # Everything TRADEOS and its child processes write (logs, DuckDB, reports, run files) holds the book: owner only.
    os.umask(PRIVATE_UMASK)
    argv = sys.argv[1:] if argv is None else argv
    args = argparse.Namespace(command=SERVE_APIS) if argv == [SERVE_APIS] else _parser().parse_args(argv)
    try:
        settings = load_settings(
            api_port=getattr(args, "api_port", None),
            metrics_port=getattr(args, "metrics_port", None),
            dashboard_port=getattr(args, "dashboard_port", None),
            host=getattr(args, "host", None),
            profile=getattr(args, "profile", None),
            exchange=getattr(args, "exchange", None),
            exchange_url=getattr(args, "exchange_url", None),
        )
    except SettingsError as exc:
        print(f"tradeos: {exc}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    if args.command == "up":
        try:
            return up(args, settings)
        except StartupError as exc:
            print(f"tradeos: {exc}", file=sys.stderr)
            return EXIT_BAD_CONFIG
    if args.command == SERVE_APIS:
        return serve_apis(settings)
    if args.command == "flows":
        from api import cli_flows

        return int(cli_flows.run(args, settings))
    if args.command == "backtest":
        from api import cli_backtest

        return int(cli_backtest.run(args, settings))
    if args.command == "audit":
        from api import cli_audit

        return int(cli_audit.run(args, settings))
    if args.command in ("notify", "watchdog"):
        from api import cli_alerts

        return int(cli_alerts.run(args, settings))
    if args.command == "data":
        from api import cli_data

        return int(cli_data.run(args, settings))
    from api import cli_operator

    return int(cli_operator.run(args, settings))


LOG_MAX_BYTES = 10 * 1024 * 1024  # per file; with LOG_BACKUPS, a process keeps at most 60 MiB of logs
LOG_BACKUPS = 5


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line (`TRADEOS_LOG_FORMAT=json`): ts (ISO 8601 UTC), level, logger, message, and
    exception (the formatted traceback) when there is one -- newlines escaped, so a line is always a record."""

    def format(self, record: logging.LogRecord) -> str:
        at = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        entry: dict[str, str] = {
            "ts": at.replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False)


class PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """Size-bounded and rotated (`name.1` .. `name.N`); each file created 0600 whatever the umask, as the log
    holds the book (fills, positions, operators' reasons)."""

    def _open(self) -> Any:
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        return os.fdopen(fd, "a", encoding=self.encoding, errors=self.errors)

    def emit(self, record: logging.LogRecord) -> None:
        """Formats each record once: the standard handler formats it twice (first to measure it for the rollover
        check), half the cost of the access log's thousands of lines a second at load. Same bound, same rotation."""
        try:
            line = self.format(record) + self.terminator
            if self.stream is None:
                self.stream = self._open()
            if self.maxBytes > 0 and self.stream.tell() + len(line) >= self.maxBytes:
                self.doRollover()
                if self.stream is None:
                    self.stream = self._open()
            self.stream.write(line)
            self.flush()
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)


def _configure_logging(settings: Settings, *, file_name: str = "tradeos.log") -> None:
    """The console and `TRADEOS_HOME/logs/<file_name>`, as text or (TRADEOS_LOG_FORMAT=json) JSON lines. Each
    process writes (and rotates) its own file: two processes rotating one file would lose lines."""
    settings.logs_dir.mkdir(parents=True, exist_ok=True)
    fmt: logging.Formatter = (
        JsonLogFormatter()
        if settings.log_format == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    handlers: list[logging.Handler] = [
        logging.StreamHandler(),
        PrivateRotatingFileHandler(
            settings.logs_dir / file_name, maxBytes=LOG_MAX_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8"
        ),
    ]
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    for handler in handlers:
        handler.setFormatter(fmt)
        root.addHandler(handler)
    # Python warnings go through the same handlers, so a JSON log has no stray plain-text lines.
    logging.captureWarnings(True)
    for noisy in ("httpx", "uvicorn.access", "pgserver", "prefect"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _secure_home(settings: Settings) -> None:
    """TRADEOS_HOME 0700 and its files 0600, also those an earlier version wrote more openly."""
    from live.stores.embedded import EmbeddedError, secure_home

    try:
        secure_home(settings.home_dir)
    except EmbeddedError as exc:
        raise StartupError(f"TRADEOS_HOME: {exc}") from None


def _audit_key(settings: Settings) -> bytes:
    """TRADEOS_AUDIT_KEY, or the key file under TRADEOS_HOME (made at the first start)."""
    from live.stores.audit_key import AuditKeyError, audit_key

    try:
        return audit_key(settings.stores.audit_key, settings.home_dir)
    except (AuditKeyError, OSError) as exc:
        raise StartupError(f"TRADEOS_AUDIT_KEY: {exc}") from None


def _check_port_free(host: str, port: int, name: str) -> None:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise StartupError(f"{name}: port {port} on {host} is not available ({exc.strerror})") from None


def _check_database(url: str) -> None:
    import psycopg

    try:
        psycopg.connect(url, connect_timeout=3).close()
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StartupError(f"TRADEOS_DATABASE_URL: cannot connect to PostgreSQL ({first})") from None


def _check_redis(url: str) -> None:
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
        client.ping()
        client.close()
    except (redis.RedisError, ValueError) as exc:
        raise StartupError(f"TRADEOS_REDIS_URL: cannot connect to Redis ({exc})") from None


def _check_profile(settings: Settings, database_url: str) -> None:
    """TRADEOS_PROFILE (or --profile) names a built-in or a custom profile stored in this database."""
    from live.profiles import PROFILES
    from live.stores.postgres import PostgresStore, apply_migrations

    name = settings.engine.profile
    if name in PROFILES:
        return
    pg = PostgresStore(database_url)
    try:
        apply_migrations(pg.conn)
        if pg.stored_profile(name=name) is not None:
            return
        valid = [*PROFILES, *pg.custom_profile_names()]
    finally:
        pg.close()
    raise StartupError(f"TRADEOS_PROFILE/--profile: unknown profile {name!r}; valid: {', '.join(valid)}")


def make_feed(args: argparse.Namespace, settings: Settings) -> Any:
    """The feed the flags ask for; a bad replay file stops start-up with its line and reason, an unknown exchange
    or symbol with its name."""
    from live.assembly import FEEDS, FeedOptions, build_feed
    from live.feeds.base import FeedError

    if args.feed not in FEEDS:
        raise StartupError(f"--feed: unknown feed {args.feed!r}; valid: {', '.join(FEEDS)}")
    if args.feed == "sim" and args.sim_days is not None and args.sim_days <= 0:
        raise StartupError("--sim-days: must be positive")
    symbols = tuple(s.strip().upper() for s in args.symbols.split(",") if s.strip()) if args.symbols else None
    options = FeedOptions(
        symbols=symbols,
        seed=args.seed,
        sim_days=args.sim_days,
        data=args.data,
        exchange=settings.venue.exchange,
        exchange_url=settings.venue.exchange_url,
    )
    try:
        return build_feed(args.feed, options)
    except (FeedError, OSError, ValueError) as exc:
        if args.feed == "ccxt":
            raise StartupError(str(exc)) from None  # the message names --exchange or --symbols
        flags = "--data" if args.feed == "replay" else "--symbols/--seed/--sim-days"
        raise StartupError(f"{flags}: {exc}") from None


def _check_adapters(settings: Settings) -> None:
    """The broker and the strategy named in the settings exist: a misspelt name stops start-up, not the engine."""
    from live.assembly import check_adapters

    try:
        check_adapters(settings.engine)
    except SettingsError as exc:
        raise StartupError(str(exc)) from None


def _check_alert_urls(settings: Settings) -> None:
    """Every TRADEOS_ALERT_URLS entry is one apprise understands: a typo stops start-up, not the notifier later."""
    if not settings.alerts.urls:
        return
    from live.alerts.channels import ChannelError, channels_from_urls

    try:
        channels_from_urls(settings.alerts.urls)
    except ChannelError as exc:
        raise StartupError(str(exc)) from None


@contextlib.contextmanager
def _stores(settings: Settings) -> Iterator[tuple[str, str]]:
    """Resolved (database_url, redis_url): the configured servers, or embedded ones started (and stopped) here."""
    from live.stores.embedded import EmbeddedError, start_embedded

    stores = settings.stores
    database_url = stores.database_url.get_secret_value() if stores.database_url else None
    redis_url = stores.redis_url.get_secret_value() if stores.redis_url else None
    if database_url:
        _check_database(database_url)
    if redis_url:
        _check_redis(redis_url)
    try:
        servers, embedded_pg_url, embedded_redis_url = start_embedded(
            home=settings.home_dir, need_postgres=not database_url, need_redis=not redis_url
        )
    except EmbeddedError as exc:
        raise StartupError(f"TRADEOS_HOME: {exc}") from None
    try:
        yield database_url or embedded_pg_url, redis_url or embedded_redis_url
    finally:
        servers.stop()


def up(args: argparse.Namespace, settings: Settings) -> int:
    """`tradeos up`: everything in the foreground until SIGINT/SIGTERM, then an orderly stop."""
    if args.speed < 0:
        raise StartupError("--speed: must be >= 0")
    _stop_leftover_guards(settings)  # first of all: see its docstring
    if not args.no_api:
        _check_port_free(settings.api.host, settings.api.api_port, "TRADEOS_API_PORT/--api-port")
        _check_port_free(settings.api.host, settings.api.metrics_port, "TRADEOS_METRICS_PORT/--metrics-port")
        _check_port_free(
            settings.api.host, settings.api.dashboard_port, "TRADEOS_DASHBOARD_PORT/--dashboard-port"
        )
    audit_key = _audit_key(
        settings
    )  # before the home is secured: a key file left readable is refused, not fixed
    _secure_home(settings)
    feed = make_feed(args, settings)
    _check_adapters(settings)
    _check_alert_urls(settings)
    strategy = choose_strategy(args, settings)
    _configure_logging(settings)
    # The command thread must get the GIL promptly from a busy engine (api/runtime.py).
    runtime.hand_over_the_gil_promptly()
    from live.service import EngineRunner, RunnerOptions

    with _stores(settings) as (database_url, redis_url):
        _check_profile(settings, database_url)
        resolved = settings.updated(database_url=database_url, redis_url=redis_url)
        runner = EngineRunner(
            settings=resolved.engine,
            models_dir=resolved.models_dir,
            feed=feed,
            database_url=database_url,
            redis_url=redis_url,
            audit_key=audit_key,
            options=RunnerOptions(speed=args.speed),
            classifier_loader=_classifier_loader(),
            strategy=strategy,
        )
        stop = threading.Event()
        engine_thread = threading.Thread(
            target=_run_engine, args=(runner, stop), name="tradeos-engine", daemon=True
        )
        children: dict[str, subprocess.Popen[bytes]] = {}
        guards: dict[str, subprocess.Popen[bytes]] = {}
        runtime.settle_heap()
        engine_thread.start()
        log.info(
            "TRADEOS up at %s: feed %s, speed %s, strategy %s %s (params %s, sha256 %s)",
            datetime.now(UTC).isoformat(),
            args.feed,
            args.speed,
            strategy.name,
            strategy.version,
            strategy.params_json,
            strategy.params_hash,
        )
        try:
            # The APIs run in their own process: the engine at --speed 0 holds the GIL nearly all the time.
            if not args.no_api:
                children["apis"] = _start_child(resolved, [SERVE_APIS], log_name=None)
            if not args.no_flows:
                children["flows"] = _start_child(resolved, ["_serve-flows"], log_name="flows.log")
                _announce_prefect_ui(resolved, children["flows"], stop)
            guards = _start_guards(resolved)
            _wait_for_signal(stop, children)
        finally:
            stop.set()
            # The guards first: a watchdog outliving the engine's orderly stop would take it for a death.
            _stop_guards(resolved, guards)
            for child in children.values():
                if child.poll() is None:
                    child.terminate()
            engine_thread.join(timeout=30)
            for child in children.values():
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.wait(15)
                if child.poll() is None:
                    child.kill()
                    child.wait()
            log.info("TRADEOS stopped: %d bars processed", runner.bars_processed)
    return 0


def _run_engine(runner: Any, stop: threading.Event) -> None:
    """The engine thread: a crash is logged and stops the whole service rather than leaving the APIs up alone."""
    try:
        runner.run(stop)
    except Exception:
        log.exception("the engine stopped on an error; shutting down")
    finally:
        stop.set()


def _classifier_loader() -> Any:
    try:
        from analytics.regime_model import load_promoted_classifier
    except ImportError:
        return None
    return load_promoted_classifier


def _start_child(settings: Settings, command: list[str], *, log_name: str | None) -> subprocess.Popen[bytes]:
    """A part of `tradeos up` in its own process, configured through the environment with our settings (the
    resolved URLs and the flags included); it dies with us (PR_SET_PDEATHSIG), so a `kill -9` of `tradeos up`
    leaves no orphan."""
    from live.stores.embedded import die_with_parent

    env = {**os.environ, **settings.as_environment()}
    if command[0] == "_serve-flows":
        argv = [sys.executable, "-m", "flows.serve"]
    else:
        argv = [sys.executable, "-m", "api.cli", *command]
    if log_name is None:
        return subprocess.Popen(argv, env=env, preexec_fn=die_with_parent)
    log_file = open(settings.logs_dir / log_name, "ab")  # noqa: SIM115 - handed to the child
    try:
        return subprocess.Popen(
            argv, env=env, stdout=log_file, stderr=subprocess.STDOUT, preexec_fn=die_with_parent
        )
    finally:
        log_file.close()


GUARDS = ("watchdog", "notify")  # outlive a `kill -9` of `tradeos up`: that is what they are for


def _guard_pid_file(settings: Settings, name: str) -> Path:
    return settings.home_dir / "run" / f"{name}.pid"


def _start_guards(settings: Settings) -> dict[str, subprocess.Popen[bytes]]:
    """The dead-man's switch and (with TRADEOS_ALERT_URLS set) the notifier, each in a process of its own that
    survives the death of this one: in a session of its own, not tied to us by PR_SET_PDEATHSIG. Orphaned, each
    finishes its work (the halt, its alert) and exits (live/alerts/: `orphaned`)."""
    guards: dict[str, subprocess.Popen[bytes]] = {}
    env = {**os.environ, **settings.as_environment()}
    for name in GUARDS:
        if name == "notify" and not settings.alerts.urls:
            log.info("alerts: TRADEOS_ALERT_URLS is not set; no notifier started")
            continue
        guards[name] = subprocess.Popen(
            [sys.executable, "-m", "api.cli", name, "--parent", str(os.getpid())],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,  # each logs to TRADEOS_HOME/logs/<watchdog|notifier>.log
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        pid_file = _guard_pid_file(settings, name)
        pid_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(pid_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(str(guards[name].pid))
    return guards


def _stop_leftover_guards(settings: Settings) -> None:
    """Stops the guards a killed `tradeos up` of this home left (pids in `run/NAME.pid`), before our engine starts:
    an orphaned watchdog must not take our start-up for the death of its engine."""
    for name in GUARDS:
        _stop_leftover_guard(settings, name)


def _stop_leftover_guard(settings: Settings, name: str) -> None:
    """Stops the `tradeos NAME` whose pid a killed `tradeos up` of this home left, if it is still that process."""
    pid_file = _guard_pid_file(settings, name)
    try:
        pid = int(pid_file.read_text().strip())
        command_line = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return
    if name.encode() not in command_line or b"api.cli" not in command_line:
        return
    if b"--parent" in command_line:
        parent = int(command_line[command_line.index(b"--parent") + 1])
        with contextlib.suppress(ProcessLookupError):
            os.kill(parent, 0)  # PermissionError: it runs, as another user
            return  # its `tradeos up` still runs: not ours to stop
    log.warning("stopping the %s (pid %d) an earlier `tradeos up` of this home left running", name, pid)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)


def _stop_guards(settings: Settings, guards: dict[str, subprocess.Popen[bytes]]) -> None:
    for guard in guards.values():
        if guard.poll() is None:
            guard.terminate()
    for name, guard in guards.items():
        try:
            guard.wait(10)
        except subprocess.TimeoutExpired:
            guard.kill()
            guard.wait()
        with contextlib.suppress(FileNotFoundError):
            _guard_pid_file(settings, name).unlink()


def _announce_prefect_ui(settings: Settings, flows: subprocess.Popen[bytes], stop: threading.Event) -> None:
    """Print the Prefect UI's address on this console once the flows process has its server up and verified
    (it records it in run/prefect.json), and again if a restart moves it."""
    from flows import prefect_auth_path
    from flows.serve import read_run_file

    def announce() -> None:
        shown = None
        while not stop.wait(0.5):
            record = read_run_file(settings) or {}
            if record.get("pid") == flows.pid and record.get("ui_url") != shown:
                shown = record.get("ui_url")
                log.info(
                    "Prefect UI on %s (log in with the auth string in %s)", shown, prefect_auth_path(settings)
                )

    threading.Thread(target=announce, name="prefect-ui-announce", daemon=True).start()


def _wait_for_signal(stop: threading.Event, children: dict[str, subprocess.Popen[bytes]]) -> None:
    """Until SIGINT/SIGTERM, the engine stopping, or a child process dying."""

    def handler(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    while not stop.is_set():
        for name, child in children.items():
            if child.poll() is not None:
                log.error("the %s process exited (code %s); stopping", name, child.returncode)
                stop.set()
        stop.wait(0.2)


def serve_apis(settings: Settings) -> int:
    """`tradeos serve-apis` (internal, started by `tradeos up`): the three HTTP apps in one process, on uvloop."""
    _configure_logging(settings, file_name="apis.log")
    stop = threading.Event()
    try:
        import uvloop

        uvloop.run(_serve_apis(settings, stop))
    except ImportError:
        asyncio.run(_serve_apis(settings, stop))
    return 0


async def _serve_apis(settings: Settings, stop: threading.Event) -> None:
    import uvicorn

    from api.dashboard import create_app as create_dashboard_app
    from api.metrics import create_app as create_metrics_app
    from api.operator import create_app as create_operator_app
    from api.operator import server_config

    class _Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:  # we handle signals for both servers
            yield

    servers = [
        # log_config=None: uvicorn's own records go through our handlers (and our JSON format), not its console.
        _Server(server_config(app, host=settings.api.host, port=port, log_level="warning", log_config=None))
        for app, port in (
            (create_operator_app(settings), settings.api.api_port),
            (create_metrics_app(settings), settings.api.metrics_port),
            (create_dashboard_app(settings), settings.api.dashboard_port),
        )
    ]
    loop = asyncio.get_running_loop()

    def shutdown() -> None:
        stop.set()
        for server in servers:
            server.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, shutdown)

    async def watch_engine() -> None:
        # The engine thread sets a threading.Event; wait for it off the loop.
        await asyncio.to_thread(stop.wait)
        shutdown()

    log.info(
        "operator API on http://%s:%d, metrics API on http://%s:%d, dashboard on http://%s:%d",
        settings.api.host,
        settings.api.api_port,
        settings.api.host,
        settings.api.metrics_port,
        settings.api.host,
        settings.api.dashboard_port,
    )
    runtime.settle_heap()  # no full collection stalls the loop in the middle of a halt (api/runtime.py)
    tasks = [asyncio.create_task(server.serve()) for server in servers]
    tasks.append(asyncio.create_task(watch_engine()))
    # Whichever ends first (a signal, the engine stopping, a server failing) brings the others down.
    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    shutdown()
    await asyncio.gather(*tasks, return_exceptions=True)


if __name__ == "__main__":
    sys.exit(main())
