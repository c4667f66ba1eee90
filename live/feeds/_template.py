"""Template for a new feed: copy this file to live/feeds/<name>.py, fill in the methods, register a factory in
live/assembly.py `FEEDS` and start it with `tradeos up --feed <name>`. The sim (live/feeds/sim.py) and the replay
(live/feeds/replay.py) are the worked examples. A feed of a market running now (bars as the market makes them, never
paced) also implements `live.feeds.base.LiveFeed` (`next_batch(timeout)`, `close()`): live/feeds/ccxt.py.
"""

from __future__ import annotations

from collections.abc import Iterator

from live.domain import Bar


class TemplateFeed:
    """Bars from <the source>, one cross-section per timestamp.

    Validate what can be validated in `__init__` (raise `live.feeds.base.FeedError` with a message naming where
    and why): a bad source should stop start-up, not a run halfway through.
    """

    def __init__(self, *, symbols: tuple[str, ...], bar_seconds: int = 60) -> None:
        self.symbols = symbols  # every symbol `batches` may yield, known before the first batch
        self.bar_seconds = bar_seconds  # the usual bar length: pacing only

    def batches(self) -> Iterator[list[Bar]]:
        """Must yield, per timestamp, one `Bar` per symbol that traded then (a symbol may be missing from a
        batch, never twice in it), all with that timestamp (aware UTC), strictly increasing from one batch to
        the next; finite or endless. The same source must yield the same bars again: after a crash the engine
        replays the feed from its start up to the last committed bar. Do not sleep to pace: the runner does."""
        raise NotImplementedError("TemplateFeed is a template: copy it and fill in batches()")
        yield []  # makes this a generator, as a real feed is
