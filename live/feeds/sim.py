"""A seeded synthetic market: correlated symbols driven by a hidden, regime-switching market factor.

Bars are generated one simulated day at a time with numpy and handed out per timestamp. The same seed always
yields the same bars, which is what lets the engine recover by replaying the feed from its start.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np

from live.domain import Bar, require_utc
from live.feeds.base import FeedError

DEFAULT_SYMBOLS: tuple[str, ...] = ("AAPL", "MSFT", "NVDA", "AMZN", "GOOG", "META", "TSLA", "JPM")
DEFAULT_START = datetime(2026, 1, 5, tzinfo=UTC)

# The hidden states of the market factor. They are the simulator's own; the regime classifier
# (live/regime.py) must infer its labels from prices alone.
SIM_REGIMES: tuple[str, ...] = ("calm", "trending", "mean_reverting", "volatile")
_CALM, _TRENDING, _MEAN_REVERTING, _VOLATILE = range(4)

# Per-minute parameters, indexed by hidden state; rescaled for other bar sizes.
_MARKET_SIGMA = np.array([0.9e-4, 1.6e-4, 1.8e-4, 5.5e-4])
_IDIO_SIGMA = np.array([1.0e-4, 1.4e-4, 1.6e-4, 3.5e-4])
# r_t = e_t - theta * e_(t-1): positive theta makes returns mean-revert, negative makes them persist.
_MA_THETA = np.array([0.0, -0.15, 0.45, 0.0])
_VOLUME_MULT = np.array([0.8, 1.1, 1.0, 2.5])
_SPREAD_MULT = np.array([0.8, 1.0, 1.0, 3.0])
# Mean spell length in minutes; every spell lasts at least _MIN_SPELL_MINUTES so regimes span hours to days.
_MEAN_SPELL_MINUTES = np.array([4320.0, 2880.0, 3600.0, 720.0])
_MIN_SPELL_MINUTES = 180.0
_TRANSITIONS = np.array(
    [
        [0.0, 0.35, 0.35, 0.30],
        [0.35, 0.0, 0.35, 0.30],
        [0.40, 0.35, 0.0, 0.25],
        [0.45, 0.15, 0.40, 0.0],
    ]
)
# Drift of the market factor, in units of its own per-bar sigma. Calm markets creep up and volatile ones
# mostly fall, so that prices neither vanish nor explode over a long run.
_CALM_DRIFT = 0.05
_TREND_DRIFT = 0.15
_CRASH_DRIFT = -0.12
_CRASH_PROBABILITY = 0.5
_REBOUND_DRIFT = 0.08
_REBOUND_PROBABILITY = 0.3


class _Symbol:
    """One symbol's fixed traits and the state carried from one generated day to the next."""

    __slots__ = ("beta", "idio_scale", "last_close", "last_idio", "name", "rng", "spread_bps", "volume")

    def __init__(self, name: str, seed: int) -> None:
        # Keyed by name, so a symbol's path does not depend on which other symbols are simulated.
        self.name = name
        self.rng = np.random.default_rng([seed, 1, zlib.crc32(name.encode())])
        self.beta = float(self.rng.uniform(0.7, 1.4))
        self.idio_scale = float(self.rng.uniform(0.8, 1.5))
        self.last_close = float(math.exp(self.rng.uniform(math.log(20.0), math.log(500.0))))
        self.spread_bps = float(self.rng.uniform(1.0, 4.0))
        self.volume = float(math.exp(self.rng.uniform(math.log(2_000.0), math.log(50_000.0))))
        self.last_idio = 0.0


class SimFeed:
    """Seeded, endless (or `sim_days` long) synthetic market of 24/7 bars for `symbols`.

    A hidden Markov chain moves the market factor between calm, trending, mean-reverting and volatile states that
    last hours to days; each symbol's return is beta x market factor + its own noise. Same seed, same bars.
    """

    def __init__(
        self,
        *,
        symbols: tuple[str, ...] = DEFAULT_SYMBOLS,
        seed: int = 7,
        start: datetime = DEFAULT_START,
        sim_days: float | None = None,
        bar_seconds: int = 60,
    ) -> None:
        if not symbols:
            raise FeedError("sim feed: no symbols given")
        if len(set(symbols)) != len(symbols):
            raise FeedError(f"sim feed: duplicate symbols in {','.join(symbols)}")
        if bar_seconds < 1:
            raise FeedError(f"sim feed: bar_seconds must be at least 1, got {bar_seconds}")
        if sim_days is not None and not (math.isfinite(sim_days) and sim_days >= 0):
            raise FeedError(f"sim feed: sim_days must be a non-negative number, got {sim_days}")
        self.symbols = tuple(symbols)
        self.bar_seconds = bar_seconds
        self.seed = seed
        self.start = require_utc(start)
        self.sim_days = sim_days

    def batches(self) -> Iterator[list[Bar]]:
        """Yield one cross-section of bars per timestamp, from `start`, deterministically for the seed."""
        total = None if self.sim_days is None else round(self.sim_days * 86_400 / self.bar_seconds)
        step = timedelta(seconds=self.bar_seconds)
        ts = self.start
        emitted = 0
        for opens, highs, lows, closes, volumes, spreads in _generate_days(self):
            for o_row, h_row, l_row, c_row, v_row, s_row in zip(
                opens, highs, lows, closes, volumes, spreads, strict=True
            ):
                if total is not None and emitted >= total:
                    return
                yield [
                    Bar(timestamp=ts, symbol=sym, open=o, high=h, low=lo, close=c, volume=v, spread=s)
                    for sym, o, h, lo, c, v, s in zip(
                        self.symbols, o_row, h_row, l_row, c_row, v_row, s_row, strict=True
                    )
                ]
                emitted += 1
                ts += step


_TICK = 0.0001


def _generate_days(feed: SimFeed) -> Iterator[tuple[list[list[float]], ...]]:
    """Generate the feed's bars one simulated day at a time, as row-major Python lists (one row per timestamp)."""
    bar_minutes = feed.bar_seconds / 60.0
    sigma_scale = math.sqrt(bar_minutes)
    n = max(1, 86_400 // feed.bar_seconds)
    market_rng = np.random.default_rng([feed.seed, 0])
    symbols = [_Symbol(name, feed.seed) for name in feed.symbols]
    spell_bars = _MEAN_SPELL_MINUTES / bar_minutes
    min_spell_bars = _MIN_SPELL_MINUTES / bar_minutes

    state = int(market_rng.integers(len(SIM_REGIMES)))
    remaining = 0
    drift = 0.0
    last_market_shock = 0.0
    first = True
    while True:
        labels = np.empty(n, dtype=np.int64)
        drift_per_bar = np.empty(n)
        pos = 0
        while pos < n:
            if remaining <= 0:
                if not first:
                    state = int(market_rng.choice(len(SIM_REGIMES), p=_TRANSITIONS[state]))
                first = False
                remaining = max(1, round(min_spell_bars + market_rng.exponential(spell_bars[state])))
                drift = _spell_drift(state, market_rng) * _MARKET_SIGMA[state] * sigma_scale
            take = min(remaining, n - pos)
            labels[pos : pos + take] = state
            drift_per_bar[pos : pos + take] = drift
            pos += take
            remaining -= take

        theta = _MA_THETA[labels]
        market_sigma = _MARKET_SIGMA[labels] * sigma_scale
        shocks = market_rng.standard_normal(n) * market_sigma
        market = shocks + drift_per_bar - theta * np.concatenate(([last_market_shock], shocks[:-1]))
        last_market_shock = float(shocks[-1])

        k = len(symbols)
        opens = np.empty((n, k))
        highs = np.empty((n, k))
        lows = np.empty((n, k))
        closes = np.empty((n, k))
        volumes = np.empty((n, k))
        spreads = np.empty((n, k))
        idio_sigma = _IDIO_SIGMA[labels] * sigma_scale
        for j, sym in enumerate(symbols):
            rng = sym.rng
            idio = rng.standard_normal(n) * idio_sigma * sym.idio_scale
            returns = sym.beta * market + idio - theta * np.concatenate(([sym.last_idio], idio[:-1]))
            sym.last_idio = float(idio[-1])
            close = sym.last_close * np.exp(np.cumsum(returns))
            # Each bar opens at the previous close: the market never closes, so there are no gaps.
            open_ = np.concatenate(([sym.last_close], close[:-1]))
            sym.last_close = float(close[-1])
            bar_sigma = np.hypot(sym.beta * market_sigma, idio_sigma * sym.idio_scale)
            wick_up = np.abs(rng.standard_normal(n)) * 0.6 * bar_sigma
            wick_down = np.abs(rng.standard_normal(n)) * 0.6 * bar_sigma
            opens[:, j] = open_
            closes[:, j] = close
            highs[:, j] = np.maximum(open_, close) * np.exp(wick_up)
            lows[:, j] = np.minimum(open_, close) * np.exp(-wick_down)
            activity = 0.5 + np.abs(returns) / bar_sigma
            volumes[:, j] = np.maximum(
                1.0,
                np.rint(
                    sym.volume * bar_minutes * _VOLUME_MULT[labels] * activity * rng.lognormal(0.0, 0.3, n)
                ),
            )
            spreads[:, j] = (
                close * (sym.spread_bps * 1e-4) * _SPREAD_MULT[labels] * rng.lognormal(0.0, 0.2, n)
            )
        # Quoted prices sit on a 0.0001 tick (rounding is monotonic, so high/low still bound open/close).
        yield (
            np.round(opens, 4).tolist(),
            np.round(highs, 4).tolist(),
            np.round(lows, 4).tolist(),
            np.round(closes, 4).tolist(),
            volumes.tolist(),
            np.maximum(np.round(spreads, 4), _TICK).tolist(),
        )


def _spell_drift(state: int, rng: np.random.Generator) -> float:
    """Drift of a new spell in units of the market sigma: trends go either way, volatile spells often crash."""
    if state == _CALM:
        return _CALM_DRIFT
    if state == _TRENDING:
        return _TREND_DRIFT if rng.random() < 0.5 else -_TREND_DRIFT
    if state == _VOLATILE:
        draw = rng.random()
        if draw < _CRASH_PROBABILITY:
            return _CRASH_DRIFT
        if draw < _CRASH_PROBABILITY + _REBOUND_PROBABILITY:
            return _REBOUND_DRIFT
    return 0.0
