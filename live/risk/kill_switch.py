"""The order gate: the last word before an order reaches the broker, asked by `Engine.step` once per step, right
before its first order.

It fails closed. It refuses while this engine's lease is not valid by its own clock (`LEASE_LOST`), while the record
cannot be reached (`POSTGRES_UNREACHABLE`), while Redis is known to be down or the kill switch cannot be read
(`KILL_SWITCH_UNREACHABLE`), and when the kill switch is set (`TRADING_HALTED`, after halting the engine).

Polling and caching: the kill switch is read afresh each time the gate is asked (no cache: a switch set by hand
stops the very next order), and polled every `POLL_SECONDS` besides by the service's housekeeping thread, so that
a switch set while no order is proposed still halts the engine (and shows as halted) within a second. The gate
holds no I/O of its own: the service supplies the reads and what to do on a set or an unreadable switch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from live.control import TradingStateRecord, kill_switch_is_set
from live.domain import TradingState
from live.risk.breakers import POSTGRES_UNREACHABLE
from live.risk.checks import KILL_SWITCH_UNREACHABLE, TRADING_HALTED

LEASE_LOST = "LEASE_LOST"
POLL_SECONDS = 0.2
KILL_SWITCH_ACTOR = "kill_switch"
KILL_SWITCH_REASON = "tradeos:kill_switch is set"


@dataclass(frozen=True, slots=True, kw_only=True)
class KillSwitchHalt:
    """To whom a halt found through the kill switch belongs, and whether it is on record already."""

    actor: str
    reason: str
    recorded: bool


def kill_switch_halt(posted: TradingStateRecord | None) -> KillSwitchHalt:
    """When the API set the switch, the trading state it posted says halted by an operator, whose halt it recorded:
    adopt it. Set by hand, the halt is the kill switch's own, and still to be recorded."""
    if (
        posted is not None
        and posted.state is TradingState.HALTED
        and posted.actor not in ("", KILL_SWITCH_ACTOR)
    ):
        return KillSwitchHalt(actor=posted.actor, reason=posted.reason, recorded=True)
    return KillSwitchHalt(actor=KILL_SWITCH_ACTOR, reason=KILL_SWITCH_REASON, recorded=False)


class KillSwitchGate:
    """`Engine.step`'s gate. Each collaborator is a plain callable so that the gate is the policy and nothing else."""

    def __init__(
        self,
        *,
        lease_valid: Callable[[], bool],
        record_reachable: Callable[[], bool],
        redis_reachable: Callable[[], bool],
        read_kill_switch: Callable[[], bytes | str | None],
        halt: Callable[[], None],
        kill_switch_unreadable: Callable[[], None],
    ) -> None:
        self._lease_valid = lease_valid
        self._record_reachable = record_reachable
        self._redis_reachable = redis_reachable
        self._read_kill_switch = read_kill_switch
        self._halt = halt
        self._kill_switch_unreadable = kill_switch_unreadable

    def __call__(self) -> str | None:
        """None lets the order through; otherwise the reason it is refused."""
        if not self._lease_valid():
            return LEASE_LOST
        if not self._record_reachable():
            return POSTGRES_UNREACHABLE
        if not self._redis_reachable():
            return KILL_SWITCH_UNREACHABLE  # until the service has reconciled the state after an outage
        try:
            if not kill_switch_is_set(self._read_kill_switch()):
                return None
            self._halt()
        except Exception:  # a RedisError, or anything else the client raises: the switch is unreadable
            self._kill_switch_unreadable()
            return KILL_SWITCH_UNREACHABLE
        return TRADING_HALTED
