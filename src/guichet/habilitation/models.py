"""Organisations, habilitations, their pinned certificates and their events."""

from __future__ import annotations

import datetime as dt
import uuid
from enum import StrEnum
from typing import Any

from sqlalchemy import Enum, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from guichet.db.base import Base


class Environment(StrEnum):
    SANDBOX = "sandbox"
    PRODUCTION = "production"


class HabilitationStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    TERMINATED = "terminated"


class AccessMode(StrEnum):
    """How a partner designates the person [004 CGU §4, 003]."""

    FRANCECONNECT = "franceconnect"
    SPI = "spi"
    ETAT_CIVIL = "etat_civil"


def _enum(cls: type[StrEnum], name: str) -> Enum:
    return Enum(
        cls, name=name, native_enum=False, length=32, values_callable=lambda e: [m.value for m in e]
    )


class Organisation(Base):
    __tablename__ = "organisation"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    siret: Mapped[str] = mapped_column(String(14), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime]

    habilitations: Mapped[list[Habilitation]] = relationship(back_populates="organisation")


class Habilitation(Base):
    """A validated convention for one démarche in one environment: the gateway's policy."""

    __tablename__ = "habilitation"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    organisation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisation.id"), index=True)
    environment: Mapped[Environment] = mapped_column(_enum(Environment, "environment"))
    demarche: Mapped[str] = mapped_column(String(200))
    status: Mapped[HabilitationStatus] = mapped_column(
        _enum(HabilitationStatus, "habilitation_status"), default=HabilitationStatus.ACTIVE
    )
    status_reason: Mapped[str | None] = mapped_column(Text)
    # API products (catalogue keys) subscribed to, e.g. ["impot_particulier", "r2p"].
    apis: Mapped[list[str]]
    access_modes: Mapped[list[str]]
    data_scopes: Mapped[list[str]]
    # Revenue-year scopes: dgfip_annee_n_moins_1 / _2 / _3,
    # dgfip_annee_n_moins_2_si_indispo_n_moins_1.
    year_scopes: Mapped[list[str]]
    # Data scope → the literal label the partner declared, as the citizen reads it on the
    # consent page [003 annexe 1 "sous la forme littérale suivante"].
    data_labels: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")
    ip_ranges: Mapped[list[str]]
    # Calls per minute for each subscribed API.
    quotas: Mapped[dict[str, Any]]
    valid_from: Mapped[dt.datetime]
    valid_until: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]

    organisation: Mapped[Organisation] = relationship(back_populates="habilitations")
    certificates: Mapped[list[Certificate]] = relationship(
        back_populates="habilitation", cascade="all, delete-orphan"
    )
    events: Mapped[list[HabilitationEvent]] = relationship(
        back_populates="habilitation", cascade="all, delete-orphan", order_by="HabilitationEvent.at"
    )
    federation_clients: Mapped[list[HabilitationFederationClient]] = relationship(
        back_populates="habilitation", cascade="all, delete-orphan"
    )


class Certificate(Base):
    """A client certificate declared on a habilitation, pinned by its SHA-256 thumbprint."""

    __tablename__ = "certificate"
    __table_args__ = (UniqueConstraint("habilitation_id", "thumbprint"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    habilitation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("habilitation.id"), index=True)
    # base64url (no padding) of SHA-256 over the DER, as RFC 8705 x5t#S256.
    thumbprint: Mapped[str] = mapped_column(String(64), index=True)
    subject: Mapped[str] = mapped_column(String(500))
    issuer: Mapped[str] = mapped_column(String(500))
    not_before: Mapped[dt.datetime]
    not_after: Mapped[dt.datetime]
    self_signed: Mapped[bool]
    pem: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime]

    habilitation: Mapped[Habilitation] = relationship(back_populates="certificates")


class HabilitationFederationClient(Base):
    """A federation ``client_id`` (a FranceConnect service provider) declared for a
    habilitation [003 annexe 3 §3.1: the provider must know the partner's client_id].

    The gateway accepts a citizen's federation token only when it was issued to one of the
    habilitation's declared clients. Kept here, not in the sandbox federation's own client
    table, because the real FranceConnect's clients live at FranceConnect: the check must
    work the same whichever federation the environment is configured with.
    """

    __tablename__ = "habilitation_federation_client"
    __table_args__ = (UniqueConstraint("habilitation_id", "client_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    habilitation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("habilitation.id"), index=True)
    # As the federation spells it (FranceConnect: 64 hexadecimal characters).
    client_id: Mapped[str] = mapped_column(String(200), index=True)
    # The gateway environment whose configured federation issued the client: the
    # habilitation's own.
    environment: Mapped[Environment] = mapped_column(_enum(Environment, "environment"))
    created_at: Mapped[dt.datetime]

    habilitation: Mapped[Habilitation] = relationship(back_populates="federation_clients")


class HabilitationEvent(Base):
    """Who did what to a habilitation, when, and why (e.g. ``habilitation:suspended``)."""

    __tablename__ = "habilitation_event"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    habilitation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("habilitation.id"), index=True)
    at: Mapped[dt.datetime]
    actor: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str | None] = mapped_column(Text)

    habilitation: Mapped[Habilitation] = relationship(back_populates="events")
