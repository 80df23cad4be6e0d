"""Habilitation requests (the "DataPass" form), their submissions, events, comments,
documents, the credentials waiting for the technical contact, and security commitments."""

from __future__ import annotations

import datetime as dt
import uuid
from enum import StrEnum
from typing import Any, Final

from sqlalchemy import ForeignKey, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from guichet.db.base import Base
from guichet.habilitation.models import Environment, _enum


class RequestStatus(StrEnum):
    """The stored states of a request [SPEC §4]; "implicitly rejected" is computed."""

    DRAFT = "draft"
    SUBMITTED = "submitted"
    CHANGES_REQUESTED = "changes_requested"
    VALIDATED = "validated"
    REFUSED = "refused"
    ARCHIVED = "archived"


# A request its organisation may still edit (and whose contacts are still checked).
EDITABLE: Final = frozenset({RequestStatus.DRAFT, RequestStatus.CHANGES_REQUESTED})


class SecurityKind(StrEnum):
    """The security commitment of a production request [000 §3.4]."""

    HOMOLOGATION = "homologation"  # attestation d'homologation (RGS) [000 §3.4.1]
    QUESTIONNAIRE = "questionnaire"  # questionnaire de sécurité, outside the RGS [000 §3.4.2]


class HabilitationRequest(Base):
    """One request for one API product in one environment; ``data`` holds the form's blocks
    (``{block: {field: value}}``), saved as the partner goes, each as its model in
    ``guichet.habilitation.blocks`` stores it (``validation.form_of`` reads them back)."""

    __tablename__ = "habilitation_request"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    organisation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisation.id"), index=True)
    environment: Mapped[Environment] = mapped_column(_enum(Environment, "environment"))
    # The catalogue key of the form's API product, e.g. "impot_particulier".
    api: Mapped[str] = mapped_column(String(64))
    status: Mapped[RequestStatus] = mapped_column(
        _enum(RequestStatus, "request_status"), default=RequestStatus.DRAFT, index=True
    )
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # A production request follows from a validated sandbox request for the same démarche.
    sandbox_request_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("habilitation_request.id"), index=True
    )
    # Set when the request updates an existing habilitation rather than creating one.
    parent_habilitation_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("habilitation.id"), index=True
    )
    # The habilitation this request's validation created or updated.
    habilitation_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("habilitation.id"), index=True
    )
    created_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id"))
    # The terms of use (CGU) accepted: their version, when, by whom.
    cgu_version: Mapped[str | None] = mapped_column(String(64))
    cgu_accepted_at: Mapped[dt.datetime | None]
    cgu_accepted_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id"))
    submitted_at: Mapped[dt.datetime | None]
    decided_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]

    events: Mapped[list[RequestEvent]] = relationship(
        back_populates="request",
        cascade="all, delete-orphan",
        order_by="RequestEvent.seq",
    )


class RequestEvent(Base):
    """A transition of a request: who, when, why, and for a resubmission the per-field diff."""

    __tablename__ = "habilitation_request_event"
    __table_args__ = (UniqueConstraint("request_id", "seq"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    request_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("habilitation_request.id"), index=True)
    # 1, 2, 3… within the request: the timeline's order even when events share an instant.
    seq: Mapped[int] = mapped_column(Integer)
    at: Mapped[dt.datetime]
    actor_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id"))
    # "user:<uuid>", or "scheduler" for what the clock decides.
    actor: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(100))
    from_status: Mapped[str | None] = mapped_column(String(32))
    to_status: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(Text)
    # Field path → [before, after], since the last submitted version.
    diff: Mapped[dict[str, Any] | None]

    request: Mapped[HabilitationRequest] = relationship(back_populates="events")


class RequestVersion(Base):
    """The form's data as submitted, one row per submission (the base of the next diff)."""

    __tablename__ = "habilitation_request_version"
    __table_args__ = (UniqueConstraint("request_id", "number"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    request_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("habilitation_request.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    submitted_at: Mapped[dt.datetime]
    submitted_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id"))
    data: Mapped[dict[str, Any]]


class RequestComment(Base):
    """An instructor's comment on one block of a request."""

    __tablename__ = "habilitation_request_comment"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    request_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("habilitation_request.id"), index=True)
    block: Mapped[str] = mapped_column(String(32))
    author_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_account.id"))
    at: Mapped[dt.datetime]
    text: Mapped[str] = mapped_column(Text)


class RequestDocument(Base):
    """An uploaded PDF (legal text, homologation attestation, security questionnaire),
    stored under a generated name in ``DATA_DIR/uploads``."""

    __tablename__ = "habilitation_request_document"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    request_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("habilitation_request.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    stored_name: Mapped[str] = mapped_column(String(64), unique=True)
    # For display only, cleaned; never used as a path.
    original_name: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    uploaded_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id"))
    uploaded_at: Mapped[dt.datetime]


class CredentialDelivery(Base):
    """A client secret issued at validation, kept encrypted until the technical contact
    collects it on the portal (once); then only ``collected_at`` remains [000 §4]."""

    __tablename__ = "credential_delivery"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    request_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("habilitation_request.id"), index=True)
    habilitation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("habilitation.id"), index=True)
    client_id: Mapped[str] = mapped_column(String(64))
    recipient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_account.id"), index=True)
    secret_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime]
    collected_at: Mapped[dt.datetime | None]


class SecurityCommitment(Base):
    """A production habilitation's security commitment and its watch: expiry, the notice
    three months before, the automatic suspension at expiry [000 §3.4.1, §3.4.2]."""

    __tablename__ = "habilitation_security_commitment"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    habilitation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("habilitation.id"), unique=True)
    request_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("habilitation_request.id"))
    kind: Mapped[SecurityKind] = mapped_column(_enum(SecurityKind, "security_kind"))
    starts_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)
    notice_sent_at: Mapped[dt.datetime | None]
    # Set when the watch (not a person) suspended the habilitation; cleared on resumption.
    suspended_at: Mapped[dt.datetime | None]
    updated_at: Mapped[dt.datetime]
