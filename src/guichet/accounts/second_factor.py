"""The second factor of the portal's sign-in (DICP C4, issue 14): WebAuthn security keys, TOTP
applications as a fallback, and single-use recovery codes.

Who must have one (``second_factor_required``): every provider staff account (instructor,
operator, security officer, administrator) and every member of an organisation holding a
FICOBA habilitation that is not terminated. Anyone else may add one, and is then asked it too.

At rest: a TOTP seed is encrypted under the master secret (``MasterSecret.encrypt``, the key
is not in the database), with the last time step accepted, so that a code is good once even
within its window; a key is its credential id, its public key (COSE) and its signature
counter, which must grow (``webauthn`` refuses a counter that does not, a cloned key); a
recovery code is hashed with argon2id as passwords are, found by its first group. The
portal throttles every attempt as it throttles sign-in (``guichet.portal.throttle``); five
refusals in a row lock the account and mail its holder (no secret in the mail).

When the rule starts to apply to someone already signed in — their organisation is issued a
FICOBA habilitation (``enforce_for_organisation``, from the issuance), they join one
(``enforce_for_user``) — their sessions opened without a second factor end at once. Staff
keys must verify their holder (WebAuthn UV "required", ``user_verification``).
"""

from __future__ import annotations

import base64
import datetime as dt
import hmac
import logging
import secrets
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

import pyotp
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.parse_authentication_credential_json import (
    parse_authentication_credential_json,
)
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from guichet.accounts import mails
from guichet.accounts.errors import FormInvalid, LastSecondFactor, SecondFactorInvalid
from guichet.accounts.models import (
    Membership,
    PortalSession,
    ProviderRoleGrant,
    RecoveryCode,
    SecondFactor,
    SecondFactorKind,
    User,
)
from guichet.accounts.passwords import Passwords
from guichet.accounts.service import LOCK_OUT, MAX_FAILURES
from guichet.clock import Clock, utc
from guichet.db import transaction
from guichet.habilitation.models import Habilitation, HabilitationStatus
from guichet.logs import event
from guichet.mail import Mail, Mailer
from guichet.mail.mailer import MailError
from guichet.secrets import MasterSecret

log = logging.getLogger(__name__)

# The catalogue's key of the API whose convention asks strong authentication (DICP C4).
C4_APIS = frozenset({"ficoba"})
TOTP_STEP = 30
TOTP_DIGITS = 6
# Codes of the step before and after are accepted too (clocks drift, people type slowly).
TOTP_WINDOW = 1
ISSUER = "guichet"
RECOVERY_CODES = 10
# Recovery codes: four groups of four, from an alphabet without 0/O and 1/I/L; the first
# group finds the row, the whole code (80 bits) is checked against its argon2 hash.
RECOVERY_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
LABEL_MAX = 100

TOTP_METHOD = "totp"
WEBAUTHN_METHOD = "webauthn"
RECOVERY_METHOD = "recovery"


@dataclass(frozen=True)
class RelyingParty:
    """The portal as WebAuthn knows it: its host (the RP id), its name and its origin."""

    id: str
    name: str
    origin: str

    @classmethod
    def of(cls, portal_url: str) -> RelyingParty:
        parts = urlsplit(portal_url)
        return cls(parts.hostname or "localhost", "guichet", f"{parts.scheme}://{parts.netloc}")


@dataclass(frozen=True)
class FactorView:
    id: uuid.UUID
    kind: SecondFactorKind
    label: str
    created_at: dt.datetime
    last_used_at: dt.datetime | None


@dataclass(frozen=True)
class FactorStatus:
    """A person's second factors as the sign-in and "Mon compte" see them."""

    required: bool
    factors: list[FactorView]
    recovery_codes_left: int

    @property
    def enrolled(self) -> bool:
        return bool(self.factors)

    @property
    def has_key(self) -> bool:
        return any(f.kind is SecondFactorKind.WEBAUTHN for f in self.factors)

    @property
    def has_totp(self) -> bool:
        return any(f.kind is SecondFactorKind.TOTP for f in self.factors)


@dataclass(frozen=True)
class TotpEnrolment:
    """A TOTP seed waiting for its first code: what the application scans or types."""

    factor_id: uuid.UUID
    secret: str
    uri: str

    @property
    def grouped_secret(self) -> str:
        """The seed in groups of four, to type it by hand."""
        return " ".join(self.secret[i : i + 4] for i in range(0, len(self.secret), 4))


@dataclass(frozen=True)
class Enrolled:
    """A factor confirmed; ``recovery_codes`` are new codes to show once (the first factor)."""

    method: str
    recovery_codes: list[str]


def second_factor_required(session: Session, user_id: uuid.UUID) -> bool:
    """Provider staff, and members of an organisation holding a FICOBA habilitation (active or
    suspended), must sign in with a second factor."""
    if session.scalar(select(ProviderRoleGrant.id).where(ProviderRoleGrant.user_id == user_id)):
        return True
    subscribed = session.scalars(
        select(Habilitation.apis)
        .join(Membership, Membership.organisation_id == Habilitation.organisation_id)
        .where(
            Membership.user_id == user_id,
            Habilitation.status != HabilitationStatus.TERMINATED,
        )
    )
    return any(C4_APIS & set(apis or ()) for apis in subscribed)


def organisation_requires_second_factor(session: Session, organisation_id: uuid.UUID) -> bool:
    """Whether the organisation holds a FICOBA habilitation (active or suspended): its
    members must then sign in with a second factor."""
    subscribed = session.scalars(
        select(Habilitation.apis).where(
            Habilitation.organisation_id == organisation_id,
            Habilitation.status != HabilitationStatus.TERMINATED,
        )
    )
    return any(C4_APIS & set(apis or ()) for apis in subscribed)


def end_sessions_without_second_factor(session: Session, user_ids: Iterable[uuid.UUID]) -> int:
    """Ends the signed-in sessions of ``user_ids`` where no second factor was given (their
    ``auth_method`` has no ``+…``): when the rule starts to apply to someone already signed
    in, they sign in again and give, or enrol, one. Pending sessions stay (they lead to
    the factor anyway). Returns how many sessions ended."""
    ids = list(user_ids)
    if not ids:
        return 0
    ended = session.execute(
        delete(PortalSession)
        .where(
            PortalSession.user_id.in_(ids),
            or_(PortalSession.auth_method.is_(None), ~PortalSession.auth_method.contains("+")),
        )
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    if ended:
        event(log, "accounts.sessions_ended", reason="second_factor_required", sessions=ended)
    return int(ended or 0)


def enforce_for_organisation(session: Session, organisation_id: uuid.UUID) -> int:
    """Called when the organisation obtains a habilitation (``application.issuance``):
    if it now holds a FICOBA one, its members signed in without a second factor are signed
    out. Returns how many sessions ended."""
    if not organisation_requires_second_factor(session, organisation_id):
        return 0
    members = session.scalars(
        select(Membership.user_id).where(Membership.organisation_id == organisation_id)
    )
    return end_sessions_without_second_factor(session, set(members))


def enforce_for_user(session: Session, user_id: uuid.UUID) -> int:
    """Called when a person joins an organisation (or gets a staff role): if they must now
    have a second factor, their sessions without one end. Returns how many."""
    if not second_factor_required(session, user_id):
        return 0
    return end_sessions_without_second_factor(session, [user_id])


def user_verification(session: Session, user_id: uuid.UUID) -> UserVerificationRequirement:
    """What a security key must prove besides presence (WebAuthn's UV flag, a PIN or
    biometrics on the key): *required* of provider staff, whose accounts reach every
    organisation's requests and habilitations; *preferred* for partner members, whose keys
    may be plain U2F keys without a PIN (docs/security.md, "Second factor"). The key stays a
    second factor after the password either way."""
    if session.scalar(select(ProviderRoleGrant.id).where(ProviderRoleGrant.user_id == user_id)):
        return UserVerificationRequirement.REQUIRED
    return UserVerificationRequirement.PREFERRED


def totp_step(now: dt.datetime) -> int:
    return int(now.timestamp()) // TOTP_STEP


def totp_code(secret: str, step: int) -> str:
    """The code of ``step`` for ``secret`` (RFC 6238, SHA-1, six digits, thirty seconds)."""
    return pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_STEP).at(step * TOTP_STEP)


def matching_step(secret: str, code: str, now: dt.datetime) -> int | None:
    """The time step within the window whose code is ``code``, or None."""
    code = "".join(code.split())
    if len(code) != TOTP_DIGITS or not code.isdigit():
        return None
    current = totp_step(now)
    found = None
    for step in range(current - TOTP_WINDOW, current + TOTP_WINDOW + 1):
        # Every step is compared, in constant time: the answer's timing tells nothing.
        if hmac.compare_digest(totp_code(secret, step), code):
            found = step
    return found


def totp_uri(secret: str, account: str, issuer: str) -> str:
    """The ``otpauth://`` URI an application scans (Key Uri Format)."""
    totp = pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_STEP)
    return totp.provisioning_uri(name=account, issuer_name=issuer)


def new_totp_secret() -> str:
    """160 random bits in base32, as RFC 4226 recommends and applications expect."""
    return base64.b32encode(secrets.token_bytes(20)).decode()


def _normalise_recovery(code: str) -> str:
    return "".join(ch for ch in code.upper() if ch.isalnum())


def new_recovery_code() -> str:
    chars = "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(16))
    return "-".join(chars[i : i + 4] for i in range(0, 16, 4))


def add_totp_factor(
    session: Session,
    master: MasterSecret,
    user_id: uuid.UUID,
    secret: str,
    now: dt.datetime,
    label: str = "Application d'authentification",
) -> SecondFactor:
    """A confirmed TOTP factor with ``secret`` (the embedded default's demo staff, tests)."""
    factor = SecondFactor(
        user_id=user_id,
        kind=SecondFactorKind.TOTP,
        label=label,
        totp_secret=master.encrypt(secret.encode()),
        sign_count=0,
        confirmed_at=now,
        created_at=now,
    )
    session.add(factor)
    session.flush()
    return factor


class SecondFactors:
    """The second-factor rules over one database, one clock and the master secret."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        clock: Clock,
        master: MasterSecret,
        portal_url: str,
        passwords: Passwords | None = None,
        mailer: Mailer | None = None,
    ) -> None:
        self.session_factory = session_factory
        self.clock = clock
        self.master = master
        self.portal_url = portal_url.rstrip("/")
        self.rp = RelyingParty.of(portal_url)
        self.passwords = passwords or Passwords()
        # The lock-out's notice to the account holder (none without a mailer: tests, CLI).
        self.mailer = mailer

    # What a person has ------------------------------------------------------------------

    def status(self, user_id: uuid.UUID) -> FactorStatus:
        with self.session_factory() as session:
            rows = session.scalars(
                select(SecondFactor)
                .where(SecondFactor.user_id == user_id, SecondFactor.confirmed_at.is_not(None))
                .order_by(SecondFactor.created_at)
            ).all()
            left = session.scalar(
                select(func.count())
                .select_from(RecoveryCode)
                .where(RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None))
            )
            return FactorStatus(
                required=second_factor_required(session, user_id),
                factors=[
                    FactorView(f.id, f.kind, f.label, f.created_at, f.last_used_at) for f in rows
                ],
                recovery_codes_left=int(left or 0),
            )

    # TOTP -------------------------------------------------------------------------------

    def totp_enrolment(self, user_id: uuid.UUID) -> TotpEnrolment:
        """The TOTP seed waiting for its first code, made if there is none."""
        now = self.clock.now()
        with transaction(self.session_factory) as session:
            factor = session.scalar(
                select(SecondFactor).where(
                    SecondFactor.user_id == user_id,
                    SecondFactor.kind == SecondFactorKind.TOTP,
                    SecondFactor.confirmed_at.is_(None),
                )
            )
            if factor is None:
                factor = SecondFactor(
                    user_id=user_id,
                    kind=SecondFactorKind.TOTP,
                    label="Application d'authentification",
                    totp_secret=self.master.encrypt(new_totp_secret().encode()),
                    sign_count=0,
                    created_at=now,
                )
                session.add(factor)
                session.flush()
            user = session.get_one(User, user_id)
            assert factor.totp_secret is not None
            secret = self.master.decrypt(factor.totp_secret).decode()
            return TotpEnrolment(factor.id, secret, totp_uri(secret, user.email, ISSUER))

    def confirm_totp(self, user_id: uuid.UUID, code: str, label: str = "") -> Enrolled:
        """The first code of the seed waiting: the factor counts from now on."""
        now = self.clock.now()
        with transaction(self.session_factory) as session:
            factor = session.scalar(
                select(SecondFactor).where(
                    SecondFactor.user_id == user_id,
                    SecondFactor.kind == SecondFactorKind.TOTP,
                    SecondFactor.confirmed_at.is_(None),
                )
            )
            if factor is None or not self._accept_totp(session, factor, code, now):
                event(log, "accounts.second_factor_refused", user=user_id, method=TOTP_METHOD)
                raise SecondFactorInvalid()
            factor.confirmed_at = now
            factor.label = _label(label, "Application d'authentification")
            codes = self._first_recovery_codes(session, user_id, now)
        event(log, "accounts.second_factor_added", user=user_id, method=TOTP_METHOD)
        return Enrolled(TOTP_METHOD, codes)

    def verify_totp(self, user_id: uuid.UUID, code: str) -> str:
        """Accepts a code of one of the person's TOTP factors, once; raises otherwise."""
        return self._attempt(user_id, lambda: self._verify_totp(user_id, code))

    def verify_key(self, user_id: uuid.UUID, credential: str, challenge: str | None) -> str:
        """Verifies a key's signature over the challenge with its stored public key; its
        counter must have grown (a cloned key's would not)."""
        return self._attempt(user_id, lambda: self._verify_key(user_id, credential, challenge))

    def verify_recovery_code(self, user_id: uuid.UUID, code: str) -> str:
        """Accepts one unused recovery code of the person, and spends it."""
        return self._attempt(user_id, lambda: self._verify_recovery_code(user_id, code))

    def _attempt(self, user_id: uuid.UUID, check: Callable[[], str]) -> str:
        """``check()`` unless the account is locked; five refusals in a row lock it for a
        quarter of an hour, as five wrong passwords do, and end its pending sessions."""
        now = self.clock.now()
        with self.session_factory() as session:
            user = session.get(User, user_id)
            locked = user is None or (
                user.locked_until is not None and utc(user.locked_until) > now
            )
        if locked:
            event(log, "accounts.second_factor_refused", user=user_id, reason="locked")
            raise SecondFactorInvalid(SecondFactorInvalid.locked)
        try:
            method = check()
        except SecondFactorInvalid:
            locking = False
            notice: Mail | None = None
            with transaction(self.session_factory) as session:
                failures = session.execute(
                    update(User)
                    .where(User.id == user_id)
                    .values(failed_second_factors=User.failed_second_factors + 1)
                    .returning(User.failed_second_factors)
                ).scalar_one()
                if failures >= MAX_FAILURES:
                    until = now + LOCK_OUT
                    session.execute(
                        update(User)
                        .where(User.id == user_id)
                        .values(failed_second_factors=0, locked_until=until)
                    )
                    session.execute(
                        delete(PortalSession).where(PortalSession.pending_user_id == user_id)
                    )
                    event(log, "accounts.locked_out", user=user_id, reason="second_factor")
                    locking = True
                    holder = session.get_one(User, user_id)
                    notice = mails.second_factor_locked_out(
                        holder, until, f"{self.portal_url}/mot-de-passe/oubli"
                    )
            if notice is not None:
                self._send(notice)
            if locking:
                raise SecondFactorInvalid(SecondFactorInvalid.locked) from None
            raise
        with transaction(self.session_factory) as session:
            session.execute(update(User).where(User.id == user_id).values(failed_second_factors=0))
        return method

    def _send(self, mail: Mail) -> None:
        """After the transaction committed; a failure is logged, the lock-out stands."""
        if self.mailer is None:
            return
        try:
            self.mailer.send(mail)
        except MailError as exc:
            event(log, "mail.failed", logging.WARNING, kind=mail.kind, ref=mail.ref, error=exc)

    def _verify_totp(self, user_id: uuid.UUID, code: str) -> str:
        now = self.clock.now()
        with transaction(self.session_factory) as session:
            factors = session.scalars(
                select(SecondFactor).where(
                    SecondFactor.user_id == user_id,
                    SecondFactor.kind == SecondFactorKind.TOTP,
                    SecondFactor.confirmed_at.is_not(None),
                )
            ).all()
            if not any(self._accept_totp(session, f, code, now) for f in factors):
                event(log, "accounts.second_factor_refused", user=user_id, method=TOTP_METHOD)
                raise SecondFactorInvalid()
        event(log, "accounts.second_factor_passed", user=user_id, method=TOTP_METHOD)
        return TOTP_METHOD

    def _accept_totp(
        self, session: Session, factor: SecondFactor, code: str, now: dt.datetime
    ) -> bool:
        assert factor.totp_secret is not None
        step = matching_step(self.master.decrypt(factor.totp_secret).decode(), code, now)
        if step is None:
            return False
        # A step already accepted (this code, or a later one) is a replay: refused, and the
        # update is conditional so that two requests racing with one code get one success.
        done = session.execute(
            update(SecondFactor)
            .where(
                SecondFactor.id == factor.id,
                or_(SecondFactor.totp_last_step.is_(None), SecondFactor.totp_last_step < step),
            )
            .values(totp_last_step=step, last_used_at=now)
            .execution_options(synchronize_session=False)
        )
        if done.rowcount != 1:  # type: ignore[attr-defined]
            event(log, "accounts.totp_replayed", user=factor.user_id)
            return False
        return True

    # WebAuthn ---------------------------------------------------------------------------

    def registration_options(self, user_id: uuid.UUID) -> tuple[str, str]:
        """The options for ``navigator.credentials.create`` (JSON) and their challenge
        (base64url), which the caller keeps for ``register_key``. User verification (the
        key's PIN or biometrics) is required of staff, preferred for anyone else
        (``user_verification``)."""
        with self.session_factory() as session:
            user = session.get_one(User, user_id)
            known = self._key_ids(session, user_id)
            uv = user_verification(session, user_id)
            options = generate_registration_options(
                rp_id=self.rp.id,
                rp_name=self.rp.name,
                user_id=user_id.bytes,
                user_name=user.email,
                user_display_name=user.display_name,
                attestation=AttestationConveyancePreference.NONE,
                authenticator_selection=AuthenticatorSelectionCriteria(
                    resident_key=ResidentKeyRequirement.DISCOURAGED,
                    user_verification=uv,
                ),
                exclude_credentials=[PublicKeyCredentialDescriptor(id=k) for k in known],
            )
        return options_to_json(options), bytes_to_base64url(options.challenge)

    def register_key(
        self, user_id: uuid.UUID, credential: str, challenge: str | None, label: str = ""
    ) -> Enrolled:
        """Verifies the key's answer to the registration options and keeps its public key."""
        if not challenge:
            raise SecondFactorInvalid()
        with self.session_factory() as session:
            uv = user_verification(session, user_id)
        try:
            # The library checks the flags: user present always, user verified when required.
            verified = verify_registration_response(
                credential=credential,
                expected_challenge=base64url_to_bytes(challenge),
                expected_rp_id=self.rp.id,
                expected_origin=self.rp.origin,
                require_user_presence=True,
                require_user_verification=uv is UserVerificationRequirement.REQUIRED,
            )
        except (WebAuthnException, ValueError) as exc:
            event(log, "accounts.key_registration_refused", user=user_id, error=type(exc).__name__)
            raise SecondFactorInvalid() from exc
        now = self.clock.now()
        with transaction(self.session_factory) as session:
            if verified.credential_id in self._key_ids(session, None):
                raise SecondFactorInvalid()
            session.add(
                SecondFactor(
                    user_id=user_id,
                    kind=SecondFactorKind.WEBAUTHN,
                    label=_label(label, "Clé de sécurité"),
                    credential_id=verified.credential_id,
                    public_key=verified.credential_public_key,
                    sign_count=verified.sign_count,
                    confirmed_at=now,
                    created_at=now,
                )
            )
            codes = self._first_recovery_codes(session, user_id, now)
        event(log, "accounts.second_factor_added", user=user_id, method=WEBAUTHN_METHOD)
        return Enrolled(WEBAUTHN_METHOD, codes)

    def authentication_options(self, user_id: uuid.UUID) -> tuple[str, str] | None:
        """The options for ``navigator.credentials.get`` (JSON) and their challenge, or None
        when the person has no key."""
        with self.session_factory() as session:
            known = self._key_ids(session, user_id)
            uv = user_verification(session, user_id)
        if not known:
            return None
        options = generate_authentication_options(
            rp_id=self.rp.id,
            allow_credentials=[PublicKeyCredentialDescriptor(id=k) for k in known],
            user_verification=uv,
        )
        return options_to_json(options), bytes_to_base64url(options.challenge)

    def _verify_key(self, user_id: uuid.UUID, credential: str, challenge: str | None) -> str:
        now = self.clock.now()
        try:
            if not challenge:
                raise SecondFactorInvalid()
            parsed = parse_authentication_credential_json(credential)
            with transaction(self.session_factory) as session:
                factor = session.scalar(
                    select(SecondFactor).where(
                        SecondFactor.user_id == user_id,
                        SecondFactor.kind == SecondFactorKind.WEBAUTHN,
                        SecondFactor.credential_id == parsed.raw_id,
                        SecondFactor.confirmed_at.is_not(None),
                    )
                )
                if factor is None or factor.public_key is None:
                    raise SecondFactorInvalid()
                uv = user_verification(session, user_id)
                # User present always (the library), user verified for staff.
                verified = verify_authentication_response(
                    credential=parsed,
                    expected_challenge=base64url_to_bytes(challenge),
                    expected_rp_id=self.rp.id,
                    expected_origin=self.rp.origin,
                    credential_public_key=factor.public_key,
                    credential_current_sign_count=factor.sign_count,
                    require_user_verification=uv is UserVerificationRequirement.REQUIRED,
                )
                done = session.execute(
                    update(SecondFactor)
                    .where(
                        SecondFactor.id == factor.id, SecondFactor.sign_count == factor.sign_count
                    )
                    .values(sign_count=verified.new_sign_count, last_used_at=now)
                    .execution_options(synchronize_session=False)
                )
                if done.rowcount != 1:  # type: ignore[attr-defined]
                    raise SecondFactorInvalid()
        except (WebAuthnException, ValueError, SecondFactorInvalid) as exc:
            event(log, "accounts.second_factor_refused", user=user_id, method=WEBAUTHN_METHOD)
            raise SecondFactorInvalid() from exc
        event(log, "accounts.second_factor_passed", user=user_id, method=WEBAUTHN_METHOD)
        return WEBAUTHN_METHOD

    @staticmethod
    def _key_ids(session: Session, user_id: uuid.UUID | None) -> list[bytes]:
        query = select(SecondFactor.credential_id).where(
            SecondFactor.kind == SecondFactorKind.WEBAUTHN,
            SecondFactor.credential_id.is_not(None),
        )
        if user_id is not None:
            query = query.where(SecondFactor.user_id == user_id)
        return [k for k in session.scalars(query) if k is not None]

    # Recovery codes ---------------------------------------------------------------------

    def _verify_recovery_code(self, user_id: uuid.UUID, code: str) -> str:
        normalised = _normalise_recovery(code)[:32]
        now = self.clock.now()
        with transaction(self.session_factory) as session:
            candidates = session.scalars(
                select(RecoveryCode).where(
                    RecoveryCode.user_id == user_id,
                    RecoveryCode.lookup == normalised[:4],
                    RecoveryCode.used_at.is_(None),
                )
            ).all()
            # One argon2 check whatever is found (None costs the same: ``Passwords.verify``).
            match = next(
                (c for c in candidates if self.passwords.verify(c.code_hash, normalised)), None
            )
            if not candidates:
                self.passwords.verify(None, normalised)
            spent = match is not None and (
                session.execute(
                    update(RecoveryCode)
                    .where(RecoveryCode.id == match.id, RecoveryCode.used_at.is_(None))
                    .values(used_at=now)
                    .execution_options(synchronize_session=False)
                ).rowcount  # type: ignore[attr-defined]
                == 1
            )
        if not spent:
            event(log, "accounts.second_factor_refused", user=user_id, method=RECOVERY_METHOD)
            raise SecondFactorInvalid(
                "Code de secours refusé : il est faux ou a déjà servi (chacun ne sert qu'une fois)."
            )
        event(log, "accounts.second_factor_passed", user=user_id, method=RECOVERY_METHOD)
        return RECOVERY_METHOD

    def new_recovery_codes(self, user_id: uuid.UUID) -> list[str]:
        """Ten new codes, shown once; the previous ones no longer work."""
        now = self.clock.now()
        with transaction(self.session_factory) as session:
            codes = self._replace_recovery_codes(session, user_id, now)
        event(log, "accounts.recovery_codes_renewed", user=user_id)
        return codes

    def _first_recovery_codes(
        self, session: Session, user_id: uuid.UUID, now: dt.datetime
    ) -> list[str]:
        """New codes when the person had none left (a first factor); none otherwise."""
        left = session.scalar(
            select(func.count())
            .select_from(RecoveryCode)
            .where(RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None))
        )
        return [] if left else self._replace_recovery_codes(session, user_id, now)

    def _replace_recovery_codes(
        self, session: Session, user_id: uuid.UUID, now: dt.datetime
    ) -> list[str]:
        session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
        codes = [new_recovery_code() for _ in range(RECOVERY_CODES)]
        for code in codes:
            normalised = _normalise_recovery(code)
            session.add(
                RecoveryCode(
                    user_id=user_id,
                    lookup=normalised[:4],
                    code_hash=self.passwords.hash(normalised),
                    created_at=now,
                )
            )
        return codes

    # Removal ----------------------------------------------------------------------------

    def remove(self, user_id: uuid.UUID, factor_id: uuid.UUID) -> None:
        """Removes one of the person's factors, never the last one of an account that must
        have one (``LastSecondFactor``)."""
        with transaction(self.session_factory) as session:
            factor = session.scalar(
                select(SecondFactor).where(
                    SecondFactor.id == factor_id, SecondFactor.user_id == user_id
                )
            )
            if factor is None:
                raise FormInvalid({"factor": "Ce second facteur n'existe pas ou plus."})
            others = session.scalar(
                select(func.count())
                .select_from(SecondFactor)
                .where(
                    SecondFactor.user_id == user_id,
                    SecondFactor.id != factor_id,
                    SecondFactor.confirmed_at.is_not(None),
                )
            )
            if not others and second_factor_required(session, user_id):
                raise LastSecondFactor()
            session.delete(factor)
            if not others:
                session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
        event(log, "accounts.second_factor_removed", user=user_id)


def reset_second_factors(session: Session, user_id: uuid.UUID, actor: str = "cli") -> int:
    """Removes every factor and recovery code of a person who lost them all, and ends their
    sessions: an operator's act (``guichet user reset-second-factor``) or a provider
    administrator's (the "Agents" page, ``actor`` "user:<id>"), after checking who asks;
    the person enrols a new factor at their next sign-in. Returns how many factors."""
    removed = session.execute(delete(SecondFactor).where(SecondFactor.user_id == user_id)).rowcount  # type: ignore[attr-defined]
    session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
    session.execute(
        delete(PortalSession).where(
            (PortalSession.user_id == user_id) | (PortalSession.pending_user_id == user_id)
        )
    )
    session.execute(update(User).where(User.id == user_id).values(failed_second_factors=0))
    event(log, "accounts.second_factors_reset", user=user_id, removed=removed, actor=actor)
    return int(removed)


def _label(value: str, default: str) -> str:
    value = " ".join(value.split())[:LABEL_MAX]
    return value or default
