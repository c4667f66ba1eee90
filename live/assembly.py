"""Where the engine is put together from its ports, by the names settings give them.

A broker is chosen by name (`TRADEOS_BROKER`) among the adapters registered here, a feed by `tradeos up --feed
NAME`; adding one means writing a class against its port (copy the port's `_template.py`: live/feeds/,
live/execution/) and adding one line to its registry below. A strategy is chosen by a spec (`--strategy`,
`TRADEOS_STRATEGY`): a name registered in `STRATEGIES` (live/strategy/loading.py), or a class in a module or a
file (docs/strategies.md). The runner, the benchmarks and the tests all build their engine with `build_engine`,
so an engine is assembled the same way everywhere.
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
from live.instruments import Instrument, default_instruments
from live.profiles import Profile, get_profile
from live.regime import RegimeClassifier
from live.settings import EngineSettings, SettingsError
from live.strategy.loading import (
    STRATEGIES,
    StrategyChoice,
    StrategyLoadError,
    load_strategy,
    parse_params_json,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedOptions:
    """What the command line says about the feed; each feed takes what applies to it."""

    symbols: tuple[str, ...] | None = (
        None  # None: the feed's own (the sim's defaults, a replay file's symbols)
    )
    seed: int = 1
    sim_days: float | None = None
    data: Path | None = None
    exchange: str = "binance"  # a ccxt exchange id (--feed ccxt)
    exchange_url: str | None = None  # replaces the scheme and host of every endpoint of the exchange


def _sim_feed(options: FeedOptions) -> Feed:
    return SimFeed(symbols=options.symbols or DEFAULT_SYMBOLS, seed=options.seed, sim_days=options.sim_days)


def _replay_feed(options: FeedOptions) -> Feed:
    if options.data is None:
        raise FeedError("--feed replay needs a CSV or Parquet file")
    return ReplayFeed.from_path(options.data, symbols=options.symbols)


def _ccxt_feed(options: FeedOptions) -> Feed:
    from live.feeds.ccxt import CcxtFeed  # ccxt loads a hundred exchanges: only when asked for

    return CcxtFeed.connect(
        exchange_id=options.exchange, symbols=options.symbols or (), exchange_url=options.exchange_url
    )


def _paper_broker(settings: EngineSettings, instruments: Mapping[str, Instrument]) -> Broker:
    return PaperBroker(
        commission_bps=settings.commission_bps, slippage_bps=settings.slippage_bps, instruments=instruments
    )


# Name (as in settings or on the command line) -> factory of a fresh adapter. A factory raises FeedError or
# ValueError for options it cannot use. A broker gets the markets' rules (step, tick, minimums) by symbol.
FEEDS: Mapping[str, Callable[[FeedOptions], Feed]] = MappingProxyType(
    {"sim": _sim_feed, "replay": _replay_feed, "ccxt": _ccxt_feed}
)
BROKERS: Mapping[str, Callable[[EngineSettings, Mapping[str, Instrument]], Broker]] = MappingProxyType(
    {"paper": _paper_broker}
)
__all__ = [
    "BROKERS",
    "FEEDS",
    "STRATEGIES",
    "FeedOptions",
    "build_engine",
    "build_feed",
    "strategy_from_settings",
]


def build_feed(name: str, options: FeedOptions) -> Feed:
    """The feed registered as `name`; FeedError when there is none, or when it cannot use `options`."""
    factory = FEEDS.get(name)
    if factory is None:
        raise FeedError(f"unknown feed {name!r}; valid: {', '.join(FEEDS)}")
    return factory(options)


def check_adapters(settings: EngineSettings) -> None:
    """Start-up check: the broker setting names a registered adapter (SettingsError otherwise)."""
    if settings.broker not in BROKERS:
        raise SettingsError(f"TRADEOS_BROKER: unknown {settings.broker!r}; valid: {', '.join(BROKERS)}")


def strategy_from_settings(settings: EngineSettings) -> StrategyChoice:
    """The strategy `TRADEOS_STRATEGY` names with `TRADEOS_STRATEGY_PARAMS` (SettingsError naming the variable)."""
    try:
        return load_strategy(settings.strategy, parse_params_json(settings.strategy_params))
    except StrategyLoadError as exc:
        variable = "TRADEOS_STRATEGY_PARAMS" if exc.about == "params" else "TRADEOS_STRATEGY"
        raise SettingsError(f"{variable}: {exc}") from None


def allowed_strategies(choice: StrategyChoice) -> dict[str, StrategyChoice]:
    """What an operator may switch a running engine to, by name or spec: the registered strategies and the one it
    was started with. All resolved now, at start-up: a switch never imports code."""
    allowed = {name: load_strategy(name) for name in STRATEGIES}
    allowed[choice.spec] = choice
    allowed.setdefault(choice.name, choice)
    return allowed


def build_engine(
    settings: EngineSettings,
    *,
    symbols: Sequence[str],
    profile: Profile | None = None,
    initial_cash: Decimal | None = None,
    classifier: RegimeClassifier | None = None,
    confirm_bars: int = 30,
    wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    strategy: StrategyChoice | None = None,
    instruments: Mapping[str, Instrument] | None = None,
) -> Engine:
    """An engine for `symbols` with the broker named in `settings` and `strategy` (default: the one the settings
    name, `strategy_from_settings`). The profile and the initial cash default to the settings' (a restart passes
    the ones found in the record); the markets' rules (`instruments`, one per symbol) to the sim's and replay's
    whole shares at prices to 4 decimals (live/instruments.py)."""
    check_adapters(settings)
    choice = strategy or strategy_from_settings(settings)
    markets = default_instruments(symbols) if instruments is None else instruments
    return Engine(
        symbols=symbols,
        profile=profile or get_profile(settings.profile),
        initial_cash=settings.initial_cash if initial_cash is None else initial_cash,
        broker=BROKERS[settings.broker](settings, markets),
        strategy=choice.build(symbols),
        classifier=classifier,
        confirm_bars=confirm_bars,
        wall_clock=wall_clock,
        strategy_choice=choice,
        allowed_strategies=allowed_strategies(choice),
        instruments=markets,
    )
