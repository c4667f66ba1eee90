"""NautilusTrader's `BacktestEngine` over the bench's exported bars, run in its own virtual environment by
bench/peers.py: `python nautilus_engine.py BARS.parquet RUNS`. Prints one JSON line (bars, wall and CPU seconds of
each `engine.run()`, orders, version).

Per bar: Nautilus routes the bar through its data engine and cache to the strategy's `on_bar` (and its simulated
exchange), which converts the three prices to floats and runs `policy.SymbolPolicy.on_bar` (TRADEOS's four signal
models, the composite, the threshold decision); a decision becomes a market order of ~10,000 USD (or the position's
closing order), filled by Nautilus's matching engine on the bar. Instruments, bars and the engine are built before
the clock starts; each run gets a fresh engine.
"""

from __future__ import annotations

import json
import sys
import time
from decimal import Decimal

import pandas as pd
from nautilus_trader import __version__
from nautilus_trader.backtest.engine import BacktestEngine, BacktestEngineConfig
from nautilus_trader.config import LoggingConfig, StrategyConfig
from nautilus_trader.model.currencies import USD
from nautilus_trader.model.data import Bar, BarType
from nautilus_trader.model.enums import AccountType, OmsType, OrderSide
from nautilus_trader.model.identifiers import InstrumentId, Symbol, Venue
from nautilus_trader.model.instruments import Equity
from nautilus_trader.model.objects import Money, Price, Quantity
from nautilus_trader.persistence.wranglers import BarDataWrangler
from nautilus_trader.trading.strategy import Strategy
from policy import NOTIONAL, SymbolPolicy

VENUE = Venue("SIM")


class PolicyConfig(StrategyConfig, frozen=True):
    bar_types: tuple[str, ...]


class PolicyStrategy(Strategy):
    def __init__(self, config: PolicyConfig) -> None:
        super().__init__(config)
        self.bar_types = [BarType.from_str(text) for text in config.bar_types]
        self.policies: dict[InstrumentId, SymbolPolicy] = {}
        self.quantities: dict[InstrumentId, int] = {}
        self.orders_sent = 0

    def on_start(self) -> None:
        for bar_type in self.bar_types:
            self.policies[bar_type.instrument_id] = SymbolPolicy()
            self.subscribe_bars(bar_type)

    def on_bar(self, bar: Bar) -> None:
        instrument_id = bar.bar_type.instrument_id
        close = bar.close.as_double()
        decision = self.policies[instrument_id].on_bar(close, bar.high.as_double(), bar.low.as_double())
        if decision is None:
            return
        if decision == 0:
            held = self.quantities.pop(instrument_id)
            side, quantity = (OrderSide.SELL, held) if held > 0 else (OrderSide.BUY, -held)
        else:
            quantity = max(1, int(NOTIONAL / close))
            side = OrderSide.BUY if decision > 0 else OrderSide.SELL
            self.quantities[instrument_id] = quantity * decision
        order = self.order_factory.market(
            instrument_id=instrument_id, order_side=side, quantity=Quantity.from_int(quantity)
        )
        self.submit_order(order)
        self.orders_sent += 1


def instrument(symbol: str) -> Equity:
    return Equity(
        instrument_id=InstrumentId(symbol=Symbol(symbol), venue=VENUE),
        raw_symbol=Symbol(symbol),
        currency=USD,
        price_precision=4,
        price_increment=Price.from_str("0.0001"),
        lot_size=Quantity.from_int(1),
        ts_event=0,
        ts_init=0,
    )


def load(path: str) -> tuple[list[Equity], list[str], list[Bar]]:
    frame = pd.read_parquet(path)
    instruments, bar_types, bars = [], [], []
    for symbol, rows in frame.groupby("symbol", sort=True):
        equity = instrument(str(symbol))
        bar_type = f"{equity.id}-1-MINUTE-LAST-EXTERNAL"
        data = rows.set_index("timestamp")[["open", "high", "low", "close", "volume"]]
        # The bench's timestamps are bars' open times; Nautilus stamps a bar at its close.
        data.index = data.index + pd.Timedelta(minutes=1)
        bars.extend(BarDataWrangler(BarType.from_str(bar_type), equity).process(data))
        instruments.append(equity)
        bar_types.append(bar_type)
    bars.sort(key=lambda b: b.ts_init)
    return instruments, bar_types, bars


def run_once(instruments: list[Equity], bar_types: list[str], bars: list[Bar]) -> tuple[float, float, int]:
    engine = BacktestEngine(
        BacktestEngineConfig(logging=LoggingConfig(log_level="ERROR", bypass_logging=True))
    )
    engine.add_venue(
        venue=VENUE,
        oms_type=OmsType.NETTING,
        account_type=AccountType.MARGIN,
        starting_balances=[Money(100_000_000, USD)],
        base_currency=USD,
        default_leverage=Decimal(1),
    )
    for equity in instruments:
        engine.add_instrument(equity)
    engine.add_data(bars, sort=False)
    strategy = PolicyStrategy(PolicyConfig(bar_types=tuple(bar_types)))
    engine.add_strategy(strategy)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    engine.run()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    orders = strategy.orders_sent
    engine.dispose()
    return wall, cpu, orders


def main() -> None:
    path, runs = sys.argv[1], int(sys.argv[2])
    instruments, bar_types, bars = load(path)
    walls, cpus, orders = [], [], 0
    for _ in range(runs):
        wall, cpu, orders = run_once(instruments, bar_types, bars)
        walls.append(wall)
        cpus.append(cpu)
    print(
        json.dumps(
            {"bars": len(bars), "wall_s": walls, "cpu_s": cpus, "orders": orders, "version": __version__}
        )
    )


if __name__ == "__main__":
    main()
