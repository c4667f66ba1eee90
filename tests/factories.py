"""Builders for test data: bars, replay files, profiles that trade on demand."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from live.domain import Bar
from live.profiles import Profile, get_profile

T0 = datetime(2026, 3, 2, tzinfo=UTC)


def bar(symbol: str, minute: int, open_: float, close: float | None = None, *, spread: float = 0.0) -> Bar:
    close = open_ if close is None else close
    return Bar(
        timestamp=T0 + timedelta(minutes=minute),
        symbol=symbol,
        open=open_,
        high=max(open_, close),
        low=min(open_, close),
        close=close,
        volume=1000.0,
        spread=spread,
    )


def eager_profile(base: str = "balanced", **changes: object) -> Profile:
    """A profile that opens on any signal and never exits on its own: lets a test script the book."""
    weights = {
        r: dict.fromkeys(("momentum", "mean_reversion", "breakout", "vol_trend"), 1.0)
        for r in (
            "trending",
            "mean_reverting",
            "high_volatility_breakout",
            "low_volatility_compression",
            "crisis",
        )
    }
    values: dict[str, object] = {
        "signal_threshold": 0.0,
        "exit_threshold": -2.0,
        "regime_weights": weights,
        "price_band": 1.0,
        "max_orders_per_minute": 1000,
    }
    values.update(changes)
    return dataclasses.replace(get_profile(base), **values)  # type: ignore[arg-type]


def write_replay_csv(
    path: Path, rows: Sequence[tuple[datetime, str, float, float, float, float, float]]
) -> Path:
    lines = ["timestamp,symbol,open,high,low,close,volume"]
    for ts, symbol, o, h, low, c, v in rows:
        lines.append(f"{ts.isoformat().replace('+00:00', 'Z')},{symbol},{o},{h},{low},{c},{v}")
    path.write_text("\n".join(lines) + "\n")
    return path


def trending_rows(
    symbols: Sequence[str], minutes: int, *, start: float = 100.0, step: float = 0.05, t0: datetime = T0
) -> list[tuple[datetime, str, float, float, float, float, float]]:
    """Bars whose open is the previous close, each symbol drifting by `step` a bar, with a small zig-zag."""
    rows = []
    for i, symbol in enumerate(symbols):
        price = start + 10 * i
        for m in range(minutes):
            wiggle = 0.03 if m % 3 == 0 else -0.01
            close = round(price + step + wiggle, 2)
            rows.append(
                (
                    t0 + timedelta(minutes=m),
                    symbol,
                    price,
                    max(price, close) + 0.01,
                    min(price, close) - 0.01,
                    close,
                    1000.0 + m,
                )
            )
            price = close
    rows.sort(key=lambda r: (r[0], r[1]))
    return rows


CASH = Decimal("100000")
