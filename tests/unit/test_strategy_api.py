"""The strategy API: a strategy is loaded from a spec with validated parameters, computes its signals as documented,
goes through the engine's sizing and checks like the built-in one, and cannot make the engine trust what breaks
its contract; a live switch only picks among the strategies allowed at start-up."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator, Sequence
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from textwrap import dedent

import numpy as np
import pytest

from live.assembly import build_engine
from live.control import Halt, SetStrategy
from live.domain import Bar, TradingState
from live.engine import Engine
from live.feeds.sim import DEFAULT_SYMBOLS, SimFeed
from live.profiles import get_profile
from live.risk.checks import KILL_SWITCH_UNREACHABLE
from live.settings import Settings
from live.strategy.api import CrossSectionBars
from live.strategy.loading import StrategyLoadError, load_strategy
from tests.factories import T0

ROOT = Path(__file__).resolve().parents[2]
SMA = f"{ROOT / 'docs' / 'examples' / 'sma_crossover.py'}:SmaCrossover"
SETTINGS = Settings(
    broker="paper", strategy="builtin", commission_bps=Decimal(1), slippage_bps=Decimal(2)
).engine


def _write(path: Path, source: str) -> Path:
    path.write_text(dedent(source))
    return path


def _sim(seed: int, days: float) -> tuple[tuple[str, ...], list[list[Bar]]]:
    feed = SimFeed(symbols=DEFAULT_SYMBOLS, seed=seed, sim_days=days)
    return feed.symbols, list(feed.batches())


# -- loading --------------------------------------------------------------------------------------------------


def test_the_example_loads_from_its_file_with_parameters_validated_and_hashed() -> None:
    choice = load_strategy(SMA, {"fast": "5", "slow": "20"})

    assert (choice.name, choice.version) == ("sma_crossover", "1")
    assert choice.params_json == (
        '{"allow_short":true,"entry":0.3,"fast":5,"scale":0.002,"slow":20}'
    )  # every field, defaults too, keys sorted
    assert choice.params_hash == hashlib.sha256(choice.params_json.encode()).hexdigest()
    # The same parameters given as JSON values hash the same; another value does not.
    assert load_strategy(SMA, {"slow": 20, "fast": 5}).params_hash == choice.params_hash
    assert load_strategy(SMA, {"fast": 6, "slow": 20}).params_hash != choice.params_hash
    with pytest.raises(ValueError, match="frozen"):
        choice.params.fast = 7  # type: ignore[attr-defined]


def test_a_strategy_loads_by_module_path_and_builtin_by_name() -> None:
    assert load_strategy("live.strategy.builtin:BuiltinStrategy").name == "builtin"
    assert load_strategy("builtin").params_json == "{}"


@pytest.mark.parametrize(
    ("spec", "params", "message"),
    [
        ("nope", {}, r"^unknown 'nope'; valid: builtin, package.module:Class or path/to/file.py:Class$"),
        ("no_such_module_xyz:Thing", {}, r"^no module named 'no_such_module_xyz'$"),
        ("live.strategy.builtin:Missing", {}, r"^live.strategy.builtin has no class 'Missing'$"),
        ("live.strategy.builtin:HORIZONS", {}, r"is not a class$"),
        ("live.profiles:Profile", {}, r"is not a Strategy \(it has no warm_up\(\) method\)$"),
        ("live.strategy.api:SignalStrategy", {}, r"is abstract \(it does not implement targets\(\)\)$"),
        ("missing/file.py:X", {}, r"^no file 'missing/file.py'$"),
        (SMA, {"fastt": "5"}, r"^sma_crossover: unknown parameter 'fastt'$"),
        (SMA, {"fast": "five"}, r"^sma_crossover: parameter 'fast': Input should be a valid integer"),
        (SMA, {"fast": "30", "slow": "20"}, r"fast \(30\) must be shorter than slow \(20\)$"),
    ],
)
def test_a_bad_spec_or_parameter_is_one_line_naming_the_problem(
    spec: str, params: dict[str, str], message: str
) -> None:
    with pytest.raises(StrategyLoadError, match=message) as caught:
        load_strategy(spec, params)
    assert "\n" not in str(caught.value)
    assert caught.value.about == ("params" if params else "spec")


def test_an_error_in_the_users_file_is_reported_with_its_type_and_line(tmp_path: Path) -> None:
    broken = _write(tmp_path / "broken.py", "def oops(:\n    pass\n")
    failing = _write(tmp_path / "failing.py", "raise RuntimeError('no data\\nhere')\n")

    with pytest.raises(
        StrategyLoadError, match=r"^importing .*broken.py failed: SyntaxError: .* \(line 1\)$"
    ):
        load_strategy(f"{broken}:X")
    with pytest.raises(
        StrategyLoadError, match=r"^importing .*failing.py failed: RuntimeError: no data here$"
    ):
        load_strategy(f"{failing}:X")


# -- the vectorised signal of the example -----------------------------------------------------------------------


def test_the_examples_sma_cross_equals_moving_averages_computed_from_scratch() -> None:
    from live.strategy.loading import strategy_class

    module = __import__(strategy_class(SMA).__module__)
    symbols, batches = _sim(seed=3, days=0.2)
    fast, slow, scale = 5, 20, 0.002
    signal = module.SmaCross(symbols=symbols, fast=fast, slow=slow, scale=scale)
    closes = np.array([[bar.close for bar in batch] for batch in batches])
    for t, batch in enumerate(batches):
        got = signal.update(
            CrossSectionBars(
                timestamp=batch[0].timestamp,
                index=np.arange(len(batch)),
                open=closes[t],
                high=closes[t],
                low=closes[t],
                close=closes[t],
                volume=closes[t],
            )
        )
        if t + 1 < slow:
            assert np.isnan(got).all()
            continue
        expected = np.tanh(
            (closes[t - fast + 1 : t + 1].mean(0) / closes[t - slow + 1 : t + 1].mean(0) - 1) / scale
        )
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)


# -- the engine: same checks for every strategy, and no trust ---------------------------------------------------


def _refusing_gate() -> Iterator[str | None]:
    """The kill switch unreadable on every third order decision: orders refused with a recorded reason."""
    n = 0
    while True:
        n += 1
        yield KILL_SWITCH_UNREACHABLE if n % 3 == 0 else None


def _run(engine: Engine, batches: Sequence[Sequence[Bar]]) -> list[str]:
    verdicts = _refusing_gate()
    lines: list[str] = []
    for batch in batches:
        engine.step(batch, gate=lambda: next(verdicts))
        out = engine.take_outbox()
        lines += (
            [repr(o) for o in out.orders] + [repr(f) for f in out.fills] + [repr(e) for e in out.risk_events]
        )
        lines += [repr(row) for row in out.signal_rows]
    return lines


def test_a_user_strategy_from_a_file_is_sized_and_refused_exactly_as_the_builtin_one(tmp_path: Path) -> None:
    copy = _write(
        tmp_path / "copycat.py",
        """
        from live.strategy.builtin import BuiltinStrategy

        class Copycat(BuiltinStrategy):
            name = "copycat"
        """,
    )
    symbols, batches = _sim(seed=1, days=2)
    profile = get_profile("aggressive")

    builtin = _run(build_engine(SETTINGS, symbols=symbols, profile=profile), batches)
    user = _run(
        build_engine(SETTINGS, symbols=symbols, profile=profile, strategy=load_strategy(f"{copy}:Copycat")),
        batches,
    )

    assert any(KILL_SWITCH_UNREACHABLE in line and "REJECTED" in line for line in builtin)
    assert user == builtin


def _liar(tmp_path: Path, body: str) -> Engine:
    path = _write(
        tmp_path / "liar.py",
        f"""
        from live.strategy.api import SignalStrategy
        from live.strategy.base import TargetPosition

        class Liar(SignalStrategy):
            name = "liar"

            def observe(self, bars, *, regime, profile, signals):
                super().observe(bars, regime=regime, profile=profile, signals=signals)
                bar = bars[0]
                signals.record((bar.timestamp, bar.symbol, "lie", self.strength, 5, regime, False))

            strength = 0.5
            lying = False

            def targets(self, cross_section, *, profile, book):
                if not self.lying:
                    return []
                {body}
        """,
    )
    return build_engine(
        SETTINGS,
        symbols=("AAA", "BBB"),
        profile=get_profile("aggressive"),
        strategy=load_strategy(f"{path}:Liar"),
    )


def _bars(minute: int) -> list[Bar]:
    at = T0 + timedelta(minutes=minute)
    return [
        Bar(timestamp=at, symbol=s, open=100.0, high=100.0, low=100.0, close=100.0, volume=1.0, spread=0.0)
        for s in ("AAA", "BBB")
    ]


@pytest.mark.parametrize(
    ("strength", "body", "detail"),
    [
        (1.5, "return []", "signal strength 1.5 outside [-1, 1]"),
        (math.nan, "return []", "signal strength nan outside [-1, 1]"),
        (
            0.5,
            "return [TargetPosition(symbol='ZZZ', direction=1, signal_type='x')]",
            "a target for 'ZZZ', which is not in the cross-section",
        ),
        (
            0.5,
            "return [TargetPosition(symbol='AAA', direction=2, signal_type='x')]",
            "a target direction 2 for AAA (must be -1, 0 or 1)",
        ),
        (0.5, "raise KeyError('boom')", "decide() raised KeyError: 'boom'"),
    ],
)
def test_a_strategy_breaking_its_contract_halts_trading_and_nothing_of_it_is_recorded(
    tmp_path: Path, strength: float, body: str, detail: str
) -> None:
    engine = _liar(tmp_path, body)
    engine.step(_bars(0))
    assert engine.take_outbox().signal_rows  # a good bar is recorded
    engine.strategy.strength = strength  # type: ignore[attr-defined]
    engine.strategy.lying = True  # type: ignore[attr-defined]

    engine.step(_bars(1))
    engine.step(_bars(2))

    out = engine.take_outbox()
    assert engine.state is TradingState.HALTED
    assert [(e.code, e.detail, e.halts_trading) for e in out.risk_events] == [
        ("STRATEGY_FAULT", f"strategy liar: {detail}", True)
    ]  # once, not on every bar while halted
    assert engine.state_actor == "circuit_breaker:STRATEGY_FAULT"
    assert out.orders == []
    assert all(-1.0 <= row[3] <= 1.0 for row in out.signal_rows)


# -- switching ---------------------------------------------------------------------------------------------------


def _switch(engine: Engine, strategy: str, params: dict[str, object] | None = None) -> str:
    ack = engine.apply(
        SetStrategy(
            command_id="c",
            actor="alice",
            reason="try sma",
            strategy=strategy,
            params_json=json.dumps(params or {}),
        )
    )
    return ack.detail


def test_a_switch_picks_only_among_the_start_up_choices_while_halted_and_flat(tmp_path: Path) -> None:
    symbols, batches = _sim(seed=1, days=0.5)
    engine = build_engine(
        SETTINGS,
        symbols=symbols,
        profile=get_profile("aggressive"),
        strategy=load_strategy(SMA, {"fast": 5, "slow": 20}),
    )
    for batch in batches:
        engine.step(batch)
    assert any(p.quantity for p in engine.portfolio.positions.values())
    engine.take_outbox()

    assert (
        _switch(engine, "builtin")
        == "trading must be halted to switch strategy (POST /trading/halt, then flatten)"
    )
    engine.apply(Halt(command_id="h", actor="alice"))
    assert _switch(engine, "builtin").startswith("the book must be flat to switch strategy (open: ")
    elsewhere = _write(tmp_path / "other.py", "raise SystemExit('imported!')\n")
    assert _switch(engine, f"{elsewhere}:X") == (
        f"strategy '{elsewhere}:X' was not allowed at start-up; allowed: {', '.join(sorted(engine.allowed_strategies))}"
    )
    engine.flatten()
    engine.step(batches[-1])  # the closing orders fill
    assert _switch(engine, SMA, {"fast": 50, "slow": 20}).endswith("fast (50) must be shorter than slow (20)")
    assert engine.strategy_choice is not None
    assert json.loads(engine.strategy_choice.params_json)["fast"] == 5
    assert engine.take_outbox().control_actions == []  # nothing of the refusals was recorded

    assert _switch(engine, "builtin") == ""

    assert engine.strategy.name == "builtin"
    [action] = engine.take_outbox().control_actions
    assert (action.action, action.actor, action.reason) == ("strategy", "alice", "try sma")
    value = json.loads(action.value)
    assert value["from"]["name"] == "sma_crossover"
    assert value["from"]["params"]["fast"] == 5
    assert value["to"] == {
        "name": "builtin",
        "version": "1",
        "params": {},
        "params_hash": load_strategy("builtin").params_hash,
    }


def test_the_engine_trades_the_example_and_records_its_signals() -> None:
    symbols, batches = _sim(seed=1, days=1)
    engine = build_engine(
        SETTINGS,
        symbols=symbols,
        profile=get_profile("aggressive"),
        strategy=load_strategy(SMA, {"fast": 5, "slow": 20}),
    )
    rows, fills = [], []
    for batch in batches:
        engine.step(batch)
        out = engine.take_outbox()
        rows += out.signal_rows
        fills += out.fills
    assert {row[2] for row in rows} == {"sma_cross"}
    assert len(rows) == len(symbols) * (len(batches) - 19)  # every symbol from its 20th bar on
    assert fills
    assert {f.signal_type for f in fills} == {"sma_cross"}
