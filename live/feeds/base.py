"""The feed port: anything that yields cross-sections of bars in time order."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Protocol, runtime_checkable

from live.domain import Bar
from live.instruments import Instrument


class FeedError(ValueError):
    """A feed's data is unusable; the message says where (file, line) and why."""


@runtime_checkable
class Feed(Protocol):
    """A market feed (see live/feeds/_template.py). `batches()` yields, per timestamp, the bars of every symbol
    that traded then, strictly increasing in time. Pacing (`--speed`) is the engine runner's job, not the feed's."""

    @property
    def symbols(self) -> tuple[str, ...]:
        """Every symbol the feed may yield, fixed before the first batch (the engine sets up each one's models)."""
        ...

    @property
    def bar_seconds(self) -> int:
        """The usual bar length, for pacing only: horizons count each symbol's own bars, whatever the gaps."""
        ...

    def batches(self) -> Iterator[list[Bar]]: ...


@runtime_checkable
class LiveFeed(Feed, Protocol):
    """A feed of a market running now (live/feeds/ccxt.py): bars come when the market makes them, so the runner
    does not pace it (`--speed` does not apply), polls it instead of blocking on it (heartbeats and commits go on
    while a minute forms), measures its silence in wall-clock seconds for the stale-feed breaker, and closes it."""

    def next_batch(self, timeout: float) -> list[Bar] | None:
        """The next cross-section, or None if none came within `timeout` seconds."""
        ...

    def close(self) -> None:
        """Stops the feed and releases its connections."""
        ...


@runtime_checkable
class VenueFeed(Protocol):
    """A feed from a venue that states each symbol's market rules (step, tick, minimums: live/instruments.py);
    the engine sizes and checks its orders by them. Feeds without (the sim, a replay) trade whole units."""

    @property
    def instruments(self) -> Mapping[str, Instrument] | None: ...
