"""Profiles as validated data: bounds that refuse unsafe values, one canonical JSON form and its sha256, the
built-ins as that same data, and a custom version carried whole to the engine through the control protocol."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from live.assembly import build_engine
from live.control import SetProfile, decode_command, encode_command
from live.domain import REGIMES, SIGNAL_TYPES
from live.profiles import PROFILES, ProfileBody, canonical_json, stored_profile, tampering
from live.settings import Settings


def _body(**changes: Any) -> dict[str, Any]:
    """A valid custom profile body (the balanced built-in's content) with `changes`."""
    return {**json.loads(canonical_json(PROFILES["balanced"])), **changes}


def test_the_builtins_are_the_same_validated_data_with_the_hash_of_their_canonical_json() -> None:
    for name, profile in PROFILES.items():
        body = ProfileBody.of(profile)

        assert body.to_profile(name=name, version=1) == profile
        assert profile.content_hash == hashlib.sha256(canonical_json(profile).encode()).hexdigest()
        assert profile.is_builtin
    assert len({p.content_hash for p in PROFILES.values()}) == 3


def test_the_content_hash_ignores_key_order_number_spelling_name_and_version() -> None:
    plain = ProfileBody.model_validate(_body()).to_profile(name="one", version=1)
    text = json.dumps(dict(reversed(list(_body(max_position_fraction=0.10, price_band=1e-1).items()))))

    respelt = ProfileBody.model_validate_json(text).to_profile(name="two", version=7)

    assert respelt.content_hash == plain.content_hash == PROFILES["balanced"].content_hash
    assert not respelt.is_builtin
    assert respelt.max_position_fraction == Decimal("0.1")


def test_any_changed_value_changes_the_hash() -> None:
    balanced = PROFILES["balanced"].content_hash
    weights = _body()["regime_weights"]
    weights["crisis"]["momentum"] = 0.01
    changed = [
        _body(max_position_fraction=0.099999),
        _body(max_orders_per_minute=41),
        _body(regime_weights=weights),
    ]

    hashes = {ProfileBody.model_validate(b).to_profile(name="x", version=1).content_hash for b in changed}

    assert balanced not in hashes
    assert len(hashes) == 3


def _without(regime: str, signal_type: str | None = None) -> dict[str, Any]:
    weights = _body()["regime_weights"]
    if signal_type is None:
        del weights[regime]
    else:
        del weights[regime][signal_type]
    return _body(regime_weights=weights)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (_body(max_position_fraction=0), "max_position_fraction"),
        (_body(max_position_fraction=1.5), "max_position_fraction"),
        (_body(max_position_fraction=0.1234567), "max_position_fraction"),
        (_body(max_gross_exposure=10), "max_gross_exposure"),
        (_body(max_order_notional_fraction=-0.1), "max_order_notional_fraction"),
        (_body(daily_loss_limit=0), "daily_loss_limit"),
        (_body(drawdown_limit=0), "drawdown_limit"),
        (_body(drawdown_limit=0.6), "drawdown_limit"),
        (_body(signal_threshold=1.2), "signal_threshold"),
        (_body(exit_threshold=-0.1), "exit_threshold"),
        (_body(price_band=0), "price_band"),
        (_body(max_orders_per_minute=0), "max_orders_per_minute"),
        (_body(reject_storm_count=1001), "reject_storm_count"),
        (_body(signal_threshold="high"), "signal_threshold"),
        (_without("crisis"), "regime_weights"),
        (_without("trending", "momentum"), "regime_weights"),
        (_body(regime_weights={**_body()["regime_weights"], "bubble": {}}), "regime_weights"),
        (_body(leverage=3), "leverage"),
        ({k: v for k, v in _body().items() if k != "price_band"}, "price_band"),
    ],
)
def test_an_unsafe_or_incomplete_body_is_refused_naming_the_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as refused:
        ProfileBody.model_validate(body)

    assert [error["loc"][0] for error in refused.value.errors()] == [field]


def test_a_weight_outside_zero_to_one_is_refused_naming_regime_and_signal_type() -> None:
    weights = _body()["regime_weights"]
    weights["trending"]["breakout"] = -0.5

    with pytest.raises(ValidationError) as refused:
        ProfileBody.model_validate(_body(regime_weights=weights))

    assert [error["loc"] for error in refused.value.errors()] == [("regime_weights", "trending", "breakout")]


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"exit_threshold": 0.7, "signal_threshold": 0.6}, "exit_threshold"),
        ({"max_position_fraction": 0.6, "max_gross_exposure": 0.5}, "max_gross_exposure"),
    ],
)
def test_inconsistent_limits_are_refused(changes: dict[str, float], says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        ProfileBody.model_validate(_body(**changes))


def test_every_regime_and_signal_type_is_spelt_out_in_the_canonical_form() -> None:
    content = json.loads(canonical_json(PROFILES["conservative"]))

    assert set(content["regime_weights"]) == set(REGIMES)
    assert all(set(w) == set(SIGNAL_TYPES) for w in content["regime_weights"].values())
    assert canonical_json(PROFILES["conservative"]) == json.dumps(
        content, sort_keys=True, separators=(",", ":")
    )


def test_tampering_names_a_removed_row_a_changed_hash_and_a_changed_body() -> None:
    body = canonical_json(PROFILES["balanced"])
    profile = stored_profile(name="mine", version=2, body_json=body)
    edited = body.replace('"max_position_fraction":0.1', '"max_position_fraction":0.5')

    assert tampering(profile, stored_body=body, stored_hash=profile.content_hash) is None
    assert "no longer stored" in str(tampering(profile, stored_body=None, stored_hash=None))
    assert "stored hash" in str(tampering(profile, stored_body=body, stored_hash="0" * 64))
    assert "body" in str(tampering(profile, stored_body=edited, stored_hash=profile.content_hash))


def _custom_switch(body: str, content_hash: str) -> SetProfile:
    return SetProfile(
        command_id="c-1",
        actor="api",
        profile="cautious",
        version=3,
        body_json=body,
        content_hash=content_hash,
    )


def test_a_custom_profile_switch_crosses_the_control_channel_whole() -> None:
    body = canonical_json(PROFILES["conservative"])
    command = _custom_switch(body, PROFILES["conservative"].content_hash)

    assert decode_command(encode_command(command)) == command
    assert decode_command(encode_command(SetProfile(command_id="c-2", actor="api", profile="balanced"))) == (
        SetProfile(command_id="c-2", actor="api", profile="balanced")
    )


def _engine() -> Any:
    settings = Settings(commission_bps=Decimal("1"), slippage_bps=Decimal("2"))
    return build_engine(
        settings.engine,
        symbols=("AAPL",),
        profile=PROFILES["balanced"],
        initial_cash=Decimal("100000"),
        wall_clock=lambda: datetime(2024, 3, 1, tzinfo=UTC),
    )


def test_the_engine_trades_under_the_custom_version_it_is_sent_and_acknowledges_its_hash() -> None:
    engine = _engine()
    body = canonical_json(
        ProfileBody.model_validate(_body(max_orders_per_minute=3)).to_profile(name="cautious", version=3)
    )
    expected = hashlib.sha256(body.encode()).hexdigest()

    ack = engine.apply(_custom_switch(body, expected))

    assert (ack.applied, ack.profile, ack.profile_hash) == (True, "cautious", expected)
    assert (engine.profile.name, engine.profile.version, engine.profile.max_orders_per_minute) == (
        "cautious",
        3,
        3,
    )


@pytest.mark.parametrize(
    "body",
    [
        canonical_json(PROFILES["aggressive"]),  # valid, but not what the hash says
        json.dumps(_body(max_position_fraction=5)),  # out of bounds
    ],
)
def test_the_engine_refuses_a_custom_version_whose_body_does_not_match_its_hash_or_bounds(body: str) -> None:
    engine = _engine()

    ack = engine.apply(_custom_switch(body, PROFILES["balanced"].content_hash))

    assert not ack.applied
    assert (engine.profile.name, ack.profile_hash) == ("balanced", PROFILES["balanced"].content_hash)
