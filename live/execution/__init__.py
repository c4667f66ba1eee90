"""Execution: the broker port (`Broker`) and its adapters, the paper broker first (live/execution/_template.py
shows how to write the next)."""

from __future__ import annotations

from live.execution.base import Broker, Execution
from live.execution.paper import PaperBroker

__all__ = ["Broker", "Execution", "PaperBroker"]
