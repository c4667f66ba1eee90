"""Names of everything TRADEOS keeps in Redis, shared by the engine and the API processes.

The values of the control keys and channels are typed and encoded in live/control.py.

Keys (per Redis DB):
  tradeos:kill_switch            set unless absent or "0" (written as "1"). Set by hand or by the API; only an
                                 explicit resume clears it (`live.control.kill_switch_is_set`)
  tradeos:trading_state          JSON {"state": active|reduce_only|halted, "since", "reason", "actor"} (TradingStateRecord)
  tradeos:profile                active profile name
  tradeos:profile_hash           content hash (sha256 of the canonical JSON) of the profile in force
  tradeos:strategy               JSON {"name", "version", "params", "params_hash"} of the strategy traded
                                 (live.wire.StrategyStatus), written by the engine
  tradeos:portfolio              JSON portfolio snapshot (the GET /portfolio shape), written by the engine
  tradeos:heartbeat:<service>    wall-clock unix seconds of the service's last sign of life
                                 (services: signal_engine, execution)
  tradeos:queues:engine          JSON of the engine's queue depths (live.wire.EngineQueues), with each heartbeat
  tradeos:control_ack:<id>       list the engine LPUSHes its CommandAck to, for command <id>
  tradeos:ws_clients:<api id>    JSON {"clients", "deepest_queue", "queued"} of one API process's WebSocket
                                 clients (expires unless refreshed), for the dashboard and the Metrics API
Channels (namespaced by DB index, since pub/sub ignores the DB):
  tradeos:<db>:events            every event as the WebSocket sends it: {"type", "data", "timestamp"}
  tradeos:<db>:control           operator commands: {"id", "command", "actor", "reason", "value"} (live.control.Command)
"""

from __future__ import annotations

KILL_SWITCH = "tradeos:kill_switch"
TRADING_STATE = "tradeos:trading_state"
PROFILE = "tradeos:profile"
PROFILE_HASH = "tradeos:profile_hash"
STRATEGY = "tradeos:strategy"
PORTFOLIO = "tradeos:portfolio"
HEARTBEAT_PREFIX = "tradeos:heartbeat:"
ENGINE_QUEUES = "tradeos:queues:engine"
CONTROL_ACK_PREFIX = "tradeos:control_ack:"
WS_CLIENTS_PREFIX = "tradeos:ws_clients:"
HEARTBEAT_SERVICES: tuple[str, ...] = ("signal_engine", "execution")
HEARTBEAT_MAX_AGE_SECONDS = 5.0


def events_channel(db: int) -> str:
    return f"tradeos:{db}:events"


def control_channel(db: int) -> str:
    return f"tradeos:{db}:control"


def heartbeat_key(service: str) -> str:
    return HEARTBEAT_PREFIX + service


def control_ack_key(command_id: str) -> str:
    return CONTROL_ACK_PREFIX + command_id
