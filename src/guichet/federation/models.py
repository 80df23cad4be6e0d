"""The sandbox federation's tables: clients, codes, access tokens, signing keys, consents."""

from __future__ import annotations

import datetime as dt
import uuid
from enum import StrEnum
from typing import Any

from sqlalchemy import Enum, ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from guichet.db.base import Base


class ClientKind(StrEnum):
    SERVICE_PROVIDER = "service-provider"  # a partner: signs citizens in (fournisseur de service)
    DATA_PROVIDER = (
        "data-provider"  # the provider's gateway: checks tokens (fournisseur de données)
    )


class FederationClient(Base):
    """A client of the federation; the secret is stored as SHA-256 (256 random bits)."""

    __tablename__ = "federation_client"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[ClientKind] = mapped_column(
        Enum(
            ClientKind,
            name="federation_client_kind",
            native_enum=False,
            length=32,
            values_callable=lambda e: [m.value for m in e],
        )
    )
    name: Mapped[str] = mapped_column(String(200))
    secret_hash: Mapped[str] = mapped_column(String(128))
    redirect_uris: Mapped[list[str]]
    post_logout_redirect_uris: Mapped[list[str]]
    scopes: Mapped[list[str]]
    # Pairwise ``sub`` (OpenID Connect Core §8.1) is computed per sector; one per client here.
    sector: Mapped[str] = mapped_column(String(200))
    habilitation_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("habilitation.id"), index=True
    )
    # Who owns the client, recorded at registration (``clients.register_client``): a
    # partner's organisation, whose requests alone may bind it to a habilitation; None for a
    # client nobody owns yet (unbindable until an operator assigns it, ``assign_owner``) and
    # for guichet's own clients.
    organisation_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("organisation.id"), index=True
    )
    # A client guichet registered for itself (the portal's "who read my data", the data
    # providers): never bound to any habilitation, never accepted by the gateway.
    internal: Mapped[bool] = mapped_column(default=False)
    disabled: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[dt.datetime]
    # A data provider's public encryption key (JWK): when set, its /checktoken answers are
    # signed then encrypted to it (RFC 9701 §5, ``guichet.federation.encryption``).
    encryption_jwk: Mapped[dict[str, Any] | None]


class FederationCode(Base):
    """An authorization code (stored as its SHA-256): single use, 30 seconds."""

    __tablename__ = "federation_code"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("federation_client.client_id"), index=True)
    spi: Mapped[str] = mapped_column(String(13))  # a sandbox citizen of the sandbox store
    idp: Mapped[str] = mapped_column(String(32))
    redirect_uri: Mapped[str] = mapped_column(String(2000))
    scope: Mapped[str] = mapped_column(String(2000))
    nonce: Mapped[str] = mapped_column(String(512), index=True)
    code_challenge: Mapped[str | None] = mapped_column(String(128))
    code_challenge_method: Mapped[str | None] = mapped_column(String(16))
    acr: Mapped[str] = mapped_column(String(32))
    amr: Mapped[list[str]]
    auth_time: Mapped[dt.datetime]
    issued_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)
    used_at: Mapped[dt.datetime | None]


class FederationToken(Base):
    """An opaque access token (stored as its SHA-256): 60 seconds."""

    __tablename__ = "federation_token"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("federation_client.client_id"), index=True)
    code_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    spi: Mapped[str] = mapped_column(String(13))
    idp: Mapped[str] = mapped_column(String(32))
    scope: Mapped[str] = mapped_column(String(2000))
    acr: Mapped[str] = mapped_column(String(32))
    amr: Mapped[list[str]]
    issued_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)
    revoked_at: Mapped[dt.datetime | None]


class FederationSigningKey(Base):
    """The federation's ES256 signing key; the private part is encrypted at rest."""

    __tablename__ = "federation_signing_key"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    alg: Mapped[str] = mapped_column(String(16))
    private_key_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    public_jwk: Mapped[dict[str, Any]]
    created_at: Mapped[dt.datetime]
    retired_at: Mapped[dt.datetime | None]


class ConsentRecord(Base):
    """A citizen's answer on the consent page [003 annexe 1], kept 36 months [003 art. 4].

    The citizen is their subject pseudonym (``MasterSecret.pseudonym`` of the SPI, as in the
    journal), never the SPI in clear.
    """

    __tablename__ = "consent_record"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    subject: Mapped[str] = mapped_column(String(64), index=True)
    # No foreign keys: the record outlives a client or a habilitation (an audit trail).
    client_id: Mapped[str] = mapped_column(String(64), index=True)
    habilitation_id: Mapped[uuid.UUID | None]
    scopes: Mapped[list[str]]  # every scope of the authorization request shown
    accepted: Mapped[bool]
    at: Mapped[dt.datetime] = mapped_column(index=True)
