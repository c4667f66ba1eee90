"""The API's half of the control protocol (live/control.py; keys in live/stores/redis_keys.py): record the operator's action in PostgreSQL,
set the state in Redis, publish the command, and wait for the engine's acknowledgement when an engine is running.

Ordering is chosen to fail closed: a halt sets the Redis kill switch before anything else (it is what the engine
checks before every order) and is recorded in PostgreSQL (what survives a Redis restart); a resume is recorded first
and only then clears the kill switch, so a resume that cannot be recorded never takes effect.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg

from api.reads import HEARTBEAT_KEYS, heartbeat_ages, heartbeat_ages_of, is_fresh
from api.schemas import (
    ProfileBody,
    ProfileResponse,
    ProfileSaved,
    ProfileVersion,
    StrategyResponse,
    StrategyStatus,
    TradingStatus,
)
from api.stores import EarlyConnection, Stores, StoreUnavailable, redis_errors
from live.control import (
    KILL_SWITCH_ON,
    Command,
    CommandAck,
    ControlMessageError,
    Flatten,
    Halt,
    Reduce,
    Resume,
    SetProfile,
    SetStrategy,
    TradingStateRecord,
    command_name,
    decode_ack,
    decode_trading_state,
    encode_command,
    encode_trading_state,
    kill_switch_is_set,
)
from live.domain import ControlAction, TradingState
from live.profiles import PROFILES, Profile, canonical_json, content_hash, stored_profile
from live.settings import Settings
from live.stores import record, redis_keys
from live.stores.audit_key import audit_key
from live.stores.record.decisions import RecordedProfile, profile_value
from live.stores.record.profiles import StoredProfile

ACK_TIMEOUT_SECONDS = 2.0
log = logging.getLogger("tradeos.api")


class ControlError(Exception):
    """A command the engine could not be made to apply; the message is the operator-facing detail."""


class EngineNotRunning(ControlError):
    """The command needs a running engine (flatten) and no engine heartbeat is fresh."""


class EngineTimeout(ControlError):
    """A running engine did not acknowledge the command in time."""


class EngineRefused(ControlError):
    """The engine replied that it could not apply the command."""


class TradingHalted(ControlError):
    """The command would loosen a halt; only an explicit resume does that."""


class ProfileReadOnly(ControlError):
    """A built-in profile cannot be changed."""


class ProfileUntrusted(ControlError):
    """A stored custom profile no longer matches its content hash (or no longer validates): not switched to."""


class UnknownProfile(ControlError):
    """No built-in and no stored custom profile has this name; answered as a 422 on the request field `loc`."""

    def __init__(self, detail: str, *, loc: tuple[str, ...], value: str) -> None:
        super().__init__(detail)
        self.loc = loc
        self.value = value


@dataclass(frozen=True, slots=True, kw_only=True)
class _RedisState:
    kill_switch: bool
    posted: TradingStateRecord | None  # None when absent or not a valid record
    profile: str | None
    profile_hash: str | None
    strategy: StrategyStatus | None  # None when absent or unreadable
    engine_alive: bool

    @property
    def state(self) -> TradingState | None:
        return None if self.posted is None else self.posted.state

    @property
    def halted(self) -> bool:
        return self.kill_switch or self.state is TradingState.HALTED


@dataclass(frozen=True, slots=True, kw_only=True)
class _SentCommand:
    command: Command
    engine_alive: bool
    listeners: int


@dataclass(frozen=True, slots=True, kw_only=True)
class _HaltInForce:
    before: _RedisState  # what Redis held just before the halt
    already: bool  # a halt was posted already
    sent: _SentCommand


# KEYS: kill switch, trading state, profile, profile hash, strategy, the heartbeats. ARGV: the kill switch's
# value, the halted state record, the halted state's name, the control channel, the command. Returns the kill switch, whether a halt
# was posted already, the command's listeners, then the values of KEYS[2..] as they were.
_HALT_SCRIPT = """
local kill = redis.call('GET', KEYS[1])
local before = redis.call('MGET', unpack(KEYS, 2))
local already = 0
if before[1] then
  local ok, posted = pcall(cjson.decode, before[1])
  if ok and type(posted) == 'table' and posted['state'] == ARGV[3] then already = 1 end
end
redis.call('SET', KEYS[1], ARGV[1])
if already == 0 then redis.call('SET', KEYS[2], ARGV[2]) end
local listeners = redis.call('PUBLISH', ARGV[4], ARGV[5])
return {kill, already, listeners, unpack(before)}
"""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _posted(raw: bytes | str | None) -> TradingStateRecord | None:
    if not raw:
        return None
    try:
        return decode_trading_state(raw)
    except ControlMessageError:
        return None


def audit_key_of(settings: Settings) -> bytes:
    """The key this process seals its ledger entries with (live/stores/audit_key.py); `tradeos up` makes it, if
    missing, before it starts the APIs."""
    return audit_key(settings.stores.audit_key, settings.home_dir)


def _command_id() -> str:
    return uuid.uuid4().hex


class TradingControl:
    """Halt, resume, reduce-only, flatten and profile changes, as one operator would make them."""

    def __init__(self, *, stores: Stores, default_profile: str, audit_key: bytes | None) -> None:
        """`audit_key` seals the ledger entries of the actions recorded; None for a control that only reads the
        status (the Metrics API's), which cannot record an action."""
        self._stores = stores
        self._default_profile = default_profile
        self._audit_key = audit_key
        self._halt_script = stores.redis.register_script(_HALT_SCRIPT)
        self._profile_switches = asyncio.Lock()

    @property
    def default_profile(self) -> str:
        """The profile in force when none was ever switched to (`TRADEOS_PROFILE`)."""
        return self._default_profile

    async def status(self) -> TradingStatus:
        """State from Redis (the kill switch wins); without Redis, from the latest recorded control action. The
        strategy as the engine posted it, or else as last recorded."""
        try:
            current: _RedisState | None = await self._redis_state()
        except StoreUnavailable:
            current = None
        status = await self._trading_status(current)
        strategy = (current and current.strategy) or await self._recorded_strategy()
        return status.model_copy(update={"strategy": strategy})

    async def _trading_status(self, current: _RedisState | None) -> TradingStatus:
        if current and current.profile:
            profile, profile_hash = current.profile, current.profile_hash
        else:
            recorded = await self._recorded_profile()
            profile, profile_hash = recorded.name, recorded.content_hash
        status = await self._state_status(current, profile=profile)
        return status.model_copy(update={"profile_hash": profile_hash})

    async def _state_status(self, current: _RedisState | None, *, profile: str) -> TradingStatus:
        if current and current.kill_switch and current.state is not TradingState.HALTED:
            return TradingStatus(
                status="halted", reason="kill switch set in Redis", actor="kill_switch", profile=profile
            )
        if current and current.posted:
            return _status_of(current.posted, profile=profile)
        async with self._stores.postgres() as conn:
            recorded = await record.fetch_async(conn, record.decisions.recorded_trading_state())
        if recorded is None:
            return TradingStatus(status="active", profile=profile)
        return TradingStatus(
            status=recorded.state.value,
            since=recorded.since,
            reason=recorded.reason,
            actor=recorded.actor,
            profile=profile,
        )

    async def halt(self, *, actor: str, origin: str, reason: str) -> TradingStatus:
        """Kill switch on, recorded, engine told; returns once a running engine confirms. Idempotent."""
        now = datetime.now(UTC)
        command = Halt(command_id=_command_id(), actor=actor, reason=reason)
        fresh = _halted(now, reason=reason, actor=actor)
        # The record's connection is checked out (a round trip of its own) while Redis puts the halt in force.
        async with self._stores.postgres_soon() as early:
            try:
                put = await self._put_halt_in_force(command, fresh)
            except StoreUnavailable as exc:
                redis_error = exc
            else:
                # The kill switch is set: the record and the engine's confirmation need not wait for each other.
                recorded, acknowledged = await asyncio.gather(
                    self._record_halt(
                        early,
                        already=put.already,
                        command=command,
                        origin=origin,
                        at=now,
                        held_by_redis=True,
                    ),
                    self._acknowledged(put.sent),
                )
                if isinstance(recorded, StoreUnavailable):
                    raise StoreUnavailable(
                        "postgres",
                        "the kill switch is set and trading is halted, but the halt could not be recorded",
                    ) from recorded
                current = put.before
                if current.profile is None:  # not posted yet: the status finds it in the record
                    return (await self.status()).model_copy(update={"engine_acknowledged": acknowledged})
                # What the script put in force: reading it back would cost the operator another round trip.
                halted = current.posted if put.already and current.posted else fresh
                return _status_of(
                    halted, profile=current.profile, engine_acknowledged=acknowledged
                ).model_copy(update={"strategy": current.strategy, "profile_hash": current.profile_hash})
            recorded = await self._record_halt(
                early, already=False, command=command, origin=origin, at=now, held_by_redis=False
            )
        if isinstance(recorded, StoreUnavailable):
            raise StoreUnavailable("redis and postgres", recorded) from recorded
        raise StoreUnavailable(
            "redis", "the halt is recorded in PostgreSQL; the engine does not trade while Redis is down"
        ) from redis_error

    async def _put_halt_in_force(self, command: Halt, halted: TradingStateRecord) -> _HaltInForce:
        """One round trip, atomically and in this order: read what the status needs, set the kill switch (in force
        for the engine's next order from here), post the halted state unless a halt is already posted (its
        `since` stands), and publish the command to the engine."""
        async with redis_errors():
            (
                kill,
                already,
                listeners,
                state,
                profile,
                profile_hash,
                strategy,
                *heartbeats,
            ) = await self._halt_script(
                keys=[
                    redis_keys.KILL_SWITCH,
                    redis_keys.TRADING_STATE,
                    redis_keys.PROFILE,
                    redis_keys.PROFILE_HASH,
                    redis_keys.STRATEGY,
                    *HEARTBEAT_KEYS,
                ],
                args=[
                    KILL_SWITCH_ON,
                    encode_trading_state(halted),
                    TradingState.HALTED.value,
                    redis_keys.control_channel(self._stores.redis_db),
                    encode_command(command),
                ],
            )
        before = _redis_state_of(kill, state, profile, profile_hash, strategy, heartbeats)
        return _HaltInForce(
            before=before,
            already=bool(already),
            sent=_SentCommand(command=command, engine_alive=before.engine_alive, listeners=int(listeners)),
        )

    async def _record_halt(
        self,
        early: EarlyConnection,
        *,
        already: bool,
        command: Halt,
        origin: str,
        at: datetime,
        held_by_redis: bool,
    ) -> StoreUnavailable | None:
        """Records the halt. Once the kill switch is set (`held_by_redis`), the record need not wait for the disk
        (see `_record`); without it the record is all that holds the halt, and it waits."""
        if already:
            return None
        try:
            await self._record(
                action="halt",
                actor=command.actor,
                origin=origin,
                reason=command.reason,
                at=at,
                early=early,
                wait_for_flush=not held_by_redis,
            )
        except StoreUnavailable as exc:
            return exc
        return None

    async def resume(self, *, actor: str, origin: str, reason: str) -> TradingStatus:
        """Recorded, kill switch cleared, engine told; the only way out of a halt. Idempotent."""
        now = datetime.now(UTC)
        current = await self._redis_state()
        if current.kill_switch or current.state is not TradingState.ACTIVE:
            await self._record(action="resume", actor=actor, origin=origin, reason=reason, at=now)
            async with redis_errors(), self._stores.redis.pipeline(transaction=True) as pipe:
                pipe.delete(redis_keys.KILL_SWITCH)
                pipe.set(redis_keys.TRADING_STATE, _state_json(TradingState.ACTIVE, now, reason, actor))
                await pipe.execute()
        acknowledged = await self._command(Resume(command_id=_command_id(), actor=actor, reason=reason))
        return (await self.status()).model_copy(update={"engine_acknowledged": acknowledged})

    async def reduce(self, *, actor: str, origin: str, reason: str) -> TradingStatus:
        """Reduce-only: no new exposure, exits still managed. Refused while halted (it would loosen the halt)."""
        now = datetime.now(UTC)
        current = await self._redis_state()
        if current.halted:
            raise TradingHalted(
                "trading is halted; resume first (POST /trading/resume), or flatten to close positions"
            )
        if current.state is not TradingState.REDUCE_ONLY:
            await self._record(action="reduce", actor=actor, origin=origin, reason=reason, at=now)
            async with redis_errors():
                await self._stores.redis.set(
                    redis_keys.TRADING_STATE, _state_json(TradingState.REDUCE_ONLY, now, reason, actor)
                )
        acknowledged = await self._command(Reduce(command_id=_command_id(), actor=actor, reason=reason))
        return (await self.status()).model_copy(update={"engine_acknowledged": acknowledged})

    async def flatten(self, *, actor: str, origin: str, reason: str) -> TradingStatus:
        """Closes every position at market, also while halted; needs a running engine."""
        if not await self._engine_alive():
            raise EngineNotRunning("no engine is running (no fresh heartbeat): nothing can be flattened now")
        await self._record(action="flatten", actor=actor, origin=origin, reason=reason, at=datetime.now(UTC))
        acknowledged = await self._command(Flatten(command_id=_command_id(), actor=actor, reason=reason))
        return (await self.status()).model_copy(update={"engine_acknowledged": acknowledged})

    async def set_profile(self, *, actor: str, origin: str, profile: str, reason: str) -> ProfileResponse:
        """Recorded (when it changes the profile in force), stored as the active profile, engine told. A custom
        profile is switched to at its newest stored version, sent to the engine whole with its content hash.

        Switches are applied one at a time, across API processes (a PostgreSQL advisory lock): the check against
        the profile in force, the record, the Redis key and the command to the engine happen in one turn, so
        concurrent switches are each recorded once and the engine applies them in the order recorded. Only the
        wait for the engine's acknowledgement is outside the turn."""
        async with self._profile_turn() as conn:
            target, stored = await self._resolve_profile(conn, profile)
            async with redis_errors():  # Redis first: a switch that cannot be applied is not recorded either
                current = await self._stores.redis.get(redis_keys.PROFILE)
            in_force = await self._profile_in_force(conn, redis_profile=current)
            if profile != in_force.name or in_force.content_hash not in (None, target.content_hash):
                await self._record_switch(conn, actor=actor, origin=origin, reason=reason, profile=target)
            sent = await self._switch(actor=actor, reason=reason, profile=target, stored=stored)
        acknowledged = await self._acknowledged(sent)
        return ProfileResponse.model_validate({"profile": profile, "engine_acknowledged": acknowledged})

    async def profiles(self) -> list[ProfileVersion]:
        """The built-ins (read-only) and the newest version of every custom profile, each with its content hash;
        the one in force marked active."""
        active = (await self.status()).profile
        async with self._stores.postgres() as conn:
            stored = await record.fetch_async(conn, record.profiles.latest_profile_versions())
        builtins = [
            ProfileVersion(
                name=name,
                version=p.version,
                read_only=True,
                active=name == active,
                content_hash=p.content_hash,
                definition=ProfileBody.of(p),
            )
            for name, p in PROFILES.items()
        ]
        custom = []
        for row in stored:
            try:
                custom.append(_version_of(row, active=row.name == active))
            except ValueError:
                log.warning(
                    "stored profile %r version %d no longer validates; not listed", row.name, row.version
                )
        return builtins + custom

    async def save_profile(
        self, *, actor: str, origin: str, name: str, body: ProfileBody, reason: str = ""
    ) -> ProfileSaved:
        """Stores `body` as the next version of custom profile `name` (nothing new if it equals the newest),
        recorded as a `profile_update` control action with the actor. If `name` is the profile in force, the
        engine is switched to the new version (recorded as a `profile` switch with its hash), in the same turn
        as switches."""
        if name in PROFILES:
            raise ProfileReadOnly(
                f"{name!r} is a built-in profile and read-only; save your changes under another name "
                f"(PUT /profiles/my-{name}) and switch to it"
            )
        profile = body.to_profile(name=name, version=1)
        sent: _SentCommand | None = None
        async with self._profile_turn() as conn:
            latest = await record.fetch_async(conn, record.profiles.latest_profile_version(name=name))
            created = latest is None or latest.content_hash != profile.content_hash
            row = latest
            if created:
                async with redis_errors():
                    current = await self._stores.redis.get(redis_keys.PROFILE)
                in_force = await self._profile_in_force(conn, redis_profile=current)
                async with conn.transaction():
                    row = await record.fetch_async(
                        conn,
                        record.profiles.save_profile_version(
                            name=name,
                            body=canonical_json(profile),
                            content_hash=profile.content_hash,
                            actor=actor,
                        ),
                    )
                    assert row is not None
                    saved = stored_profile(name=name, version=row.version, body_json=row.body)
                    await self._record(
                        action="profile_update",
                        actor=actor,
                        origin=origin,
                        reason=reason,
                        value=profile_value(name=name, version=row.version, content_hash=row.content_hash),
                        at=datetime.now(UTC),
                        conn=conn,
                    )
                    if in_force.name == name:
                        await self._record_switch(
                            conn, actor=actor, origin=origin, reason=reason, profile=saved
                        )
                if in_force.name == name:
                    sent = await self._switch(actor=actor, reason=reason, profile=saved, stored=row)
        assert row is not None
        acknowledged = None if sent is None else await self._acknowledged(sent)
        version = _version_of(row, active=sent is not None or await self._is_active(name))
        return ProfileSaved(**version.model_dump(), created=created, engine_acknowledged=acknowledged)

    async def profile_for_limits(self, name: str) -> Profile:
        """The profile `name` as the limits it sets (a built-in, or a custom one's newest stored version); the
        default built-in if it cannot be read."""
        if name in PROFILES:
            return PROFILES[name]
        try:
            async with self._stores.postgres() as conn:
                return (await self._resolve_profile(conn, name))[0]
        except ControlError:
            return PROFILES.get(self._default_profile, PROFILES["conservative"])

    async def _is_active(self, name: str) -> bool:
        return (await self.status()).profile == name

    async def _resolve_profile(
        self, conn: psycopg.AsyncConnection, name: str
    ) -> tuple[Profile, StoredProfile | None]:
        """A built-in, or the newest stored version of a custom profile, validated and matching its hash."""
        builtin = PROFILES.get(name)
        if builtin is not None:
            return builtin, None
        row = await record.fetch_async(conn, record.profiles.latest_profile_version(name=name))
        if row is None:
            stored = await record.fetch_async(conn, record.profiles.latest_profile_versions())
            valid = ", ".join([*PROFILES, *(r.name for r in stored)])
            raise UnknownProfile(
                f"unknown profile {name!r}; valid: {valid}", loc=("body", "profile"), value=name
            )
        try:
            profile = stored_profile(name=row.name, version=row.version, body_json=row.body)
        except ValueError as exc:
            raise ProfileUntrusted(
                f"stored profile {name!r} version {row.version} no longer validates; save a new version "
                f"({str(exc).splitlines()[0]})"
            ) from None
        if profile.content_hash != row.content_hash or content_hash(row.body) != row.content_hash:
            raise ProfileUntrusted(
                f"stored profile {name!r} version {row.version} no longer matches its content hash "
                f"{row.content_hash}: it was changed after it was saved; save a new version "
                f"(PUT /profiles/{name}) to trade it again"
            )
        return profile, row

    async def _record_switch(
        self, conn: psycopg.AsyncConnection, *, actor: str, origin: str, reason: str, profile: Profile
    ) -> None:
        await self._record(
            action="profile",
            actor=actor,
            origin=origin,
            reason=reason,
            value=profile_value(
                name=profile.name, version=profile.version, content_hash=profile.content_hash
            ),
            at=datetime.now(UTC),
            conn=conn,
        )

    async def _switch(
        self, *, actor: str, reason: str, profile: Profile, stored: StoredProfile | None
    ) -> _SentCommand:
        """Posts the profile in force in Redis and sends the engine the switch (a custom one whole)."""
        async with redis_errors():
            await self._stores.redis.mset(
                {redis_keys.PROFILE: profile.name, redis_keys.PROFILE_HASH: profile.content_hash}
            )
        command = SetProfile(command_id=_command_id(), actor=actor, reason=reason, profile=profile.name)
        if stored is not None:
            command = SetProfile(
                command_id=command.command_id,
                actor=actor,
                reason=reason,
                profile=profile.name,
                version=stored.version,
                body_json=stored.body,
                content_hash=stored.content_hash,
            )
        return await self._publish(command)

    async def set_strategy(
        self, *, actor: str, strategy: str, params: dict[str, object], reason: str
    ) -> StrategyResponse:
        """Asks the running engine to trade another strategy. The engine decides and records it (control action
        `strategy`, with the strategies before and after): only it knows which were allowed at its start and
        whether the parameters are valid, and it refuses unless halted with a flat book. Nothing is imported
        here or there on a caller's say-so: the name only selects among what the engine resolved at start-up."""
        if not await self._engine_alive():
            raise EngineNotRunning(
                "no engine is running (no fresh heartbeat): no strategy can be switched now"
            )
        command = SetStrategy(
            command_id=_command_id(),
            actor=actor,
            reason=reason,
            strategy=strategy,
            params_json=json.dumps(params, sort_keys=True, separators=(",", ":")),
        )
        ack = await self._acknowledgement(await self._publish(command))
        if ack is None or ack.strategy is None:
            raise EngineRefused("the engine confirmed the strategy switch without saying what it trades")
        return StrategyResponse(
            strategy=StrategyStatus.model_validate(ack.strategy), engine_acknowledged=True
        )

    @asynccontextmanager
    async def _profile_turn(self) -> AsyncIterator[psycopg.AsyncConnection]:
        """A connection holding the profile lock; released on exit (and by PostgreSQL if the connection dies).

        Switches in this process queue on an asyncio lock before they take a connection: waiting on the advisory
        lock instead, a burst of them held every pooled connection, and the rest gave up on the pool's checkout
        timeout (2 s) with a 503. The advisory lock still orders switches across API processes."""
        async with self._profile_switches, self._stores.postgres() as conn:
            await record.execute_async(conn, record.decisions.take_profile_lock())
            try:
                yield conn
            finally:
                # A connection back in the pool still holding the lock would block every later switch: if it
                # cannot be unlocked, it is closed, and PostgreSQL releases the lock with the session.
                try:
                    await record.execute_async(conn, record.decisions.release_profile_lock())
                except psycopg.Error:
                    await conn.close()
                except asyncio.CancelledError:
                    await conn.close()
                    raise

    async def _profile_in_force(
        self, conn: psycopg.AsyncConnection, *, redis_profile: bytes | str | None
    ) -> RecordedProfile:
        """The last profile on record (what the engine restores at start-up); before any, the engine's own."""
        recorded = await record.fetch_async(conn, record.decisions.recorded_profile())
        if recorded is not None:
            return recorded
        return RecordedProfile(
            name=_text(redis_profile) if redis_profile is not None else self._default_profile
        )

    async def _redis_state(self) -> _RedisState:
        """The kill switch, the posted state, the profile and the engine's heartbeats, in one round trip."""
        async with redis_errors():
            kill, state, profile, profile_hash, strategy, *heartbeats = await self._stores.redis.mget(
                [
                    redis_keys.KILL_SWITCH,
                    redis_keys.TRADING_STATE,
                    redis_keys.PROFILE,
                    redis_keys.PROFILE_HASH,
                    redis_keys.STRATEGY,
                    *HEARTBEAT_KEYS,
                ]
            )
        return _redis_state_of(kill, state, profile, profile_hash, strategy, heartbeats)

    async def _record(
        self,
        *,
        action: str,
        actor: str,
        origin: str,
        reason: str,
        at: datetime,
        value: str = "",
        conn: psycopg.AsyncConnection | None = None,
        early: EarlyConnection | None = None,
        wait_for_flush: bool = True,
    ) -> None:
        """Records the action with its audit ledger entry, in one transaction (record.audit). `wait_for_flush=False`
        is for a halt only: its commit then does not wait for the WAL flush, which at full engine speed queues
        behind the engine's COPY batches (10-130 ms, the slowest part of a halt once the engine answers promptly).
        A halt is set in the Redis kill switch before it is recorded, so a PostgreSQL crash in the fraction of a
        second before the flush can lose this line of the record (with its ledger entry), never the halt: a running
        engine has it in force and its gate reads the switch before every order; a restarted one halts on the switch
        and records that halt itself. And the line is durable within a fraction of a second anyway (at full speed
        the engine's own commits, every 0.25 s, flush it). The ledger's turn is taken after the kill switch is set:
        a wait for it never delays the halt itself."""
        if self._audit_key is None:
            raise RuntimeError(
                "this TradingControl reads the status only: it has no audit key to record with"
            )
        action_row = ControlAction(
            timestamp=at, action=action, actor=actor, reason=reason, value=value, origin=origin
        )
        if early is not None:
            conn = await early.connection()
        if conn is not None:
            await _record_sealed(conn, action_row, key=self._audit_key, wait_for_flush=wait_for_flush)
            return
        async with self._stores.postgres() as own:
            await _record_sealed(own, action_row, key=self._audit_key, wait_for_flush=wait_for_flush)

    async def _recorded_strategy(self) -> StrategyStatus | None:
        try:
            async with self._stores.postgres() as conn:
                recorded = await record.fetch_async(conn, record.strategies.current_strategy())
        except (StoreUnavailable, psycopg.errors.UndefinedTable):
            return None
        if recorded is None:
            return None
        return StrategyStatus(
            name=recorded.name,
            version=recorded.version,
            params=json.loads(recorded.params_json),
            params_hash=recorded.params_hash,
        )

    async def _recorded_profile(self) -> RecordedProfile:
        """The last switch on record, else the default; the hash of a built-in named without one filled in."""
        try:
            async with self._stores.postgres() as conn:
                recorded = await record.fetch_async(conn, record.decisions.recorded_profile())
        except StoreUnavailable:
            recorded = None
        recorded = recorded or RecordedProfile(name=self._default_profile)
        builtin = PROFILES.get(recorded.name)
        if recorded.content_hash is None and builtin is not None:
            return RecordedProfile(
                name=recorded.name, version=builtin.version, content_hash=builtin.content_hash
            )
        return recorded

    async def _engine_alive(self) -> bool:
        return any(is_fresh(age) for age in (await heartbeat_ages(self._stores)).values())

    async def _command(self, command: Command) -> bool:
        """Publishes the command; with an engine running, waits for its reply. False: no engine to tell."""
        return await self._acknowledged(await self._publish(command))

    async def _publish(self, command: Command) -> _SentCommand:
        """Publishes the command to the engine (whose subscription receives commands in publish order)."""
        alive = await self._engine_alive()
        async with redis_errors():
            listeners = await self._stores.redis.publish(
                redis_keys.control_channel(self._stores.redis_db), encode_command(command)
            )
        return _SentCommand(command=command, engine_alive=alive, listeners=listeners)

    async def _acknowledged(self, sent: _SentCommand) -> bool:
        """With an engine running, waits for its reply to `sent`. False: no engine to tell."""
        return await self._acknowledgement(sent) is not None

    async def _acknowledgement(self, sent: _SentCommand) -> CommandAck | None:
        """With an engine running, its reply to `sent` (EngineRefused if it refused). None: no engine to tell."""
        command = command_name(sent.command)
        if not sent.engine_alive:
            return None
        if sent.listeners == 0:
            raise EngineTimeout(
                f"the engine is running but not listening for commands; the {command} is stored and "
                "applies when it next reads its state"
            )
        async with redis_errors():
            reply = await self._stores.redis.blpop(
                [redis_keys.control_ack_key(sent.command.command_id)], timeout=ACK_TIMEOUT_SECONDS
            )
        if reply is None:
            raise EngineTimeout(
                f"the engine did not confirm the {command} within {ACK_TIMEOUT_SECONDS:g} s; it is stored "
                "and applies when the engine next reads its state"
            )
        try:
            ack = decode_ack(reply[1], command_id=sent.command.command_id)
        except ControlMessageError as exc:
            raise EngineRefused(f"the engine's answer to the {command} is unreadable: {exc}") from None
        if not ack.applied:
            raise EngineRefused(f"the engine refused the {command}: {ack.detail or 'no reason given'}")
        return ack


def _redis_state_of(
    kill: bytes | str | None,
    state: bytes | str | None,
    profile: bytes | str | None,
    profile_hash: bytes | str | None,
    strategy: bytes | str | None,
    heartbeats: list[bytes | str | None],
) -> _RedisState:
    return _RedisState(
        kill_switch=kill_switch_is_set(kill),
        posted=_posted(state),
        profile=_text(profile) if profile else None,
        profile_hash=_text(profile_hash) if profile_hash else None,
        strategy=_strategy(strategy),
        engine_alive=any(is_fresh(age) for age in heartbeat_ages_of(heartbeats).values()),
    )


def _version_of(row: StoredProfile, *, active: bool) -> ProfileVersion:
    return ProfileVersion(
        name=row.name,
        version=row.version,
        read_only=False,
        active=active,
        content_hash=row.content_hash,
        created_at=row.created_at,
        actor=row.actor,
        definition=ProfileBody.model_validate_json(row.body),
    )


def _strategy(raw: bytes | str | None) -> StrategyStatus | None:
    if not raw:
        return None
    try:
        return StrategyStatus.model_validate_json(raw)
    except ValueError:
        return None


async def _record_sealed(
    conn: psycopg.AsyncConnection, action: ControlAction, *, key: bytes, wait_for_flush: bool
) -> None:
    try:
        await record.audit.record_control_action_async(conn, action, key=key, wait_for_flush=wait_for_flush)
    except psycopg.OperationalError as exc:
        raise StoreUnavailable("postgres", exc) from exc


def _halted(since: datetime, *, reason: str, actor: str) -> TradingStateRecord:
    return TradingStateRecord(state=TradingState.HALTED, since=since, reason=reason, actor=actor)


def _status_of(
    posted: TradingStateRecord, *, profile: str, engine_acknowledged: bool | None = None
) -> TradingStatus:
    return TradingStatus(
        status=posted.state.value,
        since=posted.since,
        reason=posted.reason,
        actor=posted.actor,
        profile=profile,
        engine_acknowledged=engine_acknowledged,
    )


def _state_json(state: TradingState, since: datetime, reason: str, actor: str) -> str:
    return encode_trading_state(TradingStateRecord(state=state, since=since, reason=reason, actor=actor))
