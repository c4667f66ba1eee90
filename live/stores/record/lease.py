"""The engine's two single-row tables: `engine_lease` (which engine may write, with its fencing token) and
`engine_state` (where the writing engine stopped: the anchors it restarts from)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from live.stores.record.statements import (
    Query,
    Row,
    Statement,
    exists,
    first_value,
    optional_decimal,
    optional_int,
)


def take_lease(*, holder: str, ttl_seconds: float) -> Query[int | None]:
    """Takes the lease if it is free, expired or already ours; the new fencing token, or None if another holds it."""
    return Query(
        sql="INSERT INTO engine_lease (id, holder, token, expires_at)"
        " VALUES (1, %(holder)s, 1, now() + make_interval(secs => %(ttl)s))"
        " ON CONFLICT (id) DO UPDATE SET holder = EXCLUDED.holder, token = engine_lease.token + 1,"
        "  expires_at = EXCLUDED.expires_at"
        " WHERE engine_lease.expires_at < now() OR engine_lease.holder = EXCLUDED.holder"
        " RETURNING token",
        params={"holder": holder, "ttl": ttl_seconds},
        decode=optional_int,
    )


def _holder(rows: list[Row]) -> tuple[str, datetime] | None:
    return (rows[0][0], rows[0][1]) if rows else None


def lease_holder() -> Query[tuple[str, datetime] | None]:
    """(holder, expires_at) of the lease, expired or not; None before any engine took it."""
    return Query(sql="SELECT holder, expires_at FROM engine_lease WHERE id = 1", decode=_holder)


def renew_lease(*, holder: str, token: int, ttl_seconds: float) -> Query[bool]:
    """Extends our lease; False when it is no longer ours (another engine took it with a newer token)."""
    return Query(
        sql="UPDATE engine_lease SET expires_at = now() + make_interval(secs => %s)"
        " WHERE id = 1 AND holder = %s AND token = %s RETURNING 1",
        params=(ttl_seconds, holder, token),
        decode=exists,
    )


def release_lease(*, holder: str, token: int) -> Statement:
    """Expires our lease now, so a standby takes over without waiting for the TTL."""
    return Statement(
        sql="UPDATE engine_lease SET expires_at = now() - interval '1 second'"
        " WHERE id = 1 AND holder = %s AND token = %s",
        params=(holder, token),
    )


def lease_token_for_batch() -> Query[int | None]:
    """The current fencing token, share-locked until the batch's transaction ends: a takeover waits for it."""
    return Query(sql="SELECT token FROM engine_lease WHERE id = 1 FOR SHARE", decode=optional_int)


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineAnchors:
    """What the engine_state row holds: the last committed bar, the starting cash, the high-water mark, the profile
    last written by the engine."""

    last_bar_ts: datetime | None
    initial_cash: Decimal
    high_water_mark: Decimal
    profile: str


def create_engine_state(*, initial_cash: Decimal, profile: str) -> Statement:
    """The engine_state row on first start; a no-op once it exists."""
    return Statement(
        sql="INSERT INTO engine_state (id, initial_cash, high_water_mark, profile)"
        " VALUES (1, %s, %s, %s) ON CONFLICT (id) DO NOTHING",
        params=(initial_cash, initial_cash, profile),
    )


def _anchors(rows: list[Row]) -> EngineAnchors:
    if not rows:
        raise LookupError("engine_state has no row: create_engine_state runs first")
    last_bar_ts, initial_cash, high_water_mark, profile = rows[0]
    return EngineAnchors(
        last_bar_ts=last_bar_ts,
        initial_cash=Decimal(initial_cash),
        high_water_mark=Decimal(high_water_mark),
        profile=profile,
    )


def engine_anchors() -> Query[EngineAnchors]:
    return Query(
        sql="SELECT last_bar_ts, initial_cash, high_water_mark, profile FROM engine_state WHERE id = 1",
        decode=_anchors,
    )


def recorded_initial_cash() -> Query[Decimal | None]:
    """The starting cash on record; None before the engine first started."""
    return Query(sql="SELECT initial_cash FROM engine_state WHERE id = 1", decode=optional_decimal)


def last_committed_bar_for_batch() -> Query[datetime | None]:
    """The last bar a committed batch covered, row-locked until this batch's transaction ends."""
    return Query(sql="SELECT last_bar_ts FROM engine_state WHERE id = 1 FOR UPDATE", decode=first_value)


def touch_engine_state() -> Statement:
    """A one-row write committed on its own: its synchronous commit returns once the WAL up to it is on disk, so
    everything committed before it (a batch committed without waiting for the flush) is durable too."""
    return Statement(sql="UPDATE engine_state SET updated_at = now() WHERE id = 1")


def advance_engine_state(
    *, last_bar_ts: datetime | None, high_water_mark: Decimal, profile: str, trading_state: str
) -> Statement:
    """Moves the anchors with a batch (a batch without bars keeps the last committed bar)."""
    return Statement(
        sql="UPDATE engine_state SET last_bar_ts = COALESCE(%s, last_bar_ts), high_water_mark = %s,"
        " profile = %s, trading_state = %s, updated_at = now() WHERE id = 1",
        params=(last_bar_ts, high_water_mark, profile, trading_state),
    )
