"""The engine as a service: the I/O shell around the pure `Engine`, one module per thread or duty.

runner.py assembles it; pacing.py paces the feed; recorder.py commits each batch to PostgreSQL (and rides out
outages); publisher.py fans the committed events out through Redis; control.py serves operators' commands on a
thread of its own and keeps house (kill-switch poll, heartbeats, model hot-load, stale feed); lease.py holds the
book's lease. The order gate they feed is live/risk/kill_switch.py.
"""

from live.service.runner import EngineRunner, RunnerOptions

__all__ = ["EngineRunner", "RunnerOptions"]
