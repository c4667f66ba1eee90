"""Market regime: features over cross-sections of bars, a classifier port, and a tracker with hysteresis.

`MarketFeatures` is the one definition of the regime features: the engine runs it live, and the batch side
trains its model on `compute_features`, which runs the very same class over history.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Protocol, runtime_checkable

from live.domain import REGIMES, Bar, RegimeChange

# What the engine assumes before the tracker has confirmed a first regime: the neutral, no-view label.
DEFAULT_REGIME = "mean_reverting"

FEATURE_NAMES: tuple[str, ...] = (
    "vol_short",
    "vol_long",
    "vol_ratio",
    "trend_strength",
    "autocorr",
    "dispersion",
    "drawdown",
)

SHORT_HALFLIFE = 30
TREND_HALFLIFE = 240
LONG_HALFLIFE = 1440
WARMUP_BARS = 60

# Module-level aliases: MarketFeatures.update runs once per cross-section, live and over all of history.
_INF = math.inf
_log, _sqrt, _exp = math.log, math.sqrt, math.exp
_REGIME_SET = frozenset(REGIMES)


def _alpha(halflife: float) -> float:
    return 1.0 - 0.5 ** (1.0 / halflife)


class MarketFeatures:
    """Incremental regime features of the equal-weight market, O(1) in history per cross-section.

    From r, the mean log return across the symbols that have a previous close:
    `vol_short` / `vol_long`: EW root mean square of r (halflives 30 and 1440 bars);
    `vol_ratio`: vol_short / vol_long;
    `trend_strength`: EW mean of r over its standard error (halflife 240 bars), roughly N(0, 1) without a trend;
    `autocorr`: EW lag-1 autocorrelation of r (halflife 240), in [-1, 1];
    `dispersion`: EW cross-sectional standard deviation of symbol returns (halflife 30), relative to vol_long;
    `drawdown`: fraction of the market index below its peak, the peak decaying toward the index (halflife 1440).
    EW averages are bias-corrected, so early values are usable; `update` returns None for the first 60 cross-sections.
    """

    __slots__ = (
        "_a_long",
        "_a_short",
        "_a_trend",
        "_count",
        "_disp_s",
        "_index",
        "_lag_w",
        "_last_r",
        "_long_s",
        "_long_w",
        "_peak",
        "_prev_close",
        "_short_s",
        "_short_w",
        "_trend_lag",
        "_trend_m1",
        "_trend_m2",
        "_trend_w",
        "_trend_w2",
    )

    def __init__(self) -> None:
        self._a_short = _alpha(SHORT_HALFLIFE)
        self._a_trend = _alpha(TREND_HALFLIFE)
        self._a_long = _alpha(LONG_HALFLIFE)
        self._prev_close: dict[str, float] = {}
        self._count = 0
        # Weighted sums and weight totals of the bias-corrected EW averages.
        self._short_s = self._short_w = self._disp_s = 0.0
        self._long_s = self._long_w = 0.0
        self._trend_m1 = self._trend_m2 = self._trend_lag = self._trend_w = self._trend_w2 = 0.0
        self._lag_w = 0.0
        self._last_r = 0.0
        self._index = 0.0
        self._peak = 0.0

    def update(self, bars: Sequence[Bar]) -> dict[str, float] | None:
        """Fold in one cross-section; return the features, or None while warming up."""
        prev = self._prev_close
        total = 0.0
        total_sq = 0.0
        n = 0
        for bar in bars:
            close = bar.close
            if not 0.0 < close < _INF:
                continue
            symbol = bar.symbol
            last = prev.get(symbol)
            prev[symbol] = close
            if last is not None:
                ret = _log(close / last)
                total += ret
                total_sq += ret * ret
                n += 1
        if n == 0:
            return None
        r = total / n
        cs_std = _sqrt(max(total_sq / n - r * r, 0.0))
        r2 = r * r

        d = 1.0 - self._a_short
        self._short_s = d * self._short_s + r2
        self._disp_s = d * self._disp_s + cs_std
        short_w = self._short_w = d * self._short_w + 1.0
        a_long = self._a_long
        d = 1.0 - a_long
        long_s = self._long_s = d * self._long_s + r2
        long_w = self._long_w = d * self._long_w + 1.0
        d = 1.0 - self._a_trend
        if self._count > 0:
            self._trend_lag = d * self._trend_lag + r * self._last_r
            self._lag_w = d * self._lag_w + 1.0
        trend_m1 = self._trend_m1 = d * self._trend_m1 + r
        trend_m2 = self._trend_m2 = d * self._trend_m2 + r2
        trend_w = self._trend_w = d * self._trend_w + 1.0
        trend_w2 = self._trend_w2 = d * d * self._trend_w2 + 1.0
        self._last_r = r
        index = self._index = self._index + r
        peak = self._peak
        peak = self._peak = max(index, peak - a_long * (peak - index))
        count = self._count = self._count + 1
        if count < WARMUP_BARS:
            return None

        vol_short = _sqrt(self._short_s / short_w)
        vol_long = _sqrt(long_s / long_w)
        trend_m2 = trend_m2 / trend_w
        # Standard error of a weighted mean: sigma * sqrt(sum w^2) / sum w.
        trend_se = _sqrt(trend_m2 * trend_w2) / trend_w
        trend_mean = trend_m1 / trend_w
        lag_mean = self._trend_lag / self._lag_w
        return {
            "vol_short": vol_short,
            "vol_long": vol_long,
            "vol_ratio": vol_short / vol_long if vol_long > 0.0 else 1.0,
            "trend_strength": trend_mean / trend_se if trend_se > 0.0 else 0.0,
            "autocorr": max(-1.0, min(1.0, lag_mean / trend_m2)) if trend_m2 > 0.0 else 0.0,
            "dispersion": self._disp_s / short_w / vol_long if vol_long > 0.0 else 0.0,
            "drawdown": 1.0 - _exp(index - peak),
        }


def compute_features(batches: Iterable[Sequence[Bar]]) -> list[tuple[datetime, dict[str, float]]]:
    """Run `MarketFeatures` over history: (timestamp, features) for every cross-section past the warm-up."""
    features = MarketFeatures()
    rows: list[tuple[datetime, dict[str, float]]] = []
    for bars in batches:
        if not bars:
            continue
        values = features.update(bars)
        if values is not None:
            rows.append((bars[0].timestamp, values))
    return rows


class RegimeClassifier(Protocol):
    """Maps one set of `FEATURE_NAMES` values to one of `live.domain.REGIMES`."""

    name: str

    def classify(self, features: Mapping[str, float]) -> str: ...


@runtime_checkable
class HysteresisClassifier(RegimeClassifier, Protocol):
    """A classifier that can favour the regime in force, so a feature hovering at a threshold does not flap.

    Optional: `RegimeTracker` uses `classify_from` when a classifier has it, and `classify` otherwise.
    """

    def classify_from(self, current: str | None, features: Mapping[str, float]) -> str: ...


class RuleBasedClassifier:
    """Transparent thresholds ("rules-v1"), checked in this order:

    crisis: vol_ratio >= 1.8 and trend_strength <= -2 (volatility jumps while the market falls);
    high_volatility_breakout: vol_ratio >= 1.5;
    low_volatility_compression: vol_ratio <= 0.6;
    trending: |trend_strength| >= 2.5;
    mean_reverting: anything else.
    With `classify_from`, the regime in force keeps its label until its thresholds are missed by more than
    `band` (20 %): e.g. a confirmed breakout lasts while vol_ratio >= 1.2.
    """

    name = "rules-v1"

    def __init__(
        self,
        *,
        crisis_vol_ratio: float = 1.8,
        crisis_trend: float = -2.0,
        breakout_vol_ratio: float = 1.5,
        compression_vol_ratio: float = 0.6,
        trend_threshold: float = 2.5,
        band: float = 0.2,
    ) -> None:
        if not 0.0 <= band < 1.0:
            raise ValueError(f"band must be in [0, 1), got {band}")
        self.crisis_vol_ratio = crisis_vol_ratio
        self.crisis_trend = crisis_trend
        self.breakout_vol_ratio = breakout_vol_ratio
        self.compression_vol_ratio = compression_vol_ratio
        self.trend_threshold = trend_threshold
        self.band = band

    def classify(self, features: Mapping[str, float]) -> str:
        """Return the regime label for one set of features, with no regard to the regime in force."""
        return self.classify_from(None, features)

    def classify_from(self, current: str | None, features: Mapping[str, float]) -> str:
        """Return the regime label, holding on to `current` inside its hysteresis band."""
        vol_ratio = features["vol_ratio"]
        trend = features["trend_strength"]
        # Staying needs less than entering: thresholds of the regime in force are eased by `band`.
        ease = 1.0 - self.band
        crisis = ease if current == "crisis" else 1.0
        if vol_ratio >= self.crisis_vol_ratio * crisis and trend <= self.crisis_trend * crisis:
            return "crisis"
        breakout = ease if current == "high_volatility_breakout" else 1.0
        if vol_ratio >= self.breakout_vol_ratio * breakout:
            return "high_volatility_breakout"
        compression = (2.0 - ease) if current == "low_volatility_compression" else 1.0
        if vol_ratio <= self.compression_vol_ratio * compression:
            return "low_volatility_compression"
        trending = ease if current == "trending" else 1.0
        if abs(trend) >= self.trend_threshold * trending:
            return "trending"
        return "mean_reverting"


class RegimeTracker:
    """Follows the classifier's label with hysteresis: a new label must hold for `confirm_bars` cross-sections.

    `current` is None until a first label is confirmed (the engine then assumes `DEFAULT_REGIME`).
    After `set_classifier`, the next classified cross-section adopts the new model's label at once.
    """

    def __init__(self, classifier: RegimeClassifier, *, confirm_bars: int = 30) -> None:
        if confirm_bars < 1:
            raise ValueError(f"confirm_bars must be at least 1, got {confirm_bars}")
        self._confirm_bars = confirm_bars
        self._market = MarketFeatures()
        self._current: str | None = None
        self._candidate: str | None = None
        self._streak = 0
        self._features: dict[str, float] | None = None
        self._use(classifier)
        self._swapped = False

    @property
    def current(self) -> str | None:
        """The confirmed regime, or None before the first confirmation."""
        return self._current

    @property
    def features(self) -> dict[str, float] | None:
        """The latest features, or None while warming up."""
        return self._features

    @property
    def classifier(self) -> RegimeClassifier:
        """The classifier in use."""
        return self._classifier

    def set_classifier(self, classifier: RegimeClassifier) -> None:
        """Swap the classifier (e.g. a retrained model); its first label is adopted without waiting."""
        self._use(classifier)
        self._swapped = True

    def _use(self, classifier: RegimeClassifier) -> None:
        self._classifier = classifier
        # Checked once here: an isinstance check against a Protocol is too slow for every cross-section.
        self._sticky = classifier if isinstance(classifier, HysteresisClassifier) else None

    def update(self, timestamp: datetime, bars: Sequence[Bar]) -> RegimeChange | None:
        """Fold in one cross-section; return a RegimeChange when the confirmed regime changes."""
        features = self._market.update(bars)
        if features is None:
            return None
        self._features = features
        if self._sticky is not None:
            label = self._sticky.classify_from(self._current, features)
        else:
            label = self._classifier.classify(features)
        if label not in _REGIME_SET:
            raise ValueError(f"classifier {self._classifier.name} returned unknown regime {label!r}")
        if label == self._candidate:
            self._streak += 1
        else:
            self._candidate = label
            self._streak = 1
        if self._swapped:
            # A freshly deployed model is trusted at once; its label still needs confirming to change again.
            self._swapped = False
            self._streak = self._confirm_bars
        if self._streak < self._confirm_bars or label == self._current:
            return None
        previous = self._current
        self._current = label
        return RegimeChange(
            timestamp=timestamp, previous=previous, current=label, model=self._classifier.name
        )
