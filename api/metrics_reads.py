"""The Metrics API's reads of the system of record: the book for `GET /metrics/portfolio`, and each part of
`GET /summary` (docs/metrics.md, Portfolio and Summary).

The book is read in one repeatable-read transaction, so positions, last closes and the equity row come from one
snapshot, never half of an engine batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import TypeVar

from analytics.exposure import BookExposure, OpenPosition, book_exposure, cents
from api import reads
from api.control import TradingControl
from api.metrics_schemas import (
    PerformanceHeadline,
    PortfolioHeadline,
    PortfolioMetrics,
    RegimeHeadline,
    Summary,
    SummaryHealth,
    TodayPnl,
)
from api.stores import Stores, StoreUnavailable
from live import portfolio as accounting
from live.stores import record, redis_keys

T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordedBook:
    """The book as the record holds it, with the active profile it is measured against."""

    exposure: BookExposure
    profile: str
    marked_at: datetime | None
    regime: tuple[str, datetime] | None


def start_of_day(timestamp: datetime) -> datetime:
    """Midnight UTC of `timestamp`'s day: the engine's daily-loss breaker measures the day from there."""
    return datetime.combine(timestamp.astimezone(UTC).date(), time(0), tzinfo=UTC)


async def read_book(*, stores: Stores, control: TradingControl, initial_cash: Decimal) -> RecordedBook:
    """Open positions, their last closes, cash and the day's start from PostgreSQL; the profile in force."""
    profile = (await control.status()).profile or control.default_profile
    limits = await control.profile_for_limits(profile)
    async with stores.postgres() as conn, conn.transaction():
        await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        held = await record.fetch_async(conn, record.book.held_positions())
        closes = await record.fetch_async(
            conn, record.market.last_closes_of(symbols=[p.symbol for p in held])
        )
        latest = await record.fetch_async(conn, record.book.latest_equity())
        recorded_cash = await record.fetch_async(conn, record.lease.recorded_initial_cash())
        day_start = None
        if latest is not None:
            day_start = await record.fetch_async(
                conn, record.book.equity_before(before=start_of_day(latest.timestamp))
            )
        regime = await record.fetch_async(conn, record.events.latest_regime())
    initial = recorded_cash if recorded_cash is not None else initial_cash
    exposure = book_exposure(
        positions=[
            OpenPosition(
                symbol=p.symbol, quantity=p.quantity, avg_price=p.avg_price, realized_pnl=p.realized_pnl
            )
            for p in held
        ],
        last_prices={symbol: accounting.to_decimal(close) for symbol, close in closes.items()},
        cash=latest.cash if latest is not None else initial,
        start_of_day_equity=day_start if day_start is not None else initial,
        high_water_mark=latest.high_water_mark if latest is not None else initial,
        profile=limits,
    )
    return RecordedBook(
        exposure=exposure, profile=profile, marked_at=latest.timestamp if latest else None, regime=regime
    )


async def read_portfolio_metrics(
    *, stores: Stores, control: TradingControl, initial_cash: Decimal
) -> PortfolioMetrics:
    book = await read_book(stores=stores, control=control, initial_cash=initial_cash)
    return PortfolioMetrics.of(
        book.exposure, profile=book.profile, marked_at=book.marked_at, as_of=datetime.now(UTC)
    )


async def _or_none(read: Awaitable[T]) -> T | None:
    """A part of the summary whose store is down is null; `health` says which store."""
    try:
        return await read
    except StoreUnavailable:
        return None


def _headline(book: RecordedBook) -> PortfolioHeadline:
    exposure = book.exposure
    return PortfolioHeadline(
        equity=cents(exposure.equity),
        cash=cents(exposure.cash),
        unrealized_pnl=cents(exposure.unrealized_pnl),
        high_water_mark=cents(exposure.high_water_mark),
        drawdown=exposure.drawdown,
        gross_exposure_fraction=exposure.gross_fraction,
        open_positions=len(exposure.positions),
        marked_at=book.marked_at,
    )


def _today(book: RecordedBook) -> TodayPnl:
    exposure = book.exposure
    day: date | None = book.marked_at.astimezone(UTC).date() if book.marked_at else None
    return TodayPnl(
        day=day,
        start_of_day_equity=cents(exposure.start_of_day_equity),
        pnl=cents(exposure.pnl_today),
        return_fraction=exposure.return_today,
    )


async def _heartbeat_ages(stores: Stores) -> dict[str, float | None]:
    try:
        return await asyncio.wait_for(reads.heartbeat_ages(stores), reads.PROBE_TIMEOUT_SECONDS)
    except (StoreUnavailable, TimeoutError):
        return dict.fromkeys(redis_keys.HEARTBEAT_SERVICES)


async def read_summary(
    *,
    stores: Stores,
    control: TradingControl,
    initial_cash: Decimal,
    performance: Awaitable[PerformanceHeadline | None],
) -> Summary:
    """Trading state, portfolio headline, today's P&L, performance headline, regime and health, read at once."""
    trading, book, headline, health, ages = await asyncio.gather(
        _or_none(control.status()),
        _or_none(read_book(stores=stores, control=control, initial_cash=initial_cash)),
        performance,
        reads.probe_health(stores=stores),
        _heartbeat_ages(stores),
    )
    return Summary(
        trading=trading,
        portfolio=_headline(book) if book else None,
        today=_today(book) if book else None,
        performance=headline,
        regime=RegimeHeadline(current=book.regime[0], since=book.regime[1]) if book and book.regime else None,
        health=SummaryHealth.of(health, heartbeat_ages=ages),
        as_of=datetime.now(UTC),
    )
