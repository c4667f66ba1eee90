"""The learned regime classifier: a Gaussian mixture over `live.regime` features, versioned under `models/`.

Components are named by what they look like, not by their arbitrary index, so retraining keeps the labels:
the two most volatile components (highest mean `vol_ratio`) are `crisis` (the one with the lower trend) and
`high_volatility_breakout`; the quietest remaining one is `low_volatility_compression`; of the last two the one with
the stronger |trend| is `trending`, the other `mean_reverting`.

An artifact is plain JSON (scaler, mixture parameters, labels) rebuilt with numpy: no pickle, so loading a model
file can never run code. `models/current.json` points at the promoted version.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from live.domain import REGIMES, Bar, iso_utc
from live.regime import FEATURE_NAMES, compute_features

if TYPE_CHECKING:  # `tradeos up` loads the promoted model from here; it needs neither at start-up
    import duckdb
    import polars as pl

FloatArray = npt.NDArray[np.float64]
CURRENT_POINTER = "current.json"
MODEL_FILE = "model.json"
METADATA_FILE = "metadata.json"
MODEL_KIND = "gmm"
_VOLATILITY = "vol_ratio"
_TREND = "trend_strength"
_LOG_2PI = math.log(2.0 * math.pi)


class ModelArtifactError(ValueError):
    """A model file is missing, unreadable or inconsistent; the message names the file."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainingConfig:
    """How a model is trained and when it is good enough to promote."""

    # Blocked holdout: the window is cut into `blocks` contiguous blocks and every `holdout_every`-th is held out,
    # so the holdout spans the window's regimes while neighbouring (autocorrelated) samples stay mostly together.
    blocks: int = 20
    holdout_every: int = 5
    min_train_samples: int = 200
    min_holdout_samples: int = 50
    min_component_weight: float = 0.005
    # Share of consecutive holdout samples with the same label: a regime that flickers bar to bar is noise.
    min_persistence: float = 0.9
    # How much worse (median log-likelihood, nats) than the promoted model on the same holdout a new one may be.
    promotion_tolerance: float = 1.0
    random_state: int = 0
    n_init: int = 3
    reg_covar: float = 1e-6


def label_components(means: FloatArray, features: Sequence[str]) -> list[str]:
    """Regime of each mixture component from its mean (unscaled units); needs exactly len(REGIMES) components."""
    if means.shape[0] != len(REGIMES):
        raise ValueError(f"need {len(REGIMES)} components to name, got {means.shape[0]}")
    vol = means[:, list(features).index(_VOLATILITY)]
    trend = means[:, list(features).index(_TREND)]
    # lexsort keys: the last one is primary; the mean values break ties before any index could.
    by_vol = [int(i) for i in np.lexsort((trend, vol))[::-1]]
    labels = [""] * len(REGIMES)
    loud = sorted(by_vol[:2], key=lambda k: (trend[k], vol[k]))
    labels[loud[0]] = "crisis"
    labels[loud[1]] = "high_volatility_breakout"
    quiet = by_vol[-1]
    labels[quiet] = "low_volatility_compression"
    middle = sorted(by_vol[2:-1], key=lambda k: (abs(trend[k]), vol[k]))
    labels[middle[0]] = "mean_reverting"
    labels[middle[1]] = "trending"
    return labels


class GaussianRegimeClassifier:
    """A promoted (or candidate) mixture model: `classify(features)` returns the most probable component's regime."""

    def __init__(
        self,
        *,
        name: str,
        features: Sequence[str],
        scaler_mean: Sequence[float],
        scaler_scale: Sequence[float],
        weights: Sequence[float],
        means: Sequence[Sequence[float]],
        covariances: Sequence[Sequence[Sequence[float]]],
        labels: Sequence[str],
    ) -> None:
        self.name = name
        self.features = tuple(features)
        self.labels = tuple(labels)
        self._shift = np.asarray(scaler_mean, dtype=np.float64)
        self._scale = np.asarray(scaler_scale, dtype=np.float64)
        self._means = np.asarray(means, dtype=np.float64)
        self._weights = np.asarray(weights, dtype=np.float64)
        covs = np.asarray(covariances, dtype=np.float64)
        self._covs = covs
        k, d = self._means.shape
        if covs.shape != (k, d, d) or len(self.labels) != k or self._shift.shape != (d,) or len(weights) != k:
            raise ModelArtifactError(f"model {name}: parameter shapes do not agree")
        unknown = set(self.labels) - set(REGIMES)
        if unknown:
            raise ModelArtifactError(f"model {name}: unknown regime labels {sorted(unknown)}")
        try:
            chol = np.linalg.cholesky(covs)
        except np.linalg.LinAlgError as exc:
            raise ModelArtifactError(f"model {name}: a covariance is not positive definite") from exc
        self._chol_inv = np.linalg.inv(chol)
        log_det = 2.0 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
        self._log_norm = np.log(self._weights) - 0.5 * (d * _LOG_2PI + log_det)

    def _scaled(self, x: FloatArray) -> FloatArray:
        scaled: FloatArray = (x - self._shift) / self._scale
        # A missing or non-finite feature counts as its training mean rather than failing the engine's bar.
        return np.where(np.isfinite(scaled), scaled, 0.0)

    def _weighted_log_prob(self, scaled: FloatArray) -> FloatArray:
        diff = scaled[:, None, :] - self._means[None, :, :]
        z = np.einsum("kij,nkj->nki", self._chol_inv, diff)
        result: FloatArray = self._log_norm[None, :] - 0.5 * np.einsum("nki,nki->nk", z, z)
        return result

    def matrix(self, rows: Iterable[Mapping[str, float]]) -> FloatArray:
        """Feature rows as an (n, d) array in this model's feature order (missing values as NaN)."""
        return np.array(
            [[row.get(f, math.nan) for f in self.features] for row in rows], dtype=np.float64
        ).reshape(-1, len(self.features))

    def components(self, x: FloatArray) -> npt.NDArray[np.int64]:
        """Most probable component per row of unscaled features."""
        result: npt.NDArray[np.int64] = np.argmax(self._weighted_log_prob(self._scaled(x)), axis=1)
        return result

    def log_likelihood(self, x: FloatArray) -> FloatArray:
        """Log density per row in unscaled feature units (comparable across models with other scalers)."""
        weighted = self._weighted_log_prob(self._scaled(x))
        top = weighted.max(axis=1, keepdims=True)
        result: FloatArray = (top[:, 0] + np.log(np.exp(weighted - top).sum(axis=1))) - np.log(
            self._scale
        ).sum()
        return result

    def median_log_likelihood(self, x: FloatArray) -> float:
        """Median log density per row: robust to the few extreme bars a volatile spell brings."""
        return float(np.median(self.log_likelihood(x))) if x.shape[0] else math.nan

    def classify(self, features: Mapping[str, float]) -> str:
        """Regime of one cross-section's features."""
        return self.labels[int(self.components(self.matrix([features]))[0])]

    def classify_many(self, x: FloatArray) -> list[str]:
        """Regime of each row of unscaled features."""
        return [self.labels[int(k)] for k in self.components(x)]

    def to_json(self) -> dict[str, Any]:
        """Parameters as plain JSON (the artifact format)."""
        return {
            "kind": MODEL_KIND,
            "name": self.name,
            "features": list(self.features),
            "scaler_mean": self._shift.tolist(),
            "scaler_scale": self._scale.tolist(),
            "weights": self._weights.tolist(),
            "means": self._means.tolist(),
            "covariances": self._covs.tolist(),
            "labels": list(self.labels),
        }

    @classmethod
    def from_json(cls, payload: Mapping[str, Any]) -> GaussianRegimeClassifier:
        """Rebuild a classifier from `to_json` output."""
        if payload.get("kind") != MODEL_KIND:
            raise ModelArtifactError(f"not a {MODEL_KIND} model: kind={payload.get('kind')!r}")
        return cls(
            name=str(payload["name"]),
            features=payload["features"],
            scaler_mean=payload["scaler_mean"],
            scaler_scale=payload["scaler_scale"],
            weights=payload["weights"],
            means=payload["means"],
            covariances=payload["covariances"],
            labels=payload["labels"],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainingResult:
    """A trained candidate and its validation; `validated` says whether it may be promoted."""

    name: str
    created_at: datetime
    training_start: datetime | None
    training_end: datetime | None
    n_train: int
    n_holdout: int
    features: tuple[str, ...]
    train_score: float
    validation_score: float
    holdout_persistence: float
    current_model: str | None
    current_score: float | None
    validated: bool
    reason: str
    label_counts: dict[str, int]
    model: dict[str, Any] | None

    def metadata(self) -> dict[str, Any]:
        """The metadata JSON written beside the model."""
        meta = asdict(self)
        meta.pop("model")
        for key in ("created_at", "training_start", "training_end"):
            value = meta[key]
            meta[key] = iso_utc(value) if isinstance(value, datetime) else None
        meta["features"] = list(self.features)
        meta["validation"] = "median log-likelihood per sample (nats, unscaled features) on a blocked holdout"
        for key in ("train_score", "validation_score", "holdout_persistence", "current_score"):
            value = meta[key]
            meta[key] = value if isinstance(value, float) and math.isfinite(value) else None
        return meta


def model_name(created_at: datetime) -> str:
    """Version name like `gmm-20261125T120000Z`."""
    return f"{MODEL_KIND}-{created_at.astimezone(UTC):%Y%m%dT%H%M%SZ}"


def bar_batches(bars: pl.DataFrame) -> list[list[Bar]]:
    """Cross-sections of `Bar` per timestamp, in time order, from a bars frame."""
    ordered = bars.sort("timestamp", "symbol")
    batches: list[list[Bar]] = []
    last: datetime | None = None
    for ts, symbol, open_, high, low, close, volume in ordered.select(
        "timestamp", "symbol", "open", "high", "low", "close", "volume"
    ).iter_rows():
        if ts != last:
            batches.append([])
            last = ts
        batches[-1].append(
            Bar(timestamp=ts, symbol=symbol, open=open_, high=high, low=low, close=close, volume=volume)
        )
    return batches


def feature_matrix(bars: pl.DataFrame) -> tuple[list[datetime], FloatArray]:
    """Timestamps and the (n, d) matrix of `FEATURE_NAMES` values, via `live.regime.compute_features`."""
    rows = compute_features(bar_batches(bars))
    stamps = [ts for ts, _ in rows]
    matrix = np.array([[values[f] for f in FEATURE_NAMES] for _, values in rows], dtype=np.float64)
    return stamps, matrix.reshape(-1, len(FEATURE_NAMES))


def train(
    stamps: Sequence[datetime],
    x: FloatArray,
    *,
    created_at: datetime,
    current: GaussianRegimeClassifier | None = None,
    config: TrainingConfig | None = None,
) -> TrainingResult:
    """Fit on most of the window, score on held-out blocks of it, and decide whether it may be promoted."""
    from sklearn.mixture import GaussianMixture

    cfg = config or TrainingConfig()
    name = model_name(created_at)
    keep = np.asarray(np.isfinite(x).all(axis=1), dtype=bool)
    stamps = [ts for ts, ok in zip(stamps, keep.tolist(), strict=True) if ok]
    x = x[keep]
    n = x.shape[0]
    held_out = ((np.arange(n) * cfg.blocks) // max(n, 1)) % cfg.holdout_every == cfg.holdout_every // 2
    n_holdout = int(held_out.sum())
    n_train = n - n_holdout
    base: dict[str, Any] = {
        "name": name,
        "created_at": created_at,
        "training_start": stamps[0] if n else None,
        "training_end": stamps[-1] if n else None,
        "n_train": n_train,
        "n_holdout": n_holdout,
        "features": tuple(FEATURE_NAMES),
        "current_model": current.name if current else None,
    }
    if n_train < cfg.min_train_samples or n_holdout < cfg.min_holdout_samples:
        return TrainingResult(
            **base,
            train_score=math.nan,
            validation_score=math.nan,
            holdout_persistence=math.nan,
            current_score=None,
            validated=False,
            reason=f"too little data: {n_train} training and {n_holdout} holdout samples "
            f"(need {cfg.min_train_samples} and {cfg.min_holdout_samples})",
            label_counts={},
            model=None,
        )
    train_x, holdout_x = x[~held_out], x[held_out]
    shift = train_x.mean(axis=0)
    scale = train_x.std(axis=0)
    scale = np.where(scale > 0.0, scale, 1.0)
    mixture = GaussianMixture(
        n_components=len(REGIMES),
        covariance_type="full",
        random_state=cfg.random_state,
        n_init=cfg.n_init,
        reg_covar=cfg.reg_covar,
    ).fit((train_x - shift) / scale)
    unscaled_means = mixture.means_ * scale + shift
    candidate = GaussianRegimeClassifier(
        name=name,
        features=FEATURE_NAMES,
        scaler_mean=shift.tolist(),
        scaler_scale=scale.tolist(),
        weights=mixture.weights_.tolist(),
        means=mixture.means_.tolist(),
        covariances=mixture.covariances_.tolist(),
        labels=label_components(unscaled_means, FEATURE_NAMES),
    )
    train_score = candidate.median_log_likelihood(train_x)
    validation_score = candidate.median_log_likelihood(holdout_x)
    current_score = (
        current.median_log_likelihood(holdout_x)
        if current is not None and tuple(current.features) == tuple(FEATURE_NAMES)
        else None
    )
    holdout_components = candidate.components(holdout_x)
    # Persistence within each held-out block only: the seams between blocks are not consecutive bars.
    block_of = ((np.arange(n) * cfg.blocks) // n)[held_out]
    same_block = block_of[1:] == block_of[:-1]
    persistence = float((holdout_components[1:] == holdout_components[:-1])[same_block].mean())
    labels = candidate.classify_many(x)
    label_counts = {regime: labels.count(regime) for regime in REGIMES}
    problems: list[str] = []
    if not mixture.converged_:
        problems.append("the mixture did not converge")
    if not math.isfinite(validation_score):
        problems.append("the holdout score is not finite")
    if float(mixture.weights_.min()) < cfg.min_component_weight:
        problems.append(f"a component holds less than {cfg.min_component_weight:.1%} of the data")
    if persistence < cfg.min_persistence:
        problems.append(
            f"labels flicker: only {persistence:.1%} of consecutive holdout bars keep their regime"
        )
    if (
        current is not None
        and current_score is not None
        and validation_score < current_score - cfg.promotion_tolerance
    ):
        problems.append(
            f"holdout score {validation_score:.3f} is worse than the promoted {current.name}'s "
            f"{current_score:.3f} by more than {cfg.promotion_tolerance}"
        )
    return TrainingResult(
        **base,
        train_score=train_score,
        validation_score=validation_score,
        holdout_persistence=persistence,
        current_score=current_score,
        validated=not problems,
        reason="; ".join(problems) if problems else "validated",
        label_counts=label_counts,
        model=candidate.to_json(),
    )


def _write_json(path: Path, payload: Mapping[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def save(result: TrainingResult, models_dir: Path) -> Path | None:
    """Write the candidate's `model.json` and `metadata.json` under `models_dir/<name>/`; None without a model."""
    if result.model is None:
        return None
    models_dir.mkdir(parents=True, exist_ok=True)
    directory = models_dir / result.name
    suffix = 1
    while directory.exists():
        # Two retrains within one second: keep both, never overwrite an artifact a pointer may name.
        directory = models_dir / f"{result.name}-{suffix}"
        suffix += 1
    directory.mkdir()
    model = {**result.model, "name": directory.name}
    _write_json(directory / MODEL_FILE, model)
    _write_json(directory / METADATA_FILE, {**result.metadata(), "name": directory.name})
    return directory


def promote(artifact: Path, models_dir: Path, *, promoted_at: datetime) -> None:
    """Point `models/current.json` at an artifact directory (atomic replace)."""
    GaussianRegimeClassifier.from_json(_read_json(artifact / MODEL_FILE))
    _write_json(
        models_dir / CURRENT_POINTER,
        {
            "name": artifact.name,
            "path": artifact.name,
            "promoted_at": iso_utc(promoted_at),
        },
    )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelArtifactError(f"cannot read {path}: {exc}") from exc
    if not isinstance(payload, dict):
        raise ModelArtifactError(f"{path} does not hold a JSON object")
    return payload


def promoted_model_name(models_dir: Path) -> str | None:
    """Name of the promoted model (cheap: reads only the pointer), or None if none is promoted."""
    pointer = models_dir / CURRENT_POINTER
    if not pointer.exists():
        return None
    return str(_read_json(pointer)["name"])


def load_promoted_classifier(models_dir: Path) -> GaussianRegimeClassifier | None:
    """The promoted classifier (a `live.regime.RegimeClassifier`), or None if none is promoted yet.

    Raises ModelArtifactError if the pointer names a missing or broken artifact.
    """
    pointer = models_dir / CURRENT_POINTER
    if not pointer.exists():
        return None
    target = _read_json(pointer)
    path = models_dir / str(target.get("path", target.get("name", "")))
    return GaussianRegimeClassifier.from_json(_read_json(path / MODEL_FILE))


REGISTRY_DDL = """
CREATE TABLE IF NOT EXISTS regime_models (
    name VARCHAR PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL,
    training_start TIMESTAMPTZ,
    training_end TIMESTAMPTZ,
    n_train BIGINT NOT NULL,
    n_holdout BIGINT NOT NULL,
    features VARCHAR[] NOT NULL,
    train_score DOUBLE,
    validation_score DOUBLE,
    holdout_persistence DOUBLE,
    current_model VARCHAR,
    current_score DOUBLE,
    validated BOOLEAN NOT NULL,
    promoted BOOLEAN NOT NULL,
    reason VARCHAR NOT NULL,
    path VARCHAR
)
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class RetrainOutcome:
    """One retraining: the candidate, where it was saved (if at all) and whether it is now the promoted model."""

    result: TrainingResult
    name: str
    artifact: Path | None
    promoted: bool


def load_window(conn: duckdb.DuckDBPyConnection, *, window_days: float) -> pl.DataFrame:
    """The last `window_days` of synced bars (relative to the newest bar)."""
    return conn.sql(
        "SELECT timestamp, symbol, open, high, low, close, volume FROM bars"
        " WHERE timestamp >= (SELECT max(timestamp) FROM bars) - to_microseconds(CAST(? * 86400e6 AS BIGINT))"
        " ORDER BY timestamp, symbol",
        params=[window_days],
    ).pl()


def retrain(
    bars: pl.DataFrame, models_dir: Path, *, created_at: datetime, config: TrainingConfig | None = None
) -> RetrainOutcome:
    """Train on the bars, save the artifact, and promote it if it validates against the promoted model."""
    try:
        current = load_promoted_classifier(models_dir)
    except ModelArtifactError:
        # A broken promoted artifact must not stop a good new one from replacing it.
        current = None
    stamps, x = feature_matrix(bars)
    result = train(stamps, x, created_at=created_at, current=current, config=config)
    artifact = save(result, models_dir)
    if artifact is not None and result.validated:
        promote(artifact, models_dir, promoted_at=created_at)
    return RetrainOutcome(
        result=result,
        name=artifact.name if artifact is not None else result.name,
        artifact=artifact,
        promoted=artifact is not None and result.validated,
    )


def record_model(conn: duckdb.DuckDBPyConnection, outcome: RetrainOutcome) -> None:
    """Add the retraining to the `regime_models` registry table."""
    conn.execute(REGISTRY_DDL)
    r = outcome.result

    def finite(value: float | None) -> float | None:
        return value if value is not None and math.isfinite(value) else None

    conn.execute(
        "INSERT OR REPLACE INTO regime_models VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            outcome.name,
            r.created_at,
            r.training_start,
            r.training_end,
            r.n_train,
            r.n_holdout,
            list(r.features),
            finite(r.train_score),
            finite(r.validation_score),
            finite(r.holdout_persistence),
            r.current_model,
            finite(r.current_score),
            r.validated,
            outcome.promoted,
            r.reason,
            str(outcome.artifact) if outcome.artifact else None,
        ],
    )
