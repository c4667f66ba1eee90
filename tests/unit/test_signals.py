"""Signal models: warm-up, bounded strength, the right direction, constant memory, and the textbook numbers."""

from __future__ import annotations

import math
import tracemalloc
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from live.domain import SIGNAL_TYPES, Bar
from live.signals import HORIZONS, SIGNAL_MODELS, SignalModel, make_signal_models
from live.signals.breakout import Breakout
from live.signals.mean_reversion import MeanReversion
from live.signals.momentum import Momentum, ema_gap_scale
from live.signals.vol_trend import VolTrend

T0 = datetime(2026, 1, 5, tzinfo=UTC)


def _bars(closes: Sequence[float], *, wick: float = 0.0005) -> list[Bar]:
    bars = []
    previous = closes[0]
    for i, close in enumerate(closes):
        bars.append(
            Bar(
                timestamp=T0 + timedelta(minutes=i),
                symbol="X",
                open=previous,
                high=max(previous, close) * (1 + wick),
                low=min(previous, close) * (1 - wick),
                close=close,
                volume=100.0,
            )
        )
        previous = close
    return bars


def _random_walk(n: int, *, seed: int = 1, drift: float = 0.0, sigma: float = 0.001) -> list[float]:
    rng = np.random.default_rng(seed)
    return (100.0 * np.exp(np.cumsum(drift + sigma * rng.standard_normal(n)))).tolist()


def _run(model: SignalModel, bars: Sequence[Bar]) -> list[float | None]:
    return [model.update(bar) for bar in bars]


ALL_MODELS = pytest.mark.parametrize("signal_type", SIGNAL_TYPES)


def test_every_signal_type_of_the_domain_has_a_model_under_its_name() -> None:
    assert tuple(SIGNAL_MODELS) == SIGNAL_TYPES
    for name, factory in SIGNAL_MODELS.items():
        model = factory()
        assert model.signal_type == name
        assert model.horizon_bars == HORIZONS[name] > 0


def test_each_symbol_gets_its_own_models() -> None:
    models = make_signal_models(["AAPL", "MSFT"])
    assert set(models) == {"AAPL", "MSFT"}
    assert set(models["AAPL"]) == set(SIGNAL_TYPES)
    assert models["AAPL"]["momentum"] is not models["MSFT"]["momentum"]


@ALL_MODELS
def test_a_model_says_nothing_until_warmed_up_and_then_always_speaks(signal_type: str) -> None:
    values = _run(SIGNAL_MODELS[signal_type](), _bars(_random_walk(300)))
    first = next(i for i, value in enumerate(values) if value is not None)
    assert 5 <= first <= 100
    assert all(value is None for value in values[:first])
    assert all(value is not None for value in values[first:])


@pytest.mark.parametrize(
    ("factory", "warmup"),
    [(Momentum, 40), (MeanReversion, 20), (Breakout, 20), (VolTrend, 61)],
)
def test_the_first_value_comes_with_the_bar_that_completes_the_window(
    factory: Callable[[], SignalModel], warmup: int
) -> None:
    values = _run(factory(), _bars(_random_walk(100)))
    assert values[warmup - 2] is None
    assert values[warmup - 1] is not None


@ALL_MODELS
def test_strength_stays_finite_and_within_minus_one_to_one_on_wild_prices(signal_type: str) -> None:
    rng = np.random.default_rng(3)
    jumps = rng.choice([1.0, 1.0, 1.0, 50.0, 0.02], size=3000) * np.exp(0.05 * rng.standard_normal(3000))
    closes = np.clip(np.cumprod(jumps) * 10.0, 1e-6, 1e9).tolist()
    values = _run(SIGNAL_MODELS[signal_type](), _bars(closes))
    strengths = [value for value in values if value is not None]
    assert len(strengths) > 2800
    assert all(math.isfinite(s) and -1.0 <= s <= 1.0 for s in strengths)
    assert max(strengths) > 0.5
    assert min(strengths) < -0.5


@ALL_MODELS
def test_a_market_that_does_not_move_gives_zero_strength(signal_type: str) -> None:
    values = _run(SIGNAL_MODELS[signal_type](), _bars([50.0] * 200, wick=0.0))
    assert values[-1] == 0.0


@pytest.mark.parametrize(
    ("signal_type", "follows_the_trend"),
    [("momentum", True), ("breakout", True), ("vol_trend", True), ("mean_reversion", False)],
)
@pytest.mark.parametrize("direction", [1.0, -1.0], ids=["up", "down"])
def test_trend_signals_follow_a_steady_trend_and_mean_reversion_fades_it(
    signal_type: str, follows_the_trend: bool, direction: float
) -> None:
    closes = _random_walk(400, seed=2, drift=direction * 0.0004, sigma=0.0004)
    values = [v for v in _run(SIGNAL_MODELS[signal_type](), _bars(closes)) if v is not None]
    expected = direction if follows_the_trend else -direction
    late = np.array(values[-200:])
    assert np.mean(late) * expected > 0.3


@ALL_MODELS
def test_memory_does_not_grow_with_the_number_of_bars(signal_type: str) -> None:
    model = SIGNAL_MODELS[signal_type]()
    # Falling highs fill the breakout's deque to its window; the rest is a random walk.
    bars = _bars([200.0 - 0.01 * i for i in range(500)] + _random_walk(20_000, seed=4)[:20_000])
    _run(model, bars[:1000])
    # Count only memory allocated by the signal code itself: other threads of the test process allocate too.
    only_signals = [tracemalloc.Filter(True, "*/live/signals/*")]
    tracemalloc.start()
    try:
        _run(model, bars[1000:2000])
        after_1000 = tracemalloc.take_snapshot().filter_traces(only_signals)
        _run(model, bars[2000:])
        after_19500 = tracemalloc.take_snapshot().filter_traces(only_signals)
    finally:
        tracemalloc.stop()
    growth = sum(stat.size_diff for stat in after_19500.compare_to(after_1000, "filename"))
    assert growth < 2_000


def test_momentum_equals_the_batch_formula_on_ewm_means() -> None:
    closes = _random_walk(500, seed=5, drift=0.0001)
    values = _run(Momentum(fast_span=10, slow_span=40, vol_halflife=60), _bars(closes))

    x = pl.Series(np.log(closes))
    fast = x.ewm_mean(alpha=2 / 11, adjust=False)
    slow = x.ewm_mean(alpha=2 / 41, adjust=False)
    var = (x.diff() ** 2).slice(1).ewm_mean(alpha=1 - 0.5 ** (1 / 60), adjust=False)
    qf, qs = 1 - 2 / 11, 1 - 2 / 41
    gap_sd_per_vol = math.sqrt(qs**2 / (1 - qs**2) + qf**2 / (1 - qf**2) - 2 * qs * qf / (1 - qs * qf))
    expected = np.tanh((fast - slow).slice(1).to_numpy() / (gap_sd_per_vol * np.sqrt(var.to_numpy())))

    assert values[39:] == pytest.approx(expected[38:].tolist(), abs=1e-9)


def test_momentum_gap_scale_matches_a_simulated_random_walk() -> None:
    rng = np.random.default_rng(9)
    x = pl.Series(np.cumsum(rng.standard_normal(400_000)))
    gap = x.ewm_mean(alpha=2 / 11, adjust=False) - x.ewm_mean(alpha=2 / 41, adjust=False)

    assert gap.slice(1000).std() == pytest.approx(ema_gap_scale(2 / 11, 2 / 41), rel=0.05)


def test_mean_reversion_equals_the_batch_z_score_of_close_against_its_ema() -> None:
    closes = _random_walk(300, seed=6)
    values = _run(MeanReversion(span=20), _bars(closes))

    alpha = 2 / 21
    x = pl.Series(np.log(closes))
    deviation = x - x.ewm_mean(alpha=alpha, adjust=False)
    var = (deviation**2).ewm_mean(alpha=alpha, adjust=False)
    # The first deviation is 0/0; the model is silent until its 20th bar anyway.
    expected = -np.tanh(0.5 * deviation.slice(19).to_numpy() / np.sqrt(var.slice(19).to_numpy()))

    assert values[19:] == pytest.approx(expected.tolist(), abs=1e-9)


def test_breakout_equals_the_channel_position_from_rolling_max_and_min() -> None:
    closes = _random_walk(400, seed=7)
    bars = _bars(closes)
    values = _run(Breakout(window=20), bars)

    frame = pl.DataFrame({"high": [b.high for b in bars], "low": [b.low for b in bars], "close": closes})
    top = frame["high"].rolling_max(window_size=20)
    bottom = frame["low"].rolling_min(window_size=20)
    expected = (2 * (frame["close"] - bottom) / (top - bottom) - 1).to_list()

    assert values[19:] == pytest.approx(expected[19:], abs=1e-12)


def test_breakout_equals_rolling_max_and_min_when_highs_and_lows_repeat() -> None:
    """Prices on a coarse tick, bars without wicks: the same high or low recurs inside the window all the time,
    which is where a monotonic deque that drops ties or expires the wrong entry goes wrong."""
    rng = np.random.default_rng(11)
    closes = (100.0 + 0.05 * np.cumsum(rng.integers(-1, 2, 3000))).round(2).tolist()
    bars = _bars(closes, wick=0.0)
    values = _run(Breakout(window=20), bars)

    frame = pl.DataFrame({"high": [b.high for b in bars], "low": [b.low for b in bars], "close": closes})
    top = frame["high"].rolling_max(window_size=20)
    bottom = frame["low"].rolling_min(window_size=20)
    width = top - bottom
    expected = pl.when(width > 0).then(2 * (frame["close"] - bottom) / width - 1).otherwise(0.0)
    expected_values = pl.select(expected).to_series().to_list()

    assert len(set(closes)) < 200  # ties everywhere
    assert values[19:] == pytest.approx(expected_values[19:], abs=1e-12)


def test_vol_trend_equals_the_lookback_return_over_ew_volatility() -> None:
    closes = _random_walk(400, seed=8, drift=0.0002)
    values = _run(VolTrend(lookback=60, vol_halflife=120), _bars(closes))

    x = np.log(closes)
    var = pl.Series(np.diff(x) ** 2).ewm_mean(alpha=1 - 0.5 ** (1 / 120), adjust=False).to_numpy()
    expected = np.tanh((x[60:] - x[:-60]) / (np.sqrt(var[59:]) * math.sqrt(60)))

    assert values[60:] == pytest.approx(expected.tolist(), abs=1e-9)
