"""One typed settings tree, read from the environment and `.env` (README, Configuration).

The tree is the Python shape only: every leaf keeps its flat variable name (`TRADEOS_<FIELD>`, or Prefect's own name
where it says so), since those names, `.env` and the flags are what users rely on. Each group is read by its own
pydantic-settings pass over the same variables; no nested delimiter, so no variable is renamed. Secrets are
`SecretStr`: they show as `**********` in a repr, a log line or an error, and are revealed with
`.get_secret_value()` only where they are used.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar, Literal, Self

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from live.profiles import PROFILE_NAME_PATTERN, PROFILES

PROFILE_NAMES: tuple[str, ...] = tuple(
    PROFILES
)  # the built-ins; custom profiles are stored (live/profiles.py)
ENV_PREFIX = "TRADEOS_"
MIN_AUDIT_KEY_LENGTH = 32
_ORIGIN = re.compile(r"https?://[^\s/,]+")
_EXCHANGE_URL = re.compile(r"(?:https?|wss?)://[^\s/?#]+/?")

# Shared by every group: the same prefix, the same `.env`, and no value echoed in a validation error.
_FROM_ENVIRONMENT = SettingsConfigDict(
    env_prefix=ENV_PREFIX,
    env_file=".env",
    env_file_encoding="utf-8",
    extra="ignore",
    frozen=True,
    hide_input_in_errors=True,
)


class SettingsError(ValueError):
    """A configuration value is unusable; the message names the variable or flag."""


def _unset_if_empty(value: Any) -> Any:
    """`VAR=` in `.env` means unset, as it always has."""
    return None if value == "" else value


class EngineSettings(BaseSettings):
    """What the trading engine needs: its book, its adapters and its own timing."""

    model_config = _FROM_ENVIRONMENT

    profile: str = Field(
        default="balanced",
        pattern=PROFILE_NAME_PATTERN,
        description="The profile at first start: a built-in (conservative, balanced, aggressive) or a stored custom "
        "profile (checked against the record at start-up).",
    )
    initial_cash: Decimal = Field(default=Decimal("100000"), gt=0)
    commission_bps: Decimal = Field(default=Decimal("1.0"), ge=0)
    slippage_bps: Decimal = Field(default=Decimal("2.0"), ge=0)
    broker: str = Field(
        default="paper",
        description="Where orders go: a broker registered in live/assembly.py (checked at start-up).",
    )
    strategy: str = Field(
        default="builtin",
        description="What decides the orders: `builtin`, `package.module:Class` or `path/to/file.py:Class` "
        "(docs/strategies.md; checked at start-up, `tradeos up --strategy` wins).",
    )
    strategy_params: str = Field(
        default="",
        description="The strategy's parameters as a JSON object, validated against its parameter model "
        "(`tradeos up --param key=value` wins, key by key).",
    )
    lease_ttl_seconds: float = Field(default=5.0, gt=0)
    stale_feed_seconds: float = Field(default=300.0, gt=0, description="Breaker: no bar for this long.")


class StoreSettings(BaseSettings):
    """Where the system of record and the live state are (unset means the embedded server under TRADEOS_HOME),
    and the key that seals the record's audit ledger."""

    model_config = _FROM_ENVIRONMENT

    # URLs carry passwords: secret.
    database_url: SecretStr | None = Field(
        default=None, description="PostgreSQL URL; unset = embedded server."
    )
    redis_url: SecretStr | None = Field(default=None, description="Redis URL; unset = embedded server.")
    audit_key: SecretStr | None = Field(
        default=None,
        description="HMAC key of the audit ledger (at least 32 characters); unset = a random key generated once "
        "in TRADEOS_HOME/audit.key (0600).",
    )

    _empty_url_is_unset = field_validator("database_url", "redis_url", "audit_key", mode="before")(
        _unset_if_empty
    )

    @field_validator("audit_key")
    @classmethod
    def _audit_key_is_long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_AUDIT_KEY_LENGTH:
            raise ValueError(
                f"must be at least {MIN_AUDIT_KEY_LENGTH} characters (e.g. `openssl rand -hex 32`)"
            )
        return value


class ApiSettings(BaseSettings):
    """What the two HTTP APIs, the WebSocket and the dashboard's access need."""

    model_config = _FROM_ENVIRONMENT

    tool_token: SecretStr | None = Field(default=None, description="Bearer token required on every endpoint.")
    host: str = "127.0.0.1"
    api_port: int = Field(default=18000, ge=1, le=65535)
    metrics_port: int = Field(default=18003, ge=1, le=65535)
    dashboard_port: int = Field(default=18002, ge=1, le=65535)
    ws_allowed_origins: str = Field(
        default="",
        description="Browser origins (`scheme://host:port`, comma separated) allowed on the WebSocket besides the "
        "API's own and the dashboard's.",
    )
    header_read_timeout_seconds: float = Field(
        default=10.0, gt=0, description="A connection whose request head is not complete by then is closed."
    )

    _empty_token_is_unset = field_validator("tool_token", mode="before")(_unset_if_empty)

    @field_validator("ws_allowed_origins")
    @classmethod
    def _origins_are_scheme_host_port(cls, value: str) -> str:
        origins = [origin.strip().rstrip("/").lower() for origin in value.split(",") if origin.strip()]
        for origin in origins:
            if not _ORIGIN.fullmatch(origin):
                raise ValueError(f"{origin!r} is not an origin like http://host:port (comma separated)")
        return ",".join(origins)

    @property
    def ws_origin_allow_list(self) -> frozenset[str]:
        """Origins allowed on the WebSocket: the configured ones and the dashboard's own."""
        configured = {origin for origin in self.ws_allowed_origins.split(",") if origin}
        return frozenset({*configured, f"http://{self.host}:{self.dashboard_port}".lower()})


class FlowSettings(BaseSettings):
    """What the Prefect flows need; the operator's own Prefect variables are read here too, so nothing else reads
    them from the environment (flows/__init__.py `prefect_environment` derives Prefect's from these)."""

    # By name too, so `Settings(prefect_api_url=...)` works like the other leaves.
    model_config = SettingsConfigDict(**_FROM_ENVIRONMENT, validate_by_name=True)

    annualization: int = Field(default=252, gt=0)
    dask_address: str | None = Field(
        default=None,
        description="A Dask scheduler (tcp://host:8786) the walk-forward flow fans its trials out to; unset = "
        "local threads or processes.",
    )
    prefect_api_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("PREFECT_API_URL"),
        description="A dedicated Prefect server the operator runs; unset = ours.",
    )
    prefect_home: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("PREFECT_HOME"),
        description="Prefect's state; unset = TRADEOS_HOME/prefect.",
    )

    _empty_is_unset = field_validator("prefect_api_url", "prefect_home", "dask_address", mode="before")(
        _unset_if_empty
    )


class AlertSettings(BaseSettings):
    """What the notifier and the dead-man's switch need (live/alerts/; README, Alerts and the dead-man's switch)."""

    model_config = _FROM_ENVIRONMENT

    # URLs carry tokens and passwords: secret.
    alert_urls: SecretStr | None = Field(
        default=None,
        description="Where alerts go: apprise URLs, comma separated (json://host/path for a webhook, tgram://, "
        "slack://, mailto://, ...); unset = no notifier.",
    )
    alert_kinds: str = Field(
        default="all",
        description="The kinds of event alerted on, comma separated, or `all`: fill, rejection, risk_event, "
        "breaker_trip, halt, resume, flow_failed, flow_late, daily_report.",
    )
    alert_coalesce_seconds: float = Field(
        default=5.0,
        ge=0,
        description="Events of one kind (but halts, resumes, breaker trips and failed flows, sent at once) are "
        "held this long from the first, then sent as one message.",
    )
    alert_retry_seconds: float = Field(
        default=1.0, gt=0, description="First wait before a refused alert is tried again; doubled each time."
    )
    alert_max_attempts: int = Field(
        default=5, ge=1, description="Attempts on one channel before an alert is dead-lettered."
    )
    watchdog_timeout: float = Field(
        default=10.0,
        gt=0,
        description="The dead-man's switch halts trading when the engine's heartbeat is older than this (seconds).",
    )

    _empty_urls_are_unset = field_validator("alert_urls", mode="before")(_unset_if_empty)

    @field_validator("alert_kinds")
    @classmethod
    def _known_kinds(cls, value: str) -> str:
        from live.alerts.events import KINDS

        kinds = [kind.strip().lower() for kind in value.split(",") if kind.strip()]
        if kinds == ["all"]:
            return "all"
        unknown = [kind for kind in kinds if kind not in KINDS]
        if unknown or not kinds:
            raise ValueError(f"unknown alert kinds {unknown}; valid: all, or some of {', '.join(KINDS)}")
        return ",".join(kinds)

    @property
    def urls(self) -> list[str]:
        """The configured URLs, revealed: for the channels only, never a log."""
        if self.alert_urls is None:
            return []
        return [url.strip() for url in self.alert_urls.get_secret_value().split(",") if url.strip()]

    @property
    def kinds(self) -> frozenset[str]:
        from live.alerts.events import KINDS

        return frozenset(KINDS if self.alert_kinds == "all" else self.alert_kinds.split(","))


class VenueSettings(BaseSettings):
    """Which ccxt exchange the `ccxt` feed (and, later, broker) talks to, and where; keys only for private calls."""

    model_config = _FROM_ENVIRONMENT

    exchange: str = Field(
        default="binance",
        description="A ccxt exchange id (`tradeos up --feed ccxt --exchange`); checked at start-up.",
    )
    exchange_url: str | None = Field(
        default=None,
        description="Replaces the scheme and host of every endpoint of the exchange (REST and WebSocket, paths "
        "kept): a proxy, a self-hosted gateway or a local test venue. Unset: the exchange's own.",
    )
    exchange_api_key: SecretStr | None = Field(default=None, description="API key for private calls.")
    exchange_secret: SecretStr | None = Field(default=None, description="API secret for private calls.")

    _empty_is_unset = field_validator("exchange_url", "exchange_api_key", "exchange_secret", mode="before")(
        _unset_if_empty
    )

    @field_validator("exchange_url")
    @classmethod
    def _url_is_scheme_and_host(cls, value: str | None) -> str | None:
        if value is not None and not _EXCHANGE_URL.fullmatch(value.strip()):
            raise ValueError(f"{value!r} is not a URL like https://host[:port] (http, https, ws or wss)")
        return None if value is None else value.strip()


class _LeavesOnly(PydanticBaseSettingsSource):
    """An environment source of the root that leaves the groups alone: each group reads its own variables, and
    `TRADEOS_ENGINE='{...}'` (what a nested field would otherwise accept as JSON) is not a way in."""

    def __init__(self, source: PydanticBaseSettingsSource, groups: frozenset[str]) -> None:
        super().__init__(source.settings_cls)
        self.source = source
        self.groups = groups

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self.source.get_field_value(field, field_name)

    def __call__(self) -> dict[str, Any]:
        return {name: value for name, value in self.source().items() if name not in self.groups}


class Settings(BaseSettings):
    """Everything TRADEOS reads from its environment, loaded once per process (`load_settings`) and passed down:
    each part takes the group it needs. Keyword arguments take the flat names, as the environment does
    (`Settings(api_port=0, tool_token="t")`); a group may also be given whole."""

    model_config = _FROM_ENVIRONMENT

    home: Path = Field(default=Path(".tradeos"), description="All local state.")
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="`json`: one JSON object per log line (ts, level, logger, message, exception), for a log shipper.",
    )
    engine: EngineSettings = Field(default_factory=EngineSettings)
    stores: StoreSettings = Field(default_factory=StoreSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    flows: FlowSettings = Field(default_factory=FlowSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    venue: VenueSettings = Field(default_factory=VenueSettings)

    GROUPS: ClassVar[Mapping[str, type[BaseSettings]]] = MappingProxyType(
        {
            "engine": EngineSettings,
            "stores": StoreSettings,
            "api": ApiSettings,
            "flows": FlowSettings,
            "alerts": AlertSettings,
            "venue": VenueSettings,
        }
    )

    def __init__(self, **values: Any) -> None:
        # A group given some of its leaves reads the rest from the environment, as a group not given at all does.
        for group, leaves in self._by_group(values).items():
            values[group] = self.GROUPS[group](**leaves)
        super().__init__(**values)

    def updated(self, **values: Any) -> Self:
        """A copy with leaves changed by their flat names, validated as the environment's values are (start-up
        resolves the embedded stores' URLs this way); the environment is not read again."""
        for group, leaves in self._by_group(values).items():
            values[group] = self.GROUPS[group].model_validate({**dict(getattr(self, group)), **leaves})
        return type(self).model_validate({**dict(self), **values})

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """As pydantic's, but `update` takes leaves by their flat names and is validated, as in `updated` (a plain
        string must not end up where a `SecretStr` belongs)."""
        copied = super().model_copy(deep=deep)
        return copied.updated(**update) if update else copied

    @classmethod
    def _by_group(cls, values: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """Take the leaves named flat out of `values`, grouped under the group each belongs to."""
        grouped: dict[str, dict[str, Any]] = {}
        for group, group_type in cls.GROUPS.items():
            leaves = {name: values.pop(name) for name in group_type.model_fields if name in values}
            if leaves and group in values:
                raise TypeError(f"{', '.join(leaves)} given both alone and in {group}")
            if leaves:
                grouped[group] = leaves
        return grouped

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        groups = frozenset(cls.GROUPS)
        return init_settings, _LeavesOnly(env_settings, groups), _LeavesOnly(dotenv_settings, groups)

    def as_environment(self) -> dict[str, str]:
        """The TRADEOS_ variables under which a child process loads these very settings (flags and resolved URLs
        included). Secrets are revealed: for a child's environment only, never a log."""
        env: dict[str, str] = {}
        for group, name, field in _leaves():
            variable = variable_name(name, field)
            if not variable.startswith(ENV_PREFIX):
                continue  # one of Prefect's variables: flows/__init__.py `prefect_environment` passes those on
            # TRADEOS_HOME absolute: the child finds the same home from whatever directory it starts in.
            value = (
                self.home_dir if name == "home" else getattr(getattr(self, group) if group else self, name)
            )
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            env[variable] = "" if value is None else str(value)
        return env

    @property
    def home_dir(self) -> Path:
        """TRADEOS_HOME as an absolute path."""
        return self.home.expanduser().resolve()

    @property
    def analytics_path(self) -> Path:
        return self.home_dir / "analytics.duckdb"

    @property
    def models_dir(self) -> Path:
        return self.home_dir / "models"

    @property
    def reports_dir(self) -> Path:
        return self.home_dir / "reports"

    @property
    def logs_dir(self) -> Path:
        return self.home_dir / "logs"


def environment_variables() -> dict[str, FieldInfo]:
    """Every leaf of the tree by the variable it is read from (`.env.example` documents the TRADEOS_ ones)."""
    return {variable_name(name, field): field for _, name, field in _leaves()}


def variable_name(name: str, field: FieldInfo) -> str:
    """The environment variable a leaf is read from: Prefect's own name for its variables, else TRADEOS_<NAME>."""
    if isinstance(field.validation_alias, AliasChoices):
        return str(field.validation_alias.choices[0])
    return f"{ENV_PREFIX}{name.upper()}"


def _leaves() -> Iterator[tuple[str | None, str, FieldInfo]]:
    """(group, name, field) of every leaf; group None for the root's own."""
    for name, field in Settings.model_fields.items():
        if name not in Settings.GROUPS:
            yield None, name, field
    for group, group_type in Settings.GROUPS.items():
        for name, field in group_type.model_fields.items():
            yield group, name, field


def load_settings(**overrides: object) -> Settings:
    """Load settings; flags passed as overrides (by their flat names) win over the environment and `.env`."""
    clean = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**clean)
    except ValidationError as exc:
        err = exc.errors()[0]
        leaf = str(err["loc"][0]) if err["loc"] else "?"
        # An aliased leaf's error is located by its alias, which is its variable already.
        variable = {name: variable_name(name, field) for _, name, field in _leaves()}.get(leaf, leaf)
        # No `from exc`: the validation error would carry the raw value into a traceback.
        raise SettingsError(f"{variable}: {err['msg']}") from None
