"""backtrader's `Cerebro` over the bench's exported bars, run in its own virtual environment by bench/peers.py:
`python backtrader_engine.py BARS.parquet RUNS`. Prints one JSON line (bars, wall and CPU seconds of each
`cerebro.run()`, orders, version).

Per bar: backtrader loads the bar into its line buffers (preloaded inside the timed `run()`, from plain tuples by
`ListFeed`: its `PandasData` spends ~70 % of a run in pandas' `iloc` per field), synchronises the eight
feeds and calls the strategy's `next` once per timestamp, which for each feed reads the three prices and runs
`policy.SymbolPolicy.on_bar` (TRADEOS's four signal models, the composite, the threshold decision); a decision
becomes a market order of ~10,000 USD (or `close()` of the position), filled by backtrader's broker at the next
bar's open, as TRADEOS's paper broker does. The tuples are built before the clock starts; each run gets a
fresh `Cerebro`. No analyzers, no observers (`stdstats=False`).
"""

from __future__ import annotations

import json
import sys
import time

import backtrader as bt
import pandas as pd
from policy import NOTIONAL, SymbolPolicy


class PolicyStrategy(bt.Strategy):
    def __init__(self) -> None:
        self.policies = [(data, SymbolPolicy()) for data in self.datas]
        self.orders_sent = 0

    def next(self) -> None:
        for data, policy in self.policies:
            close = data.close[0]
            decision = policy.on_bar(close, data.high[0], data.low[0])
            if decision is None:
                continue
            if decision == 0:
                self.close(data=data)
            elif decision > 0:
                self.buy(data=data, size=max(1, int(NOTIONAL / close)))
            else:
                self.sell(data=data, size=max(1, int(NOTIONAL / close)))
            self.orders_sent += 1


Row = tuple[float, float, float, float, float, float]


class ListFeed(bt.feed.DataBase):
    """Bars from a list of (date number, open, high, low, close, volume): the cheapest load backtrader offers."""

    params = (("rows", None),)

    def start(self) -> None:
        super().start()
        self._rows = iter(self.p.rows)

    def _load(self) -> bool:
        row = next(self._rows, None)
        if row is None:
            return False
        lines = self.lines
        lines.datetime[0], lines.open[0], lines.high[0], lines.low[0], lines.close[0], lines.volume[0] = row
        lines.openinterest[0] = 0.0
        return True


def load(path: str) -> list[tuple[str, list[Row]]]:
    frame = pd.read_parquet(path)
    feeds = []
    for symbol, rows in frame.groupby("symbol", sort=True):
        times = rows["timestamp"].dt.tz_convert("UTC").dt.tz_localize(None)
        stamps = [bt.date2num(t.to_pydatetime()) for t in times]
        columns = [rows[c].tolist() for c in ("open", "high", "low", "close", "volume")]
        feeds.append((str(symbol), list(zip(stamps, *columns, strict=True))))
    return feeds


def run_once(feeds: list[tuple[str, list[Row]]]) -> tuple[float, float, int]:
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.broker.setcash(100_000_000.0)
    for symbol, rows in feeds:
        cerebro.adddata(ListFeed(rows=rows, timeframe=bt.TimeFrame.Minutes), name=symbol)
    cerebro.addstrategy(PolicyStrategy)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    (strategy,) = cerebro.run()
    return time.perf_counter() - wall0, time.process_time() - cpu0, strategy.orders_sent


def main() -> None:
    path, runs = sys.argv[1], int(sys.argv[2])
    feeds = load(path)
    walls, cpus, orders = [], [], 0
    for _ in range(runs):
        wall, cpu, orders = run_once(feeds)
        walls.append(wall)
        cpus.append(cpu)
    bars = sum(len(rows) for _, rows in feeds)
    print(
        json.dumps(
            {"bars": bars, "wall_s": walls, "cpu_s": cpus, "orders": orders, "version": bt.__version__}
        )
    )


if __name__ == "__main__":
    main()
