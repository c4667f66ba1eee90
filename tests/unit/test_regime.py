"""Regime: features identical live and offline, rules as documented, a tracker that neither flaps nor lags a swap."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from live.domain import REGIMES, Bar, RegimeChange
from live.feeds import SimFeed
from live.regime import (
    DEFAULT_REGIME,
    FEATURE_NAMES,
    WARMUP_BARS,
    MarketFeatures,
    RegimeTracker,
    RuleBasedClassifier,
    compute_features,
)

T0 = datetime(2026, 1, 5, tzinfo=UTC)


def _market(
    returns: Sequence[float], *, symbols: int = 4, seed: int = 0, idio: float = 1e-4
) -> list[list[Bar]]:
    """Cross-sections whose equal-weight market log return is about `returns[t]`."""
    rng = np.random.default_rng(seed)
    log_prices = np.log(np.linspace(50.0, 200.0, symbols))
    batches = []
    for t, market in enumerate([0.0, *returns]):
        previous = np.exp(log_prices)
        log_prices = log_prices + market + idio * rng.standard_normal(symbols)
        closes = np.exp(log_prices)
        ts = T0 + timedelta(minutes=t)
        batches.append(
            [
                Bar(timestamp=ts, symbol=f"S{k}", open=o, high=max(o, c), low=min(o, c), close=c, volume=1.0)
                for k, (o, c) in enumerate(zip(previous.tolist(), closes.tolist(), strict=True))
            ]
        )
    return batches


class ScriptedClassifier:
    """Says the labels it is given, one per cross-section, then repeats the last."""

    def __init__(self, name: str, labels: Sequence[str]) -> None:
        self.name = name
        self._labels: Iterator[str] = itertools.chain(labels, itertools.repeat(labels[-1]))

    def classify(self, features: Mapping[str, float]) -> str:
        return next(self._labels)


def _feed(tracker: RegimeTracker, batches: Sequence[Sequence[Bar]]) -> list[RegimeChange]:
    changes = []
    for batch in batches:
        change = tracker.update(batch[0].timestamp, batch)
        if change is not None:
            changes.append(change)
    return changes


def _warm(tracker: RegimeTracker) -> list[list[Bar]]:
    """Feed just enough cross-sections that the next one is classified; return plenty more to feed."""
    batches = _market([1e-4] * 400)
    assert _feed(tracker, batches[:WARMUP_BARS]) == []
    assert tracker.features is None
    return batches[WARMUP_BARS:]


def test_features_are_none_while_warming_up_then_every_named_feature_is_finite() -> None:
    features = MarketFeatures()
    values = [features.update(batch) for batch in _market(np.full(200, 1e-4).tolist())]
    assert values[:WARMUP_BARS] == [None] * WARMUP_BARS
    for value in values[WARMUP_BARS:]:
        assert value is not None
        assert tuple(value) == FEATURE_NAMES
        assert all(math.isfinite(v) for v in value.values())


def test_compute_features_equals_running_market_features_by_hand() -> None:
    batches = list(SimFeed(sim_days=0.3).batches())
    by_hand = MarketFeatures()
    expected = []
    for batch in batches:
        value = by_hand.update(batch)
        if value is not None:
            expected.append((batch[0].timestamp, value))

    assert compute_features(iter(batches)) == expected
    assert len(expected) == len(batches) - WARMUP_BARS


def test_features_see_volatility_jump_and_the_market_fall() -> None:
    rng = np.random.default_rng(1)
    quiet = (1e-4 * rng.standard_normal(3000)).tolist()
    crash = (-5e-4 + 8e-4 * rng.standard_normal(300)).tolist()
    rows = compute_features(_market(quiet + crash))
    before, after = rows[len(quiet) - WARMUP_BARS - 1][1], rows[-1][1]
    assert before["vol_ratio"] == pytest.approx(1.0, abs=0.3)
    assert after["vol_ratio"] > 2.0
    assert after["trend_strength"] < -3.0
    assert after["drawdown"] > 0.1 > before["drawdown"]
    assert after["vol_short"] > after["vol_long"]


def test_autocorrelation_feature_is_negative_for_a_choppy_market() -> None:
    rng = np.random.default_rng(2)
    shocks = 1e-4 * rng.standard_normal(2001)
    choppy = (shocks[1:] - 0.8 * shocks[:-1]).tolist()
    last = compute_features(_market(choppy))[-1][1]
    assert last["autocorr"] < -0.3


@pytest.mark.parametrize(
    ("vol_ratio", "trend_strength", "regime"),
    [
        (2.0, -2.5, "crisis"),
        (2.0, 0.0, "high_volatility_breakout"),
        (1.5, -1.0, "high_volatility_breakout"),
        (0.6, 3.0, "low_volatility_compression"),
        (1.0, 2.5, "trending"),
        (1.0, -2.6, "trending"),
        (1.0, 2.4, "mean_reverting"),
        (0.61, 0.0, "mean_reverting"),
    ],
)
def test_rule_based_classifier_applies_its_documented_thresholds(
    vol_ratio: float, trend_strength: float, regime: str
) -> None:
    features = {"vol_ratio": vol_ratio, "trend_strength": trend_strength}
    assert RuleBasedClassifier().classify(features) == regime


def test_rule_based_classifier_holds_the_regime_in_force_inside_its_band() -> None:
    rules = RuleBasedClassifier()
    fading = {"vol_ratio": 1.3, "trend_strength": 0.0}
    assert rules.classify(fading) == "mean_reverting"
    assert rules.classify_from("high_volatility_breakout", fading) == "high_volatility_breakout"
    assert rules.classify_from("high_volatility_breakout", {"vol_ratio": 1.1, "trend_strength": 0.0}) == (
        "mean_reverting"
    )
    assert rules.classify_from("trending", {"vol_ratio": 1.0, "trend_strength": -2.1}) == "trending"


def test_there_is_no_regime_until_a_label_is_confirmed_and_then_it_comes_with_previous_none() -> None:
    tracker = RegimeTracker(ScriptedClassifier("script", ["trending"] * 10), confirm_bars=5)
    batches = _warm(tracker)
    assert _feed(tracker, batches[:4]) == []
    assert tracker.current is None
    changes = _feed(tracker, batches[4:5])
    assert changes == [
        RegimeChange(timestamp=batches[4][0].timestamp, previous=None, current="trending", model="script")
    ]
    assert tracker.current == "trending"
    assert DEFAULT_REGIME in REGIMES


def test_a_new_label_must_hold_for_confirm_bars_consecutive_cross_sections() -> None:
    labels = ["trending"] * 5 + ["crisis"] * 4 + ["trending"] + ["crisis"] * 4 + ["crisis"]
    tracker = RegimeTracker(ScriptedClassifier("script", labels), confirm_bars=5)
    batches = _warm(tracker)

    changes = _feed(tracker, batches[: len(labels) - 1])
    assert [c.current for c in changes] == ["trending"]
    assert tracker.current == "trending"

    changes = _feed(tracker, batches[len(labels) - 1 : len(labels)])
    assert [(c.previous, c.current) for c in changes] == [("trending", "crisis")]


def test_a_hot_swapped_classifier_takes_over_on_the_next_update_under_its_own_name() -> None:
    tracker = RegimeTracker(ScriptedClassifier("old", ["trending"]), confirm_bars=5)
    batches = _warm(tracker)
    _feed(tracker, batches[:5])
    assert tracker.current == "trending"

    tracker.set_classifier(ScriptedClassifier("model-v2", ["mean_reverting", "trending", "mean_reverting"]))
    change = tracker.update(batches[5][0].timestamp, batches[5])
    assert change == RegimeChange(
        timestamp=batches[5][0].timestamp, previous="trending", current="mean_reverting", model="model-v2"
    )
    # After the swap the usual hysteresis applies again: a one-bar blip changes nothing.
    assert _feed(tracker, batches[6:20]) == []
    assert tracker.current == "mean_reverting"
    assert tracker.classifier.name == "model-v2"


def test_a_hot_swap_to_a_classifier_that_agrees_emits_nothing() -> None:
    tracker = RegimeTracker(ScriptedClassifier("old", ["trending"]), confirm_bars=5)
    batches = _warm(tracker)
    _feed(tracker, batches[:5])
    tracker.set_classifier(ScriptedClassifier("new", ["trending"]))
    assert _feed(tracker, batches[5:10]) == []


def test_a_classifier_inventing_a_regime_is_refused() -> None:
    tracker = RegimeTracker(ScriptedClassifier("bad", ["sideways"]), confirm_bars=1)
    batches = _warm(tracker)
    with pytest.raises(ValueError, match="unknown regime 'sideways'"):
        tracker.update(batches[0][0].timestamp, batches[0])


def test_a_sharp_fall_after_a_quiet_spell_is_tracked_as_a_crisis() -> None:
    rng = np.random.default_rng(4)
    quiet = (1e-4 * rng.standard_normal(3000)).tolist()
    crash = (-4e-4 + 6e-4 * rng.standard_normal(200)).tolist()
    tracker = RegimeTracker(RuleBasedClassifier())
    _feed(tracker, _market(quiet + crash))
    assert tracker.current == "crisis"


def test_the_rule_based_tracker_on_a_month_of_sim_market_visits_several_regimes_without_flapping() -> None:
    tracker = RegimeTracker(RuleBasedClassifier())
    changes = _feed(tracker, list(SimFeed(seed=7, sim_days=30).batches()))
    visited = {change.current for change in changes}
    assert len(visited) >= 3
    assert len(changes) < 48
    assert all(change.model == "rules-v1" for change in changes)
    assert all(a.current == b.previous for a, b in itertools.pairwise(changes))
