"""Accounts, their roles and organisation memberships, invitations to join an organisation,
confirmations of request contacts' addresses, external identities, one-time tokens and portal
sessions."""

from __future__ import annotations

import datetime as dt
import uuid
from enum import StrEnum

from sqlalchemy import BigInteger, Enum, ForeignKey, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from guichet.db.base import Base
from guichet.habilitation.models import Organisation


class PartnerRole(StrEnum):
    """A person's role for one partner organisation (the contacts of a request, SPEC §2)."""

    APPLICANT = "applicant"
    TECHNICAL_CONTACT = "technical_contact"
    DPO = "dpo"
    LEGAL_REPRESENTATIVE = "legal_representative"


class ProviderRole(StrEnum):
    """A role of the provider's staff (SPEC §2)."""

    INSTRUCTOR = "instructor"
    OPERATOR = "operator"
    SECURITY_OFFICER = "security_officer"
    ADMINISTRATOR = "administrator"


class SecondFactorKind(StrEnum):
    """A second factor of the portal's sign-in (DICP C4, ``guichet.accounts.second_factor``)."""

    TOTP = "totp"
    WEBAUTHN = "webauthn"


class TokenPurpose(StrEnum):
    VERIFY_EMAIL = "verify_email"
    RESET_PASSWORD = "reset_password"  # noqa: S105 - a purpose, not a secret


PARTNER_ROLE_LABELS = {
    PartnerRole.APPLICANT: "Demandeur",
    PartnerRole.TECHNICAL_CONTACT: "Responsable technique",
    PartnerRole.DPO: "Délégué à la protection des données",
    PartnerRole.LEGAL_REPRESENTATIVE: "Représentant légal",
}
PROVIDER_ROLE_LABELS = {
    ProviderRole.INSTRUCTOR: "Instructeur",
    ProviderRole.OPERATOR: "Exploitant",
    ProviderRole.SECURITY_OFFICER: "Responsable de la sécurité",
    ProviderRole.ADMINISTRATOR: "Administrateur",
}


def _enum(cls: type[StrEnum], name: str) -> Enum:
    return Enum(
        cls, name=name, native_enum=False, length=32, values_callable=lambda e: [m.value for m in e]
    )


class User(Base):
    """A person who signs in to the portal; ``email_key`` (casefolded) is unique."""

    __tablename__ = "user_account"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    email: Mapped[str] = mapped_column(String(320))
    email_key: Mapped[str] = mapped_column(String(320), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    # argon2id (PHC string); None for accounts that sign in only through an identity provider
    # or have not chosen a password yet.
    password_hash: Mapped[str | None] = mapped_column(String(200))
    email_verified_at: Mapped[dt.datetime | None]
    failed_sign_ins: Mapped[int] = mapped_column(default=0)
    # Wrong second factors in a row (``guichet.accounts.second_factor``): five lock the account
    # as five wrong passwords do.
    failed_second_factors: Mapped[int] = mapped_column(default=0, server_default="0")
    locked_until: Mapped[dt.datetime | None]
    last_sign_in_at: Mapped[dt.datetime | None]
    # Set when the account was disabled (issue 12): no sign-in, no session, no reset link.
    disabled_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    created_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]

    memberships: Mapped[list[Membership]] = relationship(
        back_populates="user", cascade="all, delete-orphan"
    )
    provider_roles: Mapped[list[ProviderRoleGrant]] = relationship(
        back_populates="user", cascade="all, delete-orphan"
    )


class Membership(Base):
    """A person's role in a partner organisation; one row per (user, organisation, role)."""

    __tablename__ = "organisation_membership"
    __table_args__ = (UniqueConstraint("user_id", "organisation_id", "role"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_account.id"), index=True)
    organisation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisation.id"), index=True)
    role: Mapped[PartnerRole] = mapped_column(_enum(PartnerRole, "partner_role"))
    created_at: Mapped[dt.datetime]

    user: Mapped[User] = relationship(back_populates="memberships")
    organisation: Mapped[Organisation] = relationship()


class ProviderRoleGrant(Base):
    """A provider role held by a person (instructor, operator, security officer, admin)."""

    __tablename__ = "provider_role_grant"
    __table_args__ = (UniqueConstraint("user_id", "role"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_account.id"), index=True)
    role: Mapped[ProviderRole] = mapped_column(_enum(ProviderRole, "provider_role"))
    created_at: Mapped[dt.datetime]

    user: Mapped[User] = relationship(back_populates="provider_roles")


class Identity(Base):
    """An external sign-in method bound to an account: (provider, subject), e.g. ProConnect's
    ``sub``. Password sign-in needs no row here."""

    __tablename__ = "user_identity"
    __table_args__ = (UniqueConstraint("provider", "subject"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_account.id"), index=True)
    provider: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[dt.datetime]
    last_used_at: Mapped[dt.datetime | None]


class SingleUseToken:
    """The columns of a single-use, expiring secret sent by mail: only its SHA-256 is stored,
    ``used_at`` is set once (``guichet.accounts.tokens``)."""

    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime]
    used_at: Mapped[dt.datetime | None]


class AccountToken(SingleUseToken, Base):
    """A token for an existing account (email verification, password reset)."""

    __tablename__ = "account_token"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_account.id"), index=True)
    purpose: Mapped[TokenPurpose] = mapped_column(_enum(TokenPurpose, "token_purpose"))


class OrganisationInvitation(SingleUseToken, Base):
    """An invitation, sent by mail, to join an organisation with a role. The address may
    have no account yet; ``used_at`` is when it was accepted."""

    __tablename__ = "organisation_invitation"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    organisation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisation.id"), index=True)
    email: Mapped[str] = mapped_column(String(320))
    email_key: Mapped[str] = mapped_column(String(320), index=True)
    role: Mapped[PartnerRole] = mapped_column(_enum(PartnerRole, "partner_role"))
    # None: an operator invited through the command line.
    invited_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id"))
    accepted_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id"))
    cancelled_at: Mapped[dt.datetime | None]

    organisation: Mapped[Organisation] = relationship()


class ContactConfirmation(SingleUseToken, Base):
    """A link mailed to a request contact (controller, DPO) who has no verified account in the
    organisation; once followed (``used_at``), the address counts as confirmed for every
    request of that organisation, and only that one."""

    __tablename__ = "contact_confirmation"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    organisation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisation.id"), index=True)
    email: Mapped[str] = mapped_column(String(320))
    email_key: Mapped[str] = mapped_column(String(320), index=True)
    # The contact's place in the request that asked ("controller", "dpo"), for the mail.
    contact_role: Mapped[str] = mapped_column(String(32))
    requested_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id"))

    organisation: Mapped[Organisation] = relationship()


class PortalSession(Base):
    """A browser's session: the cookie holds a random id, the table its SHA-256."""

    __tablename__ = "portal_session"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id"), index=True)
    # The synchronizer token every form of this session carries (CSRF).
    csrf_token: Mapped[str] = mapped_column(String(64))
    # "password", or an identity provider's name (e.g. "proconnect"); "+totp", "+webauthn"
    # or "+recovery" appended once a second factor was given.
    auth_method: Mapped[str | None] = mapped_column(String(64))
    # Between the password and the second factor: whose password was right. The session is
    # not signed in (``user_id`` is None) until the second factor is given or enrolled.
    pending_user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id"))
    # The WebAuthn challenge the last options of this session carried (base64url), once.
    challenge: Mapped[str | None] = mapped_column(String(128))
    # Where a pending sign-in leads once the second factor is given (a path of the portal,
    # e.g. an invitation's link).
    return_to: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[dt.datetime]
    last_seen_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)


class SecondFactor(Base):
    """A second factor of a person: a TOTP application or a WebAuthn security key.

    A TOTP seed is stored encrypted under the master secret (``MasterSecret.encrypt``) with
    the last time step accepted (a code is good once); a key's public key (COSE) with its
    credential id and signature counter. ``confirmed_at`` is None while an enrolment waits
    for its first code: such a row does not count as a factor.
    """

    __tablename__ = "second_factor"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_account.id"), index=True)
    kind: Mapped[SecondFactorKind] = mapped_column(_enum(SecondFactorKind, "second_factor_kind"))
    label: Mapped[str] = mapped_column(String(100))
    totp_secret: Mapped[bytes | None] = mapped_column(LargeBinary)
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    credential_id: Mapped[bytes | None] = mapped_column(LargeBinary(1024), unique=True)
    public_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    sign_count: Mapped[int] = mapped_column(BigInteger, default=0)
    confirmed_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime]
    last_used_at: Mapped[dt.datetime | None]


class RecoveryCode(Base):
    """A single-use recovery code: its first group (``lookup``) in clear to find it, the whole
    code hashed with argon2id as passwords are."""

    __tablename__ = "recovery_code"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_account.id"), index=True)
    lookup: Mapped[str] = mapped_column(String(8))
    code_hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime]
    used_at: Mapped[dt.datetime | None]
