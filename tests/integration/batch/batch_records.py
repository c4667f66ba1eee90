"""A realistic system of record for the batch tests: sim bars, signals on them, a simple strategy's orders and
fills, equity snapshots over several UTC days, written to PostgreSQL and kept in Python for recomputation."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import psycopg

from live.domain import Bar
from live.feeds.sim import SimFeed

SYMBOLS = ("AAA", "BBB", "CCC", "DDD", "EEE")
START = datetime(2026, 1, 5, tzinfo=UTC)
BAR_SECONDS = 300
SIM_DAYS = 4
INITIAL_CASH = Decimal("100000")
CENT = Decimal("0.00000001")
SIGNAL_SPECS = {"momentum": (12, 6), "mean_reversion": (3, 3)}  # signal type: (lookback bars, horizon bars)
REJECTION_REASONS = ("POSITION_LIMIT", "MAX_ORDER_NOTIONAL", "KILL_SWITCH")


def money(value: float | Decimal) -> Decimal:
    return Decimal(str(value)).quantize(CENT, rounding=ROUND_HALF_EVEN)


@dataclass
class SystemOfRecord:
    """What the factory wrote to PostgreSQL, kept in Python for independent recomputation in the tests."""

    bars: list[Bar]
    signals: list[dict[str, Any]] = field(default_factory=list)
    orders: list[dict[str, Any]] = field(default_factory=list)
    fills: list[dict[str, Any]] = field(default_factory=list)
    equity: list[dict[str, Any]] = field(default_factory=list)
    risk_events: list[dict[str, Any]] = field(default_factory=list)
    regime_changes: list[dict[str, Any]] = field(default_factory=list)
    api_requests: list[dict[str, Any]] = field(default_factory=list)


def _signals(batches: list[list[Bar]]) -> list[dict[str, Any]]:
    import math

    closes: dict[str, list[float]] = {s: [] for s in SYMBOLS}
    rows = []
    rng = random.Random(3)
    for batch in batches:
        for bar in batch:
            closes[bar.symbol].append(bar.close)
        for bar in batch:
            history = closes[bar.symbol]
            for signal_type, (lookback, horizon) in SIGNAL_SPECS.items():
                if len(history) <= lookback:
                    continue
                change = history[-1] / history[-1 - lookback] - 1.0
                strength = (
                    math.tanh(60.0 * change) if signal_type == "momentum" else -math.tanh(90.0 * change)
                )
                rows.append(
                    {
                        "timestamp": bar.timestamp,
                        "symbol": bar.symbol,
                        "signal_type": signal_type,
                        "strength": strength,
                        "horizon_bars": horizon,
                        "regime": "trending",
                        "actionable": rng.random() < 0.2,
                    }
                )
    return rows


def build_system_of_record(*, sim_days: float = SIM_DAYS) -> SystemOfRecord:
    """Bars from the sim feed, signals on them, a simple strategy's orders and fills, equity every 30 minutes."""
    batches = list(
        SimFeed(symbols=SYMBOLS, seed=7, start=START, sim_days=sim_days, bar_seconds=BAR_SECONDS).batches()
    )
    record = SystemOfRecord(bars=[bar for batch in batches for bar in batch])
    record.signals = _signals(batches)
    by_key = {(s["timestamp"], s["symbol"], s["signal_type"]): s["strength"] for s in record.signals}
    rng = random.Random(11)
    cash = INITIAL_CASH
    position: dict[str, int] = dict.fromkeys(SYMBOLS, 0)
    avg_price: dict[str, Decimal] = dict.fromkeys(SYMBOLS, Decimal(0))
    plan: dict[str, list[tuple[int, int]]] = {s: [] for s in SYMBOLS}  # pending (bar index, signed quantity)
    opened_by: dict[str, str] = {}
    order_no = 0

    def submit(bar: Bar, signed: int, signal_type: str, index: int) -> None:
        nonlocal cash, order_no
        order_no += 1
        order_id = f"o-{order_no:06d}"
        side = "buy" if signed > 0 else "sell"
        quantity = abs(signed)
        timestamp = bar.timestamp + timedelta(seconds=BAR_SECONDS)
        price = money(bar.close)
        fee = money(price * quantity * Decimal("0.0001"))
        held = position[bar.symbol]
        realized = Decimal(0)
        if held != 0 and (held > 0) != (signed > 0):
            realized = money((price - avg_price[bar.symbol]) * quantity * (1 if held > 0 else -1))
        else:
            avg_price[bar.symbol] = (avg_price[bar.symbol] * abs(held) + price * quantity) / (
                abs(held) + quantity
            )
        position[bar.symbol] = held + signed
        if position[bar.symbol] == 0:
            avg_price[bar.symbol] = Decimal(0)
        cash -= price * signed + fee
        record.orders.append(
            {
                "id": order_id,
                "timestamp": timestamp,
                "symbol": bar.symbol,
                "side": side,
                "quantity": quantity,
                "signal_type": signal_type,
                "reduces_position": realized != 0 or position[bar.symbol] == 0,
                "status": "filled",
                "reason": "",
                "tick_to_order_us": rng.lognormvariate(5.0, 0.6),
                "updated_at": timestamp,
            }
        )
        record.fills.append(
            {
                "id": f"f-{order_no:06d}",
                "order_id": order_id,
                "timestamp": timestamp,
                "symbol": bar.symbol,
                "side": side,
                "quantity": quantity,
                "price": price,
                "fee": fee,
                "signal_type": signal_type,
                "realized_pnl": realized,
            }
        )
        del index

    for index, batch in enumerate(batches):
        for bar in batch:
            symbol = bar.symbol
            due = [q for (i, q) in plan[symbol] if i == index]
            plan[symbol] = [(i, q) for (i, q) in plan[symbol] if i != index]
            for signed in due:
                submit(bar, signed, opened_by.get(symbol, "momentum"), index)
            if position[symbol] == 0 and not plan[symbol] and index % 7 == SYMBOLS.index(symbol) % 7:
                strengths = {t: by_key.get((bar.timestamp, symbol, t)) for t in SIGNAL_SPECS}
                present = {t: v for t, v in strengths.items() if v is not None and abs(v) > 0.05}
                if not present or index > len(batches) - 40:
                    continue
                signal_type = max(present, key=lambda t: abs(present[t]))
                direction = 1 if present[signal_type] > 0 else -1
                size = rng.choice((10, 20, 30))
                opened_by[symbol] = signal_type
                submit(bar, direction * size, signal_type, index)
                hold = rng.randint(2, 30)
                if rng.random() < 0.3:  # scale in, then close in two parts
                    plan[symbol] += [(index + 1, direction * 10), (index + hold, -direction * (size // 2))]
                    plan[symbol].append((index + hold + 2, -direction * (size + 10 - size // 2)))
                else:
                    plan[symbol].append((index + hold, -direction * size))
            if rng.random() < 0.004:
                order_no += 1
                record.orders.append(
                    {
                        "id": f"o-{order_no:06d}",
                        "timestamp": bar.timestamp + timedelta(seconds=BAR_SECONDS),
                        "symbol": symbol,
                        "side": rng.choice(("buy", "sell")),
                        "quantity": 50,
                        "signal_type": rng.choice(tuple(SIGNAL_SPECS)),
                        "reduces_position": False,
                        "status": "rejected",
                        "reason": rng.choice(REJECTION_REASONS),
                        "tick_to_order_us": rng.lognormvariate(5.0, 0.6),
                        "updated_at": bar.timestamp + timedelta(seconds=BAR_SECONDS),
                    }
                )
        if index == len(batches) - 10:
            # One position stays open at the end: it is not a closed trade.
            idle = next(b for b in batch if position[b.symbol] == 0 and not plan[b.symbol])
            opened_by[idle.symbol] = "momentum"
            submit(idle, 5, "momentum", index)
        if index % 6 == 0 or index == len(batches) - 1:
            value = cash + sum(money(b.close) * position[b.symbol] for b in batch)
            record.equity.append(
                {
                    "timestamp": batch[0].timestamp + timedelta(seconds=BAR_SECONDS),
                    "total_value": money(value if index else INITIAL_CASH),
                    "cash": money(cash),
                    "high_water_mark": money(value),
                }
            )
    regimes = ("mean_reverting", "trending", "crisis", "low_volatility_compression", "trending")
    for i, regime in enumerate(regimes):
        record.regime_changes.append(
            {
                "timestamp": START + timedelta(hours=5 + 17 * i),
                "previous": regimes[i - 1] if i else None,
                "current": regime,
                "model": "rules-v1",
            }
        )
    for i in range(6):
        record.risk_events.append(
            {
                "timestamp": START + timedelta(hours=7 + 13 * i),
                "code": "DRAWDOWN_LIMIT_EXCEEDED" if i % 3 == 0 else "POSITION_LIMIT",
                "detail": "test",
                "symbol": None if i % 3 == 0 else "AAA",
                "halts_trading": i % 3 == 0,
            }
        )
    for i in range(250):
        record.api_requests.append(
            {
                "timestamp": START + timedelta(minutes=17 * i),
                "method": "GET",
                "path": "/portfolio",
                "status": 200,
                "latency_ms": rng.lognormvariate(0.5, 0.8),
            }
        )
    return record


def apply_schema(url: str) -> None:
    from live.stores.postgres import apply_migrations

    with psycopg.connect(url) as conn:
        apply_migrations(conn)


def _copy(conn: psycopg.Connection[Any], table: str, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    columns = list(rows[0])
    with conn.cursor() as cursor, cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row([row[c] for c in columns])


def write_system_of_record(url: str, record: SystemOfRecord, *, until: datetime | None = None) -> None:
    """Insert the record's rows (those up to `until`, if given) into PostgreSQL, table by table."""

    def upto(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [r for r in rows if until is None or r["timestamp"] <= until]

    bars = [
        {
            "timestamp": b.timestamp,
            "symbol": b.symbol,
            "open": b.open,
            "high": b.high,
            "low": b.low,
            "close": b.close,
            "volume": b.volume,
            "spread": b.spread,
        }
        for b in record.bars
    ]
    with psycopg.connect(url) as conn:
        _copy(conn, "bars", upto(bars))
        _copy(conn, "signals", upto(record.signals))
        _copy(conn, "orders", upto(record.orders))
        _copy(conn, "fills", upto(record.fills))
        _copy(conn, "equity", upto(record.equity))
        _copy(conn, "risk_events", upto(record.risk_events))
        _copy(conn, "regime_changes", upto(record.regime_changes))
        _copy(conn, "api_requests", upto(record.api_requests))
