"""Closed trades (one symbol's position from flat to flat) rolled up from fills, and statistics over them.

The roll-up is columnar: the signed quantity is summed per symbol in time order, and a fill belongs to the trade
opened by the latest fill that found its symbol flat. Ten million fills roll up in seconds. Quantities are summed
as exact decimals (0.0013 BTC bought and sold in two halves is flat again, which a float sum would miss).
"""

from __future__ import annotations

import math
from decimal import Decimal

import polars as pl

CLOSED_TRADE_SCHEMA = pl.Schema(
    {
        "symbol": pl.String(),
        "opened_at": pl.Datetime("us", "UTC"),
        "closed_at": pl.Datetime("us", "UTC"),
        "duration_seconds": pl.Float64(),
        "pnl": pl.Float64(),
        "fees": pl.Float64(),
        "signal_type": pl.String(),
        "n_fills": pl.UInt32(),
    }
)

_SIDES = ("buy", "sell")
# The warehouse's quantity type (analytics/warehouse.py QUANTITY): whole shares and fractions alike, exactly.
_QUANTITY = pl.Decimal(38, 18)


def _validated_fills(fills: pl.DataFrame) -> pl.DataFrame:
    required = ("id", "timestamp", "symbol", "side", "quantity", "fee", "signal_type", "realized_pnl")
    missing = [name for name in required if name not in fills.columns]
    if missing:
        raise ValueError(f"fills lack the columns {missing}")
    timestamp_type = fills.schema["timestamp"]
    if not isinstance(timestamp_type, pl.Datetime) or timestamp_type.time_zone is None:
        raise ValueError(f"fills.timestamp must be a timezone-aware Datetime, got {timestamp_type}")
    bad_side = fills.filter(~pl.col("side").is_in(_SIDES))
    if bad_side.height:
        raise ValueError(
            f"fill {bad_side['id'][0]!r} has side {bad_side['side'][0]!r}; expected 'buy' or 'sell'"
        )
    bad_quantity = fills.filter(pl.col("quantity") <= 0)
    if bad_quantity.height:
        raise ValueError(f"fill {bad_quantity['id'][0]!r} has a non-positive quantity")
    return fills


def closed_trades(fills: pl.DataFrame) -> pl.DataFrame:
    """One row per flat-to-flat position: P&L = sum of realized_pnl - sum of fees; positions still open are left out.

    Raises ValueError naming the fill when a fill takes a position through zero (the engine closes, then opens).
    """
    if fills.height == 0:
        return pl.DataFrame(schema=CLOSED_TRADE_SCHEMA)
    _validated_fills(fills)
    signed = pl.when(pl.col("side") == "buy").then(pl.col("quantity")).otherwise(-pl.col("quantity"))
    ledger = fills.select(
        pl.col("id").cast(pl.String),
        pl.col("timestamp").dt.convert_time_zone("UTC").dt.cast_time_unit("us"),
        pl.col("symbol").cast(pl.String),
        pl.col("signal_type").cast(pl.String),
        # Decimal money is summed as float: the roll-up is for statistics, the books stay in PostgreSQL.
        pl.col("fee").cast(pl.Float64),
        pl.col("realized_pnl").cast(pl.Float64),
        signed.cast(_QUANTITY).alias("signed_quantity"),
    )
    if not ledger.get_column("timestamp").is_sorted():
        # Stable: fills that share a timestamp keep the order in which they were recorded. Each symbol's fills
        # then follow in time order, which is all the per-symbol windows below need (no sort by symbol).
        ledger = ledger.sort("timestamp", maintain_order=True)
    ledger = ledger.with_columns(
        pl.col("signed_quantity").cum_sum().over("symbol").alias("position")
    ).with_columns((pl.col("position") - pl.col("signed_quantity")).alias("position_before"))
    crossing = ledger.filter(
        (pl.col("position_before") != 0)
        & (pl.col("position") != 0)
        & (pl.col("position_before").sign() != pl.col("position").sign())
    )
    if crossing.height:
        first = crossing.sort("symbol", "timestamp", maintain_order=True).row(0, named=True)
        raise ValueError(
            f"fill {first['id']!r} takes {first['symbol']} from {_shown(first['position_before'])} to "
            f"{_shown(first['position'])} in one order; a position must close before it reverses"
        )
    # A trade is known by the row of its opening fill (the symbol was flat before it); grouping on that one integer
    # and fetching the strings and times by row afterwards is much cheaper than grouping on (symbol, trade number).
    ledger = ledger.with_row_index("row").with_columns(
        pl.when(pl.col("position_before") == 0)
        .then(pl.col("row"))
        .otherwise(None)
        .forward_fill()
        .over("symbol")
        .alias("opening_row")
    )
    per_trade = (
        ledger.group_by("opening_row")
        .agg(
            (pl.col("realized_pnl").sum() - pl.col("fee").sum()).alias("pnl"),
            pl.col("fee").sum().alias("fees"),
            pl.len().alias("n_fills"),
            pl.col("row").last().alias("closing_row"),
            (pl.col("position").last() == 0).alias("closed"),
        )
        .filter(pl.col("closed"))
        # Row order is time order, so this orders by closing time; a symbol breaks ties below.
        .sort("closing_row")
    )
    opening = ledger.select("symbol", "signal_type", "timestamp")[per_trade.get_column("opening_row")]
    trades = pl.DataFrame(
        {
            "symbol": opening.get_column("symbol"),
            "opened_at": opening.get_column("timestamp"),
            "closed_at": ledger.get_column("timestamp").gather(per_trade.get_column("closing_row")),
            "pnl": per_trade.get_column("pnl"),
            "fees": per_trade.get_column("fees"),
            "signal_type": opening.get_column("signal_type"),
            "n_fills": per_trade.get_column("n_fills"),
        }
    ).with_columns(
        ((pl.col("closed_at") - pl.col("opened_at")).dt.total_microseconds() / 1e6).alias("duration_seconds")
    )
    closing_times = trades.get_column("closed_at").to_physical()
    if bool((closing_times.diff() == 0).any()):
        trades = trades.sort("closed_at", "symbol")
    return trades.select(CLOSED_TRADE_SCHEMA.names()).cast(CLOSED_TRADE_SCHEMA)


def _shown(quantity: Decimal) -> str:
    """A quantity as a trader writes it: 40, -0.0013 (not 40.000000000000000000)."""
    return f"{quantity.normalize():f}"


def win_rate(trades: pl.DataFrame) -> float:
    """Share of closed trades with P&L > 0; NaN when there are none."""
    if trades.height == 0:
        return math.nan
    return float(trades.select((pl.col("pnl") > 0).mean()).item())


def average_trade_duration_seconds(trades: pl.DataFrame) -> float:
    """Mean flat-to-flat time of the closed trades in seconds; NaN when there are none."""
    if trades.height == 0:
        return math.nan
    return float(trades.select(pl.col("duration_seconds").mean()).item())


def profit_factor(trades: pl.DataFrame) -> float:
    """Gross profit over gross loss of closed trades: +inf with no losing trade, NaN with neither (JSON: null)."""
    pnl = trades.get_column("pnl")
    gross_profit = float(pnl.filter(pnl > 0).sum())
    gross_loss = -float(pnl.filter(pnl < 0).sum())
    if gross_loss == 0.0:
        return math.inf if gross_profit > 0.0 else math.nan
    return gross_profit / gross_loss


def pnl_by_signal_type(trades: pl.DataFrame) -> pl.DataFrame:
    """Columns `signal_type, pnl, n_trades, win_rate`: closed trades' P&L credited to the signal type that opened them."""
    return (
        trades.group_by("signal_type")
        .agg(
            pl.col("pnl").sum(),
            pl.len().cast(pl.Int64).alias("n_trades"),
            (pl.col("pnl") > 0).mean().alias("win_rate"),
        )
        .sort("signal_type")
    )
