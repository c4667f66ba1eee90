"""Exposure, concentration and limit utilisation of a book (docs/metrics.md, Portfolio): pure, in exact Decimal.

The inputs are what the system of record holds -- the open positions at average cost, each symbol's last close,
the cash, the equity at the start of the UTC day and the high-water mark -- and the active profile's limits, so
`GET /metrics/portfolio` and `GET /summary` answer with the numbers the engine's risk checks work from. Money is
rounded to the cent (half to even) only when reported; fractions are exact quotients of the unrounded amounts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

from live.portfolio import drawdown
from live.profiles import Profile

CENT = Decimal("0.01")
ZERO = Decimal(0)


def cents(amount: Decimal) -> Decimal:
    """Money as reported: to the cent, half to even."""
    return amount.quantize(CENT, ROUND_HALF_EVEN)


def _ratio(numerator: Decimal, denominator: Decimal) -> Decimal | None:
    """numerator / denominator; None (undefined) for a denominator that is not positive."""
    return numerator / denominator if denominator > 0 else None


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenPosition:
    """One open position as recorded: signed quantity at average cost, gross realized P&L since its first fill."""

    symbol: str
    quantity: Decimal
    avg_price: Decimal
    realized_pnl: Decimal


@dataclass(frozen=True, slots=True, kw_only=True)
class PositionExposure:
    symbol: str
    quantity: Decimal
    avg_price: Decimal
    market_price: Decimal
    market_value: Decimal  # signed: negative for a short
    unrealized_pnl: Decimal
    realized_pnl: Decimal
    weight: Decimal | None  # market value / equity, signed
    exposure_share: Decimal | None  # |market value| / gross exposure
    contribution: Decimal | None  # unrealized P&L / equity
    limit_utilisation: Decimal | None  # (|market value| / equity) / the profile's max position fraction


@dataclass(frozen=True, slots=True, kw_only=True)
class LimitUse:
    """How much of one limit is used: `used` and `limit` are fractions of equity, `utilisation` = used / limit."""

    used: Decimal | None
    limit: Decimal
    utilisation: Decimal | None


@dataclass(frozen=True, slots=True, kw_only=True)
class BookExposure:
    equity: Decimal
    cash: Decimal
    unrealized_pnl: Decimal
    gross_exposure: Decimal
    net_exposure: Decimal
    gross_fraction: Decimal | None
    net_fraction: Decimal | None
    largest_position: str | None
    largest_position_fraction: Decimal | None
    hhi: Decimal | None
    effective_positions: Decimal | None
    start_of_day_equity: Decimal
    pnl_today: Decimal
    return_today: Decimal | None
    drawdown: Decimal
    high_water_mark: Decimal
    positions: tuple[PositionExposure, ...]
    gross_limit: LimitUse
    position_limit: LimitUse
    daily_loss_limit: LimitUse
    drawdown_limit: LimitUse


def _limit(used: Decimal | None, limit: Decimal) -> LimitUse:
    return LimitUse(used=used, limit=limit, utilisation=_ratio(used, limit) if used is not None else None)


def book_exposure(
    *,
    positions: Sequence[OpenPosition],
    last_prices: Mapping[str, Decimal],
    cash: Decimal,
    start_of_day_equity: Decimal,
    high_water_mark: Decimal,
    profile: Profile,
) -> BookExposure:
    """The book marked at `last_prices` (a position without one at its average price, as the engine marks it)."""
    marked = [(p, last_prices.get(p.symbol, p.avg_price)) for p in positions if p.quantity != 0]
    values = [p.quantity * price for p, price in marked]
    unrealized = [p.quantity * (price - p.avg_price) for p, price in marked]
    equity = cash + sum(values, ZERO)
    gross = sum((abs(v) for v in values), ZERO)
    net = sum(values, ZERO)
    largest = max(range(len(values)), key=lambda i: (abs(values[i]), marked[i][0].symbol), default=None)
    largest_fraction = _ratio(abs(values[largest]), equity) if largest is not None else None
    hhi = sum(((abs(v) / gross) ** 2 for v in values), ZERO) if gross > 0 else None
    high = max(high_water_mark, equity)
    day_loss = _ratio(start_of_day_equity - equity, start_of_day_equity)
    exposures = tuple(
        PositionExposure(
            symbol=p.symbol,
            quantity=p.quantity,
            avg_price=p.avg_price,
            market_price=price,
            market_value=value,
            unrealized_pnl=pnl,
            realized_pnl=p.realized_pnl,
            weight=_ratio(value, equity),
            exposure_share=_ratio(abs(value), gross),
            contribution=_ratio(pnl, equity),
            limit_utilisation=_ratio(abs(value), equity * profile.max_position_fraction),
        )
        for (p, price), value, pnl in zip(marked, values, unrealized, strict=True)
    )
    return BookExposure(
        equity=equity,
        cash=cash,
        unrealized_pnl=sum(unrealized, ZERO),
        gross_exposure=gross,
        net_exposure=net,
        gross_fraction=_ratio(gross, equity),
        net_fraction=_ratio(net, equity),
        largest_position=marked[largest][0].symbol if largest is not None else None,
        largest_position_fraction=largest_fraction,
        hhi=hhi,
        effective_positions=1 / hhi if hhi else None,
        start_of_day_equity=start_of_day_equity,
        pnl_today=equity - start_of_day_equity,
        return_today=_ratio(equity - start_of_day_equity, start_of_day_equity),
        drawdown=drawdown(equity, high),
        high_water_mark=high,
        positions=exposures,
        gross_limit=_limit(_ratio(gross, equity), profile.max_gross_exposure),
        position_limit=_limit(
            largest_fraction if largest is not None else ZERO, profile.max_position_fraction
        ),
        daily_loss_limit=_limit(
            max(day_loss, ZERO) if day_loss is not None else None, profile.daily_loss_limit
        ),
        drawdown_limit=_limit(drawdown(equity, high), profile.drawdown_limit),
    )
