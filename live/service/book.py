"""The engine as the service's threads share it: one lock, and a turn for operators' commands.

The engine thread steps the book under the lock; a command (or the kill-switch poll, or a breaker) changes its
state under the same lock, so it takes effect between two steps: a halt acknowledged to the API is in force for
every later order. At full speed the engine thread would release and retake a plain lock without ever letting a
waiting thread in, so a command raises a flag, and the engine thread stands aside after its step.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

from live.engine import Engine

_COMMAND_WAIT_SECONDS = 0.05  # the longest the engine thread stands aside for a command that was announced


class Book:
    """The engine and its lock."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.lock = threading.Lock()
        self._command_waiting = threading.Event()

    @contextlib.contextmanager
    def command_turn(self) -> Iterator[Engine]:
        """The lock for an operator command, taken between two steps without waiting for a commit."""
        self._command_waiting.set()
        try:
            with self.lock:
                self._command_waiting.clear()
                yield self.engine
        finally:
            self._command_waiting.clear()

    def let_command_in(self) -> None:
        """Called by the engine thread after a step, outside the lock: stand aside while a command is waiting."""
        if not self._command_waiting.is_set():
            return
        deadline = time.monotonic() + _COMMAND_WAIT_SECONDS
        while self._command_waiting.is_set() and time.monotonic() < deadline:
            time.sleep(0.0001)
