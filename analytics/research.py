"""Walk-forward research (docs/strategies.md, Walk-forward): the folds of a replay file, the parameter grid, the
choice of the in-sample best, the `research_runs` / `research_trials` tables and the HTML report.

Windows are counted in the file's timestamps (one bar per symbol each; with minute bars 1,440 a day). Fold k
trains on timestamps [k*step, k*step + train) and is scored on the next `test` ones, which it never saw: a test
window starts where its train window ends. Pure functions over plain data; the flow (flows/walk_forward.py) runs the
backtests and hands their figures here.
"""

from __future__ import annotations

import itertools
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from html import escape
from pathlib import Path

import duckdb

from analytics.charts import grouped_bar_chart_svg
from analytics.report import REPORT_CSS, format_figure, html_table

# Figures a trial may be chosen on (BacktestSummary fields); higher is better for each.
OBJECTIVES: tuple[str, ...] = (
    "sharpe_ratio",
    "sortino_ratio",
    "total_return",
    "annualized_return",
    "net_pnl",
    "profit_factor",
    "win_rate",
)
# Figures kept per window, in- (is_) and out-of-sample (oos_).
FIGURES: tuple[tuple[str, str], ...] = (
    ("total_return", "DOUBLE"),
    ("annualized_return", "DOUBLE"),
    ("sharpe_ratio", "DOUBLE"),
    ("sortino_ratio", "DOUBLE"),
    ("max_drawdown", "DOUBLE"),
    ("win_rate", "DOUBLE"),
    ("profit_factor", "DOUBLE"),
    ("net_pnl", "DECIMAL(24, 8)"),
    ("fees", "DECIMAL(24, 8)"),
    ("fills", "INTEGER"),
    ("total_trades", "INTEGER"),
    ("bars", "INTEGER"),
)
FIGURE_NAMES: tuple[str, ...] = tuple(name for name, _ in FIGURES)
Figures = Mapping[str, float | int | Decimal]
Params = dict[str, str]


class ResearchError(ValueError):
    """A walk-forward input that cannot be used; the message is one line naming the parameter."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Fold:
    """One train window and the test window after it, as timestamps of the file (`*_end` exclusive, None at the
    end of the file) and as the first and last timestamp each holds."""

    number: int  # from 1
    train_start: datetime
    train_end: datetime
    test_start: datetime
    test_end: datetime | None
    train_last: datetime
    test_last: datetime


def plan_folds(
    timestamps: int, timestamp_at: Callable[[int], datetime], *, train: int, test: int, step: int
) -> list[Fold]:
    """Rolling folds over a file of `timestamps` distinct timestamps (`timestamp_at(i)` the i-th): as many as fit
    whole. ResearchError when a window length is not positive or the windows do not fit the file."""
    for name, value in (("train_bars", train), ("test_bars", test), ("step_bars", step)):
        if value < 1:
            raise ResearchError(f"{name}: must be at least 1 (got {value})")
    if train + test > timestamps:
        raise ResearchError(
            f"train_bars + test_bars: {train} + {test} timestamps do not fit the file's {timestamps}"
        )
    folds = []
    for k, start in enumerate(range(0, timestamps - train - test + 1, step), start=1):
        end = start + train + test
        folds.append(
            Fold(
                number=k,
                train_start=timestamp_at(start),
                train_end=timestamp_at(start + train),
                test_start=timestamp_at(start + train),
                test_end=timestamp_at(end) if end < timestamps else None,
                train_last=timestamp_at(start + train - 1),
                test_last=timestamp_at(end - 1),
            )
        )
    return folds


def parse_grid(grid: str | Mapping[str, Sequence[object]]) -> dict[str, list[str]]:
    """A grid's values per parameter, checked. A grid is a mapping of parameter to values, or the text
    `name=v1,v2;other=v3` (as `tradeos flows run --param grid=...` passes it)."""
    if isinstance(grid, str):
        axes: dict[str, list[str]] = {}
        for part in grid.split(";"):
            if not part.strip():
                continue
            key, sep, listed = part.partition("=")
            key = key.strip()
            if not sep or not key:
                raise ResearchError(f"grid: {part.strip()!r} is not NAME=V1,V2,...")
            if key in axes:
                raise ResearchError(f"grid: parameter {key!r} given twice")
            axes[key] = [v.strip() for v in listed.split(",") if v.strip()]
    else:
        axes = {str(name): [str(v) for v in values] for name, values in grid.items()}
    if not axes:
        raise ResearchError("grid: empty; give at least one parameter with values, e.g. fast=5,10;slow=30,60")
    for name, values in axes.items():
        if not values:
            raise ResearchError(f"grid: parameter {name!r} has no values")
        if len(set(values)) != len(values):
            raise ResearchError(f"grid: parameter {name!r} repeats a value")
    return axes


def grid_points(axes: Mapping[str, Sequence[str]]) -> list[Params]:
    """Every combination of the grid's values, in order (the last parameter varies fastest): trial k is the k-th."""
    names = list(axes)
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*axes.values())]


def check_objective(objective: str) -> str:
    if objective not in OBJECTIVES:
        raise ResearchError(f"objective: unknown {objective!r}; valid: {', '.join(OBJECTIVES)}")
    return objective


def score(figures: Figures, objective: str) -> float:
    """The objective's value, -inf when undefined (NaN): an undefined figure never wins."""
    value = float(figures[objective])
    return value if math.isfinite(value) else -math.inf


def best_trial(in_sample: Sequence[Figures], objective: str) -> int:
    """Index of the trial with the highest in-sample objective; the earliest in grid order on a tie, so the choice
    does not depend on the order trials finished in."""
    if not in_sample:
        raise ResearchError("grid: no trial to choose from")
    return max(range(len(in_sample)), key=lambda i: (score(in_sample[i], objective), -i))


def params_json(params: Mapping[str, str]) -> str:
    return json.dumps(dict(params), sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True, slots=True, kw_only=True)
class FoldResult:
    """A fold's trials (grid order), the one chosen, and the chosen parameters' out-of-sample figures."""

    fold: Fold
    params: Sequence[Params]
    in_sample: Sequence[Figures]
    chosen: int
    out_of_sample: Figures


@dataclass(frozen=True, slots=True, kw_only=True)
class ResearchRun:
    """What a walk-forward run was asked to do, and how it ran."""

    run_id: str
    started_at: datetime
    finished_at: datetime
    data: str
    strategy: str
    profile: str
    objective: str
    grid: Mapping[str, Sequence[str]]
    train_bars: int
    test_bars: int
    step_bars: int
    task_runner: str
    report: str
    folds: Sequence[FoldResult] = field(default_factory=tuple)


RUNS_DDL = """
CREATE TABLE IF NOT EXISTS research_runs (
    run_id VARCHAR PRIMARY KEY,
    started_at TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ NOT NULL,
    data VARCHAR NOT NULL,
    strategy VARCHAR NOT NULL,
    profile VARCHAR NOT NULL,
    objective VARCHAR NOT NULL,
    grid VARCHAR NOT NULL,
    train_bars INTEGER NOT NULL,
    test_bars INTEGER NOT NULL,
    step_bars INTEGER NOT NULL,
    folds INTEGER NOT NULL,
    trials INTEGER NOT NULL,
    is_objective_mean DOUBLE,
    oos_objective_mean DOUBLE,
    task_runner VARCHAR NOT NULL,
    report VARCHAR NOT NULL
)
"""

_FIGURE_COLUMNS = ",\n    ".join(f"{side}_{name} {kind}" for side in ("is", "oos") for name, kind in FIGURES)
TRIALS_DDL = f"""
CREATE TABLE IF NOT EXISTS research_trials (
    run_id VARCHAR NOT NULL,
    fold INTEGER NOT NULL,
    trial INTEGER NOT NULL,
    params VARCHAR NOT NULL,
    train_start TIMESTAMPTZ NOT NULL,
    train_end TIMESTAMPTZ NOT NULL,
    test_start TIMESTAMPTZ NOT NULL,
    test_end TIMESTAMPTZ,
    chosen BOOLEAN NOT NULL,
    is_objective DOUBLE,
    oos_objective DOUBLE,
    {_FIGURE_COLUMNS},
    PRIMARY KEY (run_id, fold, trial)
)
"""


def _finite(value: float | int | Decimal | None) -> float | int | Decimal | None:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _mean(values: Sequence[float]) -> float | None:
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else None


def record_research(conn: duckdb.DuckDBPyConnection, run: ResearchRun) -> None:
    """Add the run and its trials (ordered by fold, trial) to `research_runs` / `research_trials`."""
    conn.execute(RUNS_DDL)
    conn.execute(TRIALS_DDL)
    objective = run.objective
    conn.execute(
        "INSERT OR REPLACE INTO research_runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            run.run_id,
            run.started_at,
            run.finished_at,
            run.data,
            run.strategy,
            run.profile,
            objective,
            json.dumps({k: list(v) for k, v in run.grid.items()}),
            run.train_bars,
            run.test_bars,
            run.step_bars,
            len(run.folds),
            len(run.folds[0].params) if run.folds else 0,
            _mean([score(f.in_sample[f.chosen], objective) for f in run.folds]),
            _mean([score(f.out_of_sample, objective) for f in run.folds]),
            run.task_runner,
            run.report,
        ],
    )
    rows = []
    for result in run.folds:
        fold = result.fold
        for trial, (params, figures) in enumerate(zip(result.params, result.in_sample, strict=True)):
            chosen = trial == result.chosen
            oos: Figures = result.out_of_sample if chosen else {}
            rows.append(
                [
                    run.run_id,
                    fold.number,
                    trial,
                    params_json(params),
                    fold.train_start,
                    fold.train_end,
                    fold.test_start,
                    fold.test_end,
                    chosen,
                    _finite(float(figures[objective])),
                    _finite(float(oos[objective])) if chosen else None,
                    *(_finite(figures[name]) for name in FIGURE_NAMES),
                    *(_finite(oos.get(name)) for name in FIGURE_NAMES),
                ]
            )
    if rows:
        marks = ", ".join("?" * len(rows[0]))
        conn.executemany(f"INSERT OR REPLACE INTO research_trials VALUES ({marks})", rows)


def _stamp(moment: datetime | None) -> str:
    return "end of file" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def _params_text(params: Mapping[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items())


def _percent(figures: Figures, name: str) -> str:
    return format_figure(float(figures[name]), percent=True)


def render_report(run: ResearchRun, *, generated_at: datetime) -> str:
    """The walk-forward report: per fold, the chosen parameters' in-sample and out-of-sample figures side by side
    (the gap between them is the overfitting), then every trial's in-sample figures."""
    objective = run.objective
    labels = [f"fold {r.fold.number}" for r in run.folds]
    in_sample = [score(r.in_sample[r.chosen], objective) for r in run.folds]
    out_of_sample = [score(r.out_of_sample, objective) for r in run.folds]
    chart = grouped_bar_chart_svg(
        labels,
        {
            "in-sample (train)": [v if math.isfinite(v) else math.nan for v in in_sample],
            "out-of-sample (test)": [v if math.isfinite(v) else math.nan for v in out_of_sample],
        },
        title=f"{objective} of the chosen parameters per fold",
        y_label=objective,
    )
    folds_rows = []
    for r, is_value, oos_value in zip(run.folds, in_sample, out_of_sample, strict=True):
        chosen = r.in_sample[r.chosen]
        gap = is_value - oos_value if math.isfinite(is_value) and math.isfinite(oos_value) else math.nan
        folds_rows.append(
            [
                str(r.fold.number),
                escape(f"{_stamp(r.fold.train_start)} → {_stamp(r.fold.train_last)}"),
                escape(f"{_stamp(r.fold.test_start)} → {_stamp(r.fold.test_last)}"),
                escape(_params_text(r.params[r.chosen])),
                format_figure(is_value if math.isfinite(is_value) else None),
                format_figure(oos_value if math.isfinite(oos_value) else None),
                format_figure(gap if math.isfinite(gap) else None),
                _percent(chosen, "total_return"),
                _percent(r.out_of_sample, "total_return"),
            ]
        )
    folds_table = html_table(
        [
            "fold",
            "train (UTC)",
            "test (UTC)",
            "chosen parameters",
            f"{objective} in-sample",
            f"{objective} out-of-sample",
            "gap",
            "return in-sample",
            "return out-of-sample",
        ],
        folds_rows,
    )
    trial_rows = [
        [
            str(r.fold.number),
            escape(_params_text(params)) + (" <b>(chosen)</b>" if k == r.chosen else ""),
            format_figure(score(figures, objective) if math.isfinite(score(figures, objective)) else None),
            _percent(figures, "total_return"),
            _percent(figures, "max_drawdown"),
            format_figure(int(figures["fills"])),
        ]
        for r in run.folds
        for k, (params, figures) in enumerate(zip(r.params, r.in_sample, strict=True))
    ]
    trials_table = html_table(
        ["fold", "parameters", f"{objective} in-sample", "return", "max drawdown", "fills"], trial_rows
    )
    facts = html_table(
        ["run", escape(run.run_id)],
        [
            ["Data", escape(run.data)],
            ["Strategy", escape(run.strategy)],
            ["Profile", escape(run.profile)],
            ["Objective", escape(f"{objective} (highest in-sample wins)")],
            [
                "Windows (timestamps)",
                escape(f"train {run.train_bars}, test {run.test_bars}, step {run.step_bars}"),
            ],
            ["Folds × trials", escape(f"{len(run.folds)} × {len(run.folds[0].params) if run.folds else 0}")],
            ["Task runner", escape(run.task_runner)],
        ],
    )
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>TRADEOS walk-forward {escape(run.run_id)}</title>",
            f"<style>{REPORT_CSS}</style></head><body>",
            f"<h1>TRADEOS walk-forward {escape(run.run_id)}</h1>",
            f'<p class="muted">Generated {escape(generated_at.astimezone(UTC).isoformat(timespec="seconds"))}. '
            "Each fold picks the parameters with the best in-sample figure on its train window and scores them "
            "on the next window, unseen; the gap between the two is the overfitting.</p>",
            "<h2>Run</h2>",
            facts,
            "<h2>In-sample against out-of-sample</h2>",
            chart,
            folds_table,
            "<h2>Every trial</h2>",
            trials_table,
            "</body></html>",
        ]
    )


def write_report(path: Path, run: ResearchRun, *, generated_at: datetime) -> Path:
    """Render and write the report atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_text(render_report(run, generated_at=generated_at), encoding="utf-8")
    os.replace(partial, path)
    return path
