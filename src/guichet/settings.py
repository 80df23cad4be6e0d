"""One typed settings object, read once from ``GUICHET_*`` environment variables."""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Settings(BaseSettings):
    """Every knob of guichet; documented in ``docs/operator-guide.md``."""

    model_config = SettingsConfigDict(env_prefix="GUICHET_", extra="ignore")

    data_dir: Path = Field(default=Path("var"), description="Where state lives (SQLite, keys, CA).")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default sqlite:///DATA_DIR/guichet.db."
    )
    redis_url: str | None = Field(default=None, description="Shared quota counters when set.")
    host: str = "127.0.0.1"
    portal_port: int = 8000
    sandbox_port: int = 8443
    production_port: int = 9443
    sandbox_public_url: str | None = Field(
        default=None, description="Public origin of the sandbox gateway (token issuer, audience)."
    )
    production_public_url: str | None = None
    trusted_proxies: Annotated[list[Network], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated CIDRs whose Client-Cert / X-Forwarded-For are believed.",
    )
    client_cert_header: str = "Client-Cert"
    server_cert_file: Path | None = None
    server_key_file: Path | None = None
    client_ca_file: Path | None = Field(
        default=None, description="Trust store that partner certificates must chain to, if set."
    )
    token_lifetime: int = Field(default=3600, ge=60, le=86400, description="Seconds.")
    journal_retention_days: int = Field(default=730, ge=1)
    secret_key: str | None = Field(
        default=None,
        description="Master secret (key encryption, subject pseudonyms); "
        "default DATA_DIR/secret.key.",
    )
    workers: int = Field(default=1, ge=1, le=64, description="Gateway workers sharing the quota.")
    cache_poll_interval: float = Field(default=0.1, gt=0, le=5)
    maintenance: bool = Field(default=False, description="Answer 503 on every API call.")
    maintenance_retry_after: int = 600
    log_level: str = "INFO"

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return [ipaddress.ip_network(v.strip()) for v in value.split(",") if v.strip()]
        return value

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'guichet.db').resolve()}"

    def public_url(self, environment: str) -> str:
        """The environment's gateway origin: token issuer and audience."""
        if environment == "sandbox":
            return self.sandbox_public_url or f"https://{self.host}:{self.sandbox_port}"
        return self.production_public_url or f"https://{self.host}:{self.production_port}"


_override: Settings | None = None


@lru_cache(maxsize=1)
def _from_environment() -> Settings:
    return Settings()


def get_settings() -> Settings:
    """The settings in force: read once from ``GUICHET_*``, unless a command line replaced them."""
    return _override or _from_environment()


def use_settings(settings: Settings | None) -> None:
    """Replace the settings in force (the CLI's ``--data-dir`` and friends; tests)."""
    global _override
    _override = settings


def with_overrides(**values: object) -> Settings:
    """The environment's settings with some values replaced (``None`` values are ignored)."""
    base = _from_environment().model_dump()
    base.update({k: v for k, v in values.items() if v is not None})
    return Settings.model_validate(base)
