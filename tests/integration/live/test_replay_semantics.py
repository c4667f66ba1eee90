"""Replays of real-looking data through `tradeos up`: horizons are counted in each symbol's own bars whatever the
bar length, and a replay that ends before what this home already committed says so instead of trading nothing
silently (issue 12)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from live.feeds.sim import SimFeed
from live.signals import HORIZONS
from tests.support import Service, eventually

ENGINE_ONLY = ["up", "--no-api", "--no-flows"]
DAY_ONE = datetime(2015, 1, 2, tzinfo=UTC)


def _env(database_url: str, redis_url: str) -> dict[str, str]:
    return {
        "TRADEOS_DATABASE_URL": database_url,
        "TRADEOS_REDIS_URL": redis_url,
        "TRADEOS_PROFILE": "aggressive",
    }


def _daily_replay(path: Path, *, days: int, seed: int = 21) -> Path:
    """The sim feed's minute cross-sections restamped one per day: daily bars the engine trades on."""
    lines = ["timestamp,symbol,open,high,low,close,volume"]
    for n, batch in enumerate(SimFeed(sim_days=days / 1440, seed=seed).batches()):
        stamp = (DAY_ONE + timedelta(days=n)).isoformat().replace("+00:00", "Z")
        lines += [
            f"{stamp},{b.symbol},{b.open!r},{b.high!r},{b.low!r},{b.close!r},{b.volume!r}" for b in batch
        ]
    path.write_text("\n".join(lines) + "\n")
    return path


def _rows(url: str, sql: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchall()


def _feed_done(service: Service) -> None:
    eventually(lambda: "feed finished" in service.output, timeout=120, what="the feed to finish")


def test_a_daily_replay_holds_each_position_for_its_horizon_in_daily_bars(
    tmp_path: Path, database_url: str, redis_url: str
):
    data = _daily_replay(tmp_path / "daily.csv", days=1440)
    args = [*ENGINE_ONLY, "--feed", "replay", "--data", str(data), "--speed", "0"]
    with Service(tmp_path / "home", args, _env(database_url, redis_url)) as svc:
        _feed_done(svc)

    # Every symbol has a bar every day here, so a symbol's own bars held are the days between.
    fills = _rows(
        database_url,
        "SELECT f.symbol, f.timestamp, o.timestamp, o.reduces_position, f.signal_type"
        " FROM fills f JOIN orders o ON o.id = f.order_id ORDER BY f.timestamp, f.id",
    )
    opened: dict[str, tuple[datetime, str]] = {}
    held: list[tuple[str, int]] = []
    for symbol, filled_at, decided_at, reduces, signal_type in fills:
        if not reduces:
            opened[symbol] = (filled_at, signal_type)
            continue
        opened_at, opener = opened.pop(symbol)
        held.append((opener, (decided_at - opened_at).days))
    assert len(held) >= 10
    short = [(opener, days) for opener, days in held if days < HORIZONS[opener]]
    assert short == [], "positions closed before their signal's horizon (in daily bars)"
    assert _rows(database_url, "SELECT count(*) FROM risk_events WHERE code = 'STALE_FEED'") == [(0,)]


def test_a_replay_that_ends_before_the_last_committed_bar_says_so_and_how_to_start_afresh(
    tmp_path: Path, database_url: str, redis_url: str
):
    home = tmp_path / "home"
    later = _daily_replay(tmp_path / "later.csv", days=200)
    with Service(
        home,
        [*ENGINE_ONLY, "--feed", "replay", "--data", str(later), "--speed", "0"],
        _env(database_url, redis_url),
    ) as svc:
        _feed_done(svc)
    orders = _rows(database_url, "SELECT count(*) FROM orders")

    older = _daily_replay(tmp_path / "older.csv", days=100)
    with Service(
        home,
        [*ENGINE_ONLY, "--feed", "replay", "--data", str(older), "--speed", "0"],
        _env(database_url, redis_url),
    ) as svc:
        _feed_done(svc)
        output = svc.output

    ends = (DAY_ONE + timedelta(days=99)).isoformat()
    committed = (DAY_ONE + timedelta(days=199)).isoformat()
    assert (
        f"replay data ends at {ends}, before the last committed bar {committed} of this home: nothing to trade"
        in output
    )
    assert "use a fresh TRADEOS_HOME" in output
    assert _rows(database_url, "SELECT count(*) FROM orders") == orders
