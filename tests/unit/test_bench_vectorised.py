"""bench/vectorised.py is the numpy limit the peers bench (`make bench-peers`) compares the engine with. Its figure
only means something while it computes what the engine computes: these check its building blocks against the
recursions they replace, and its signal values and decisions against the engine's on ten simulated days. No timing
here: the figures come from the bench."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from live.assembly import build_engine
from live.domain import SIGNAL_TYPES, Side
from live.feeds.sim import SimFeed
from live.profiles import get_profile
from live.settings import Settings

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _vectorised() -> ModuleType:
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))  # the bench scripts import each other as sibling modules
    return importlib.import_module("vectorised")


@pytest.mark.parametrize("q", [0.3, 0.818, 0.9886, 0.99952])
def test_linear_scan_matches_the_recursion_it_replaces(q: float) -> None:
    x = np.random.default_rng(7).normal(4.6, 0.5, size=(5000, 3))
    expected = np.empty_like(x)
    y = np.array([1.0, -2.0, 0.5])
    for t in range(x.shape[0]):
        y = q * y + (1 - q) * x[t]
        expected[t] = y
    scanned = _vectorised().linear_scan(x, q, 1 - q, np.array([1.0, -2.0, 0.5]))
    np.testing.assert_allclose(scanned, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("window", [2, 5, 20, 33])
def test_rolling_extremes_match_a_window_by_window_max_and_min(window: int) -> None:
    x = np.random.default_rng(3).normal(size=(400, 4))
    rolling = _vectorised()._rolling
    expected_max = np.array([x[t - window + 1 : t + 1].max(axis=0) for t in range(window - 1, len(x))])
    expected_min = np.array([x[t - window + 1 : t + 1].min(axis=0) for t in range(window - 1, len(x))])
    assert np.array_equal(rolling(np.maximum, x, window), expected_max)
    assert np.array_equal(rolling(np.minimum, x, window), expected_min)


def test_the_numpy_limit_decides_every_order_the_engine_decides() -> None:
    vectorised = _vectorised()
    feed = SimFeed(sim_days=10, seed=7)
    batches = list(feed.batches())
    symbols = feed.symbols
    assert all([bar.symbol for bar in batch] == list(symbols) for batch in batches)
    profile = get_profile("balanced")
    settings = Settings(broker="paper", strategy="builtin").engine
    engine = build_engine(settings, symbols=symbols, profile=profile)
    for batch in batches:
        engine.step(batch)
    out = engine.outbox
    assert out.orders, "ten simulated days placed no order: nothing compared"
    assert not out.risk_events, "a refusal or breaker intervened: the numpy version does not model those"

    panel = {
        name: np.array([[getattr(bar, name) for bar in batch] for batch in batches])
        for name in ("close", "high", "low")
    }
    strengths, decisions = vectorised.run(panel["close"], panel["high"], panel["low"], profile)

    row = {batch[0].timestamp: i for i, batch in enumerate(batches)}
    column = {symbol: i for i, symbol in enumerate(symbols)}
    recorded = np.full((len(SIGNAL_TYPES), len(batches), len(symbols)), np.nan)
    for timestamp, symbol, signal_type, strength, *_ in out.signal_rows:
        recorded[SIGNAL_TYPES.index(signal_type), row[timestamp], column[symbol]] = strength
    for k, name in enumerate(SIGNAL_TYPES):
        np.testing.assert_allclose(strengths[name], recorded[k], rtol=0, atol=1e-9, equal_nan=True)

    engine_orders = sorted(
        (row[o.timestamp], column[o.symbol], 0 if o.reduces_position else (1 if o.side is Side.BUY else -1))
        for o in out.orders
    )
    numpy_orders = sorted(
        zip(decisions.bar.tolist(), decisions.symbol.tolist(), decisions.action.tolist(), strict=True)
    )
    assert numpy_orders == engine_orders
