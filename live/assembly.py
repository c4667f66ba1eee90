"""Where the engine is put together from its ports, by the names settings give them.

A broker or a strategy is chosen by name (`TRADEOS_BROKER`, `TRADEOS_STRATEGY`) among the adapters registered
here; a feed by `--feed`. Adding one means writing a class against its port (copy the port's `_template.py`) and
adding one line to its registry below. The runner, the benchmarks and the tests all build their engine with
`build_engine`, so an engine is assembled the same way everywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from types import MappingProxyType

from live.engine import Engine
from live.execution.base import Broker
from live.execution.paper import PaperBroker
from live.profiles import Profile, get_profile
from live.regime import RegimeClassifier
from live.settings import Settings
from live.strategy.base import Strategy
from live.strategy.builtin import BuiltinStrategy


def _paper_broker(settings: Settings) -> Broker:
    return PaperBroker(commission_bps=settings.commission_bps, slippage_bps=settings.slippage_bps)


def _builtin_strategy(settings: Settings, symbols: Sequence[str]) -> Strategy:
    return BuiltinStrategy(symbols=symbols)


# Name (as in settings) -> factory of a fresh adapter.
BROKERS: Mapping[str, Callable[[Settings], Broker]] = MappingProxyType({"paper": _paper_broker})
STRATEGIES: Mapping[str, Callable[[Settings, Sequence[str]], Strategy]] = MappingProxyType(
    {"builtin": _builtin_strategy}
)


def build_engine(
    settings: Settings,
    *,
    symbols: Sequence[str],
    profile: Profile | None = None,
    initial_cash: Decimal | None = None,
    classifier: RegimeClassifier | None = None,
    confirm_bars: int = 30,
    wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Engine:
    """An engine for `symbols` with the broker and the strategy named in `settings`. The profile and the initial
    cash default to the settings' (a restart passes the ones found in the record)."""
    return Engine(
        symbols=symbols,
        profile=profile or get_profile(settings.profile),
        initial_cash=settings.initial_cash if initial_cash is None else initial_cash,
        broker=BROKERS[settings.broker](settings),
        strategy=STRATEGIES[settings.strategy](settings, symbols),
        classifier=classifier,
        confirm_bars=confirm_bars,
        wall_clock=wall_clock,
    )
