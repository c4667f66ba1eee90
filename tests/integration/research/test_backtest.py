"""`tradeos backtest` (issue 11): the live engine, broker and risk checks on a replay file, in-process, with nothing
written to the live system: its fills, orders and equity are those `tradeos up --feed replay` records, and its
results file and summary say what its fills say."""

from __future__ import annotations

import contextlib
import json
import math
import os
import pty
import stat
import subprocess
import sys
import threading
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import empyrical
import numpy as np
import psycopg
import pytest
import redis

from analytics.regime_model import feature_matrix, promote, save, train
from live.feeds.replay import ReplayFeed
from tests.integration.research.backtest_support import backtest, sim_replay
from tests.support import Service, eventually

ENGINE_ONLY = ["up", "--no-api", "--no-flows"]
RESULT_TABLES = ("orders", "fills", "equity", "signals", "risk_events", "summary")
FILL_COLUMNS = "id, order_id, timestamp, symbol, side, quantity, price, fee, signal_type, realized_pnl"
ORDER_COLUMNS = "id, timestamp, symbol, side, quantity, signal_type, reduces_position, status, reason"


@pytest.fixture(scope="module")
def two_days(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sim_replay(tmp_path_factory.mktemp("data") / "two_days.csv", days=2)


def _pg(url: str, sql: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchall()


def _duck(path: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        return conn.execute(sql).fetchall()


def _utc(rows: list[tuple]) -> list[tuple]:
    """Times compared as instants in UTC, whichever zone the driver stamps them with."""
    return [tuple(v.astimezone(UTC) if isinstance(v, datetime) else v for v in row) for row in rows]


def _postgres_fingerprint(url: str) -> dict[str, tuple[int, str]]:
    """Every table of the record: its row count and a digest of its content."""
    with psycopg.connect(url) as conn:
        tables = [
            name
            for (name,) in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
            )
        ]
        return {
            table: conn.execute(
                f"SELECT count(*), coalesce(md5(string_agg(t::text, ',' ORDER BY t::text)), '') FROM \"{table}\" t"
            ).fetchone()
            for table in tables
        }


def _redis_fingerprint(url: str) -> dict[bytes, bytes | None]:
    client = redis.Redis.from_url(url)
    try:
        return {key: client.dump(key) for key in sorted(client.scan_iter())}
    finally:
        client.close()


def test_a_backtest_gives_the_fills_orders_and_equity_up_records_and_touches_nothing_live(
    tmp_path: Path, two_days: Path, database_url: str, redis_url: str
) -> None:
    home = tmp_path / "home"
    env = {"TRADEOS_DATABASE_URL": database_url, "TRADEOS_REDIS_URL": redis_url}
    with Service(
        home, [*ENGINE_ONLY, "--feed", "replay", "--data", str(two_days), "--speed", "0"], env
    ) as service:
        eventually(lambda: "feed finished" in service.output, timeout=240, what="the replay to finish")
    record_before = _postgres_fingerprint(database_url)
    redis_before = _redis_fingerprint(redis_url)
    assert record_before["fills"][0] > 100, "the replay traded too little to compare"

    done = backtest(home, ["--data", str(two_days), "--out", str(tmp_path / "run")], env)

    assert done.returncode == 0, done.stderr
    results = tmp_path / "run" / "results.duckdb"
    by_id = f"SELECT {FILL_COLUMNS} FROM fills ORDER BY id"
    assert _utc(_duck(results, by_id)) == _utc(_pg(database_url, by_id))
    orders = f"SELECT {ORDER_COLUMNS} FROM orders ORDER BY id"
    assert _utc(_duck(results, orders)) == _utc(_pg(database_url, orders))
    equity = "SELECT timestamp, total_value, cash FROM equity ORDER BY timestamp"
    assert _utc(_duck(results, equity)) == _utc(_pg(database_url, equity))
    # Nothing live was touched: the record, Redis and the live analytics file are as `up` left them.
    assert _postgres_fingerprint(database_url) == record_before
    assert _redis_fingerprint(redis_url) == redis_before
    assert not (home / "analytics.duckdb").exists()


def _closed_trades(fills: list[tuple]) -> list[Decimal]:
    """Each flat-to-flat position's P&L (realized - fees), from the fills alone."""
    held: dict[str, int] = {}
    running: dict[str, Decimal] = {}
    trades = []
    for side, symbol, quantity, fee, realized in fills:
        held[symbol] = held.get(symbol, 0) + (quantity if side == "buy" else -quantity)
        running[symbol] = running.get(symbol, Decimal(0)) + realized - fee
        if held[symbol] == 0:
            trades.append(running.pop(symbol))
    return trades


def test_the_results_hold_every_table_and_a_summary_recomputed_from_the_fills(
    tmp_path: Path, two_days: Path
) -> None:
    done = backtest(tmp_path / "home", ["--data", str(two_days), "--out", str(tmp_path / "run"), "--json"])

    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    results = tmp_path / "run" / "results.duckdb"
    assert summary["results"] == str(results)
    assert Path(summary["report"]).read_text().count("<svg") >= 7
    assert "By regime and signal type" in Path(summary["report"]).read_text()
    counts = {table: _duck(results, f"SELECT count(*) FROM {table}")[0][0] for table in RESULT_TABLES}
    assert counts == {
        "orders": summary["orders"],
        "fills": summary["fills"],
        "equity": 2 * 1440,
        "signals": summary["signals"],
        "risk_events": summary["risk_events"],
        "summary": 1,
    }
    assert summary["fills"] > 100
    assert summary["bars"] == 2 * 1440 * 8
    money = _duck(results, "SELECT data_type FROM information_schema.columns WHERE column_name = 'price'")
    assert money == [("DECIMAL(24,8)",)]
    stamps = _duck(
        results, "SELECT data_type FROM information_schema.columns WHERE column_name = 'timestamp'"
    )
    assert set(stamps) == {("TIMESTAMP WITH TIME ZONE",)}
    assert _duck(results, "SELECT run_id, final_equity FROM summary") == [
        (summary["run_id"], Decimal(summary["final_equity"]))
    ]

    fills = _duck(
        results, "SELECT side, symbol, quantity, fee, realized_pnl, price FROM fills ORDER BY timestamp, id"
    )
    initial = Decimal(summary["initial_cash"])
    assert Decimal(summary["realized_pnl"]) == sum(f[4] for f in fills)
    assert Decimal(summary["fees"]) == sum(f[3] for f in fills)
    cash = initial - sum((f[2] if f[0] == "buy" else -f[2]) * f[5] + f[3] for f in fills)
    held: dict[str, int] = {}
    for side, symbol, quantity, *_ in fills:
        held[symbol] = held.get(symbol, 0) + (quantity if side == "buy" else -quantity)
    last_close = dict(_duck(results, "SELECT symbol, arg_max(close, timestamp) FROM bars GROUP BY symbol"))
    final = cash + sum(q * Decimal(repr(last_close[s])) for s, q in held.items())
    assert Decimal(summary["final_equity"]) == final
    assert Decimal(summary["net_pnl"]) == final - initial

    trades = _closed_trades([f[:5] for f in fills])
    assert summary["total_trades"] == len(trades)
    assert summary["win_rate"] == pytest.approx(sum(t > 0 for t in trades) / len(trades), rel=1e-12)
    gains, losses = sum(t for t in trades if t > 0), -sum(t for t in trades if t < 0)
    assert summary["profit_factor"] == pytest.approx(float(gains / losses), rel=1e-9)

    equity = _duck(results, "SELECT timestamp, total_value FROM equity ORDER BY timestamp")
    closing: dict[date, float] = {}
    for at, value in equity:
        closing[at.astimezone(UTC).date()] = float(value)
    levels = [float(initial), *closing.values()]
    returns = np.diff(levels) / np.array(levels[:-1])
    assert summary["total_return"] == pytest.approx(empyrical.cum_returns_final(returns), rel=1e-9)
    assert summary["sharpe_ratio"] == pytest.approx(
        empyrical.sharpe_ratio(returns, risk_free=0, annualization=252), rel=1e-9
    )
    assert summary["annualized_return"] == pytest.approx(
        empyrical.annual_return(returns, annualization=252), rel=1e-9
    )
    values = np.array([float(v) for _, v in equity])
    assert summary["max_drawdown"] == pytest.approx(
        float(np.max(1 - values / np.maximum.accumulate(values))), rel=1e-9
    )
    assert math.isfinite(summary["sortino_ratio"])


def test_the_default_results_directory_is_a_private_run_directory_under_home(
    tmp_path: Path, two_days: Path
) -> None:
    home = tmp_path / "home"

    done = backtest(home, ["--data", str(two_days)])

    assert done.returncode == 0, done.stderr
    (run,) = (home / "backtests").iterdir()
    assert sorted(p.name for p in run.iterdir()) == ["report.html", "results.duckdb"]
    for path in (home, home / "backtests", run):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700
    for path in run.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0
    assert f"results: {run / 'results.duckdb'}" in done.stdout
    assert done.stderr == "", "no progress bar when stderr is not a terminal"


def _bad_csv(tmp_path: Path) -> Path:
    path = tmp_path / "bad.csv"
    path.write_text("timestamp,symbol,open,high,low,close,volume\n2026-01-05T00:00:00Z,AAPL,1,2,1,x,10\n")
    return path


def _empty_csv(tmp_path: Path) -> Path:
    path = tmp_path / "empty.csv"
    path.write_text("")
    return path


def _foreign_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "thesis.txt").write_text("mine")
    return folder


def _a_file(tmp_path: Path) -> Path:
    path = tmp_path / "a_file"
    path.write_text("mine")
    return path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (lambda t, d: ["--data", str(t / "missing.csv")], "--data: "),
        (lambda t, d: ["--data", str(_bad_csv(t))], "line 2: non-numeric value 'x' in column close"),
        (lambda t, d: ["--data", str(_empty_csv(t))], "the file is empty"),
        (lambda t, d: ["--data", str(d), "--out", str(_a_file(t))], "exists and is not a directory"),
        (
            lambda t, d: ["--data", str(d), "--out", str(_foreign_dir(t))],
            "is not empty and holds no backtest",
        ),
        (lambda t, d: ["--data", str(d), "--out", str(_a_file(t) / "run")], "is not writable"),
        (lambda t, d: ["--data", str(d), "--strategy", "nonesuch"], "--strategy: unknown 'nonesuch'"),
        (lambda t, d: ["--data", str(d), "--param", "fast"], "--param: expected KEY=VALUE"),
        (
            lambda t, d: ["--data", str(d), "--param", "fast=5"],
            "--param: strategy 'builtin' takes no parameters",
        ),
    ],
    ids=[
        "missing data",
        "malformed data",
        "empty data",
        "out is a file",
        "out is someone's folder",
        "out unwritable",
        "unknown strategy",
        "param without value",
        "param the strategy does not take",
    ],
)
def test_a_bad_input_exits_2_with_one_line_and_writes_nothing(
    tmp_path: Path, two_days: Path, args, message
) -> None:
    home = tmp_path / "home"
    argv = args(tmp_path, two_days)
    before = sorted(str(p) for p in tmp_path.rglob("*"))

    done = backtest(home, argv)

    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("tradeos backtest: ")
    assert message in lines[0]
    assert not (home / "backtests").exists() or not any((home / "backtests").iterdir())
    after = sorted(str(p) for p in tmp_path.rglob("*") if not str(p).startswith(str(home)))
    assert after == [p for p in before if not p.startswith(str(home))]


def test_a_terminal_sees_a_progress_bar_on_stderr_and_stdout_stays_the_summary(
    tmp_path: Path, two_days: Path
) -> None:
    controller, terminal = pty.openpty()
    shown = bytearray()

    def read_terminal() -> None:
        with contextlib.suppress(OSError):  # EIO once the child has closed its end
            while chunk := os.read(controller, 65536):
                shown.extend(chunk)

    reader = threading.Thread(target=read_terminal, daemon=True)
    reader.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEOS_")}
    env["TRADEOS_HOME"] = str(tmp_path / "home")
    with subprocess.Popen(
        [sys.executable, "-m", "api.cli", "backtest", "--data", str(two_days), "--json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=terminal,
        text=True,
    ) as process:
        os.close(terminal)
        stdout, _ = process.communicate(timeout=300)
    reader.join(timeout=30)
    os.close(controller)

    assert process.returncode == 0
    assert json.loads(stdout)["bars"] == 2 * 1440 * 8
    assert "\r[" in shown.decode()
    assert "100.0 % 23,040/23,040 bars" in shown.decode()


def _promote_a_model(models: Path, data: Path) -> str:
    """A regime model trained on the file and promoted, as the regime-retrain flow leaves it."""
    stamps, features = feature_matrix(ReplayFeed.from_path(data).frame())
    trained = train(stamps, features, created_at=datetime(2026, 1, 7, tzinfo=UTC))
    artifact = save(trained, models)
    assert artifact is not None, trained.reason
    promote(artifact, models, promoted_at=datetime(2026, 1, 7, tzinfo=UTC))
    return artifact.name


def test_a_backtest_classifies_with_the_promoted_model_as_up_does(
    tmp_path: Path, two_days: Path, database_url: str, redis_url: str
) -> None:
    home = tmp_path / "home"
    model = _promote_a_model(home / "models", two_days)
    env = {"TRADEOS_DATABASE_URL": database_url, "TRADEOS_REDIS_URL": redis_url}
    with Service(
        home, [*ENGINE_ONLY, "--feed", "replay", "--data", str(two_days), "--speed", "0"], env
    ) as service:
        eventually(lambda: "feed finished" in service.output, timeout=240, what="the replay to finish")

    done = backtest(home, ["--data", str(two_days), "--out", str(tmp_path / "run"), "--json"], env)

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["regime_model"] == model
    results = tmp_path / "run" / "results.duckdb"
    changes = 'SELECT timestamp, previous, "current", model FROM regime_changes ORDER BY timestamp'
    assert _utc(_duck(results, changes)) == _utc(_pg(database_url, changes))
    assert any(row[3] == model for row in _duck(results, changes))
    by_id = f"SELECT {FILL_COLUMNS} FROM fills ORDER BY id"
    assert _utc(_duck(results, by_id)) == _utc(_pg(database_url, by_id))


def test_a_former_backtest_directory_is_written_again_whole(tmp_path: Path, two_days: Path) -> None:
    out = tmp_path / "run"
    first = backtest(tmp_path / "home", ["--data", str(two_days), "--out", str(out), "--json"])
    assert first.returncode == 0, first.stderr
    (out / "results.duckdb.partial").write_text("left by a run killed while writing")

    again = backtest(
        tmp_path / "home", ["--data", str(two_days), "--out", str(out), "--json", "--profile", "aggressive"]
    )

    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert _duck(out / "results.duckdb", "SELECT run_id, profile FROM summary") == [
        (summary["run_id"], "aggressive")
    ]
    assert summary["run_id"] != json.loads(first.stdout)["run_id"]
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "results.duckdb"]
