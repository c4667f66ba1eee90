"""The custom profile the engine trades under, held to its stored row: loaded at start-up, checked every few
seconds by the housekeeping thread. A row changed or removed behind the engine's back (its body or hash no longer the
content hash the engine trades under) is a `PROFILE_HASH_MISMATCH` risk event, and trading halts."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from live.domain import RiskEvent, TradingState
from live.engine import Engine
from live.profiles import PROFILES, Profile, stored_profile, tampering
from live.risk import breakers
from live.service.book import Book
from live.stores.postgres import PostgresStore

log = logging.getLogger("tradeos.engine")

CHECK_SECONDS = 2.0
MISMATCH_ACTOR = f"circuit_breaker:{breakers.PROFILE_HASH_MISMATCH}"
# What the engine trades under (halted) when the custom profile on record cannot be loaded at all.
FALLBACK_PROFILE = "conservative"


def load_profile(
    pg: PostgresStore, *, name: str, version: int | None, recorded_hash: str | None
) -> tuple[Profile, str | None]:
    """The profile on record (a built-in, or the recorded version of a custom one, else its newest), and why it
    cannot be trusted (None when it can). An untrusted one (row gone, no longer valid, its body or hash not what
    was stored or recorded) is never traded: the conservative built-in stands in, and the caller halts."""
    builtin = PROFILES.get(name)
    if builtin is not None:
        return builtin, None
    row = pg.stored_profile(name=name, version=version)
    if row is None:
        which = f"version {version}" if version is not None else "any version"
        return PROFILES[FALLBACK_PROFILE], f"profile {name!r} on record has no stored {which}"
    try:
        profile = stored_profile(name=row.name, version=row.version, body_json=row.body)
    except ValueError as exc:
        first = str(exc).splitlines()[0]
        return PROFILES[
            FALLBACK_PROFILE
        ], f"profile {name!r} version {row.version} no longer validates: {first}"
    problem = tampering(profile, stored_body=row.body, stored_hash=row.content_hash)
    if problem is None and recorded_hash is not None and recorded_hash != profile.content_hash:
        problem = (
            f"profile {name!r} version {row.version} hashes to {profile.content_hash}, not the {recorded_hash} "
            "recorded when it was switched to"
        )
    if problem is not None:
        return PROFILES[FALLBACK_PROFILE], problem
    return profile, None


def halt_for_mismatch(engine: Engine, detail: str, *, at: datetime | None = None) -> None:
    """Records the risk event and halts. Callers hold the engine lock (or own the engine, at start-up)."""
    engine.outbox.risk_events.append(
        RiskEvent(
            timestamp=at or engine.last_timestamp or datetime.now(UTC),
            code=breakers.PROFILE_HASH_MISMATCH,
            detail=detail,
            halts_trading=True,
        )
    )
    engine.set_state(TradingState.HALTED, actor=MISMATCH_ACTOR, reason=detail)
    log.error("trading halted: %s", detail)


class ProfileWatch:
    """Compares the stored row of the engine's custom profile version with the hash the engine trades under."""

    def __init__(self, *, book: Book) -> None:
        self._book = book
        self._reported: tuple[str, int, str] | None = None  # the profile whose mismatch is on record

    def check(self, pg: PostgresStore) -> None:
        """One comparison (a PostgreSQL read, off the engine's lock). A mismatch is recorded once per profile
        version and halts trading whenever it is not halted (a resume does not outlast the next check)."""
        profile = self._book.engine.profile
        if profile.is_builtin:
            self._reported = None
            return
        row = pg.stored_profile(name=profile.name, version=profile.version)
        problem = tampering(
            profile,
            stored_body=row.body if row is not None else None,
            stored_hash=row.content_hash if row is not None else None,
        )
        key = (profile.name, profile.version, profile.content_hash)
        if problem is None:
            if self._reported == key:
                self._reported = None
            return
        with self._book.lock:
            engine = self._book.engine
            if engine.profile is not profile:
                return  # switched meanwhile: the next check looks at the new one
            if self._reported == key and engine.state is TradingState.HALTED:
                return
            halt_for_mismatch(engine, problem)
            self._reported = key
