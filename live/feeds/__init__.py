"""Market feeds: the port (`Feed`) and its adapters, a seeded simulator and a file replay."""

from __future__ import annotations

from live.feeds.base import Feed, FeedError
from live.feeds.replay import ReplayFeed
from live.feeds.sim import DEFAULT_START, DEFAULT_SYMBOLS, SimFeed

__all__ = ["DEFAULT_START", "DEFAULT_SYMBOLS", "Feed", "FeedError", "ReplayFeed", "SimFeed"]
