"""The ports the engine is built from: each adapter and each template satisfies its port, adapters are chosen by
name from settings, and a strategy only says what it wants (the engine sizes, checks and submits)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal

import pytest

from live.assembly import BROKERS, FEEDS, STRATEGIES, FeedOptions, build_engine, build_feed
from live.domain import Bar, Side, TradingState
from live.engine import Engine
from live.execution import Broker, PaperBroker
from live.execution._template import TemplateBroker
from live.feeds import Feed, FeedError, ReplayFeed, SimFeed
from live.feeds._template import TemplateFeed
from live.feeds.base import LiveFeed
from live.feeds.ccxt import CcxtFeed
from live.profiles import Profile, get_profile
from live.settings import EngineSettings, Settings, SettingsError
from live.strategy import BuiltinStrategy, PortfolioView, SignalRecorder, Strategy, TargetPosition
from live.strategy._template import TemplateStrategy
from tests.factories import CASH, T0, trending_rows, write_replay_csv

SYMBOLS = ("AAA", "BBB", "CCC")

# Checked by mypy: each template and first adapter is assignable to its port.
_feeds: tuple[type[Feed], ...] = (TemplateFeed, SimFeed, ReplayFeed)
_brokers: tuple[type[Broker], ...] = (TemplateBroker, PaperBroker)
_strategies: tuple[type[Strategy], ...] = (TemplateStrategy, BuiltinStrategy)


def _settings(**changes: object) -> EngineSettings:
    values: dict[str, object] = {"broker": "paper", "strategy": "builtin", **changes}
    return Settings(**values).engine


def test_every_template_and_first_adapter_satisfies_its_port() -> None:
    assert isinstance(TemplateFeed(symbols=SYMBOLS), Feed)
    assert isinstance(SimFeed(symbols=SYMBOLS), Feed)
    assert isinstance(CcxtFeed(exchange_id="binance", symbols=SYMBOLS), LiveFeed)
    assert not isinstance(SimFeed(symbols=SYMBOLS), LiveFeed)  # paced by the runner
    assert isinstance(TemplateBroker(commission_bps=Decimal(1)), Broker)
    assert isinstance(PaperBroker(commission_bps=Decimal(1), slippage_bps=Decimal(2)), Broker)
    assert isinstance(TemplateStrategy(symbols=SYMBOLS), Strategy)
    assert isinstance(BuiltinStrategy(symbols=SYMBOLS), Strategy)


def test_the_broker_and_the_strategy_are_the_ones_named_in_settings() -> None:
    engine = build_engine(_settings(), symbols=SYMBOLS)
    assert isinstance(engine.broker, PaperBroker)
    assert isinstance(engine.strategy, BuiltinStrategy)
    assert set(BROKERS) == {"paper"}
    assert set(STRATEGIES) == {"builtin"}


@pytest.mark.parametrize(
    ("field", "variable"), [("broker", "TRADEOS_BROKER"), ("strategy", "TRADEOS_STRATEGY")]
)
def test_an_unknown_adapter_name_is_refused_naming_its_variable(field: str, variable: str) -> None:
    with pytest.raises(SettingsError, match=f"^{variable}: unknown 'nope'; valid: "):
        build_engine(_settings(**{field: "nope"}), symbols=SYMBOLS)


def test_a_feed_is_chosen_by_name(tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert set(FEEDS) == {"sim", "replay", "ccxt"}
    sim = build_feed("sim", FeedOptions(symbols=SYMBOLS, seed=3, sim_days=0.01))
    assert isinstance(sim, SimFeed)
    assert sim.symbols == SYMBOLS
    data = write_replay_csv(tmp_path / "bars.csv", trending_rows(SYMBOLS, 5))
    assert isinstance(build_feed("replay", FeedOptions(data=data)), ReplayFeed)
    with pytest.raises(FeedError, match="needs a CSV or Parquet file"):
        build_feed("replay", FeedOptions())
    with pytest.raises(FeedError, match="unknown feed 'ticker'"):
        build_feed("ticker", FeedOptions())


class _AlwaysLong:
    """Wants every symbol long on every bar, records nothing: the engine still sizes, checks and submits."""

    name = "always-long"

    def warm_up(self, bars: Sequence[Bar]) -> None:
        pass

    def observe(self, bars: Sequence[Bar], *, regime: str, profile: Profile, signals: SignalRecorder) -> None:
        self.symbols = [bar.symbol for bar in bars]

    def decide(self, *, profile: Profile, book: PortfolioView) -> list[TargetPosition]:
        return [TargetPosition(symbol=symbol, direction=1, signal_type="momentum") for symbol in self.symbols]


def _bars(minute_prices: list[float]) -> list[list[Bar]]:
    return [
        [
            Bar(
                timestamp=T0 + timedelta(minutes=m),
                symbol=symbol,
                open=price,
                high=price,
                low=price,
                close=price,
                volume=1000.0,
                spread=0.0,
            )
            for symbol in SYMBOLS
        ]
        for m, price in enumerate(minute_prices)
    ]


def _engine_with(strategy: Strategy, profile: Profile) -> Engine:
    return Engine(
        symbols=SYMBOLS,
        profile=profile,
        initial_cash=CASH,
        broker=PaperBroker(commission_bps=Decimal(0), slippage_bps=Decimal(0)),
        strategy=strategy,
    )


def test_a_strategy_says_what_it_wants_and_the_engine_sizes_it_to_the_profiles_limits() -> None:
    profile = get_profile("conservative")  # 5 % a position, 6 % an order
    engine = _engine_with(_AlwaysLong(), profile)
    orders = []
    for batch in _bars([100.0] * 5):
        engine.step(batch)
        orders += engine.take_outbox().orders
    # One opening a symbol (a target already held asks for nothing more), each a full 5 % position.
    assert [(o.symbol, o.side, o.quantity) for o in orders] == [(s, Side.BUY, 50) for s in SYMBOLS]


def test_a_strategy_cannot_open_while_reduce_only_nor_trade_while_halted() -> None:
    engine = _engine_with(_AlwaysLong(), get_profile("balanced"))
    engine.set_state(TradingState.REDUCE_ONLY, actor="test")
    batches = _bars([100.0] * 4)
    engine.step(batches[0])
    engine.set_state(TradingState.HALTED, actor="test")
    engine.step(batches[1])
    assert engine.take_outbox().orders == []
