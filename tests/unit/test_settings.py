"""The settings tree (live/settings.py): grouped by concern in Python, read under the flat variable names users set
(README, Configuration), with secrets that never show."""

from __future__ import annotations

import logging
from decimal import Decimal
from pathlib import Path

import pytest

from live.settings import Settings, SettingsError, environment_variables, load_settings

TOKEN = "tok-5up3r-s3cret"
DB_PASSWORD = "pg-pa55-word"
REDIS_PASSWORD = "redis-pa55-word"
DATABASE_URL = f"postgresql://trader:{DB_PASSWORD}@db.example:5432/tradeos"
REDIS_URL = f"redis://default:{REDIS_PASSWORD}@cache.example:6379/0"
SECRETS = (TOKEN, DB_PASSWORD, REDIS_PASSWORD)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No TRADEOS_ or Prefect variable from the caller's shell, and no `.env` but the test's own."""
    import os

    for name in list(os.environ):
        if name.startswith("TRADEOS_") or name in ("PREFECT_API_URL", "PREFECT_HOME"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def secret_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEOS_TOOL_TOKEN", TOKEN)
    monkeypatch.setenv("TRADEOS_DATABASE_URL", DATABASE_URL)
    monkeypatch.setenv("TRADEOS_REDIS_URL", REDIS_URL)


def test_each_group_reads_its_leaves_under_the_flat_variable_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEOS_INITIAL_CASH", "2500.50")
    monkeypatch.setenv("TRADEOS_API_PORT", "19000")
    monkeypatch.setenv("TRADEOS_DATABASE_URL", DATABASE_URL)
    monkeypatch.setenv("TRADEOS_ANNUALIZATION", "365")
    monkeypatch.setenv("PREFECT_API_URL", "http://prefect.example:4200/api")
    Path(".env").write_text("TRADEOS_HOST=0.0.0.0\nTRADEOS_PROFILE=aggressive\n", encoding="utf-8")

    settings = load_settings()

    assert settings.engine.initial_cash == Decimal("2500.50")
    assert settings.engine.profile == "aggressive"
    assert (settings.api.api_port, settings.api.host) == (19000, "0.0.0.0")
    assert settings.stores.database_url is not None
    assert settings.stores.database_url.get_secret_value() == DATABASE_URL
    assert settings.flows.annualization == 365
    assert settings.flows.prefect_api_url == "http://prefect.example:4200/api"


def test_flags_win_over_the_environment_and_the_env_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEOS_API_PORT", "19000")
    Path(".env").write_text("TRADEOS_PROFILE=aggressive\nTRADEOS_METRICS_PORT=19003\n", encoding="utf-8")

    settings = load_settings(api_port=20000, profile="conservative", host=None)

    assert settings.api.api_port == 20000
    assert settings.engine.profile == "conservative"
    assert settings.api.metrics_port == 19003
    assert settings.api.host == "127.0.0.1"


def test_a_group_cannot_be_set_whole_as_json_under_its_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEOS_API", '{"api_port": 1, "host": "0.0.0.0"}')

    assert load_settings().api.api_port == 18000


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("TRADEOS_API_PORT", "eighteen"),
        ("TRADEOS_INITIAL_CASH", "-5"),
        ("TRADEOS_PROFILE", "Reckless!"),  # not a profile name (a stored custom one is checked at start-up)
        ("TRADEOS_LOG_FORMAT", "xml"),
        ("TRADEOS_WS_ALLOWED_ORIGINS", "*"),
    ],
)
def test_a_bad_value_is_refused_in_one_line_naming_its_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)

    with pytest.raises(SettingsError, match=f"^{variable}: ") as refused:
        load_settings()
    assert "\n" not in str(refused.value)


def test_every_variable_belongs_to_exactly_one_leaf() -> None:
    names = [name for node in (Settings, *Settings.GROUPS.values()) for name in node.model_fields]
    leaves = [name for name in names if name not in Settings.GROUPS]

    assert len(leaves) == len(set(leaves)) == len(environment_variables())


@pytest.mark.usefixtures("secret_environment")
def test_the_token_and_the_store_passwords_never_show_in_a_repr_a_log_line_a_dump_or_an_error(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    settings = load_settings()
    with caplog.at_level(logging.INFO):
        logging.getLogger("tradeos").info("started with %s (%r)", settings, settings.stores)
    monkeypatch.setenv("TRADEOS_API_PORT", "not-a-port")
    with pytest.raises(SettingsError) as refused:
        load_settings()

    shown = "\n".join(
        [repr(settings), str(settings), settings.model_dump_json(), caplog.text, str(refused.value)]
    )
    for secret in SECRETS:
        assert secret not in shown
    assert settings.api.tool_token is not None
    assert settings.api.tool_token.get_secret_value() == TOKEN


@pytest.mark.usefixtures("secret_environment")
def test_a_copy_with_flat_names_changed_keeps_every_secret_secret() -> None:
    settings = load_settings()

    copied = settings.model_copy(
        update={"redis_url": "redis://default:other-pa55@cache.example/1", "api_port": 1}
    )

    assert copied.api.api_port == 1
    assert "other-pa55" not in repr(copied)
    assert copied.stores.redis_url is not None
    assert copied.stores.redis_url.get_secret_value() == "redis://default:other-pa55@cache.example/1"
    assert copied.api.tool_token == settings.api.tool_token
    assert settings.api.api_port == 18000


@pytest.mark.usefixtures("secret_environment")
def test_a_child_process_environment_loads_the_very_same_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings(api_port=19999, profile="aggressive").updated(home=Path("elsewhere"))

    for name, value in settings.as_environment().items():
        monkeypatch.setenv(name, value)

    assert load_settings() == settings.updated(home=settings.home_dir)


def test_the_venue_group_reads_the_exchange_its_url_and_its_keys_as_secrets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRADEOS_EXCHANGE", "kraken")
    monkeypatch.setenv("TRADEOS_EXCHANGE_URL", "http://127.0.0.1:9000")
    monkeypatch.setenv("TRADEOS_EXCHANGE_API_KEY", "key-5ecret")
    Path(".env").write_text("TRADEOS_EXCHANGE_SECRET=hmac-5ecret\n", encoding="utf-8")

    settings = load_settings(exchange="binance")

    assert (settings.venue.exchange, settings.venue.exchange_url) == ("binance", "http://127.0.0.1:9000")
    assert settings.venue.exchange_api_key is not None
    assert settings.venue.exchange_api_key.get_secret_value() == "key-5ecret"
    assert settings.venue.exchange_secret is not None
    assert settings.venue.exchange_secret.get_secret_value() == "hmac-5ecret"
    assert "5ecret" not in repr(settings)


@pytest.mark.parametrize("url", ["ftp://host", "http://host/api/v3", "not a url"])
def test_an_exchange_url_that_is_not_a_scheme_and_host_is_refused_naming_its_variable(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.setenv("TRADEOS_EXCHANGE_URL", url)

    with pytest.raises(SettingsError, match="^TRADEOS_EXCHANGE_URL: .*not a URL like https://host"):
        load_settings()
