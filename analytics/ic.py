"""Information coefficient of signals: per-timestamp Spearman rank correlation, across symbols, between a signal
type's strength and the forward return over its horizon (docs/metrics.md), equal to alphalens-reloaded's
`factor_information_coefficient`.

The computation lays bars and signals out as a (timestamp x symbol) panel and ranks whole rows at once with numpy,
so 500 symbols x 2,520 days take a fraction of a second. A sparse panel (symbols that rarely share timestamps)
would waste memory that way, so it takes a polars path instead: rank within (signal_type, timestamp) groups,
then the Pearson correlation of the ranks. Both give the same numbers.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import polars as pl

IC_SCHEMA = pl.Schema(
    {
        "signal_type": pl.String(),
        "timestamp": pl.Datetime("us", "UTC"),
        "ic": pl.Float64(),
        "n_symbols": pl.UInt32(),
    }
)
DAILY_IC_SCHEMA = pl.Schema(
    {"signal_type": pl.String(), "date": pl.Date(), "ic_mean": pl.Float64(), "n_periods": pl.UInt32()}
)

# A panel with more cells than this many per bar (plus a constant) is sparse enough for the polars path.
_DENSE_CELLS_PER_BAR = 8
_DENSE_CELLS_SLACK = 1 << 20
# Rows ranked per numpy batch: bounds the temporaries to a few tens of MB whatever the panel's size.
_CELLS_PER_BATCH = 1 << 21
_RANKING_THREADS = min(4, os.cpu_count() or 1)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


def _utc_us(frame: pl.DataFrame, name: str) -> pl.Expr:
    dtype = frame.schema["timestamp"]
    if not isinstance(dtype, pl.Datetime) or dtype.time_zone is None:
        raise ValueError(f"{name}.timestamp must be a timezone-aware Datetime, got {dtype}")
    # One time unit and zone on both sides, so signals meet bars on equal instants.
    return pl.col("timestamp").dt.convert_time_zone("UTC").dt.cast_time_unit("us")


def _horizons(horizons: Iterable[int]) -> list[int]:
    distinct = sorted({int(h) for h in horizons})
    if not distinct:
        raise ValueError("horizons is empty")
    if distinct[0] < 1:
        raise ValueError(f"horizons must be positive numbers of bars, got {distinct[0]}")
    return distinct


def _bar_frame(bars: pl.DataFrame) -> pl.DataFrame:
    return bars.select(
        _utc_us(bars, "bars"), pl.col("symbol").cast(pl.String), pl.col("close").cast(pl.Float64)
    )


def _forward_expressions(horizons: list[int]) -> list[pl.Expr]:
    # Sorted by (symbol, timestamp): the bar h rows down is h bars later if it is still the same symbol.
    close, symbol = pl.col("close"), pl.col("symbol")
    return [
        pl.when(symbol.shift(-h) == symbol).then(close.shift(-h) / close - 1.0).alias(f"fwd_{h}")
        for h in horizons
    ]


def _reject_duplicate_bars(sorted_bars: pl.DataFrame) -> None:
    duplicate = sorted_bars.filter(
        (pl.col("symbol") == pl.col("symbol").shift(1))
        & (pl.col("timestamp") == pl.col("timestamp").shift(1))
    )
    if duplicate.height:
        # Two bars at one instant would shift every later forward return of that symbol by a bar.
        row = duplicate.row(0, named=True)
        raise ValueError(f"bars hold {row['symbol']} at {row['timestamp'].isoformat()} more than once")


def forward_returns(bars: pl.DataFrame, *, horizons: Iterable[int]) -> pl.DataFrame:
    """Columns `timestamp, symbol, fwd_<h>` = close h bars later (same symbol) / close now - 1; null past the data."""
    distinct = _horizons(horizons)
    ordered = _bar_frame(bars).sort("symbol", "timestamp")
    _reject_duplicate_bars(ordered)
    return ordered.with_columns(_forward_expressions(distinct)).drop("close").sort("timestamp", "symbol")


def _centered_ranks(values: FloatArray, missing: BoolArray, count: IntArray) -> FloatArray:
    """Average 1-based ranks of each row's present values (ties share their mean rank, as scipy.stats.rankdata),
    minus the row's mean rank; missing cells are 0, so they drop out of the sums of products."""
    width = values.shape[1]
    # numpy's vectorised argsort falls back to a much slower path when a row holds NaN: missing cells sort last as
    # +inf instead, unless a present value is +inf itself (then NaN, which sorts after it, keeps them apart).
    present_inf = bool(np.isposinf(values).any()) and bool((np.isposinf(values) & ~missing).any())
    keys = np.where(missing, np.nan if present_inf else np.inf, values)
    order = np.argsort(keys, axis=1)
    ordered = np.take_along_axis(keys, order, axis=1)
    position = np.arange(width)
    is_present = position < count[:, None]  # the present values come first in each sorted row
    mean_rank = (count + 1) / 2.0
    ranked = np.where(is_present, (position + 1.0) - mean_rank[:, None], 0.0)
    tied = (ordered[:, 1:] == ordered[:, :-1]) & is_present[:, 1:]
    with_ties = np.flatnonzero(tied.any(axis=1))
    if with_ties.size:
        # Only rows holding ties pay for finding each run of equal values and its mean position.
        starts = np.ones((with_ties.size, width), dtype=bool)
        starts[:, 1:] = ~tied[with_ties]
        ends = np.ones_like(starts)
        ends[:, :-1] = starts[:, 1:]
        first = np.maximum.accumulate(np.where(starts, position, 0), axis=1)
        last = np.minimum.accumulate(np.where(ends, position, width - 1)[:, ::-1], axis=1)[:, ::-1]
        ranked[with_ties] = np.where(
            is_present[with_ties], ((first + last) / 2.0 + 1.0) - mean_rank[with_ties, None], 0.0
        )
    centered = np.empty_like(values)
    np.put_along_axis(centered, order, ranked, axis=1)
    return centered


def _batch_rank_correlation(
    strength: FloatArray, forward: FloatArray, missing: BoolArray, count: IntArray
) -> FloatArray:
    x = _centered_ranks(strength, missing, count)
    y = _centered_ranks(forward, missing, count)
    with np.errstate(divide="ignore", invalid="ignore"):
        ic: FloatArray = (x * y).sum(axis=1) / np.sqrt((x * x).sum(axis=1) * (y * y).sum(axis=1))
    return ic


def _row_rank_correlation(strength: FloatArray, forward: FloatArray) -> tuple[FloatArray, IntArray]:
    """Spearman correlation of each row's present pairs (both values not NaN), and how many pairs there were."""
    missing = np.isnan(strength) | np.isnan(forward)
    count = (~missing).sum(axis=1).astype(np.int64)
    n_rows, width = strength.shape
    # numpy's sorts release the GIL, so row batches rank in parallel on threads.
    workers = min(_RANKING_THREADS, max(1, n_rows))
    rows_per_batch = max(1, min(_CELLS_PER_BATCH // max(1, width), math.ceil(n_rows / workers)))
    batches = [slice(start, start + rows_per_batch) for start in range(0, n_rows, rows_per_batch)]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        parts = list(
            pool.map(
                lambda rows: _batch_rank_correlation(
                    strength[rows], forward[rows], missing[rows], count[rows]
                ),
                batches,
            )
        )
    ic = np.concatenate(parts) if parts else np.empty(0)
    return ic, count


def _forward_return_panel(close: FloatArray, present: npt.NDArray[np.bool_], horizon: int) -> FloatArray:
    """close h bars later (of the same symbol) / close now - 1, on the (timestamp x symbol) panel; NaN past the data."""
    forward = np.full(close.shape, np.nan)
    if present.all():
        # Every symbol has a bar at every timestamp: h bars later is h rows down.
        forward[:-horizon] = close[horizon:] / close[:-horizon] - 1.0
        return forward
    # Symbol-major order of the present cells is each symbol's bars in time order: the h-th next one is h along.
    rows_per_symbol = close.shape[0]
    cells = np.flatnonzero(present.T.ravel())
    symbol_of = cells // rows_per_symbol
    in_order = close.T.ravel()[cells]
    same = np.flatnonzero(symbol_of[horizon:] == symbol_of[:-horizon])
    ahead = np.full(cells.size, np.nan)
    ahead[same] = in_order[same + horizon] / in_order[same] - 1.0
    by_symbol = np.full(close.size, np.nan)
    by_symbol[cells] = ahead
    return by_symbol.reshape(close.shape[1], close.shape[0]).T


@dataclass(frozen=True, slots=True)
class _Panel:
    """Where rows land on the (timestamp x symbol) panel: each row's panel row and column, and whether it has one."""

    row: IntArray
    col: IntArray
    on_a_bar: BoolArray


def _grid_block(bar_rows: pl.DataFrame, time_values: IntArray) -> pl.Series | None:
    """One timestamp's symbols when the bars are time-major and every timestamp holds the same symbols in the same
    order (as a query ordered by timestamp, symbol returns a complete panel); None for any other layout.

    Then each bar's panel cell follows from its row number, and comparing strings replaces hashing them.
    """
    n_times = time_values.size
    if n_times == 0 or bar_rows.height % n_times:
        return None
    width = bar_rows.height // n_times
    stamps = bar_rows["timestamp"].to_physical().to_numpy().reshape(n_times, width)
    if not (stamps == time_values[:, None]).all():
        return None
    symbol = bar_rows["symbol"]
    block = symbol.head(width)
    if symbol.null_count() or block.n_unique() != width:
        return None
    if n_times > 1 and not (symbol.slice(width) == symbol.slice(0, symbol.len() - width)).all():
        return None
    return block


def _signal_cells(signal_rows: pl.DataFrame, *, times: pl.Series, symbols: pl.Enum) -> _Panel:
    time_values = times.to_physical().to_numpy()
    signal_times = signal_rows["timestamp"].to_physical().to_numpy()
    row = np.minimum(times.search_sorted(signal_rows["timestamp"]).to_numpy(), times.len() - 1)
    # A symbol that never has a bar gets no code, and its signals no forward return.
    code = signal_rows["symbol"].cast(symbols, strict=False).to_physical()
    on_a_bar = (time_values[row] == signal_times) & code.is_not_null().to_numpy()
    return _Panel(row=row, col=code.fill_null(0).to_numpy().astype(np.int64), on_a_bar=on_a_bar)


def _dense_information_coefficient(
    bar_rows: pl.DataFrame,
    signal_rows: pl.DataFrame,
    *,
    times: pl.Series,
    symbols: pl.Enum,
    grid_block: pl.Series | None = None,
) -> pl.DataFrame:
    shape = (times.len(), len(symbols.categories))
    bar_close = bar_rows["close"].to_numpy()
    close = np.full(shape, np.nan)
    block_codes = np.arange(shape[1])
    if grid_block is not None:
        block_codes = grid_block.cast(symbols).to_physical().to_numpy().astype(np.int64)
        bars_at = _Panel(
            row=np.repeat(np.arange(shape[0]), shape[1]),
            col=np.tile(block_codes, shape[0]),
            on_a_bar=np.ones(bar_rows.height, dtype=bool),
        )
        close[:, block_codes] = bar_close.reshape(shape)
        present = np.ones(shape, dtype=bool)
    else:
        bars_at = _Panel(
            row=times.search_sorted(bar_rows["timestamp"]).to_numpy(),
            col=bar_rows["symbol"].cast(symbols).to_physical().to_numpy().astype(np.int64),
            on_a_bar=np.ones(bar_rows.height, dtype=bool),
        )
        close[bars_at.row, bars_at.col] = bar_close
        present = ~np.isnan(close)
        if np.isnan(bar_close).any():
            present[bars_at.row, bars_at.col] = True  # a bar with a missing close still counts as a bar
        if int(present.sum()) != bar_rows.height:
            _reject_duplicate_bars(bar_rows.sort("symbol", "timestamp"))

    forward_by_horizon = {
        h: _forward_return_panel(close, present, h) for h in signal_rows["horizon_bars"].unique().to_list()
    }
    bar_times = bar_rows["timestamp"].to_physical().to_numpy()
    parts = []
    for name in signal_rows["signal_type"].unique().sort().to_list():
        of_type = np.flatnonzero((signal_rows["signal_type"] == name).to_numpy())
        contiguous = of_type.size > 0 and int(of_type[-1]) - int(of_type[0]) + 1 == of_type.size
        own = (
            signal_rows.slice(int(of_type[0]), of_type.size) if contiguous else signal_rows[of_type]
        ).select("timestamp", "symbol", "strength", "horizon_bars")
        aligned = (
            grid_block is not None
            and own.height == bar_rows.height
            and np.array_equal(own["timestamp"].to_physical().to_numpy(), bar_times)
            and bool((own["symbol"] == bar_rows["symbol"]).all())
        )
        # When aligned, this type has a signal on every bar, in the bars' order: its cells are the bars' cells.
        cells = bars_at if aligned else _signal_cells(own, times=times, symbols=symbols)
        mine = np.flatnonzero(cells.on_a_bar)
        if mine.size == 0:
            continue
        strength = own["strength"].fill_nan(np.nan).to_numpy()
        x = np.full(shape, np.nan)
        if aligned:
            rows, cols, own_horizons = cells.row, cells.col, own["horizon_bars"].to_numpy()
            x[:, block_codes] = strength.reshape(
                shape
            )  # the same cells as x[rows, cols], without the scatter
        else:
            rows, cols, own_horizons = cells.row[mine], cells.col[mine], own["horizon_bars"].to_numpy()[mine]
            x[rows, cols] = strength[mine]
        if own_horizons.min() == own_horizons.max():
            # Cells without this type's signal are NaN in x, and so drop out of the pairs anyway.
            y = forward_by_horizon[int(own_horizons[0])]
        else:
            y = np.full(shape, np.nan)
            for h in np.unique(own_horizons).tolist():
                at_h = own_horizons == h
                y[rows[at_h], cols[at_h]] = forward_by_horizon[h][rows[at_h], cols[at_h]]
        used = np.arange(shape[0]) if aligned else np.flatnonzero(np.bincount(rows, minlength=shape[0]) > 0)
        # Row selection copies the panel; skip it when every timestamp has this type's signals.
        everywhere = used.size == shape[0]
        ic, count = _row_rank_correlation(x if everywhere else x[used], y if everywhere else y[used])
        keep = (count >= 2) & ~np.isnan(ic)
        parts.append(
            pl.DataFrame(
                {
                    "signal_type": pl.Series([name] * int(keep.sum()), dtype=pl.String),
                    "timestamp": times.gather(used[keep]),
                    "ic": ic[keep],
                    "n_symbols": count[keep],
                }
            )
        )
    return pl.concat(parts) if parts else pl.DataFrame(schema=IC_SCHEMA)


def _grouped_information_coefficient(bar_rows: pl.DataFrame, signal_rows: pl.DataFrame) -> pl.DataFrame:
    horizons = _horizons(signal_rows["horizon_bars"].unique().to_list())
    ordered = bar_rows.sort("symbol", "timestamp")
    _reject_duplicate_bars(ordered)
    wide = ordered.with_columns(_forward_expressions(horizons))
    # Long form (timestamp, symbol, horizon_bars, forward_return) so each signal row meets its own horizon.
    forward = pl.concat(
        wide.select(
            "timestamp",
            "symbol",
            pl.lit(h, dtype=pl.Int64).alias("horizon_bars"),
            pl.col(f"fwd_{h}").alias("forward_return"),
        )
        for h in horizons
    )
    group = ("signal_type", "timestamp")
    return (
        signal_rows.join(forward, on=["timestamp", "symbol", "horizon_bars"], how="inner")
        .with_columns(pl.col("forward_return").fill_nan(None))
        .drop_nulls(["strength", "forward_return"])
        .with_columns(
            # Average ranks for ties, as scipy.stats.spearmanr.
            pl.col("strength").rank("average").over(group).alias("strength_rank"),
            pl.col("forward_return").rank("average").over(group).alias("return_rank"),
        )
        .group_by(group)
        .agg(pl.corr("strength_rank", "return_rank").alias("ic"), pl.len().alias("n_symbols"))
    )


def information_coefficient(signals: pl.DataFrame, bars: pl.DataFrame) -> pl.DataFrame:
    """Columns `signal_type, timestamp, ic, n_symbols`: Spearman IC per signal type and timestamp.

    A pair is used when both the strength and the forward return are present (not null, not NaN), as alphalens
    does after dropping missing values. Timestamps with fewer than two pairs or constant ranks have no IC and no row.
    A signal whose timestamp is not a bar of its symbol has no forward return.
    """
    if signals.height == 0 or bars.height == 0:
        return pl.DataFrame(schema=IC_SCHEMA)
    bar_rows = _bar_frame(bars)
    signal_rows = signals.select(
        pl.col("signal_type").cast(pl.String),
        _utc_us(signals, "signals"),
        pl.col("symbol").cast(pl.String),
        pl.col("strength").cast(pl.Float64).fill_null(float("nan")),
        pl.col("horizon_bars").cast(pl.Int64),
    )
    keys = ["signal_type", "symbol", "horizon_bars"]
    if any(signal_rows[name].null_count() for name in keys):
        signal_rows = signal_rows.drop_nulls(keys)  # copying every row only when there is something to drop
    _horizons(signal_rows["horizon_bars"].unique().to_list())
    times = bar_rows["timestamp"].unique().sort()
    grid_block = _grid_block(bar_rows, times.to_physical().to_numpy())
    symbols = pl.Enum((grid_block if grid_block is not None else bar_rows["symbol"].unique()).sort())
    if times.len() * len(symbols.categories) <= _DENSE_CELLS_PER_BAR * bar_rows.height + _DENSE_CELLS_SLACK:
        ic = _dense_information_coefficient(
            bar_rows, signal_rows, times=times, symbols=symbols, grid_block=grid_block
        )
    else:
        ic = _grouped_information_coefficient(
            bar_rows, signal_rows.with_columns(pl.col("strength").fill_nan(None))
        )
    return (
        ic.filter((pl.col("n_symbols") >= 2) & pl.col("ic").is_not_nan() & pl.col("ic").is_not_null())
        .sort("signal_type", "timestamp")
        .select(IC_SCHEMA.names())
        .cast(IC_SCHEMA)
    )


@dataclass(frozen=True)
class ICSummary:
    """One signal type's IC statistics; NaN or ±inf where undefined (rendered as null in JSON)."""

    signal_type: str
    ic_mean: float
    ic_std: float
    ic_ir: float
    ic_t_stat: float
    n_periods: int


def _ratio(numerator: float, denominator: float) -> float:
    if math.isnan(numerator) or math.isnan(denominator):
        return math.nan
    if denominator == 0.0:
        return math.nan if numerator == 0.0 else math.copysign(math.inf, numerator)
    return numerator / denominator


def ic_summary(ic: pl.DataFrame) -> list[ICSummary]:
    """Per signal type: mean, std (ddof 1), IR = mean/std and t = mean/(std/sqrt(n)) over its timestamps' ICs."""
    rows = (
        ic.filter(pl.col("ic").is_not_null() & pl.col("ic").is_not_nan())
        .group_by("signal_type")
        .agg(
            pl.col("ic").mean().alias("ic_mean"),
            pl.col("ic").std(ddof=1).alias("ic_std"),
            pl.len().alias("n_periods"),
        )
        .sort("signal_type")
    )
    summaries = []
    for row in rows.iter_rows(named=True):
        mean = float(row["ic_mean"])
        std = math.nan if row["ic_std"] is None else float(row["ic_std"])
        n_periods = int(row["n_periods"])
        summaries.append(
            ICSummary(
                signal_type=row["signal_type"],
                ic_mean=mean,
                ic_std=std,
                ic_ir=_ratio(mean, std),
                ic_t_stat=_ratio(mean, std / math.sqrt(n_periods)),
                n_periods=n_periods,
            )
        )
    return summaries


def daily_ic(ic: pl.DataFrame) -> pl.DataFrame:
    """Columns `signal_type, date, ic_mean, n_periods`: the mean IC of each signal type per UTC day."""
    if ic.height == 0:
        return pl.DataFrame(schema=DAILY_IC_SCHEMA)
    return (
        ic.filter(pl.col("ic").is_not_null() & pl.col("ic").is_not_nan())
        .group_by("signal_type", _utc_us(ic, "ic").dt.date().alias("date"))
        .agg(pl.col("ic").mean().alias("ic_mean"), pl.len().alias("n_periods"))
        .sort("signal_type", "date")
        .cast(DAILY_IC_SCHEMA)
    )
