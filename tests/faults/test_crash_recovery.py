"""Crash: `kill -9` of the whole service at several points of a full-speed replay, then a restart.

Nothing is lost or duplicated, the book equals a recomputation from the recorded fills, the engine continues from
the last bar it committed, and — the engine being deterministic — the end state equals an uninterrupted run's."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from tests.faults.conftest import PrivatePostgres, PrivateRedis
from tests.faults.desk import (
    ENGINE_ONLY,
    fills_in_order,
    recompute_book,
    rows,
    scalar,
    sim_replay,
    wait_feed_done,
)
from tests.support import Service, eventually

pytestmark = pytest.mark.faults

CRASHES = 5


def _env(database_url: str, redis_url: str) -> dict[str, str]:
    return {
        "TRADEOS_DATABASE_URL": database_url,
        "TRADEOS_REDIS_URL": redis_url,
        "TRADEOS_PROFILE": "aggressive",
        "TRADEOS_LEASE_TTL_SECONDS": "1",
    }


def _committed_bars(url: str) -> int:
    return int(scalar(url, "SELECT count(*) FROM bars") or 0)


def _record(url: str) -> dict[str, list[tuple[object, ...]]]:
    """The parts of the record a crash must not change."""
    return {
        "fills": rows(
            url,
            "SELECT id, order_id, timestamp, symbol, side, quantity, price, fee, signal_type, realized_pnl"
            " FROM fills ORDER BY id",
        ),
        "orders": rows(
            url, "SELECT id, timestamp, symbol, side, quantity, status, reason FROM orders ORDER BY id"
        ),
        "positions": rows(
            url, "SELECT symbol, quantity, avg_price, realized_pnl FROM positions ORDER BY symbol"
        ),
        "equity": rows(url, "SELECT timestamp, total_value, cash FROM equity ORDER BY timestamp"),
    }


def _first_difference(
    table: str,
    crashed: dict[str, list[tuple[object, ...]]],
    reference: dict[str, list[tuple[object, ...]]],
    *,
    crashed_url: str,
    reference_url: str,
) -> str:
    """Where the crashed run's `table` first leaves the uninterrupted run's, with each run's risk events and
    control actions around that time: enough to tell a recovery defect from a fail-closed refusal under load."""
    ours, theirs = crashed[table], reference[table]
    index = next(
        (i for i, (a, b) in enumerate(zip(ours, theirs, strict=False)) if a != b), min(len(ours), len(theirs))
    )
    row = (ours[index : index + 1] or theirs[index : index + 1] or [()])[0]
    moment = next((v for v in row if hasattr(v, "tzinfo")), None)
    context = ""
    if moment is not None:
        window = (moment - timedelta(minutes=5), moment + timedelta(minutes=1))
        for name, url in (("crashed", crashed_url), ("reference", reference_url)):
            events = rows(
                url,
                "SELECT timestamp, code, symbol, left(detail, 80) FROM risk_events"
                " WHERE timestamp BETWEEN %s AND %s ORDER BY id",
                window,
            )
            actions = rows(url, "SELECT timestamp, action, actor, reason FROM control_actions ORDER BY id")
            context += (
                f"\n{name} risk events near {moment}: {events}\n{name} control actions: {actions[-10:]}"
            )
    return (
        f"{table} differ from the uninterrupted run at row {index} of {len(ours)} (reference: {len(theirs)}):"
        f"\n crashed:   {ours[index : index + 2]}\n reference: {theirs[index : index + 2]}{context}"
    )


def test_kill_9_mid_replay_loses_and_duplicates_nothing_and_ends_where_an_uninterrupted_run_ends(
    tmp_path: Path, private_postgres: PrivatePostgres, private_redis: PrivateRedis
) -> None:
    data, total_bars = sim_replay(tmp_path / "bars.csv", days=6.0)
    args = [*ENGINE_ONLY, "--feed", "replay", "--data", str(data), "--speed", "0"]
    reference_url = private_postgres.create_database()
    crashed_url = private_postgres.create_database()
    try:
        with Service(tmp_path / "reference", args, _env(reference_url, private_redis.url)) as service:
            wait_feed_done(service)
        private_redis.client().flushall()

        killed_at: list[int] = []
        for _ in range(CRASHES):
            service = Service(tmp_path / "crashed", args, _env(crashed_url, private_redis.url))
            # Killed as soon as this run has committed a batch of its own: the engine runs fast.
            target = (killed_at[-1] + 1) if killed_at else 1
            eventually(
                lambda target=target, service=service: (
                    _committed_bars(crashed_url) >= target or "feed finished" in service.output
                ),
                timeout=120,
                what=f"{target} bars committed",
            )
            service.kill()
            killed_at.append(_committed_bars(crashed_url))
        with Service(tmp_path / "crashed", args, _env(crashed_url, private_redis.url)) as service:
            wait_feed_done(service)
            fills_before_last_start = service.output.split("recovered: ", 1)[1].split(" ", 1)[0]
            snapshot = json.loads(eventually(lambda: private_redis.client().get("tradeos:portfolio")))

        print(f"killed with {killed_at} of {total_bars} bars committed")
        # The crashes really happened mid-run, at distinct points.
        assert all(0 < n < total_bars for n in killed_at), killed_at
        assert killed_at == sorted(set(killed_at)), killed_at

        # No bar twice, none skipped.
        assert _committed_bars(crashed_url) == total_bars
        assert scalar(crashed_url, "SELECT count(DISTINCT (timestamp, symbol)) FROM bars") == total_bars

        # No fill duplicated or lost: one fill per filled order, on the bar after the decision; only the last
        # bar's orders are still waiting.
        assert not rows(crashed_url, "SELECT order_id FROM fills GROUP BY order_id HAVING count(*) > 1")
        unfilled = rows(
            crashed_url,
            "SELECT o.id FROM orders o LEFT JOIN fills f ON f.order_id = o.id"
            " WHERE o.status = 'filled' AND f.id IS NULL",
        )
        assert not unfilled
        last_bar = scalar(crashed_url, "SELECT max(timestamp) FROM bars")
        waiting = rows(crashed_url, "SELECT id, timestamp FROM orders WHERE status = 'submitted'")
        assert all(ts == last_bar for _, ts in waiting), waiting
        for fill_id, fill_ts, order_ts in rows(
            crashed_url,
            "SELECT f.id, f.timestamp, o.timestamp FROM fills f JOIN orders o ON o.id = f.order_id",
        ):
            assert fill_ts == order_ts + timedelta(minutes=1), fill_id

        # The book equals a recomputation from the fills alone.
        book = recompute_book(fills_in_order(crashed_url))
        positions = {
            symbol: (quantity, Decimal(avg), Decimal(realized))
            for symbol, quantity, avg, realized in rows(
                crashed_url, "SELECT symbol, quantity, avg_price, realized_pnl FROM positions"
            )
        }
        for symbol, (quantity, avg) in book.positions.items():
            assert positions[symbol][0] == quantity, symbol
            if quantity:
                assert positions[symbol][1] == avg, symbol
        assert sum(p[2] for p in positions.values()) == book.realized_pnl
        assert Decimal(repr(snapshot["cash"])) == book.cash.quantize(Decimal("0.0001"))
        assert Decimal(repr(snapshot["realized_pnl"])) == book.realized_pnl.quantize(Decimal("0.0001"))
        assert {p["symbol"]: p["quantity"] for p in snapshot["positions"]} == {
            s: q for s, (q, _) in book.positions.items() if q
        }
        assert int(fills_before_last_start) > 0

        # The strongest check: crash and recovery changed nothing.
        crashed, reference = _record(crashed_url), _record(reference_url)
        assert len(reference["fills"]) > 20
        for table in ("fills", "orders", "positions", "equity"):
            assert crashed[table] == reference[table], _first_difference(
                table, crashed, reference, crashed_url=crashed_url, reference_url=reference_url
            )
    finally:
        private_postgres.drop_database(reference_url)
        private_postgres.drop_database(crashed_url)
