"""Where the engine is put together from its ports, by the names settings give them.

A broker or a strategy is chosen by name (`TRADEOS_BROKER`, `TRADEOS_STRATEGY`) among the adapters registered
here; a feed by `tradeos up --feed NAME`. Adding one means writing a class against its port (copy the port's
`_template.py`: live/feeds/, live/execution/, live/strategy/) and adding one line to its registry below. The
runner, the benchmarks and the tests all build their engine with `build_engine`, so an engine is assembled the
same way everywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType

from live.engine import Engine
from live.execution.base import Broker
from live.execution.paper import PaperBroker
from live.feeds.base import Feed, FeedError
from live.feeds.replay import ReplayFeed
from live.feeds.sim import DEFAULT_SYMBOLS, SimFeed
from live.profiles import Profile, get_profile
from live.regime import RegimeClassifier
from live.settings import EngineSettings, SettingsError
from live.strategy.base import Strategy
from live.strategy.builtin import BuiltinStrategy


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedOptions:
    """What the command line says about the feed; each feed takes what applies to it."""

    symbols: tuple[str, ...] | None = (
        None  # None: the feed's own (the sim's defaults, a replay file's symbols)
    )
    seed: int = 1
    sim_days: float | None = None
    data: Path | None = None


def _sim_feed(options: FeedOptions) -> Feed:
    return SimFeed(symbols=options.symbols or DEFAULT_SYMBOLS, seed=options.seed, sim_days=options.sim_days)


def _replay_feed(options: FeedOptions) -> Feed:
    if options.data is None:
        raise FeedError("--feed replay needs a CSV or Parquet file")
    return ReplayFeed.from_path(options.data, symbols=options.symbols)


def _paper_broker(settings: EngineSettings) -> Broker:
    return PaperBroker(commission_bps=settings.commission_bps, slippage_bps=settings.slippage_bps)


def _builtin_strategy(settings: EngineSettings, symbols: Sequence[str]) -> Strategy:
    return BuiltinStrategy(symbols=symbols)


# Name (as in settings or on the command line) -> factory of a fresh adapter. A factory raises FeedError or
# ValueError for options it cannot use.
FEEDS: Mapping[str, Callable[[FeedOptions], Feed]] = MappingProxyType(
    {"sim": _sim_feed, "replay": _replay_feed}
)
BROKERS: Mapping[str, Callable[[EngineSettings], Broker]] = MappingProxyType({"paper": _paper_broker})
STRATEGIES: Mapping[str, Callable[[EngineSettings, Sequence[str]], Strategy]] = MappingProxyType(
    {"builtin": _builtin_strategy}
)


def build_feed(name: str, options: FeedOptions) -> Feed:
    """The feed registered as `name`; FeedError when there is none, or when it cannot use `options`."""
    factory = FEEDS.get(name)
    if factory is None:
        raise FeedError(f"unknown feed {name!r}; valid: {', '.join(FEEDS)}")
    return factory(options)


def check_adapters(settings: EngineSettings) -> None:
    """Start-up check: the broker and the strategy settings name registered adapters (SettingsError otherwise)."""
    for variable, name, registry in (
        ("TRADEOS_BROKER", settings.broker, BROKERS),
        ("TRADEOS_STRATEGY", settings.strategy, STRATEGIES),
    ):
        if name not in registry:
            raise SettingsError(f"{variable}: unknown {name!r}; valid: {', '.join(registry)}")


def build_engine(
    settings: EngineSettings,
    *,
    symbols: Sequence[str],
    profile: Profile | None = None,
    initial_cash: Decimal | None = None,
    classifier: RegimeClassifier | None = None,
    confirm_bars: int = 30,
    wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    strategy: Strategy | None = None,
) -> Engine:
    """An engine for `symbols` with the broker and the strategy named in `settings` (or `strategy`, one chosen
    otherwise, e.g. by `tradeos backtest --strategy`). The profile and the initial cash default to the settings'
    (a restart passes the ones found in the record)."""
    check_adapters(settings)
    return Engine(
        symbols=symbols,
        profile=profile or get_profile(settings.profile),
        initial_cash=settings.initial_cash if initial_cash is None else initial_cash,
        broker=BROKERS[settings.broker](settings),
        strategy=strategy if strategy is not None else STRATEGIES[settings.strategy](settings, symbols),
        classifier=classifier,
        confirm_bars=confirm_bars,
        wall_clock=wall_clock,
    )
