"""What the fault tests do and read, as an operator's desk would: replay files, the record in PostgreSQL, the book
recomputed from its fills, and the engine↔API control protocol spoken exactly as api/control.py speaks it."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import redis

from live.feeds.sim import SimFeed
from live.stores import redis_keys as keys
from tests.support import Service, eventually

ENGINE_ONLY = ["up", "--no-api", "--no-flows"]
AVG_QUANTUM = Decimal("0.00000001")


def sim_replay(path: Path, *, days: float = 1.0, seed: int = 21) -> tuple[Path, int]:
    """A replay file made from the sim feed (realistic enough that the engine trades); returns it and its bar count."""
    lines = ["timestamp,symbol,open,high,low,close,volume"]
    for batch in SimFeed(sim_days=days, seed=seed).batches():
        for b in batch:
            lines.append(
                f"{b.timestamp.isoformat().replace('+00:00', 'Z')},{b.symbol},{b.open!r},{b.high!r},"
                f"{b.low!r},{b.close!r},{b.volume!r}"
            )
    path.write_text("\n".join(lines) + "\n")
    return path, len(lines) - 1


def scalar(url: str, sql: str, params: tuple[Any, ...] = ()) -> Any:
    with psycopg.connect(url, connect_timeout=3) as conn:
        row = conn.execute(sql, params).fetchone()
        return row[0] if row else None


def rows(url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, connect_timeout=3) as conn:
        return conn.execute(sql, params).fetchall()


def wait_feed_done(service: Service, timeout: float = 180) -> None:
    eventually(lambda: "feed finished" in service.output, timeout=timeout, what="the feed to finish")


@dataclass
class Book:
    """The book as a recomputation from fills alone (average cost, gross realized P&L, fees off cash)."""

    cash: Decimal
    positions: dict[str, tuple[int, Decimal]]
    realized_pnl: Decimal
    fees: Decimal


def recompute_book(fills: list[tuple[Any, ...]], *, initial_cash: Decimal = Decimal("100000")) -> Book:
    """`fills`: (id, symbol, side, quantity, price, fee, realized_pnl) in booking order. Checks each recorded
    realized_pnl against its own average-cost computation on the way."""
    cash = initial_cash
    held: dict[str, tuple[int, Decimal]] = {}
    realized_total = Decimal(0)
    fees = Decimal(0)
    for fill_id, symbol, side, quantity, price, fee, realized in fills:
        quantity_before, avg = held.get(symbol, (0, Decimal(0)))
        signed = quantity if side == "buy" else -quantity
        if quantity_before == 0 or (quantity_before > 0) == (signed > 0):
            expected = Decimal(0)
            avg = ((abs(quantity_before) * avg + quantity * price) / abs(quantity_before + signed)).quantize(
                AVG_QUANTUM
            )
        else:
            assert abs(signed) <= abs(quantity_before), f"{fill_id} reverses a position in one order"
            expected = quantity * (price - avg) * (1 if quantity_before > 0 else -1)
        assert Decimal(realized) == expected, f"{fill_id}: realized_pnl {realized} != {expected}"
        quantity_after = quantity_before + signed
        held[symbol] = (quantity_after, avg if quantity_after else Decimal(0))
        cash -= signed * price + fee
        realized_total += expected
        fees += fee
    return Book(cash=cash, positions=held, realized_pnl=realized_total, fees=fees)


def fills_in_order(url: str) -> list[tuple[Any, ...]]:
    return rows(
        url,
        "SELECT id, symbol, side, quantity, price, fee, realized_pnl FROM fills ORDER BY timestamp, id",
    )


class ControlDesk:
    """The API's half of the control protocol (api/control.py), spoken directly to Redis and PostgreSQL."""

    def __init__(self, *, redis_url: str, database_url: str) -> None:
        self.redis = redis.Redis.from_url(redis_url, socket_timeout=10)
        self.database_url = database_url
        self.db = int(self.redis.connection_pool.connection_kwargs.get("db", 0) or 0)

    def close(self) -> None:
        self.redis.close()

    def _record(self, action: str, reason: str) -> None:
        with psycopg.connect(self.database_url) as conn:
            conn.execute(
                "INSERT INTO control_actions (timestamp, action, actor, reason) VALUES (%s, %s, 'faults', %s)",
                (datetime.now(UTC), action, reason),
            )

    def engine_listens(self) -> bool:
        """Whether an engine is subscribed to the control channel (after a Redis restart it subscribes again)."""
        channel = keys.control_channel(self.db)
        counts = dict(self.redis.pubsub_numsub(channel))
        return int(counts.get(channel.encode(), counts.get(channel, 0))) >= 1

    def _command(self, command: str, reason: str, timeout: float) -> dict[str, Any]:
        command_id = uuid.uuid4().hex
        listeners = self.redis.publish(
            keys.control_channel(self.db),
            json.dumps(
                {"id": command_id, "command": command, "actor": "faults", "reason": reason, "value": ""}
            ),
        )
        assert listeners >= 1, f"no engine is listening for the {command}"
        reply = self.redis.blpop([keys.control_ack_key(command_id)], timeout=timeout)
        assert reply is not None, f"the engine did not acknowledge the {command} within {timeout}s"
        body: dict[str, Any] = json.loads(reply[1])
        assert body.get("ok"), body
        return body

    def halt(self, reason: str = "fault test", timeout: float = 5.0) -> dict[str, Any]:
        """Kill switch first, then the record, then the command; returns the engine's acknowledgement."""
        self.redis.set(keys.KILL_SWITCH, "1")
        self._record("halt", reason)
        return self._command("halt", reason, timeout)

    def resume(self, reason: str = "fault test over", timeout: float = 5.0) -> dict[str, Any]:
        """Recorded first, then the kill switch cleared, then the command."""
        self._record("resume", reason)
        self.redis.delete(keys.KILL_SWITCH)
        return self._command("resume", reason, timeout)

    def trading_state(self) -> str | None:
        raw = self.redis.get(keys.TRADING_STATE)
        return json.loads(raw)["state"] if raw else None

    def snapshot_timestamp(self) -> str | None:
        raw = self.redis.get(keys.PORTFOLIO)
        return json.loads(raw).get("timestamp") if raw else None
