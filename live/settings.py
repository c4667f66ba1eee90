"""One typed settings tree, read from the environment and `.env` (README, Configuration)."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ProfileName = Literal["conservative", "balanced", "aggressive"]
PROFILE_NAMES: tuple[str, ...] = ("conservative", "balanced", "aggressive")
_ORIGIN = re.compile(r"https?://[^\s/,]+")


class SettingsError(ValueError):
    """A configuration value is unusable; the message names the variable or flag."""


class Settings(BaseSettings):
    """Everything TRADEOS reads from its environment, loaded once at start-up and passed down."""

    model_config = SettingsConfigDict(
        env_prefix="TRADEOS_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    home: Path = Field(default=Path(".tradeos"), description="All local state.")
    database_url: str | None = Field(default=None, description="PostgreSQL URL; unset = embedded server.")
    redis_url: str | None = Field(default=None, description="Redis URL; unset = embedded server.")
    tool_token: str | None = Field(default=None, description="Bearer token required on every endpoint.")
    api_port: int = Field(default=18000, ge=1, le=65535)
    metrics_port: int = Field(default=18003, ge=1, le=65535)
    host: str = "127.0.0.1"
    profile: ProfileName = "balanced"
    initial_cash: Decimal = Field(default=Decimal("100000"), gt=0)
    annualization: int = Field(default=252, gt=0)
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
    dashboard_port: int = Field(default=18002, ge=1, le=65535)
    ws_allowed_origins: str = Field(
        default="",
        description="Browser origins (`scheme://host:port`, comma separated) allowed on the WebSocket besides the "
        "API's own and the dashboard's.",
    )
    header_read_timeout_seconds: float = Field(
        default=10.0, gt=0, description="A connection whose request head is not complete by then is closed."
    )
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="`json`: one JSON object per log line (ts, level, logger, message, exception), for a log shipper.",
    )

    @field_validator("tool_token")
    @classmethod
    def _empty_token_is_unset(cls, value: str | None) -> str | None:
        return value or None

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


def load_settings(**overrides: object) -> Settings:
    """Load settings; flags passed as overrides win over the environment and `.env`."""
    from pydantic import ValidationError

    clean = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**clean)  # type: ignore[arg-type]
    except ValidationError as exc:
        err = exc.errors()[0]
        field = str(err["loc"][0]) if err["loc"] else "?"
        raise SettingsError(f"TRADEOS_{field.upper()}: {err['msg']}") from exc
