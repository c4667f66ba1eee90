"""The live IC per signal type on the dashboard: the signal-ic flow's definition (analytics/ic.py, equal to
alphalens-reloaded's) over a rolling window of the record's latest bars, instead of the flow's whole history.

Bounded and shared: one computation per `FRESH_SECONDS` in an API process however many screens ask, over the last
`WINDOW_BARS` bar times; the polars work runs on a worker thread so the event loop (and an operator's halt) never
waits for it. A signal stamped near the window's end has no forward return yet: it counts once its horizon has
passed, as in the flow."""

from __future__ import annotations

import asyncio
import math
import time
from datetime import UTC, datetime

import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from analytics.ic import ic_summary, information_coefficient
from api.schemas import UtcDatetime
from api.stores import Stores
from live.stores import record

WINDOW_BARS = 1440  # bar times: a day of minute bars
FRESH_SECONDS = 10.0


class RollingSignalIc(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    signal_type: str
    ic_mean: float | None = Field(
        description="Mean of the per-timestamp ICs in the window; null when undefined."
    )
    ic_std: float | None
    ic_ir: float | None = Field(description="ic_mean / ic_std.")
    n_periods: int = Field(
        description="Timestamps in the window with an IC (at least two symbols, horizon passed)."
    )


class RollingIc(BaseModel):
    """`GET /dashboard/rolling-ic`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    window_bars: int = Field(description="Bar times the window spans at most (the latest ones recorded).")
    first: UtcDatetime | None = Field(description="The window's first bar time; null with no bars yet.")
    last: UtcDatetime | None
    signals: list[RollingSignalIc]
    computed_at: UtcDatetime


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def rolling_ic(market: record.market.RecentMarket, *, computed_at: datetime) -> RollingIc:
    """IC statistics per signal type over the bars and signals given (pure)."""
    times = market.bars["timestamp"]
    if not times:
        return RollingIc(window_bars=WINDOW_BARS, first=None, last=None, signals=[], computed_at=computed_at)
    timestamp = pl.Datetime("us", "UTC")
    bars = pl.DataFrame(
        market.bars, schema={"timestamp": timestamp, "symbol": pl.String, "close": pl.Float64}
    )
    signals = pl.DataFrame(
        market.signals,
        schema={
            "timestamp": timestamp,
            "symbol": pl.String,
            "signal_type": pl.String,
            "strength": pl.Float64,
            "horizon_bars": pl.Int64,
        },
    )
    summaries = ic_summary(information_coefficient(signals, bars))
    return RollingIc(
        window_bars=WINDOW_BARS,
        first=min(times),
        last=max(times),
        signals=[
            RollingSignalIc(
                signal_type=s.signal_type,
                ic_mean=_finite(s.ic_mean),
                ic_std=_finite(s.ic_std),
                ic_ir=_finite(s.ic_ir),
                n_periods=s.n_periods,
            )
            for s in summaries
        ],
        computed_at=computed_at,
    )


class RollingIcReader:
    """One computation at a time per process, reused for `FRESH_SECONDS`."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._last: RollingIc | None = None
        self._computed = float("-inf")

    async def read(self, stores: Stores) -> RollingIc:
        async with self._lock:
            if self._last is not None and time.monotonic() - self._computed < FRESH_SECONDS:
                return self._last
            async with stores.postgres() as conn:
                market = await record.fetch_async(conn, record.market.recent_market(timestamps=WINDOW_BARS))
            self._last = await asyncio.to_thread(rolling_ic, market, computed_at=datetime.now(UTC))
            self._computed = time.monotonic()
            return self._last
