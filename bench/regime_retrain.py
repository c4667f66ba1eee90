"""Regime retrain on 1M bars: `analytics.regime_model.retrain` (features through `live.regime`, the Gaussian
mixture fit, validation, saving the artifact) on 1,000,000 sim bars (8 symbols x 125,000 minutes)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from tempfile import TemporaryDirectory

import polars as pl
from harness import Figure, emit, figure, stub

from live.feeds.sim import SimFeed

BARS = 1_000_000
SYMBOLS = 8


def bars_frame() -> pl.DataFrame:
    feed = SimFeed(sim_days=BARS / SYMBOLS / 1440, seed=3)
    columns: dict[str, list] = {
        k: [] for k in ("timestamp", "symbol", "open", "high", "low", "close", "volume")
    }
    for batch in feed.batches():
        for b in batch:
            columns["timestamp"].append(b.timestamp)
            columns["symbol"].append(b.symbol)
            columns["open"].append(b.open)
            columns["high"].append(b.high)
            columns["low"].append(b.low)
            columns["close"].append(b.close)
            columns["volume"].append(b.volume)
    return pl.DataFrame(columns)


def measure() -> dict[str, Figure]:
    try:
        from analytics.regime_model import retrain
    except ImportError as exc:
        return {"regime_retrain": stub("s", "<= 30", f"analytics/regime_model.py ({exc})")}
    bars = bars_frame()
    with TemporaryDirectory() as models:
        started = time.perf_counter()
        outcome = retrain(bars, Path(models), created_at=datetime.now(UTC))
        elapsed = time.perf_counter() - started
    return {
        "regime_retrain": figure(
            round(elapsed, 2),
            "s",
            "<= 30",
            elapsed <= 30,
            bars=bars.height,
            validated=outcome.result.validated,
            n_train=outcome.result.n_train,
            note="features (live.regime.MarketFeatures over every cross-section) + GaussianMixture fit + save",
        )
    }


if __name__ == "__main__":
    emit(measure())
