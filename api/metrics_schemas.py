"""The shapes of `GET /metrics/portfolio` and `GET /summary` (docs/api.md; figures defined in docs/metrics.md).

Money is computed in exact Decimal and answered as a JSON number to the cent, like every amount of the APIs;
fractions are exact quotients answered as JSON numbers. An undefined figure (a fraction of a non-positive equity,
the concentration of an empty book) is `null`.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

from analytics.exposure import BookExposure, LimitUse, PositionExposure, cents
from api.schemas import Health, TradingStatus, UtcDatetime

Number = Annotated[Decimal, PlainSerializer(float, return_type=float, when_used="json")]
"""An exact Decimal, written as a JSON number (as the APIs write every amount)."""


def _frozen(*examples: dict[str, Any]) -> ConfigDict:
    return ConfigDict(frozen=True, json_schema_extra={"examples": list(examples)} if examples else None)


class PositionMetrics(BaseModel):
    """One open position marked at its symbol's last recorded close."""

    model_config = _frozen()

    symbol: str
    quantity: Number = Field(description="Signed: negative is short; in the market's units (0.0013 BTC).")
    avg_price: Number
    market_price: Number
    market_value: Number = Field(description="Money, signed: quantity × market price.")
    unrealized_pnl: Number = Field(description="Money: quantity × (market price − average price).")
    realized_pnl: Number = Field(description="Money: gross realized P&L on this symbol since its first fill.")
    weight: Number | None = Field(description="Market value / equity, signed.")
    exposure_share: Number | None = Field(description="|market value| / gross exposure.")
    contribution: Number | None = Field(description="Unrealized P&L / equity.")
    limit_utilisation: Number | None = Field(
        description="(|market value| / equity) / the profile's max position fraction."
    )

    @classmethod
    def of(cls, position: PositionExposure) -> PositionMetrics:
        return cls(
            symbol=position.symbol,
            quantity=position.quantity,
            avg_price=position.avg_price,
            market_price=position.market_price,
            market_value=cents(position.market_value),
            unrealized_pnl=cents(position.unrealized_pnl),
            realized_pnl=cents(position.realized_pnl),
            weight=position.weight,
            exposure_share=position.exposure_share,
            contribution=position.contribution,
            limit_utilisation=position.limit_utilisation,
        )


class Exposure(BaseModel):
    model_config = _frozen()

    gross: Number = Field(description="Money: Σ |market value|.")
    net: Number = Field(description="Money: Σ market value (longs minus shorts).")
    gross_fraction: Number | None = Field(description="Gross / equity.")
    net_fraction: Number | None = Field(description="Net / equity.")


class Concentration(BaseModel):
    model_config = _frozen()

    largest_position: str | None = Field(description="Symbol with the largest |market value|.")
    largest_position_fraction: Number | None = Field(description="Its |market value| / equity.")
    hhi: Number | None = Field(description="Herfindahl index: Σ (|market value| / gross)², 1/n to 1.")
    effective_positions: Number | None = Field(description="1 / hhi.")


class LimitUtilisation(BaseModel):
    """One limit of the active profile: `used` and `limit` as fractions (of equity, or for the daily loss of the
    start-of-day equity), `utilisation` = used / limit (1 = at the limit)."""

    model_config = _frozen()

    used: Number | None
    limit: Number
    utilisation: Number | None

    @classmethod
    def of(cls, use: LimitUse) -> LimitUtilisation:
        return cls(used=use.used, limit=use.limit, utilisation=use.utilisation)


class Limits(BaseModel):
    model_config = _frozen()

    profile: str
    gross_exposure: LimitUtilisation = Field(description="Gross / equity against `max_gross_exposure`.")
    position_size: LimitUtilisation = Field(
        description="Largest |market value| / equity against `max_position_fraction`."
    )
    daily_loss: LimitUtilisation = Field(description="Loss since the start of the UTC day against its limit.")
    drawdown: LimitUtilisation = Field(description="Drawdown below the high-water mark against its limit.")
    open_positions: int


class PortfolioMetrics(BaseModel):
    """Exposure, concentration, per-position P&L and contribution, limit utilisation, from the system of record."""

    model_config = _frozen(
        {
            "equity": 101234.56,
            "cash": 93790.56,
            "exposure": {"gross": 7444.0, "net": -7444.0, "gross_fraction": 0.0735, "net_fraction": -0.0735},
            "concentration": {
                "largest_position": "AAPL",
                "largest_position_fraction": 0.0735,
                "hhi": 1.0,
                "effective_positions": 1.0,
            },
            "positions": [
                {
                    "symbol": "AAPL",
                    "quantity": -40,
                    "avg_price": 187.25,
                    "market_price": 186.1,
                    "market_value": -7444.0,
                    "unrealized_pnl": 46.0,
                    "realized_pnl": 12.5,
                    "weight": -0.0735,
                    "exposure_share": 1.0,
                    "contribution": 0.00045,
                    "limit_utilisation": 0.735,
                }
            ],
            "limits": {
                "profile": "balanced",
                "gross_exposure": {"used": 0.0735, "limit": 1.0, "utilisation": 0.0735},
                "position_size": {"used": 0.0735, "limit": 0.1, "utilisation": 0.735},
                "daily_loss": {"used": 0.0012, "limit": 0.03, "utilisation": 0.04},
                "drawdown": {"used": 0.0042, "limit": 0.1, "utilisation": 0.042},
                "open_positions": 1,
            },
            "marked_at": "2024-03-01T14:30:00Z",
            "as_of": "2024-03-01T14:30:02Z",
        }
    )

    equity: Number = Field(description="Money: cash + Σ market value.")
    cash: Number
    exposure: Exposure
    concentration: Concentration
    positions: list[PositionMetrics]
    limits: Limits
    marked_at: UtcDatetime | None = Field(
        description="Engine clock of the last equity row (the book's last mark)."
    )
    as_of: UtcDatetime = Field(description="Wall time of the read.")

    @classmethod
    def of(cls, book: BookExposure, *, profile: str, marked_at: Any, as_of: Any) -> PortfolioMetrics:
        return cls(
            equity=cents(book.equity),
            cash=cents(book.cash),
            exposure=Exposure(
                gross=cents(book.gross_exposure),
                net=cents(book.net_exposure),
                gross_fraction=book.gross_fraction,
                net_fraction=book.net_fraction,
            ),
            concentration=Concentration(
                largest_position=book.largest_position,
                largest_position_fraction=book.largest_position_fraction,
                hhi=book.hhi,
                effective_positions=book.effective_positions,
            ),
            positions=[PositionMetrics.of(p) for p in book.positions],
            limits=Limits(
                profile=profile,
                gross_exposure=LimitUtilisation.of(book.gross_limit),
                position_size=LimitUtilisation.of(book.position_limit),
                daily_loss=LimitUtilisation.of(book.daily_loss_limit),
                drawdown=LimitUtilisation.of(book.drawdown_limit),
                open_positions=len(book.positions),
            ),
            marked_at=marked_at,
            as_of=as_of,
        )


class PortfolioHeadline(BaseModel):
    model_config = _frozen()

    equity: Number
    cash: Number
    unrealized_pnl: Number
    high_water_mark: Number
    drawdown: Number = Field(description="Positive fraction below the high-water mark.")
    gross_exposure_fraction: Number | None
    open_positions: int
    marked_at: UtcDatetime | None


class TodayPnl(BaseModel):
    """The UTC day of the book's last mark (engine clock), as the daily-loss breaker measures it."""

    model_config = _frozen()

    day: date | None = Field(description="UTC day of the last mark; null before any.")
    start_of_day_equity: Number = Field(
        description="Last equity before the day began (the initial cash if none)."
    )
    pnl: Number = Field(description="Money: equity − start-of-day equity.")
    return_fraction: Number | None = Field(description="pnl / start-of-day equity.")


class PerformanceHeadline(BaseModel):
    """From the `metrics-rollup` flow's rollup (as `GET /metrics/performance`)."""

    model_config = _frozen()

    sharpe_ratio: float | None
    max_drawdown: float | None
    total_return: float | None
    win_rate: float | None
    total_trades: int
    as_of: UtcDatetime


class RegimeHeadline(BaseModel):
    model_config = _frozen()

    current: str
    since: UtcDatetime = Field(description="Engine clock of the change that adopted it.")


class SummaryHealth(BaseModel):
    model_config = _frozen()

    status: Literal["healthy", "degraded", "unhealthy"]
    services: dict[
        Literal["redis", "postgres", "signal_engine", "execution"], Literal["healthy", "unhealthy"]
    ]
    heartbeat_age_seconds: dict[str, float | None] = Field(
        description="Seconds since each engine service's last heartbeat; null when never seen or Redis is down."
    )

    @classmethod
    def of(cls, health: Health, *, heartbeat_ages: dict[str, float | None]) -> SummaryHealth:
        return cls(status=health.status, services=health.services, heartbeat_age_seconds=heartbeat_ages)


class Summary(BaseModel):
    """One call for a status line: each part is null when the store it is read from is unreachable (or, for
    `performance`, before the first rollup); `health` says which."""

    model_config = _frozen(
        {
            "trading": {"status": "active", "since": None, "reason": "", "actor": "", "profile": "balanced"},
            "portfolio": {
                "equity": 101234.56,
                "cash": 93790.56,
                "unrealized_pnl": 46.0,
                "high_water_mark": 101660.0,
                "drawdown": 0.0042,
                "gross_exposure_fraction": 0.0735,
                "open_positions": 1,
                "marked_at": "2024-03-01T14:30:00Z",
            },
            "today": {
                "day": "2024-03-01",
                "start_of_day_equity": 101400.0,
                "pnl": -165.44,
                "return_fraction": -0.00163,
            },
            "performance": {
                "sharpe_ratio": 1.42,
                "max_drawdown": 0.034,
                "total_return": 0.021,
                "win_rate": 0.54,
                "total_trades": 212,
                "as_of": "2024-03-01T14:25:00Z",
            },
            "regime": {"current": "trending", "since": "2024-03-01T10:05:00Z"},
            "health": {
                "status": "healthy",
                "services": {
                    "redis": "healthy",
                    "postgres": "healthy",
                    "signal_engine": "healthy",
                    "execution": "healthy",
                },
                "heartbeat_age_seconds": {"signal_engine": 0.4, "execution": 0.4},
            },
            "as_of": "2024-03-01T14:30:02Z",
        }
    )

    trading: TradingStatus | None
    portfolio: PortfolioHeadline | None
    today: TodayPnl | None
    performance: PerformanceHeadline | None
    regime: RegimeHeadline | None
    health: SummaryHealth
    as_of: UtcDatetime = Field(description="Wall time of the read.")
