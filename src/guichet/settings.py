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
    federation_port: int = Field(
        default=8600, description="Port of the embedded sandbox federation (guichet run)."
    )
    sandbox_public_url: str | None = Field(
        default=None, description="Public origin of the sandbox gateway (token issuer, audience)."
    )
    production_public_url: str | None = None
    trusted_proxies: Annotated[list[Network], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated CIDRs whose Client-Cert / X-Forwarded-For (gateways) and "
        "X-Forwarded-Proto (portal: Secure cookie, HSTS) are believed.",
    )
    metrics_allowed: Annotated[list[Network], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated CIDRs that may read the portal's /metrics, beside "
        "loopback (requests relayed by a proxy count as their client's).",
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
    scheduler_interval: float = Field(
        default=300,
        ge=0,
        le=86400,
        description="Seconds between two runs of the scheduled operations (operations tick) "
        "inside `guichet run` and `guichet serve portal`; 0 disables them there (cron instead).",
    )
    maintenance: bool = Field(default=False, description="Answer 503 on every API call.")
    maintenance_retry_after: int = 600
    # Resource limits of every origin (issue 11 §4; guichet.connections), per process.
    max_connections: int = Field(
        default=2048,
        ge=16,
        le=1_000_000,
        description="Connections an origin holds at once; beyond, requests get 503.",
    )
    max_connections_per_client: int = Field(
        default=64,
        ge=1,
        le=100_000,
        description="Connections one address holds at once on an origin; beyond, the new "
        "connection is answered 429 and closed. Trusted proxies are exempt (nginx's "
        "limit_conn does it per client in front).",
    )
    header_timeout: float = Field(
        default=10,
        gt=0,
        le=300,
        description="Seconds to send a request head, from the connection or from the first "
        "byte of the next request (nginx's client_header_timeout).",
    )
    body_timeout: float = Field(
        default=30,
        gt=0,
        le=600,
        description="Longest silence, in seconds, between two reads of a request body "
        "(nginx's client_body_timeout).",
    )
    keepalive_timeout: float = Field(
        default=5,
        gt=0,
        le=300,
        description="Seconds an idle keep-alive connection is kept open.",
    )
    max_header_bytes: int = Field(
        default=32 * 1024,
        ge=4096,
        le=1024 * 1024,
        description="Largest request head, in bytes (431 beyond).",
    )
    sign_in_attempts_per_address: int = Field(
        default=20,
        ge=1,
        le=100_000,
        description="Portal sign-in attempts per client address per minute (429 beyond).",
    )
    sign_in_attempts_per_account: int = Field(
        default=10,
        ge=1,
        le=100_000,
        description="Portal sign-in attempts per account (email address) per minute, "
        "whatever the addresses they come from (429 beyond).",
    )
    password_resets_per_address: int = Field(
        default=5,
        ge=1,
        le=100_000,
        description="Password reset requests and new-password forms per client address "
        "per minute (429 beyond).",
    )
    password_resets_per_account: int = Field(
        default=3,
        ge=1,
        le=100_000,
        description="Password reset requests per account (email address) per minute.",
    )
    password_hashing_slots: int = Field(
        default=2,
        ge=1,
        le=256,
        description="Password hashings (argon2id, 64 MiB each) the portal runs at once; "
        "other sign-ins wait their turn.",
    )
    max_body_bytes: int = Field(
        default=64 * 1024,
        ge=1024,
        le=64 * 1024 * 1024,
        description="Largest request body on the gateways and the federation (413 beyond, "
        "refused while it streams); the portal sets its own per form (2 Mo, uploads 22 Mo).",
    )
    log_level: str = "INFO"
    portal_public_url: str | None = Field(
        default=None,
        description="Public origin of the portal (links in mails); default http://HOST:PORTAL_PORT.",
    )
    smtp_url: str | None = Field(
        default=None,
        description="smtp://[user:password@]host[:port][?starttls=true] or smtps://…; "
        "unset: mails go to the outbox directory.",
    )
    mail_from: str = Field(
        default="guichet <ne-pas-repondre@guichet.example>", description="Sender of every mail."
    )
    contact_email: str = Field(
        default="contact@guichet.example",
        description="Where people write to the team running guichet: the accessibility "
        "statement's and the legal notice's contact.",
    )
    security_contact: str = Field(
        default="securite@guichet.example",
        description="Where a security flaw is reported (docs/security.md): shown in the "
        "portal's legal notice and its /.well-known/security.txt (RFC 9116).",
    )
    outbox_dir: Path | None = Field(
        default=None, description="Where mails go without SMTP; default DATA_DIR/outbox."
    )
    outbox_web: bool = Field(
        default=True,
        description="Show the outbox at /outbox when no SMTP is configured (embedded default; "
        "turn off on any shared host: the outbox holds sign-in links).",
    )
    # The identity federation whose citizens' access tokens the gateway checks (FranceConnect
    # mode): the embedded sandbox federation by default, the real FranceConnect by setting
    # these five values (its URLs, and the data-provider client id and secret it issued).
    federation_issuer: str | None = Field(
        default=None,
        description="Issuer the /checktoken answer must carry (RFC 9701 'iss'); "
        "default: the embedded sandbox federation, http://HOST:FEDERATION_PORT.",
    )
    federation_checktoken_url: str | None = Field(
        default=None,
        description="The federation's token check endpoint (FranceConnect v2 /checktoken); "
        "default ISSUER/checktoken.",
    )
    federation_jwks_url: str | None = Field(
        default=None,
        description="The federation's public keys, which sign the /checktoken answers; "
        "default ISSUER/jwks.",
    )
    federation_client_id: str | None = Field(
        default=None,
        description="The provider's data-provider client id at the federation (the answer's "
        "'aud'); default: the one `guichet init` registered at the embedded federation "
        "(DATA_DIR/federation/data-provider.json).",
    )
    federation_client_secret: str | None = Field(
        default=None, description="The data-provider client secret at the federation."
    )
    federation_decryption_key_file: Path | None = Field(
        default=None,
        description="PEM private key (EC P-256 or RSA ≥ 2048) the federation encrypts its "
        "/checktoken answers to (RFC 9701 nested JWT, as FranceConnect does); when set, a "
        "plain answer is refused. Default: DATA_DIR/federation/data-provider-key.pem, made "
        "by `guichet init`, for the embedded federation.",
    )
    federation_timeout: float = Field(
        default=3.0, gt=0, le=30, description="Seconds before a silent federation is an outage."
    )
    federation_environments: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["sandbox"],
        description="Comma-separated gateways (sandbox, production) that trust this "
        "federation; the others refuse FranceConnect-mode calls (503).",
    )

    # Issue 14 (H1): API FICOBA's service window, 23 h out of 24, 7 days a week [002 §11].
    ficoba_closed_hour: int | None = Field(
        default=3,
        ge=0,
        le=23,
        description="The hour (Europe/Paris time, 0-23) during which API FICOBA is closed "
        "every day, in the sandbox and in production: 503 with Retry-After until the next "
        "hour, /etatSante included. Default 3 (03:00-03:59); empty: open 24 h/24.",
    )

    @field_validator("ficoba_closed_hour", mode="before")
    @classmethod
    def _empty_hour(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    # Issue 12 (H6): the secret from a file, and the production records in their own database
    # (checked at start-up by guichet.startup).
    secret_key_file: Path | None = Field(
        default=None,
        description="File holding the master secret (exclusive with GUICHET_SECRET_KEY, which "
        "holds the value itself; a path given there is refused).",
    )
    production_records_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the production store's records (the provider's data), "
        "a database of its own: give it to the production gateway and `guichet data import` "
        "only. Default sqlite:///DATA_DIR/production-records.db.",
    )

    @property
    def resolved_production_records_url(self) -> str:
        if self.production_records_url:
            return self.production_records_url
        return f"sqlite:///{(self.data_dir / 'production-records.db').resolve()}"

    # Issue 12 (H7): the proxy channel, the federation behind nginx, journal checkpoints.
    proxy_socket_group: str | None = Field(
        default=None,
        description="Group given to the Unix sockets of `guichet serve … --socket` (mode "
        "0660): the proxy's (www-data), so that nginx alone, beside guichet's user, may "
        "connect; unset: guichet's own group.",
    )
    federation_public_url: str | None = Field(
        default=None,
        description="Public origin of the embedded sandbox federation behind a proxy (its "
        "issuer, the portal's links); default http://HOST:FEDERATION_PORT.",
    )
    journal_checkpoint_dir: Path | None = Field(
        default=None,
        description="Where `guichet journal checkpoint` writes the signed checkpoints of the "
        "chain's head, and `journal verify` reads them; outside the database's reach "
        "(another disk or host). Default DATA_DIR/journal-checkpoints.",
    )
    journal_checkpoint_mail: str | None = Field(
        default=None,
        description="Address (the security officer's) that receives each checkpoint by mail.",
    )

    @property
    def resolved_checkpoint_dir(self) -> Path:
        return self.journal_checkpoint_dir or self.data_dir / "journal-checkpoints"

    # Issue 13 (H5): faults. Redis's timeout (the quota's breaker); the last three are set
    # by `guichet serve` for each worker it supervises, not by the operator.
    redis_timeout: float = Field(
        default=0.25,
        gt=0,
        le=10,
        description="Seconds a Redis call may take before the quotas leave Redis (degraded "
        "mode, docs/architecture.md); a hung Redis costs a call in flight this, once.",
    )
    quota_window: int = Field(
        default=60,
        ge=1,
        le=3600,
        description="Seconds of the quotas' moving window; the habilitation's limit is per "
        "minute, so anything but 60 is for tests only.",
    )
    quota_group: str = Field(
        default="guichet",
        description="Set by `guichet serve`: the origin whose workers share "
        "the quota counts in Redis.",
    )
    worker_slot: int = Field(
        default=0, ge=0, le=63, description="Set by `guichet serve`: this worker's place."
    )
    worker_respawned: bool = Field(
        default=False, description="Set by `guichet serve`: this worker replaces a dead one."
    )

    @property
    def resolved_metrics_dir(self) -> Path:
        """Where the gateway workers' Prometheus files live (multiprocess mode)."""
        return self.data_dir / "metrics"

    @field_validator("trusted_proxies", "metrics_allowed", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return [ipaddress.ip_network(v.strip()) for v in value.split(",") if v.strip()]
        return value

    @field_validator("federation_environments", mode="before")
    @classmethod
    def _split_environments(cls, value: object) -> object:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, list) and (bad := set(value) - {"sandbox", "production"}):
            raise ValueError(f"unknown environment(s): {', '.join(sorted(map(str, bad)))}")
        return value

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'guichet.db').resolve()}"

    @property
    def resolved_outbox_dir(self) -> Path:
        return self.outbox_dir or self.data_dir / "outbox"

    @property
    def resolved_portal_url(self) -> str:
        return (self.portal_public_url or f"http://{self.host}:{self.portal_port}").rstrip("/")

    @property
    def embedded_federation_url(self) -> str:
        if self.federation_public_url:
            return self.federation_public_url.rstrip("/")
        return f"http://{self.host}:{self.federation_port}"

    @property
    def federation_urls(self) -> tuple[str, str, str]:
        """(issuer, checktoken URL, JWKS URL) of the federation the gateway trusts."""
        issuer = (self.federation_issuer or self.embedded_federation_url).rstrip("/")
        return (
            issuer,
            self.federation_checktoken_url or f"{issuer}/checktoken",
            self.federation_jwks_url or f"{issuer}/jwks",
        )

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
