"""The account rules: sign-up, email verification, sign-in with lock-out, password reset.

Nothing here tells a visitor whether an address has an account: sign-up of a known address
answers like a new one (the owner gets a mail instead), sign-in has one error message, and a
reset request for an unknown address answers like any other. External sign-in methods
(OpenID Connect, e.g. ProConnect) bind to accounts through ``Identity`` rows
(``sign_in_with_identity``); the password is one method among others.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from urllib.parse import urlencode

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload, sessionmaker
from stdnum.fr import siret as stdnum_siret

from guichet.accounts import mails
from guichet.accounts.errors import (
    AccountTokenInvalid,
    EmailNotVerified,
    FormInvalid,
    SignInFailed,
)
from guichet.accounts.models import (
    PARTNER_ROLE_LABELS,
    PROVIDER_ROLE_LABELS,
    AccountToken,
    Identity,
    Membership,
    PartnerRole,
    PortalSession,
    ProviderRole,
    ProviderRoleGrant,
    TokenPurpose,
    User,
)
from guichet.accounts.passwords import Passwords, password_problem
from guichet.accounts.tokens import (
    LIFETIMES,
    consume_token,
    issue_token,
    recent_token,
    revoke_tokens,
)
from guichet.catalog import vocabulary
from guichet.clock import Clock, utc
from guichet.db import transaction
from guichet.habilitation.models import Habilitation, Organisation
from guichet.habilitation.request_models import CredentialDelivery
from guichet.habilitation.service import get_or_create_organisation
from guichet.logs import event
from guichet.mail import Mail, Mailer
from guichet.mail.mailer import MailError
from guichet.secrets import hash_secret

log = logging.getLogger(__name__)

MAX_FAILURES = 5
LOCK_OUT = dt.timedelta(minutes=15)
# A new verification mail at most this often when an unverified account signs in.
RESEND_AFTER = dt.timedelta(minutes=10)
SET_PASSWORD_LIFETIME = dt.timedelta(hours=72)
PASSWORD_METHOD = "password"  # noqa: S105 - a method name, not a secret


def email_key(address: str) -> str:
    """The case-insensitive key of an address: its normalised form, casefolded."""
    try:
        normalized = validate_email(address.strip(), check_deliverability=False).normalized
    except EmailNotValidError:
        normalized = address.strip()
    return normalized.casefold()


def check_email(address: str) -> str | None:
    """The normalised address, or None when it is not a valid address."""
    try:
        return validate_email(address.strip(), check_deliverability=False).normalized
    except EmailNotValidError:
        return None


@dataclass(frozen=True)
class SignUpForm:
    email: str
    display_name: str
    password: str
    siret: str
    organisation_name: str
    role: str

    def errors(self) -> dict[str, str]:
        """Each field's problem, in the order of the form."""
        errors: dict[str, str] = {}
        if len(self.email) > 320 or check_email(self.email) is None:
            errors["email"] = (
                "Saisissez une adresse électronique valide, par exemple prenom.nom@mairie.fr."
            )
        if not self.display_name.strip() or len(self.display_name.strip()) > 200:
            errors["display_name"] = "Indiquez vos prénom et nom (200 caractères au plus)."
        if problem := password_problem(self.password, self.email):
            errors["password"] = problem
        if not stdnum_siret.is_valid(stdnum_siret.compact(self.siret)):
            errors["siret"] = (
                "Le numéro SIRET doit comporter 14 chiffres et sa clé de contrôle être juste "
                "(il figure sur l'avis de situation au répertoire Sirene)."
            )
        if not self.organisation_name.strip() or len(self.organisation_name.strip()) > 200:
            errors["organisation_name"] = "Indiquez la dénomination de l'organisation."
        if self.role not in {r.value for r in PartnerRole}:
            errors["role"] = "Choisissez votre rôle dans l'organisation."
        return errors


@dataclass(frozen=True)
class SignedIn:
    user_id: uuid.UUID
    method: str


@dataclass(frozen=True)
class MembershipView:
    organisation_name: str
    siret: str
    role: str


@dataclass(frozen=True)
class CredentialsToCollect:
    """Credentials waiting for their technical contact: the habilitation they open."""

    habilitation_id: str
    demarche: str
    environment: str


@dataclass(frozen=True)
class AccountView:
    """What "mon compte" shows."""

    id: uuid.UUID
    email: str
    display_name: str
    email_verified_at: dt.datetime | None
    created_at: dt.datetime
    provider_roles: list[str] = field(default_factory=list)
    memberships: list[MembershipView] = field(default_factory=list)
    # Shown on "Mon compte" and "Mes habilitations" until the secret is collected.
    credentials_to_collect: list[CredentialsToCollect] = field(default_factory=list)

    @property
    def pending_habilitations(self) -> frozenset[str]:
        return frozenset(c.habilitation_id for c in self.credentials_to_collect)


def _credentials_to_collect(session: Session, user_id: uuid.UUID) -> list[CredentialsToCollect]:
    rows = session.execute(
        select(Habilitation.id, Habilitation.demarche, Habilitation.environment)
        .join(CredentialDelivery, CredentialDelivery.habilitation_id == Habilitation.id)
        .where(
            CredentialDelivery.recipient_id == user_id, CredentialDelivery.collected_at.is_(None)
        )
        .order_by(CredentialDelivery.created_at)
    )
    return [
        CredentialsToCollect(
            str(row.id), row.demarche, vocabulary.ENVIRONMENTS.get(row.environment.value, "")
        )
        for row in rows
    ]


class _Outcome(Enum):
    OK = "ok"
    FAILED = "failed"
    UNVERIFIED = "unverified"


def create_user(
    session: Session,
    email: str,
    display_name: str,
    now: dt.datetime,
    *,
    password_hash: str | None = None,
    verified: bool = False,
) -> User:
    """A new account (the caller has validated the address and the password)."""
    user = User(
        email=email,
        email_key=email_key(email),
        display_name=display_name.strip(),
        password_hash=password_hash,
        email_verified_at=now if verified else None,
        failed_sign_ins=0,
        created_at=now,
        updated_at=now,
    )
    session.add(user)
    session.flush()
    return user


def grant_provider_role(session: Session, user: User, role: ProviderRole, now: dt.datetime) -> None:
    if not any(g.role == role for g in user.provider_roles):
        user.provider_roles.append(ProviderRoleGrant(role=role, created_at=now))
        session.flush()


class AccountService:
    """The account rules over one database, one clock and one mailer."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        clock: Clock,
        mailer: Mailer,
        portal_url: str,
        passwords: Passwords | None = None,
    ) -> None:
        self.session_factory = session_factory
        self.clock = clock
        self.mailer = mailer
        self.portal_url = portal_url.rstrip("/")
        self.passwords = passwords or Passwords()

    # Links in mails -------------------------------------------------------------------

    def link(self, path: str, **query: str) -> str:
        return f"{self.portal_url}{path}" + (f"?{urlencode(query)}" if query else "")

    def _verification_mail(self, session: Session, user: User, now: dt.datetime) -> Mail:
        token = issue_token(session, user.id, TokenPurpose.VERIFY_EMAIL, now)
        expires = now + LIFETIMES[TokenPurpose.VERIFY_EMAIL]
        return mails.verify_email(user, self.link("/verification-email", token=token), expires)

    def _reset_mail(self, session: Session, user: User, now: dt.datetime) -> Mail:
        token = issue_token(session, user.id, TokenPurpose.RESET_PASSWORD, now)
        expires = now + LIFETIMES[TokenPurpose.RESET_PASSWORD]
        link = self.link("/mot-de-passe/nouveau", token=token)
        return mails.reset_password(user, link, expires)

    def deliver(self, outgoing: Iterable[Mail]) -> None:
        """Sends after the transaction committed; a failure is logged, not raised."""
        for mail in outgoing:
            try:
                self.mailer.send(mail)
            except MailError as exc:
                event(log, "mail.failed", logging.WARNING, kind=mail.kind, ref=mail.ref, error=exc)

    # Sign-up and verification ---------------------------------------------------------

    def sign_up(self, form: SignUpForm) -> None:
        """Creates the account and its membership, and mails a verification link.

        The visitor sees the same answer whatever the database holds (no enumeration of
        addresses or SIRETs): a known address gets a mail saying someone tried to sign up
        with it; a new address naming an organisation already registered gets a mail saying
        how to join it (an invitation) and no account.
        """
        if errors := form.errors():
            raise FormInvalid(errors)
        address = check_email(form.email)
        assert address is not None
        # Hash first, whatever happens next: both paths take the same time.
        password_hash = self.passwords.hash(form.password)
        now = self.clock.now()
        outgoing: list[Mail] = []
        try:
            with transaction(self.session_factory) as session:
                existing = session.scalar(select(User).where(User.email_key == email_key(address)))
                if existing is not None:
                    outgoing.append(
                        mails.already_registered(
                            existing,
                            self.link("/connexion"),
                            self.link("/mot-de-passe/oubli"),
                        )
                    )
                    event(log, "accounts.sign_up_known_address", user=existing.id)
                elif session.scalar(
                    select(Organisation.id).where(
                        Organisation.siret == stdnum_siret.compact(form.siret)
                    )
                ):
                    # Self sign-up creates an organisation; it never joins an existing one,
                    # whose requests, habilitations and calls its members can see. Joining
                    # takes an invitation (guichet.accounts.organisations).
                    outgoing.append(
                        mails.organisation_already_registered(address, form.display_name)
                    )
                    event(log, "accounts.sign_up_known_organisation")
                else:
                    user = create_user(
                        session, address, form.display_name, now, password_hash=password_hash
                    )
                    organisation = get_or_create_organisation(
                        session, form.siret, form.organisation_name, now
                    )
                    session.add(
                        Membership(
                            user_id=user.id,
                            organisation_id=organisation.id,
                            role=PartnerRole(form.role),
                            created_at=now,
                        )
                    )
                    outgoing.append(self._verification_mail(session, user, now))
                    event(
                        log,
                        "accounts.signed_up",
                        user=user.id,
                        organisation=organisation.id,
                        role=form.role,
                    )
        except IntegrityError:
            # The same address signed up concurrently: one account, no second mail.
            event(log, "accounts.sign_up_race")
            return
        self.deliver(outgoing)

    def verify_email(self, token: str) -> uuid.UUID:
        now = self.clock.now()
        with transaction(self.session_factory) as session:
            user_id = consume_token(session, token, TokenPurpose.VERIFY_EMAIL, now)
            user = session.get_one(User, user_id)
            if user.email_verified_at is None:
                user.email_verified_at = now
                user.updated_at = now
        event(log, "accounts.email_verified", user=user_id)
        return user_id

    # Sign-in --------------------------------------------------------------------------

    def sign_in(self, email: str, password: str) -> SignedIn:
        """Checks the password; five failures in a row lock the account for 15 minutes.

        Every attempt does one full argon2 check, known address or not; every failure,
        including during a lock-out, raises the same ``SignInFailed``.
        """
        key = email_key(email)[:320]
        now = self.clock.now()
        outgoing: list[Mail] = []
        with transaction(self.session_factory) as session:
            user = session.scalar(select(User).where(User.email_key == key))
            matches = self.passwords.verify(user.password_hash if user else None, password)
            if user is None:
                outcome = _Outcome.FAILED
                event(log, "accounts.sign_in_failed", reason="unknown")
            elif user.disabled_at is not None:
                outcome = _Outcome.FAILED
                event(log, "accounts.sign_in_failed", user=user.id, reason="disabled")
            elif user.locked_until is not None and utc(user.locked_until) > now:
                outcome = _Outcome.FAILED
                event(log, "accounts.sign_in_failed", user=user.id, reason="locked")
            elif not matches:
                outcome = _Outcome.FAILED
                failures = session.execute(
                    update(User)
                    .where(User.id == user.id)
                    .values(failed_sign_ins=User.failed_sign_ins + 1, updated_at=now)
                    .returning(User.failed_sign_ins)
                ).scalar_one()
                event(log, "accounts.sign_in_failed", user=user.id, reason="password")
                if failures >= MAX_FAILURES:
                    until = now + LOCK_OUT
                    session.execute(
                        update(User)
                        .where(User.id == user.id)
                        .values(failed_sign_ins=0, locked_until=until)
                    )
                    session.refresh(user)
                    outgoing.append(mails.locked_out(user, until, self.link("/mot-de-passe/oubli")))
                    event(log, "accounts.locked_out", user=user.id, until=until.isoformat())
            elif user.email_verified_at is None:
                outcome = _Outcome.UNVERIFIED
                if not recent_token(
                    session, user.id, TokenPurpose.VERIFY_EMAIL, now - RESEND_AFTER
                ):
                    outgoing.append(self._verification_mail(session, user, now))
                event(log, "accounts.sign_in_unverified", user=user.id)
            else:
                outcome = _Outcome.OK
                assert user.password_hash is not None
                if self.passwords.needs_rehash(user.password_hash):
                    user.password_hash = self.passwords.hash(password)
                user.failed_sign_ins = 0
                user.locked_until = None
                user.last_sign_in_at = now
                user.updated_at = now
                user_id = user.id
                event(log, "accounts.signed_in", user=user.id, method=PASSWORD_METHOD)
        self.deliver(outgoing)
        if outcome is _Outcome.FAILED:
            raise SignInFailed()
        if outcome is _Outcome.UNVERIFIED:
            raise EmailNotVerified()
        return SignedIn(user_id=user_id, method=PASSWORD_METHOD)

    def sign_in_with_identity(self, provider: str, subject: str) -> SignedIn | None:
        """The seam for OpenID Connect methods: the account bound to ``(provider, subject)``.

        The caller (e.g. a ProConnect callback) has verified the ID token; None means no
        account is bound yet (the caller then offers to create or link one).
        """
        now = self.clock.now()
        with transaction(self.session_factory) as session:
            identity = session.scalar(
                select(Identity).where(Identity.provider == provider, Identity.subject == subject)
            )
            if identity is None:
                return None
            identity.last_used_at = now
            user = session.get_one(User, identity.user_id)
            if user.disabled_at is not None:
                event(log, "accounts.sign_in_failed", user=user.id, reason="disabled")
                raise SignInFailed()
            user.last_sign_in_at = now
            event(log, "accounts.signed_in", user=user.id, method=provider)
            return SignedIn(user_id=user.id, method=provider)

    def link_identity(self, user_id: uuid.UUID, provider: str, subject: str) -> None:
        with transaction(self.session_factory) as session:
            session.add(
                Identity(
                    user_id=user_id,
                    provider=provider,
                    subject=subject,
                    created_at=self.clock.now(),
                    last_used_at=None,
                )
            )
        event(log, "accounts.identity_linked", user=user_id, provider=provider)

    # Password reset -------------------------------------------------------------------

    def request_password_reset(self, email: str) -> None:
        """Mails a one-hour link if the address has an account; silent otherwise."""
        now = self.clock.now()
        outgoing: list[Mail] = []
        with transaction(self.session_factory) as session:
            user = session.scalar(select(User).where(User.email_key == email_key(email)[:320]))
            if user is not None and user.disabled_at is None:
                outgoing.append(self._reset_mail(session, user, now))
                event(log, "accounts.reset_requested", user=user.id)
            else:
                event(log, "accounts.reset_requested", user="unknown")
        self.deliver(outgoing)

    def check_reset_token(self, token: str) -> bool:
        """Whether a reset link is still usable (to show the form or say it expired)."""
        with self.session_factory() as session:
            found = session.scalar(
                select(AccountToken).where(
                    AccountToken.token_hash == hash_secret(token),
                    AccountToken.purpose == TokenPurpose.RESET_PASSWORD,
                )
            )
            return (
                found is not None
                and found.used_at is None
                and utc(found.expires_at) > self.clock.now()
            )

    def reset_password(self, token: str, password: str) -> uuid.UUID:
        """Sets the new password, ends the lock-out and every open session of the account.

        The password is checked before the token is used, so a refused password does not
        spend the link.
        """
        now = self.clock.now()
        with transaction(self.session_factory) as session:
            pending = session.scalar(
                select(AccountToken).where(AccountToken.token_hash == hash_secret(token))
            )
            owner = session.get(User, pending.user_id) if pending else None
            if problem := password_problem(password, owner.email if owner else ""):
                raise FormInvalid({"password": problem})
            user_id = consume_token(session, token, TokenPurpose.RESET_PASSWORD, now)
            user = session.get_one(User, user_id)
            if user.disabled_at is not None:  # its links were revoked: never here in practice
                raise AccountTokenInvalid()
            user.password_hash = self.passwords.hash(password)
            user.failed_sign_ins = 0
            user.locked_until = None
            # Following the link proved the mailbox.
            user.email_verified_at = user.email_verified_at or now
            user.updated_at = now
            revoke_tokens(session, user_id, TokenPurpose.RESET_PASSWORD, now)
            session.execute(
                delete(PortalSession).where(
                    (PortalSession.user_id == user_id) | (PortalSession.pending_user_id == user_id)
                )
            )
        event(log, "accounts.password_reset", user=user_id)
        return user_id

    # Staff accounts (CLI, seeds) and the account page ---------------------------------

    def add_staff_user(
        self, email: str, display_name: str, role: ProviderRole
    ) -> tuple[uuid.UUID, str]:
        """Creates (or finds) a provider account with ``role``; returns it and a 72-hour
        set-password link."""
        address = check_email(email)
        if address is None:
            raise FormInvalid({"email": "Adresse électronique invalide."})
        now = self.clock.now()
        with transaction(self.session_factory) as session:
            user = session.scalar(
                select(User)
                .where(User.email_key == email_key(address))
                .options(selectinload(User.provider_roles))
            )
            if user is None:
                user = create_user(session, address, display_name or address, now, verified=True)
            grant_provider_role(session, user, role, now)
            token = issue_token(
                session, user.id, TokenPurpose.RESET_PASSWORD, now, SET_PASSWORD_LIFETIME
            )
            event(log, "accounts.staff_added", user=user.id, role=role.value)
            return user.id, self.link("/mot-de-passe/nouveau", token=token)

    def account(self, user_id: uuid.UUID) -> AccountView | None:
        with self.session_factory() as session:
            user = session.scalar(
                select(User)
                .where(User.id == user_id)
                .options(
                    selectinload(User.provider_roles),
                    selectinload(User.memberships).selectinload(Membership.organisation),
                )
            )
            if user is None:
                return None
            return AccountView(
                id=user.id,
                email=user.email,
                display_name=user.display_name,
                email_verified_at=user.email_verified_at,
                created_at=user.created_at,
                provider_roles=[PROVIDER_ROLE_LABELS[g.role] for g in user.provider_roles],
                memberships=[
                    MembershipView(
                        organisation_name=m.organisation.name,
                        siret=m.organisation.siret,
                        role=PARTNER_ROLE_LABELS[m.role],
                    )
                    for m in sorted(user.memberships, key=lambda m: m.created_at)
                ],
                credentials_to_collect=_credentials_to_collect(session, user.id),
            )
