"""OAuth clients, signing keys and revoked tokens."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from guichet.db.base import Base
from guichet.habilitation.models import Environment, _enum


class Client(Base):
    """A partner's technical identifier in one environment, tied to one habilitation."""

    __tablename__ = "oauth_client"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    environment: Mapped[Environment] = mapped_column(_enum(Environment, "environment"))
    habilitation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("habilitation.id"), index=True)
    # SHA-256 of a 256-bit random secret: high entropy makes a slow hash unnecessary.
    secret_hash: Mapped[str | None] = mapped_column(String(128))
    secret_created_at: Mapped[dt.datetime | None]
    scopes: Mapped[list[str]]
    auth_methods: Mapped[list[str]]
    disabled: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[dt.datetime]


class SigningKey(Base):
    """An environment's token signing key; the private part is encrypted at rest."""

    __tablename__ = "signing_key"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    environment: Mapped[Environment] = mapped_column(_enum(Environment, "environment"), index=True)
    alg: Mapped[str] = mapped_column(String(16))
    private_key_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    public_jwk: Mapped[dict[str, Any]]
    created_at: Mapped[dt.datetime]
    retired_at: Mapped[dt.datetime | None]


class RevokedToken(Base):
    """RFC 7009 revocations, kept until the token would have expired anyway."""

    __tablename__ = "revoked_token"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    environment: Mapped[Environment] = mapped_column(_enum(Environment, "environment"))
    client_id: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)
    revoked_at: Mapped[dt.datetime]
