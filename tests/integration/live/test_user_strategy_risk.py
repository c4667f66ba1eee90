"""A user strategy that asks for too much, run by `tradeos up` against PostgreSQL and Redis: the engine sizes and
checks its orders as it does the built-in strategy's, so the record holds exactly the orders, refusals (with their
reasons) and risk events the pure engine gives for the same bars."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from textwrap import dedent

import psycopg

from live.assembly import build_engine
from live.feeds.replay import ReplayFeed
from live.profiles import get_profile
from live.settings import Settings
from live.strategy.loading import load_strategy
from tests.factories import T0, trending_rows, write_replay_csv
from tests.support import Service, eventually

GREEDY = dedent(
    """
    from live.strategy.api import SignalStrategy
    from live.strategy.base import TargetPosition


    class Greedy(SignalStrategy):
        '''Every symbol long at once, then every symbol flat, bar after bar.'''

        name = "greedy"
        bars = 0

        def targets(self, cross_section, *, profile, book):
            self.bars += 1
            direction = 1 if self.bars % 2 else 0
            return [TargetPosition(symbol=s, direction=direction, signal_type="greed") for s in cross_section.bars]
    """
)
SYMBOLS = ("AAA", "BBB", "CCC", "DDD", "EEE", "FFF", "GGG", "HHH")


def _ten_second_bars(path: Path) -> Path:
    """Eight symbols, a bar every 10 s for 10 minutes: an order a symbol a bar is 48 a minute, more than the
    conservative profile's order rate (20) allows."""
    rows = [(T0 + (ts - T0) / 6, *rest) for ts, *rest in trending_rows(SYMBOLS, 60)]
    return write_replay_csv(path, rows)  # type: ignore[arg-type]


def test_a_greedy_user_strategy_is_sized_and_refused_by_the_engines_checks(
    tmp_path: Path, database_url: str, redis_url: str
) -> None:
    path = tmp_path / "greedy.py"
    path.write_text(GREEDY)
    spec = f"{path}:Greedy"
    data = _ten_second_bars(tmp_path / "bars.csv")
    env = {"TRADEOS_DATABASE_URL": database_url, "TRADEOS_REDIS_URL": redis_url}
    args = ["up", "--no-api", "--no-flows", "--speed", "0", "--feed", "replay", "--data", str(data)]
    with Service(tmp_path / "home", [*args, "--profile", "conservative", "--strategy", spec], env) as service:
        eventually(lambda: "feed finished" in service.output, timeout=120, what="the feed to finish")
    with psycopg.connect(database_url) as conn:
        recorded_orders = conn.execute("SELECT id, side, quantity, status, reason FROM orders").fetchall()
        recorded_events = conn.execute(
            "SELECT code, symbol, halts_trading FROM risk_events ORDER BY id"
        ).fetchall()

    feed = ReplayFeed.from_path(data)
    engine = build_engine(
        Settings().engine,
        symbols=feed.symbols,
        profile=get_profile("conservative"),
        strategy=load_strategy(spec),
    )
    for batch in feed.batches():
        engine.step(batch)
    out = engine.take_outbox()
    final = {order.id: order for order in out.orders}
    for order_id, status in out.order_updates:  # an order's last word: submitted, then filled
        final[order_id] = dataclasses.replace(final[order_id], status=status)

    assert sorted(recorded_orders) == sorted(
        (o.id, o.side.value, o.quantity, o.status.value, o.reason) for o in final.values()
    )
    assert recorded_events == [(e.code, e.symbol, e.halts_trading) for e in out.risk_events]
    assert {reason for *_, status, reason in recorded_orders if status == "rejected"} == {
        "ORDER_RATE_THROTTLE"
    }
    assert {code for code, *_ in recorded_events} >= {"ORDER_RATE_THROTTLE"}
