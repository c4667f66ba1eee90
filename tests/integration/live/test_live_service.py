"""The live service end to end: `tradeos up` against real PostgreSQL and Redis (engine only; the APIs have
their own suites)."""

from __future__ import annotations

import json
import signal
import time
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

import psycopg
import pytest
import redis

from live.feeds.sim import SimFeed
from live.stores import redis_keys as keys
from tests.support import Service, eventually, run_cli

ENGINE_ONLY = ["up", "--no-api", "--no-flows"]


def _env(database_url: str, redis_url: str, **extra: str) -> dict[str, str]:
    return {"TRADEOS_DATABASE_URL": database_url, "TRADEOS_REDIS_URL": redis_url, **extra}


def _scalar(url: str, sql: str, params=()):
    with psycopg.connect(url) as conn:
        row = conn.execute(sql, params).fetchone()
        return row[0] if row else None


def _sim_replay(path: Path, days: float = 1.0, seed: int = 21) -> Path:
    """A replay file made from the sim feed: realistic enough that the engine trades on it."""
    lines = ["timestamp,symbol,open,high,low,close,volume"]
    for batch in SimFeed(sim_days=days, seed=seed).batches():
        for b in batch:
            lines.append(
                f"{b.timestamp.isoformat().replace('+00:00', 'Z')},{b.symbol},{b.open!r},{b.high!r},"
                f"{b.low!r},{b.close!r},{b.volume!r}"
            )
    path.write_text("\n".join(lines) + "\n")
    return path


def _wait_feed_done(service: Service, timeout: float = 120) -> None:
    eventually(lambda: "feed finished" in service.output, timeout=timeout, what="the feed to finish")


def test_a_replay_books_every_fill_at_the_next_open_and_the_book_adds_up_to_the_cent(
    tmp_path: Path, database_url: str, redis_url: str
):
    data = _sim_replay(tmp_path / "bars.csv")
    opens: dict[tuple[str, str], Decimal] = {}
    for line in data.read_text().splitlines()[1:]:
        ts, symbol, open_, *_ = line.split(",")
        opens[(ts, symbol)] = Decimal(open_)
    args = [*ENGINE_ONLY, "--feed", "replay", "--data", str(data), "--speed", "0"]
    with Service(tmp_path / "home", args, _env(database_url, redis_url, TRADEOS_PROFILE="aggressive")) as svc:
        _wait_feed_done(svc)
        eventually(
            lambda: _scalar(database_url, "SELECT count(*) FROM bars") == 1440 * 8, what="bars committed"
        )
        snapshot = eventually(lambda: redis.Redis.from_url(redis_url).get(keys.PORTFOLIO), what="snapshot")
    with psycopg.connect(database_url) as conn:
        fills = conn.execute(
            "SELECT f.id, f.timestamp, f.symbol, f.side, f.quantity, f.price, f.fee, f.realized_pnl, o.timestamp"
            " FROM fills f JOIN orders o ON o.id = f.order_id ORDER BY f.timestamp, f.id"
        ).fetchall()
        positions = {
            r[0]: (r[1], r[2]) for r in conn.execute("SELECT symbol, quantity, avg_price FROM positions")
        }
    assert len(fills) > 20

    cash = Decimal("100000")
    book: dict[str, tuple[int, Decimal]] = {}
    for fid, ts, symbol, side, qty, price, fee, realized, decided in fills:
        assert ts == decided + timedelta(minutes=1), f"{fid} did not fill on the bar after its decision"
        open_ = opens[(ts.astimezone(UTC).isoformat().replace("+00:00", "Z"), symbol)]
        slip = Decimal("1.0002") if side == "buy" else Decimal("0.9998")
        assert price == (open_ * slip).quantize(Decimal("0.0001"), ROUND_HALF_EVEN), (
            fid
        )  # replay has no spread
        assert fee == (qty * price * Decimal("0.0001")).quantize(Decimal("0.01"), ROUND_HALF_EVEN)
        held, avg = book.get(symbol, (0, Decimal(0)))
        signed = qty if side == "buy" else -qty
        if held == 0 or (held > 0) == (signed > 0):
            expected_realized = Decimal(0)
            avg = ((abs(held) * avg + qty * price) / abs(held + signed)).quantize(Decimal("0.00000001"))
        else:
            expected_realized = qty * (price - avg) * (1 if held > 0 else -1)
        assert realized == expected_realized, fid
        held += signed
        book[symbol] = (held, avg if held else Decimal(0))
        cash -= signed * price + fee
    for symbol, (qty, avg) in book.items():
        assert positions[symbol][0] == qty
        if qty:
            assert positions[symbol][1] == avg
    state = json.loads(snapshot)
    assert Decimal(repr(state["cash"])) == cash.quantize(Decimal("0.0001"))
    assert {p["symbol"]: p["quantity"] for p in state["positions"]} == {
        s: q for s, (q, _) in book.items() if q
    }


def test_the_same_seed_gives_the_same_fills_on_two_fresh_systems(
    tmp_path: Path, database_url: str, redis_url: str, pg_admin_url: str
):
    other = database_url.rsplit("/", 1)[0] + "/" + database_url.rsplit("/", 1)[1] + "_b"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{other.rsplit("/", 1)[1]}"')
    try:
        runs = []
        for i, url in enumerate((database_url, other)):
            redis.Redis.from_url(redis_url).flushdb()
            args = [*ENGINE_ONLY, "--speed", "0", "--sim-days", "1", "--seed", "99"]
            with Service(tmp_path / f"home{i}", args, _env(url, redis_url)) as svc:
                _wait_feed_done(svc)
            with psycopg.connect(url) as conn:
                runs.append(conn.execute("SELECT id, price, quantity, fee FROM fills ORDER BY id").fetchall())
        assert runs[0]
        assert runs[0] == runs[1]
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{other.rsplit("/", 1)[1]}" WITH (FORCE)')


def test_the_kill_switch_set_by_hand_halts_within_a_second_and_only_an_explicit_resume_resumes(
    tmp_path: Path, database_url: str, redis_url: str
):
    r = redis.Redis.from_url(redis_url)
    args = [*ENGINE_ONLY, "--speed", "3000", "--sim-days", "20", "--profile", "aggressive"]
    with Service(tmp_path / "home", args, _env(database_url, redis_url)):
        eventually(lambda: _scalar(database_url, "SELECT count(*) FROM orders") > 0, what="first orders")
        set_at = datetime.now(UTC)
        r.set(keys.KILL_SWITCH, "1")
        halted_at = eventually(
            lambda: _scalar(
                database_url, "SELECT timestamp FROM control_actions WHERE actor = 'kill_switch'"
            ),
            what="the kill-switch halt to be recorded",
        )
        assert halted_at - set_at < timedelta(seconds=1)
        assert json.loads(r.get(keys.TRADING_STATE))["state"] == "halted"
        submitted = _scalar(database_url, "SELECT count(*) FROM orders WHERE status <> 'rejected'")
        r.delete(keys.KILL_SWITCH)
        # Bars keep flowing (the bar count grows) but nothing is submitted and the state stays halted.
        bars = _scalar(database_url, "SELECT count(*) FROM bars")
        eventually(lambda: _scalar(database_url, "SELECT count(*) FROM bars") > bars + 2000, what="more bars")
        assert json.loads(r.get(keys.TRADING_STATE))["state"] == "halted"
        later = _scalar(database_url, "SELECT count(*) FROM orders WHERE status <> 'rejected'")
        assert later == submitted
        r.publish(
            keys.control_channel(r.connection_pool.connection_kwargs["db"]),
            json.dumps({"id": "t-resume", "command": "resume", "actor": "test", "reason": "done"}),
        )
        ack = r.blpop([keys.control_ack_key("t-resume")], timeout=5)
        assert ack is not None
        assert json.loads(ack[1])["state"] == "active"
        eventually(
            lambda: _scalar(database_url, "SELECT count(*) FROM orders WHERE status <> 'rejected'") > later,
            what="trading to resume",
        )


def test_when_the_feed_ends_the_published_portfolio_is_the_last_bars_and_follows_a_later_halt(
    tmp_path: Path, database_url: str, redis_url: str
):
    """The snapshot behind /portfolio and the WebSocket is coalesced (a few a second); the last bars' one used to
    fall inside that window when the feed ended, and the service then showed a book hours of bars old for good."""
    r = redis.Redis.from_url(redis_url)
    args = [*ENGINE_ONLY, "--speed", "0", "--sim-days", "8", "--seed", "5", "--profile", "aggressive"]
    with Service(tmp_path / "home", args, _env(database_url, redis_url)) as service:
        _wait_feed_done(service)
        last_bar = _scalar(database_url, "SELECT max(timestamp) FROM bars")
        assert last_bar == datetime(2026, 1, 12, 23, 59, tzinfo=UTC)
        last_value = _scalar(database_url, "SELECT total_value FROM equity ORDER BY timestamp DESC LIMIT 1")

        def snapshot() -> dict:
            return json.loads(r.get(keys.PORTFOLIO) or b"{}")

        shown = eventually(
            lambda: (data := snapshot()).get("timestamp") == "2026-01-12T23:59:00Z" and data,
            timeout=10,
            what=f"the snapshot of the last bar (shown: {snapshot().get('timestamp')})",
        )
        assert Decimal(str(shown["total_value"])) == last_value
        assert shown["trading_state"] == "active"
        r.set(keys.KILL_SWITCH, "1")  # no bar will come: the snapshot must follow the state all the same
        eventually(lambda: snapshot().get("trading_state") == "halted", timeout=10, what="a halted snapshot")


def test_a_second_engine_against_the_same_stores_refuses_to_trade_until_the_first_lets_go(
    tmp_path: Path, database_url: str, redis_url: str
):
    args = [*ENGINE_ONLY, "--speed", "600", "--sim-days", "5"]
    env = _env(database_url, redis_url)
    with Service(tmp_path / "a", args, env) as first:
        eventually(lambda: "holds the book" in first.output, what="the first engine to take the lease")
        with Service(tmp_path / "b", args, env) as second:
            eventually(lambda: "stands by" in second.output, what="the second engine to stand by")
            token = _scalar(database_url, "SELECT token FROM engine_lease")
            time.sleep(1.0)  # give a misbehaving second engine the chance to write: it must not
            assert "holds the book (fencing" not in second.output
            assert _scalar(database_url, "SELECT token FROM engine_lease") == token
            assert first.stop() == 0
            eventually(
                lambda: "holds the book (fencing" in second.output, what="the second engine to take over"
            )
            assert _scalar(database_url, "SELECT token FROM engine_lease") == token + 1


def test_a_replay_file_with_a_bad_row_is_refused_with_its_line_number(
    tmp_path: Path, database_url: str, redis_url: str
):
    data = tmp_path / "bad.csv"
    data.write_text(
        "timestamp,symbol,open,high,low,close,volume\n"
        "2026-01-05T00:00:00Z,AAA,10,10.5,9.5,10.2,100\n"
        "2026-01-05T00:01:00Z,AAA,10.2,10.4,10.1,10.3,100\n"
        "2026-01-05T00:02:00Z,AAA,-1,10.4,10.1,10.3,100\n"
    )
    code, output = run_cli(
        tmp_path / "home",
        [*ENGINE_ONLY, "--feed", "replay", "--data", str(data)],
        _env(database_url, redis_url),
    )
    assert code == 2
    assert "line 4" in output
    assert "open" in output
    assert len(output.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("env", "args", "named"),
    [
        ({"TRADEOS_PROFILE": "yolo"}, [], "TRADEOS_PROFILE"),
        ({"TRADEOS_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/nope"}, [], "TRADEOS_DATABASE_URL"),
        ({"TRADEOS_REDIS_URL": "redis://127.0.0.1:1/0"}, [], "TRADEOS_REDIS_URL"),
        ({}, ["--speed", "-1"], "--speed"),
    ],
)
def test_a_bad_setting_stops_startup_with_one_line_naming_it_and_exit_code_2(
    tmp_path: Path, database_url: str, redis_url: str, env, args, named
):
    code, output = run_cli(tmp_path / "home", [*ENGINE_ONLY, *args], {**_env(database_url, redis_url), **env})
    assert code == 2
    assert named in output
    assert len(output.strip().splitlines()) == 1


def test_a_restart_continues_from_the_last_committed_bar_with_the_same_book(
    tmp_path: Path, database_url: str, redis_url: str
):
    env = _env(database_url, redis_url, TRADEOS_PROFILE="aggressive")
    with Service(tmp_path / "home", [*ENGINE_ONLY, "--speed", "0", "--sim-days", "1"], env) as svc:
        _wait_feed_done(svc)
    snapshot = json.loads(redis.Redis.from_url(redis_url).get(keys.PORTFOLIO))
    fills = _scalar(database_url, "SELECT count(*) FROM fills")
    with Service(tmp_path / "home", [*ENGINE_ONLY, "--speed", "0", "--sim-days", "2"], env) as svc:
        _wait_feed_done(svc)
        assert f"recovered: {fills} fills" in svc.output
    assert _scalar(database_url, "SELECT count(*) FROM bars") == 2 * 1440 * 8
    assert _scalar(database_url, "SELECT count(DISTINCT (timestamp, symbol)) FROM bars") == 2 * 1440 * 8
    with psycopg.connect(database_url) as conn:
        day_one = conn.execute(
            "SELECT total_value, cash FROM equity WHERE timestamp < '2026-01-06' ORDER BY timestamp DESC LIMIT 1"
        ).fetchone()
    assert float(day_one[1]) == pytest.approx(snapshot["cash"], abs=1e-4)


def test_make_up_style_start_uses_embedded_servers_and_leaves_no_orphans(embedded_home: Path):
    home = embedded_home
    with Service(home, [*ENGINE_ONLY, "--speed", "0", "--sim-days", "0.5"]) as svc:
        _wait_feed_done(svc, timeout=120)
        pg_info = json.loads((home / "run" / "postgres.json").read_text())
        redis_info = json.loads((home / "run" / "redis.json").read_text())
        with psycopg.connect(pg_info["url"]) as conn:
            assert conn.execute("SELECT count(*) FROM bars").fetchone()[0] == 720 * 8
        assert svc.stop(signal.SIGINT) == 0
    for pid in (pg_info["pid"], redis_info["pid"]):
        eventually(lambda pid=pid: not Path(f"/proc/{pid}").exists(), timeout=10, what=f"pid {pid} to exit")
