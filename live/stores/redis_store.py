"""The engine's Redis adapter: kill switch, trading state, profile, snapshot, heartbeats, events, command acks."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import redis

from live.domain import iso_utc
from live.stores import redis_keys as keys


class RedisStore:
    """Short timeouts everywhere: an unreachable Redis must fail an order quickly, not hang the engine."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.client = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
        self.db = int(self.client.connection_pool.connection_kwargs.get("db", 0) or 0)
        self.events_channel = keys.events_channel(self.db)
        self.control_channel = keys.control_channel(self.db)

    def close(self) -> None:
        self.client.close()

    def kill_switch_set(self) -> bool:
        """Raises redis.RedisError when it cannot be read (the caller fails closed)."""
        return self.client.get(keys.KILL_SWITCH) in (b"1", b"true")

    def trading_state(self) -> dict[str, Any] | None:
        """The trading state as last posted (by the API or the engine); None if absent or unreadable JSON."""
        raw = self.client.get(keys.TRADING_STATE)
        try:
            posted = json.loads(raw) if raw else None
        except ValueError:
            return None
        return posted if isinstance(posted, dict) else None

    def write_trading_state(self, *, state: str, actor: str, reason: str, since: datetime | None) -> None:
        pipe = self.client.pipeline()
        if state == "halted":
            pipe.set(keys.KILL_SWITCH, "1")
        pipe.set(
            keys.TRADING_STATE,
            json.dumps({"state": state, "since": iso_utc(since), "reason": reason, "actor": actor}),
        )
        pipe.execute()

    def write_profile(self, name: str) -> None:
        self.client.set(keys.PROFILE, name)

    def heartbeat(self, services: Iterable[str]) -> None:
        now = str(time.time())
        pipe = self.client.pipeline()
        for service in services:
            pipe.set(keys.heartbeat_key(service), now, ex=60)
        pipe.execute()

    def publish(self, messages: list[str], *, snapshot: str | None = None) -> None:
        pipe = self.client.pipeline(transaction=False)
        if snapshot is not None:
            pipe.set(keys.PORTFOLIO, snapshot)
        for message in messages:
            pipe.publish(self.events_channel, message)
        pipe.execute()

    def ack(self, command_id: str, reply: Mapping[str, Any]) -> None:
        key = keys.control_ack_key(command_id)
        pipe = self.client.pipeline()
        pipe.lpush(key, json.dumps(reply))
        pipe.expire(key, 60)
        pipe.execute()
