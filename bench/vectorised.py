"""TRADEOS's built-in strategy vectorised in numpy over a whole bar panel: the limit a Python engine can approach.

The same four signal models (live/signals/, default parameters), the regime the engine trades under (the market
features the rule-based classifier reads, `RuleBasedClassifier.classify_from` with its hysteresis band, and
`RegimeTracker`'s 30-bar confirmation), the regime-weighted composite with its leading signal, and the built-in
strategy's decisions (`BuiltinStrategy.decide` with the paper broker filling at the symbol's next bar): entries
when |composite| clears the profile's threshold, exits once held for the opener's horizon when the composite in the
position's direction falls below the exit threshold.

What it leaves out, and the engine does: sizing (an entry the profile's limits leave no room for is not made), the
pre-trade checks, the breakers (a halt stops the engine's orders), Decimal accounting, and recording every value.
So decisions agree with the engine's while nothing of those intervenes (bench/peers.py checks how far).

Recursions over time are linear scans (EW averages) computed by chunked cumulative sums; the regime tracker and
the per-symbol position walk jump from event to event (regime changes, entries, exits) through index arrays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from live.domain import REGIMES, SIGNAL_TYPES
from live.profiles import Profile
from live.regime import DEFAULT_REGIME, LONG_HALFLIFE, SHORT_HALFLIFE, TREND_HALFLIFE, WARMUP_BARS
from live.regime import RuleBasedClassifier as _Rules
from live.signals import HORIZONS
from live.signals.momentum import ema_gap_scale

Array = NDArray[np.float64]
_MAX_EXPONENT = 230.0  # q**-length <= e**230, about 1e100
_NONE = len(REGIMES)  # the tracker's state before a first regime is confirmed


def linear_scan(x: Array, q: float, b: float, y0: Array | float) -> Array:
    """y[t] = q * y[t-1] + b * x[t] along axis 0, y[-1] = y0: an EW recursion without a Python loop per step.

    In chunks as long as q**-length stays below 1e100 (all of a slow average's history in one; ~40 chunks for the
    fastest here): within one, a cumulative sum of x * q**-i scaled back by q**i; from one to the next, the carry."""
    n = x.shape[0]
    y = np.empty(x.shape)
    carry = np.broadcast_to(np.asarray(y0, dtype=np.float64), x.shape[1:])
    length = n if q >= 1.0 or q <= 0.0 else max(1, min(n, int(_MAX_EXPONENT / -math.log(q))))
    shape = (-1,) + (1,) * (x.ndim - 1)
    j = np.arange(length, dtype=np.float64)
    grow, shrink, decay = (q**-j).reshape(shape), (b * q**j).reshape(shape), (q ** (j + 1)).reshape(shape)
    for start in range(0, n, length):
        block = x[start : start + length]
        m = block.shape[0]
        part = np.cumsum(block * grow[:m], axis=0) * shrink[:m] + decay[:m] * carry
        y[start : start + m] = part
        carry = part[-1]
    return y


def _ew_from_first(x: Array, a: float) -> Array:
    """An EW average seeded with its first value: v[0] = x[0], then v += a * (x - v)."""
    out = np.empty_like(x)
    out[0] = x[0]
    out[1:] = linear_scan(x[1:], 1.0 - a, a, x[0])
    return out


def _tanh_ratio(numerator: Array, denominator: Array) -> Array:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0.0, np.tanh(numerator / denominator), 0.0)


def momentum(x: Array, *, fast_span: int = 10, slow_span: int = 40, vol_halflife: int = 60) -> Array:
    fast_a, slow_a = 2.0 / (fast_span + 1.0), 2.0 / (slow_span + 1.0)
    vol_a = 1.0 - 0.5 ** (1.0 / vol_halflife)
    fast, slow = _ew_from_first(x, fast_a), _ew_from_first(x, slow_a)
    out = np.full_like(x, np.nan)
    var = _ew_from_first(np.diff(x, axis=0) ** 2, vol_a)  # var[k] is at bar k + 1
    t = slice(slow_span - 1, None)
    out[t] = _tanh_ratio(fast[t] - slow[t], ema_gap_scale(fast_a, slow_a) * np.sqrt(var[slow_span - 2 :]))
    return out


def mean_reversion(x: Array, *, span: int = 20) -> Array:
    a = 2.0 / (span + 1.0)
    ema = _ew_from_first(x, a)
    deviation = x - ema
    var = np.zeros_like(x)
    var[1:] = linear_scan(deviation[1:] ** 2, 1.0 - a, a, 0.0)
    out = np.full_like(x, np.nan)
    t = slice(span - 1, None)
    with np.errstate(divide="ignore", invalid="ignore"):
        out[t] = np.where(var[t] > 0.0, -np.tanh(0.5 * deviation[t] / np.sqrt(var[t])), 0.0)
    return out


def _rolling(combine: np.ufunc, x: Array, window: int) -> Array:
    """combine (max or min) over every `window` consecutive rows, by doubling spans: log2(window) passes."""
    span = 1
    while span * 2 <= window:
        x = combine(x[:-span], x[span:])
        span *= 2
    return combine(x[: x.shape[0] - (window - span)], x[window - span :])


def breakout(close: Array, high: Array, low: Array, *, window: int = 20) -> Array:
    top = _rolling(np.maximum, high, window)
    bottom = _rolling(np.minimum, low, window)
    width = top - bottom
    out = np.full_like(close, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        strength = 2.0 * ((close[window - 1 :] - bottom) / width) - 1.0
    out[window - 1 :] = np.where(width > 0.0, np.clip(strength, -1.0, 1.0), 0.0)
    return out


def vol_trend(x: Array, *, lookback: int = 60, vol_halflife: int = 120) -> Array:
    vol_a = 1.0 - 0.5 ** (1.0 / vol_halflife)
    var = _ew_from_first(np.diff(x, axis=0) ** 2, vol_a)  # var[k] is at bar k + 1
    out = np.full_like(x, np.nan)
    out[lookback:] = _tanh_ratio(
        x[lookback:] - x[:-lookback], np.sqrt(var[lookback - 1 :]) * math.sqrt(lookback)
    )
    return out


def signals(close: Array, high: Array, low: Array) -> dict[str, Array]:
    """Every signal type's strength per (bar, symbol), NaN while warming up; keyed in SIGNAL_TYPES order."""
    x = np.log(close)
    return {
        "momentum": momentum(x),
        "mean_reversion": mean_reversion(x),
        "breakout": breakout(close, high, low),
        "vol_trend": vol_trend(x),
    }


def _alpha(halflife: float) -> float:
    return 1.0 - 0.5 ** (1.0 / halflife)


def market_features(close: Array) -> tuple[Array, Array]:
    """(vol_ratio, trend_strength) per bar, NaN during the warm-up: the two features the rules classify on."""
    t_count = close.shape[0]
    returns = np.log(close[1:] / close[:-1])
    total = np.zeros(t_count - 1)
    total_sq = np.zeros(t_count - 1)
    for column in range(close.shape[1]):  # summed in the cross-section's order, as the engine does
        total += returns[:, column]
        total_sq += returns[:, column] * returns[:, column]
    n = close.shape[1]
    r = total / n
    r2 = r * r
    ones = np.ones_like(r)
    d_short, d_trend, d_long = (
        1 - _alpha(SHORT_HALFLIFE),
        1 - _alpha(TREND_HALFLIFE),
        1 - _alpha(LONG_HALFLIFE),
    )
    vol_short = np.sqrt(linear_scan(r2, d_short, 1.0, 0.0) / linear_scan(ones, d_short, 1.0, 0.0))
    vol_long = np.sqrt(linear_scan(r2, d_long, 1.0, 0.0) / linear_scan(ones, d_long, 1.0, 0.0))
    trend_w = linear_scan(ones, d_trend, 1.0, 0.0)
    trend_w2 = linear_scan(ones, d_trend * d_trend, 1.0, 0.0)
    trend_m2 = linear_scan(r2, d_trend, 1.0, 0.0) / trend_w
    trend_se = np.sqrt(trend_m2 * trend_w2) / trend_w
    trend_mean = linear_scan(r, d_trend, 1.0, 0.0) / trend_w
    with np.errstate(divide="ignore", invalid="ignore"):
        vol_ratio = np.where(vol_long > 0.0, vol_short / vol_long, 1.0)
        trend = np.where(trend_se > 0.0, trend_mean / trend_se, 0.0)
    ratio_out = np.full(t_count, np.nan)
    trend_out = np.full(t_count, np.nan)
    ratio_out[WARMUP_BARS:] = vol_ratio[WARMUP_BARS - 1 :]
    trend_out[WARMUP_BARS:] = trend[WARMUP_BARS - 1 :]
    return ratio_out, trend_out


def _labels(current: int, vol_ratio: Array, trend: Array, rules: _Rules) -> NDArray[np.int64]:
    """`classify_from(current, ...)` for every bar at once (regime codes are indexes into REGIMES)."""
    ease = 1.0 - rules.band
    name = REGIMES[current] if current < _NONE else None

    def eased(regime: str, factor: float) -> float:
        return factor if name == regime else 1.0

    code = {regime: i for i, regime in enumerate(REGIMES)}
    crisis = eased("crisis", ease)
    compression = eased("low_volatility_compression", 2.0 - ease)
    conditions = [
        (vol_ratio >= rules.crisis_vol_ratio * crisis) & (trend <= rules.crisis_trend * crisis),
        vol_ratio >= rules.breakout_vol_ratio * eased("high_volatility_breakout", ease),
        vol_ratio <= rules.compression_vol_ratio * compression,
        np.abs(trend) >= rules.trend_threshold * eased("trending", ease),
    ]
    choices = [
        code["crisis"],
        code["high_volatility_breakout"],
        code["low_volatility_compression"],
        code["trending"],
    ]
    return np.select(conditions, choices, default=code["mean_reverting"])


def regimes(close: Array, *, confirm_bars: int = 30) -> NDArray[np.int64]:
    """The engine's regime (code into REGIMES) after each cross-section: `DEFAULT_REGIME` until one is confirmed."""
    vol_ratio, trend = market_features(close)
    rules = _Rules()
    first = WARMUP_BARS
    n = close.shape[0] - first
    index = np.arange(n)
    labels = {}
    run_start = {}
    for state in range(_NONE + 1):
        lab = _labels(state, vol_ratio[first:], trend[first:], rules)
        starts = np.ones(n, dtype=bool)
        starts[1:] = lab[1:] != lab[:-1]
        labels[state] = lab
        run_start[state] = np.maximum.accumulate(np.where(starts, index, 0))
    out = np.full(close.shape[0], REGIMES.index(DEFAULT_REGIME))
    state, p = _NONE, 0
    while p < n:
        lab, rs = labels[state][p:], run_start[state][p:]
        streak = index[p:] - np.maximum(rs, p) + 1
        hits = np.flatnonzero((lab != state) & (streak >= confirm_bars))
        end = n if hits.size == 0 else p + int(hits[0])
        if state != _NONE:
            out[first + p : first + end] = state
        if end == n:
            break
        state = int(labels[state][end])
        out[first + end] = state
        p = end + 1
    return out


@dataclass(frozen=True, slots=True)
class Decisions:
    """Every order the strategy decides: bar index, symbol column, +1/-1 to open that way or 0 to close."""

    bar: NDArray[np.int64]
    symbol: NDArray[np.int64]
    action: NDArray[np.int64]


def composite(
    strengths: dict[str, Array], regime: NDArray[np.int64], profile: Profile
) -> tuple[Array, Array]:
    """(composite, leading signal's horizon) per (bar, symbol); NaN where no weighted signal has a value yet."""
    table = np.array([[float(profile.weights_for(r).get(s, 0.0)) for s in SIGNAL_TYPES] for r in REGIMES])
    weights = table[regime]  # (bars, signal types)
    numerator = np.zeros_like(strengths["momentum"])
    denominator = np.zeros_like(numerator)
    sizes = []
    for k, name in enumerate(SIGNAL_TYPES):
        w = weights[:, k : k + 1]
        s = strengths[name]
        valid = ~np.isnan(s) & (w > 0.0)
        weighted = np.where(valid, w * s, 0.0)
        numerator += weighted
        denominator += np.where(valid, w, 0.0)
        sizes.append(np.abs(weighted))
    stacked = np.stack(sizes)
    lead = np.argmax(stacked, axis=0)
    horizons = np.array([HORIZONS[name] for name in SIGNAL_TYPES], dtype=np.float64)[lead]
    horizons[stacked.max(axis=0) <= 0.0] = 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        values = np.where(denominator > 0.0, numerator / denominator, np.nan)
    return values, horizons


def decide(values: Array, horizons: Array, profile: Profile) -> Decisions:
    """The built-in strategy's orders, symbol by symbol, jumping from one entry or exit to the next."""
    bars, actions, symbols = [], [], []
    threshold, exit_threshold = profile.signal_threshold, profile.exit_threshold
    for column in range(values.shape[1]):
        c = values[:, column]
        defined = ~np.isnan(c)
        entries = np.flatnonzero(defined & (np.abs(np.where(defined, c, 0.0)) >= threshold))
        exits = {
            1: np.flatnonzero(defined & (np.where(defined, c, 0.0) < exit_threshold)),
            -1: np.flatnonzero(defined & (-np.where(defined, c, 0.0) < exit_threshold)),
        }
        t = 0
        while True:
            i = np.searchsorted(entries, t)
            if i == entries.size:
                break
            entry = int(entries[i])
            direction = 1 if c[entry] > 0 else -1
            bars.append(entry)
            actions.append(direction)
            symbols.append(column)
            # Filled at the next bar, held from there for the opener's horizon before it may close.
            earliest = entry + 1 + int(horizons[entry, column])
            candidates = exits[direction]
            j = np.searchsorted(candidates, earliest)
            if j == candidates.size:
                break
            leave = int(candidates[j])
            bars.append(leave)
            actions.append(0)
            symbols.append(column)
            t = leave + 1  # flat once the closing order fills on the next bar, and free to reopen there
    order = np.lexsort((np.array(symbols), np.array(bars)))
    return Decisions(
        bar=np.array(bars, dtype=np.int64)[order],
        symbol=np.array(symbols, dtype=np.int64)[order],
        action=np.array(actions, dtype=np.int64)[order],
    )


def run(close: Array, high: Array, low: Array, profile: Profile) -> tuple[dict[str, Array], Decisions]:
    """Signals, regime, composite and decisions over a (bars, symbols) panel."""
    strengths = signals(close, high, low)
    values, horizons = composite(strengths, regimes(close), profile)
    return strengths, decide(values, horizons, profile)
