"""The engine's Redis adapter: kill switch, trading state, profile, snapshot, heartbeats, events, command acks.

What it reads and writes in the control keys is typed by the control protocol (live/control.py) and encoded there.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from live.control import (
    KILL_SWITCH_ON,
    CommandAck,
    ControlMessageError,
    Halt,
    TradingStateRecord,
    decode_trading_state,
    encode_ack,
    encode_command,
    encode_trading_state,
)
from live.domain import TradingState
from live.stores import redis_keys as keys


class RedisStore:
    """Short timeouts everywhere: an unreachable Redis must fail an order quickly, not hang the engine."""

    def __init__(self, url: str) -> None:
        self.url = url
        # One immediate retry (a pooled connection Redis dropped is reconnected transparently), never redis-py's
        # default of three retries with exponential backoff: that held a kill-switch read, or the command thread's
        # resubscription after Redis came back, for seconds. Our own loops pace the retries during an outage.
        self.client = redis.Redis.from_url(
            url, socket_timeout=1.0, socket_connect_timeout=1.0, retry=Retry(NoBackoff(), 1)
        )
        self.db = int(self.client.connection_pool.connection_kwargs.get("db", 0) or 0)
        self.events_channel = keys.events_channel(self.db)
        self.control_channel = keys.control_channel(self.db)

    def close(self) -> None:
        self.client.close()

    def kill_switch(self) -> bytes | str | None:
        """The raw value (read it with `live.control.kill_switch_is_set`). Raises redis.RedisError when it cannot
        be read: the caller fails closed."""
        value: bytes | str | None = self.client.get(keys.KILL_SWITCH)
        return value

    def trading_state(self) -> TradingStateRecord | None:
        """The trading state as last posted (by the API or the engine); None if absent or not a valid record."""
        raw = self.client.get(keys.TRADING_STATE)
        if not raw:
            return None
        try:
            return decode_trading_state(raw)
        except ControlMessageError:
            return None

    def write_trading_state(self, record: TradingStateRecord) -> None:
        """Posts the state in force; a halt sets the kill switch with it (only an explicit resume clears it)."""
        pipe = self.client.pipeline()
        if record.state is TradingState.HALTED:
            pipe.set(keys.KILL_SWITCH, KILL_SWITCH_ON)
        pipe.set(keys.TRADING_STATE, encode_trading_state(record))
        pipe.execute()

    def post_halt(self, halted: TradingStateRecord, command: Halt) -> None:
        """A halt from outside the engine (the watchdog), in the API's order and in one transaction: the kill switch
        (in force for the engine's next order), the state, then the command to an engine that may still listen."""
        pipe = self.client.pipeline(transaction=True)
        pipe.set(keys.KILL_SWITCH, KILL_SWITCH_ON)
        pipe.set(keys.TRADING_STATE, encode_trading_state(halted))
        pipe.publish(self.control_channel, encode_command(command))
        pipe.execute()

    def heartbeat_ages(self, services: Iterable[str], *, now: float) -> dict[str, float | None]:
        """Seconds since each service's last heartbeat at wall-clock `now` (None: no heartbeat in Redis)."""
        names = list(services)
        values = self.client.mget([keys.heartbeat_key(service) for service in names])
        ages: dict[str, float | None] = {}
        for service, raw in zip(names, values, strict=True):
            try:
                ages[service] = None if raw is None else max(0.0, now - float(raw))
            except ValueError:
                ages[service] = None
        return ages

    def write_profile(self, name: str, content_hash: str) -> None:
        """Posts the profile in force: its name and the content hash the engine trades under."""
        self.client.mset({keys.PROFILE: name, keys.PROFILE_HASH: content_hash})

    def write_strategy(self, status_json: str) -> None:
        """Posts the strategy traded (a `live.wire.StrategyStatus` as JSON)."""
        self.client.set(keys.STRATEGY, status_json)

    def heartbeat(self, services: Iterable[str], *, queues: str | None = None) -> None:
        """The services' signs of life, and the engine's queue depths (an `EngineQueues` JSON) beside them."""
        now = str(time.time())
        pipe = self.client.pipeline()
        for service in services:
            pipe.set(keys.heartbeat_key(service), now, ex=60)
        if queues is not None:
            pipe.set(keys.ENGINE_QUEUES, queues, ex=60)
        pipe.execute()

    def publish(self, messages: list[str], *, snapshot: str | None = None) -> None:
        pipe = self.client.pipeline(transaction=False)
        if snapshot is not None:
            pipe.set(keys.PORTFOLIO, snapshot)
        for message in messages:
            pipe.publish(self.events_channel, message)
        pipe.execute()

    def ack(self, ack: CommandAck) -> None:
        key = keys.control_ack_key(ack.command_id)
        pipe = self.client.pipeline()
        pipe.lpush(key, encode_ack(ack))
        pipe.expire(key, 60)
        pipe.execute()
