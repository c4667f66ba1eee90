"""The feed port: anything that yields cross-sections of bars in time order."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from live.domain import Bar


class FeedError(ValueError):
    """A feed's data is unusable; the message says where (file, line) and why."""


class Feed(Protocol):
    """A market feed. `batches()` yields, per timestamp, the bars of every symbol that traded then,
    strictly increasing in time. Pacing (`--speed`) is the engine runner's job, not the feed's."""

    symbols: tuple[str, ...]
    bar_seconds: int

    def batches(self) -> Iterator[list[Bar]]: ...
