"""What the dashboard paints first, in one read: everything but the live book (which `/portfolio` and the WebSocket
give), bounded whatever the history holds — the equity curve bucketed to a few hundred points, each log capped."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from api.reads import heartbeat_ages, probe_health
from api.schemas import Health, UtcDatetime
from api.stores import Stores, StoreUnavailable, redis_errors
from api.ws_clients import WebSocketQueues, websocket_queues
from live.profiles import PROFILES, Profile, stored_profile
from live.service.publisher import MAX_PENDING
from live.stores import record, redis_keys
from live.stores.record.profiles import StoredProfile
from live.stores.redis_keys import HEARTBEAT_MAX_AGE_SECONDS
from live.wire import EngineQueues

EQUITY_POINTS = 600
LOG_ROWS = 50


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ProfileLimits(_Frozen):
    """The limits of one risk profile the screen measures the book against (fractions of equity)."""

    max_position_fraction: float
    max_gross_exposure: float
    daily_loss_limit: float
    drawdown_limit: float = Field(description="At 1x no new exposure; at 2x the drawdown breaker halts.")


class EquityPoint(_Frozen):
    timestamp: UtcDatetime
    total_value: float
    high_water_mark: float


class PositionEntry(_Frozen):
    """How an open position was entered: the signal type that drove its last increase, and that signal's horizon
    (the built-in strategy holds at least that many bars before it may exit)."""

    symbol: str
    entered_at: UtcDatetime
    signal_type: str
    horizon_bars: int | None


class Rejection(_Frozen):
    id: str
    timestamp: UtcDatetime
    symbol: str
    side: str
    quantity: float
    signal_type: str
    reason: str


class RiskEventRow(_Frozen):
    timestamp: UtcDatetime
    code: str
    detail: str
    symbol: str | None
    halts_trading: bool


class BreakerState(_Frozen):
    """A circuit breaker that has halted trading: how often, and when last (engine clock)."""

    code: str
    trips: int
    last_trip: UtcDatetime


class RegimeChangeRow(_Frozen):
    timestamp: UtcDatetime
    previous: str | None
    current: str
    model: str


class ControlActionRow(_Frozen):
    timestamp: UtcDatetime
    action: str
    actor: str
    reason: str
    value: str


class QueueDepth(_Frozen):
    """One queue between the parts of the system: how much waits in it now, and where it starts losing or refusing
    (null: unbounded, or not known)."""

    name: str
    depth: int | None = Field(description="Null when no fresh reading exists (no engine running).")
    limit: int | None
    note: str


class Overview(_Frozen):
    """`GET /dashboard/overview`: the record behind the screen's panels, newest first except the equity curve."""

    profiles: dict[str, ProfileLimits]
    equity_curve: list[EquityPoint] = Field(description=f"Oldest first, at most {EQUITY_POINTS + 1} points.")
    start_of_day_value: float | None = Field(
        description="Total value at the last mark before the engine clock's current UTC day, or the initial cash "
        "on the first day: the base of the day's loss, as the engine measures it. Null before the first mark."
    )
    entries: list[PositionEntry]
    rejections: list[Rejection]
    risk_events: list[RiskEventRow]
    breakers: list[BreakerState]
    regime_changes: list[RegimeChangeRow]
    control_actions: list[ControlActionRow]
    health: Health = Field(description="As `GET /healthz` reports it (here always with a 200).")
    heartbeat_ages: dict[str, float | None] = Field(description="Seconds since each engine service's beat.")
    queues: list[QueueDepth] = Field(
        description="The engine's queues (read with its heartbeat) and the WebSocket's."
    )


def profile_limits(custom: Iterable[StoredProfile] = ()) -> dict[str, ProfileLimits]:
    """The limits of the built-ins and of the newest version of each custom profile (the profile switch lists
    them all); a stored version that no longer validates is left out."""
    profiles: list[Profile] = list(PROFILES.values())
    for row in custom:
        with contextlib.suppress(ValueError):
            profiles.append(stored_profile(name=row.name, version=row.version, body_json=row.body))
    return {
        p.name: ProfileLimits(
            max_position_fraction=float(p.max_position_fraction),
            max_gross_exposure=float(p.max_gross_exposure),
            daily_loss_limit=float(p.daily_loss_limit),
            drawdown_limit=float(p.drawdown_limit),
        )
        for p in profiles
    }


async def _heartbeats(stores: Stores) -> dict[str, float | None]:
    try:
        return await heartbeat_ages(stores)
    except StoreUnavailable:
        return {}


async def _engine_queues(stores: Stores) -> EngineQueues | None:
    try:
        async with redis_errors():
            raw = await stores.redis.get(redis_keys.ENGINE_QUEUES)
    except StoreUnavailable:
        return None
    if raw is None:
        return None
    try:
        return EngineQueues.model_validate_json(raw)
    except ValidationError:
        return None


async def _websocket_queues(stores: Stores) -> WebSocketQueues | None:
    try:
        return await websocket_queues(stores)
    except StoreUnavailable:
        return None


async def read_queues(stores: Stores) -> list[QueueDepth]:
    """The engine's queues as it last posted them (left unknown when that reading is stale: no engine is beating)
    and the WebSocket clients' queues of every API process."""
    engine, websocket = await asyncio.gather(_engine_queues(stores), _websocket_queues(stores))
    fresh = (
        engine is not None and (datetime.now(UTC) - engine.at).total_seconds() <= HEARTBEAT_MAX_AGE_SECONDS
    )
    clients = websocket.clients if websocket else 0
    return [
        QueueDepth(
            name="events awaiting commit",
            depth=engine.awaiting_commit if engine and fresh else None,
            limit=None,
            note="made by the engine, not yet in PostgreSQL (grows while PostgreSQL is slow or down)",
        ),
        QueueDepth(
            name="risk events awaiting publish",
            depth=engine.awaiting_publish if engine and fresh else None,
            limit=MAX_PENDING,
            note="held back while Redis is unreachable; the oldest are dropped past the limit (all are recorded)",
        ),
        QueueDepth(
            name="outage events awaiting record",
            depth=engine.outage_events if engine and fresh else None,
            limit=None,
            note="outages met, recorded once PostgreSQL answers",
        ),
        QueueDepth(
            name="WebSocket: deepest client queue",
            depth=websocket.deepest_queue if websocket else None,
            limit=websocket.limit if websocket and websocket.limit else None,
            note=f"{clients} client{'s' if clients != 1 else ''}; a client this far behind is dropped",
        ),
    ]


async def read_overview(*, stores: Stores, initial_cash: Decimal) -> Overview:
    """One PostgreSQL connection, a handful of bounded queries; the health probes, heartbeats and queues meanwhile."""
    beats = asyncio.ensure_future(_heartbeats(stores))
    queues = asyncio.ensure_future(read_queues(stores))
    health = asyncio.ensure_future(probe_health(stores=stores))
    async with stores.postgres() as conn:
        curve = await record.fetch_async(conn, record.book.equity_curve(points=EQUITY_POINTS))
        day_start = None
        if curve:
            # As the engine measures the day's loss (PostgresStore.start_of_day_value): from the last value before
            # the engine clock's UTC day, or the initial cash on the first day.
            last = curve[-1].timestamp.astimezone(UTC)
            midnight = datetime(last.year, last.month, last.day, tzinfo=UTC)
            before = await record.fetch_async(conn, record.book.equity_before(before=midnight))
            day_start = before if before is not None else initial_cash
        entries = await record.fetch_async(conn, record.book.open_position_entries())
        rejections = await record.fetch_async(conn, record.book.recent_rejections(limit=LOG_ROWS))
        risk_events = await record.fetch_async(conn, record.events.recent_risk_events(limit=LOG_ROWS))
        breakers = await record.fetch_async(conn, record.events.breaker_trips())
        regimes = await record.fetch_async(conn, record.events.recent_regime_changes(limit=LOG_ROWS * 4))
        actions = await record.fetch_async(conn, record.decisions.recent_control_actions(limit=LOG_ROWS))
        custom = await record.fetch_async(conn, record.profiles.latest_profile_versions())
    return Overview(
        profiles=profile_limits(custom),
        equity_curve=[
            EquityPoint(
                timestamp=p.timestamp,
                total_value=float(p.total_value),
                high_water_mark=float(p.high_water_mark),
            )
            for p in curve
        ],
        start_of_day_value=_money(day_start),
        entries=[PositionEntry(**e._asdict()) for e in entries.values()],
        rejections=[Rejection(**r._asdict()) for r in rejections],
        risk_events=[
            RiskEventRow(
                timestamp=r.timestamp,
                code=r.code,
                detail=r.detail,
                symbol=r.symbol,
                halts_trading=r.halts_trading,
            )
            for r in risk_events
        ],
        breakers=[BreakerState(**b._asdict()) for b in breakers],
        regime_changes=[
            RegimeChangeRow(timestamp=r.timestamp, previous=r.previous, current=r.current, model=r.model)
            for r in regimes
        ],
        control_actions=[
            ControlActionRow(
                timestamp=a.timestamp, action=a.action, actor=a.actor, reason=a.reason, value=a.value
            )
            for a in actions
        ],
        health=await health,
        heartbeat_ages=await beats,
        queues=await queues,
    )


def _money(value: Decimal | None) -> float | None:
    return float(value) if value is not None else None
