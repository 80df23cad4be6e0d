"""Lifecycles: the request's (one transition table, one function that checks who may move a
request where and why, the status both sides see under the injected clock) and the
management actions on a validated habilitation, each notified to the request's contacts.

SPEC §4: draft → submitted → (changes requested ↔ submitted) → validated | refused;
archived. A request left without a decision two months after its submission is shown as
implicitly rejected (``display_status``); nothing is written for it. Habilitations:
active ↔ suspended, terminated with two months' notice or at once for security [000 §12, §14]
(the state table itself is ``guichet.habilitation.service.TRANSITIONS``).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar, Final

from dateutil.relativedelta import relativedelta
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from guichet.accounts.models import ProviderRole, User
from guichet.accounts.service import email_key
from guichet.clock import utc
from guichet.errors import BadRequest, Forbidden, GuichetError, NotFound
from guichet.habilitation.models import (
    Environment,
    Habilitation,
    HabilitationEvent,
    HabilitationStatus,
)
from guichet.habilitation.request_models import (
    CredentialDelivery,
    HabilitationRequest,
    RequestEvent,
    RequestStatus,
    SecurityCommitment,
    SecurityKind,
)
from guichet.habilitation.service import (
    Action,
    HabilitationError,
    terminate_with_notice,
    transition,
)
from guichet.logs import event
from guichet.mail import Mail, Mailer
from guichet.mail.mailer import MailError
from guichet.oauth.clients import rotate_secret
from guichet.oauth.models import Client
from guichet.secrets import MasterSecret

log = logging.getLogger(__name__)

IMPLICIT_REJECTION_DELAY: Final = relativedelta(months=2)


class RequestAction(StrEnum):
    SUBMIT = "submit"
    REQUEST_CHANGES = "request_changes"
    VALIDATE = "validate"
    REFUSE = "refuse"
    ARCHIVE = "archive"


class DisplayStatus(StrEnum):
    """What the portal shows: the stored status, or the implicit rejection it computes."""

    DRAFT = "draft"
    SUBMITTED = "submitted"
    CHANGES_REQUESTED = "changes_requested"
    VALIDATED = "validated"
    REFUSED = "refused"
    ARCHIVED = "archived"
    IMPLICITLY_REJECTED = "implicitly_rejected"


class Party(StrEnum):
    MEMBER = "member"  # a member of the request's organisation
    INSTRUCTOR = "instructor"  # an instructor of another organisation than the request's
    EITHER = "either"


TRANSITIONS: Final[Mapping[tuple[RequestStatus, RequestAction], RequestStatus]] = {
    (RequestStatus.DRAFT, RequestAction.SUBMIT): RequestStatus.SUBMITTED,
    (RequestStatus.CHANGES_REQUESTED, RequestAction.SUBMIT): RequestStatus.SUBMITTED,
    (RequestStatus.SUBMITTED, RequestAction.REQUEST_CHANGES): RequestStatus.CHANGES_REQUESTED,
    (RequestStatus.SUBMITTED, RequestAction.VALIDATE): RequestStatus.VALIDATED,
    (RequestStatus.SUBMITTED, RequestAction.REFUSE): RequestStatus.REFUSED,
    (RequestStatus.DRAFT, RequestAction.ARCHIVE): RequestStatus.ARCHIVED,
    (RequestStatus.CHANGES_REQUESTED, RequestAction.ARCHIVE): RequestStatus.ARCHIVED,
    (RequestStatus.REFUSED, RequestAction.ARCHIVE): RequestStatus.ARCHIVED,
    (RequestStatus.VALIDATED, RequestAction.ARCHIVE): RequestStatus.ARCHIVED,
}

WHO: Final[Mapping[RequestAction, Party]] = {
    RequestAction.SUBMIT: Party.MEMBER,
    RequestAction.REQUEST_CHANGES: Party.INSTRUCTOR,
    RequestAction.VALIDATE: Party.INSTRUCTOR,
    RequestAction.REFUSE: Party.INSTRUCTOR,
    RequestAction.ARCHIVE: Party.EITHER,
}

# The instructor's message is the "why" of these decisions [SPEC §4].
REASON_REQUIRED: Final = frozenset(
    {RequestAction.REQUEST_CHANGES, RequestAction.VALIDATE, RequestAction.REFUSE}
)

EVENT_NAMES: Final = {
    RequestAction.SUBMIT: "habilitation:request:submitted",
    RequestAction.REQUEST_CHANGES: "habilitation:request:changes_requested",
    RequestAction.VALIDATE: "habilitation:request:validated",
    RequestAction.REFUSE: "habilitation:request:refused",
    RequestAction.ARCHIVE: "habilitation:request:archived",
}

EDITABLE: Final = frozenset({RequestStatus.DRAFT, RequestStatus.CHANGES_REQUESTED})

STATUS_LABELS: Final = {
    DisplayStatus.DRAFT: "Brouillon",
    DisplayStatus.SUBMITTED: "Soumise",
    DisplayStatus.CHANGES_REQUESTED: "Modifications demandées",
    DisplayStatus.VALIDATED: "Validée",
    DisplayStatus.REFUSED: "Refusée",
    DisplayStatus.ARCHIVED: "Archivée",
    DisplayStatus.IMPLICITLY_REJECTED: "Rejet implicite (sans décision depuis deux mois)",
}


class RequestNotFound(NotFound):
    """Also what a stranger to the request gets: its existence is not disclosed."""

    code = "request_not_found"
    title = "Demande d'habilitation introuvable"


class RequestForbidden(Forbidden):
    code = "request_forbidden"
    title = "Action non permise sur cette demande"


class TransitionRefused(GuichetError):
    status: ClassVar[int] = 409
    code: ClassVar[str] = "request_transition_refused"
    title: ClassVar[str] = "Action impossible dans l'état de la demande"


class ReasonRequired(BadRequest):
    code = "reason_required"
    title = "Un motif est obligatoire"


# --- who is who ------------------------------------------------------------------------


def is_member(user: User, request: HabilitationRequest) -> bool:
    return any(m.organisation_id == request.organisation_id for m in user.memberships)


def is_instructor(user: User) -> bool:
    return any(g.role is ProviderRole.INSTRUCTOR for g in user.provider_roles)


def is_staff(user: User) -> bool:
    return bool(user.provider_roles)


def may_read(user: User, request: HabilitationRequest) -> bool:
    return is_member(user, request) or is_staff(user)


def may_decide(user: User, request: HabilitationRequest) -> bool:
    """An instructor, never on a request of an organisation they belong to."""
    return is_instructor(user) and not is_member(user, request)


def check_party(user: User, request: HabilitationRequest, party: Party) -> None:
    if not may_read(user, request):
        raise RequestNotFound()
    if party is Party.MEMBER and not is_member(user, request):
        raise RequestForbidden("Seuls les membres de l'organisation demandeuse peuvent agir ici.")
    if party is Party.INSTRUCTOR and not may_decide(user, request):
        raise RequestForbidden(
            "Seul un instructeur étranger à l'organisation demandeuse peut décider."
        )
    if party is Party.EITHER and not (is_member(user, request) or may_decide(user, request)):
        raise RequestForbidden()


# --- the one transition function ---------------------------------------------------------


def next_status(status: RequestStatus, action: RequestAction) -> RequestStatus:
    target = TRANSITIONS.get((status, action))
    if target is None:
        raise TransitionRefused(
            f"Impossible de « {ACTION_LABELS[action]} » une demande à l'état "
            f"« {STATUS_LABELS[DisplayStatus(status.value)]} »."
        )
    return target


ACTION_LABELS: Final = {
    RequestAction.SUBMIT: "soumettre",
    RequestAction.REQUEST_CHANGES: "demander des modifications sur",
    RequestAction.VALIDATE: "valider",
    RequestAction.REFUSE: "refuser",
    RequestAction.ARCHIVE: "archiver",
}


def next_event_seq(session: Session, request: HabilitationRequest) -> int:
    session.flush()
    last = session.scalar(
        select(func.max(RequestEvent.seq)).where(RequestEvent.request_id == request.id)
    )
    return int(last or 0) + 1


def apply_transition(
    session: Session,
    request: HabilitationRequest,
    action: RequestAction,
    *,
    user: User,
    reason: str | None,
    now: dt.datetime,
    diff: Mapping[str, Any] | None = None,
) -> RequestEvent:
    """Check the actor, the table and the reason; move the request; write the event."""
    check_party(user, request, WHO[action])
    target = next_status(request.status, action)
    why = (reason or "").strip() or None
    if action in REASON_REQUIRED and why is None:
        raise ReasonRequired(
            f"Pour {ACTION_LABELS[action]} une demande, écrivez le motif.", field="reason"
        )
    before = request.status
    request.status = target
    request.updated_at = now
    if action is RequestAction.SUBMIT:
        request.submitted_at = now
    if action in (RequestAction.VALIDATE, RequestAction.REFUSE):
        request.decided_at = now
    row = RequestEvent(
        request_id=request.id,
        seq=next_event_seq(session, request),
        at=now,
        actor_id=user.id,
        actor=f"user:{user.id}",
        name=EVENT_NAMES[action],
        from_status=before.value,
        to_status=target.value,
        reason=why,
        diff=dict(diff) if diff else None,
    )
    session.add(row)
    session.flush()
    event(
        log,
        EVENT_NAMES[action],
        request_id=request.id,
        actor_id=user.id,
        from_status=before.value,
        to_status=target.value,
    )
    return row


def implicit_rejection_at(request: HabilitationRequest) -> dt.datetime | None:
    """When a submitted request without decision counts as implicitly rejected."""
    if request.status is not RequestStatus.SUBMITTED or request.submitted_at is None:
        return None
    return utc(request.submitted_at) + IMPLICIT_REJECTION_DELAY


def display_status(request: HabilitationRequest, now: dt.datetime) -> DisplayStatus:
    deadline = implicit_rejection_at(request)
    if deadline is not None and now >= deadline:
        return DisplayStatus.IMPLICITLY_REJECTED
    return DisplayStatus(request.status.value)


# --- managing a validated habilitation -----------------------------------------------------


class HabilitationActionRefused(Forbidden):
    code = "habilitation_action_refused"
    title = "Action non permise sur cette habilitation"


class HabilitationNotFound(NotFound):
    """Also what a partner gets for another organisation's habilitation."""

    code = "habilitation_not_found"
    title = "Habilitation introuvable"


class SecurityCommitmentExpired(GuichetError):
    """[000 §3.4.1] production stays suspended until a new attestation is validated."""

    status: ClassVar[int] = 409
    code: ClassVar[str] = "security_commitment_expired"
    title: ClassVar[str] = "Engagement de sécurité expiré"


class StaffAction(StrEnum):
    """What the provider's staff do on the portal; each is allowed to the roles of
    ``STAFF_PERMISSIONS`` and checked once, by ``check_staff``."""

    VIEW = "view"  # the list of every habilitation and a habilitation's page
    INSTRUCT = "instruct"  # the request queue, comments and decisions
    SUSPEND = "suspend"
    RESUME = "resume"
    NOTICE = "notice"  # termination with two months' notice [000 §14]
    TERMINATE = "terminate"  # immediate termination for security [000 §14]
    ROTATE_SECRET = "rotate_secret"  # noqa: S105 - an action's name, not a secret


_ALL_STAFF: Final = frozenset(ProviderRole)

# The one table of who among the staff does what (SPEC §2 roles). Instructors instruct and
# manage what they validated; operators run the service (suspend, resume); the security
# officer stops an exchange at once or suspends it; the administrator manages accounts and
# may suspend or resume, never terminate for security: that is the security officer's call.
STAFF_PERMISSIONS: Final[Mapping[StaffAction, frozenset[ProviderRole]]] = {
    StaffAction.VIEW: _ALL_STAFF,
    StaffAction.INSTRUCT: frozenset({ProviderRole.INSTRUCTOR}),
    StaffAction.SUSPEND: frozenset(
        {
            ProviderRole.INSTRUCTOR,
            ProviderRole.OPERATOR,
            ProviderRole.SECURITY_OFFICER,
            ProviderRole.ADMINISTRATOR,
        }
    ),
    StaffAction.RESUME: frozenset(
        {ProviderRole.INSTRUCTOR, ProviderRole.OPERATOR, ProviderRole.ADMINISTRATOR}
    ),
    StaffAction.NOTICE: frozenset({ProviderRole.INSTRUCTOR, ProviderRole.ADMINISTRATOR}),
    StaffAction.TERMINATE: frozenset({ProviderRole.SECURITY_OFFICER}),
    StaffAction.ROTATE_SECRET: frozenset({ProviderRole.OPERATOR}),
}

STAFF_ACTION_LABELS: Final = {
    StaffAction.VIEW: "consulter les habilitations",
    StaffAction.INSTRUCT: "instruire les demandes",
    StaffAction.SUSPEND: "suspendre une habilitation",
    StaffAction.RESUME: "rétablir une habilitation",
    StaffAction.NOTICE: "résilier une habilitation avec préavis",
    StaffAction.TERMINATE: "résilier immédiatement une habilitation",
    StaffAction.ROTATE_SECRET: "renouveler un secret",
}


@dataclass(frozen=True)
class ConsoleActor:
    """Whoever runs the ``guichet`` command: they hold the database and the master secret,
    so every staff action is theirs; ``name`` is what the history records."""

    name: str = "operator"


Actor = User | ConsoleActor


def actor_label(actor: Actor) -> str:
    return actor.name if isinstance(actor, ConsoleActor) else f"user:{actor.id}"


def staff_roles(actor: Actor) -> frozenset[ProviderRole]:
    if isinstance(actor, ConsoleActor):
        return _ALL_STAFF
    return frozenset(g.role for g in actor.provider_roles)


def may(actor: Actor, action: StaffAction) -> bool:
    return bool(staff_roles(actor) & STAFF_PERMISSIONS[action])


def check_staff(actor: Actor, action: StaffAction) -> None:
    if not may(actor, action):
        raise HabilitationActionRefused(
            f"Votre rôle ne permet pas de {STAFF_ACTION_LABELS[action]}."
            if staff_roles(actor)
            else "Réservé aux agents du fournisseur de données."
        )


def staff_actions(actor: Actor) -> frozenset[StaffAction]:
    """What the pages offer this person (the routes check again through the services)."""
    return frozenset(a for a in StaffAction if may(actor, a))


def is_party(actor: Actor, hab: Habilitation) -> bool:
    """A member of the habilitation's organisation."""
    return isinstance(actor, User) and any(
        m.organisation_id == hab.organisation_id for m in actor.memberships
    )


def get_habilitation(session: Session, actor: Actor, habilitation_id: Any) -> Habilitation:
    """The habilitation, to its organisation's members and to the staff; to anyone else, as
    if it did not exist."""
    hab = session.get(Habilitation, habilitation_id)
    if hab is None or not (is_party(actor, hab) or may(actor, StaffAction.VIEW)):
        raise HabilitationNotFound()
    return hab


def list_habilitations(
    session: Session,
    actor: Actor,
    *,
    status: HabilitationStatus | None = None,
    environment: Environment | None = None,
    organisation: str | None = None,
) -> list[Habilitation]:
    """Every habilitation, for the staff; ``organisation`` matches a SIRET or a name."""
    check_staff(actor, StaffAction.VIEW)
    query = select(Habilitation).order_by(Habilitation.created_at)
    if status is not None:
        query = query.where(Habilitation.status == status)
    if environment is not None:
        query = query.where(Habilitation.environment == environment)
    rows = list(session.scalars(query))
    wanted = (organisation or "").strip().casefold()
    if wanted:
        compact = wanted.replace(" ", "")
        rows = [
            h
            for h in rows
            if wanted in h.organisation.name.casefold() or compact == h.organisation.siret
        ]
    return rows


def last_decided_request(session: Session, hab: Habilitation) -> HabilitationRequest | None:
    """The request that last set this habilitation (its contacts are the current ones)."""
    return session.scalars(
        select(HabilitationRequest)
        .where(
            HabilitationRequest.habilitation_id == hab.id,
            HabilitationRequest.decided_at.is_not(None),
        )
        .order_by(HabilitationRequest.decided_at.desc())
    ).first()


def open_update_request(session: Session, hab: Habilitation) -> HabilitationRequest | None:
    """An update request on top of ``hab`` not yet decided (one at a time is enough)."""
    return session.scalars(
        select(HabilitationRequest)
        .where(
            HabilitationRequest.parent_habilitation_id == hab.id,
            HabilitationRequest.status.in_(
                [RequestStatus.DRAFT, RequestStatus.SUBMITTED, RequestStatus.CHANGES_REQUESTED]
            ),
        )
        .order_by(HabilitationRequest.created_at.desc())
    ).first()


def notice_given(session: Session, hab: Habilitation) -> bool:
    """Whether a termination notice runs (or ran) for ``hab``."""
    return (
        session.scalar(
            select(HabilitationEvent.id).where(
                HabilitationEvent.habilitation_id == hab.id,
                HabilitationEvent.name == "habilitation:termination_notified",
            )
        )
        is not None
    )


def _contact_email(request: HabilitationRequest | None, role: str) -> str | None:
    contacts = (request.data or {}).get("contacts", {}) if request else {}
    contact = contacts.get(role) if isinstance(contacts, Mapping) else None
    email = contact.get("email") if isinstance(contact, Mapping) else None
    return email.strip() if isinstance(email, str) and email.strip() else None


def habilitation_contacts(session: Session, hab: Habilitation) -> list[str]:
    """The addresses of the contacts of the request that last set this habilitation."""
    request = last_decided_request(session, hab)
    addresses: dict[str, None] = {}
    for role in ("controller", "dpo", "technical"):
        email = _contact_email(request, role)
        if email:
            addresses[email] = None
    return list(addresses)


def is_technical_contact(session: Session, user: User, hab: Habilitation) -> bool:
    """[000 §4] the credentials are the technical contact's: the verified member of the
    organisation whose address the last validated request names as such."""
    email = _contact_email(last_decided_request(session, hab), "technical")
    return (
        email is not None
        and user.email_verified_at is not None
        and user.email_key == email_key(email)
        and is_party(user, hab)
    )


def notify_contacts(
    session: Session, hab: Habilitation, mailer: Mailer | None, subject: str, text: str, kind: str
) -> int:
    """[000 §12] "le consommateur de l'API en sera dûment averti par écrit": one mail per
    contact; raises ``MailError`` so that a scheduler retries. Returns the number sent."""
    if mailer is None:
        return 0
    recipients = habilitation_contacts(session, hab)
    for to in recipients:
        mailer.send(Mail(to=to, subject=subject, text=text, kind=kind, ref=str(hab.id)))
    return len(recipients)


def _notify_standing(
    session: Session, hab: Habilitation, mailer: Mailer | None, subject: str, text: str, kind: str
) -> None:
    """A person's decision stands even if its notice fails (a suspension for security must
    not wait for the mail server); the failure is logged for the operators to resend."""
    try:
        notify_contacts(session, hab, mailer, subject, text, kind)
    except MailError:
        event(log, "habilitation:mail_failed", level=logging.WARNING, kind=kind, ref=hab.id)


def _move(
    session: Session, hab: Habilitation, action: Action, actor: Actor, reason: str, now: dt.datetime
) -> None:
    if not reason.strip():
        raise ReasonRequired("Écrivez le motif : il est notifié aux contacts.", field="reason")
    try:
        transition(session, hab, action, reason=reason, actor=actor_label(actor), now=now)
    except HabilitationError as exc:
        raise TransitionRefused(str(exc)) from None


def _environment(hab: Habilitation) -> str:
    return "de production" if hab.environment.value == "production" else "du bac à sable"


def suspend_habilitation(
    session: Session,
    hab: Habilitation,
    user: Actor,
    reason: str,
    *,
    now: dt.datetime,
    mailer: Mailer | None = None,
) -> Habilitation:
    """[000 §12] the provider may suspend without notice (maintenance, security) and
    informs the partner in writing: the next call is refused."""
    check_staff(user, StaffAction.SUSPEND)
    _move(session, hab, Action.SUSPEND, user, reason, now)
    _notify_standing(
        session,
        hab,
        mailer,
        f"Habilitation {_environment(hab)} suspendue : {hab.demarche}",
        f"Bonjour,\n\nL'habilitation « {hab.demarche} » est suspendue : les appels sont "
        f"refusés jusqu'à son rétablissement.\n\nMotif : {reason.strip()}\n",
        "habilitation:suspended",
    )
    return hab


def expired_commitment(
    session: Session, hab: Habilitation, now: dt.datetime
) -> SecurityCommitment | None:
    """The production habilitation's security commitment if it has expired at ``now``."""
    if hab.environment is not Environment.PRODUCTION:
        return None
    commitment = session.scalar(
        select(SecurityCommitment).where(SecurityCommitment.habilitation_id == hab.id)
    )
    if commitment is None or now < utc(commitment.expires_at):
        return None
    return commitment


def resume_habilitation(
    session: Session,
    hab: Habilitation,
    user: Actor,
    reason: str,
    *,
    now: dt.datetime,
    mailer: Mailer | None = None,
) -> Habilitation:
    """Resume a suspended habilitation — never a production one whose homologation or
    security questionnaire has expired: only a new attestation, validated through an update
    request, lifts that suspension [000 §3.4.1] (the watch then resumes it by itself)."""
    check_staff(user, StaffAction.RESUME)
    expired = expired_commitment(session, hab, now)
    if expired is not None:
        words = (
            "L'attestation d'homologation de sécurité"
            if expired.kind is SecurityKind.HOMOLOGATION
            else "Le questionnaire de sécurité"
        )
        raise SecurityCommitmentExpired(
            f"{words} de cette habilitation a expiré le {utc(expired.expires_at):%d/%m/%Y} : "
            "la production ne peut pas être rétablie à la main. Elle reprendra d'elle-même "
            "dès la validation d'une demande de mise à jour portant un nouvel engagement."
        )
    _move(session, hab, Action.RESUME, user, reason, now)
    _notify_standing(
        session,
        hab,
        mailer,
        f"Habilitation {_environment(hab)} rétablie : {hab.demarche}",
        f"Bonjour,\n\nL'habilitation « {hab.demarche} » est rétablie : les appels sont de "
        f"nouveau acceptés.\n\nMotif : {reason.strip()}\n",
        "habilitation:resumed",
    )
    return hab


def give_termination_notice(
    session: Session,
    hab: Habilitation,
    user: Actor,
    reason: str,
    *,
    now: dt.datetime,
    mailer: Mailer | None = None,
) -> Habilitation:
    """[000 §14] either party ends the exchange in writing, with reasons; two months'
    notice during which calls keep working (the scheduler terminates it at the end)."""
    if not is_party(user, hab):
        if not staff_roles(user):
            raise HabilitationActionRefused("Réservé aux parties de la convention.")
        check_staff(user, StaffAction.NOTICE)
    if not reason.strip():
        raise ReasonRequired("Une résiliation est motivée par écrit.", field="reason")
    if notice_given(session, hab):
        raise TransitionRefused("Un préavis de résiliation court déjà pour cette habilitation.")
    try:
        terminate_with_notice(session, hab, reason=reason, actor=actor_label(user), now=now)
    except HabilitationError as exc:
        raise TransitionRefused(str(exc)) from None
    end = hab.valid_until
    assert end is not None
    _notify_standing(
        session,
        hab,
        mailer,
        f"Résiliation de l'habilitation {_environment(hab)} : {hab.demarche}",
        f"Bonjour,\n\nL'habilitation « {hab.demarche} » est résiliée avec un préavis de deux "
        f"mois : les échanges continuent jusqu'au {end:%d/%m/%Y à %H:%M} (UTC).\n\n"
        f"Motif : {reason.strip()}\n",
        "habilitation:termination_notified",
    )
    return hab


def terminate_for_security(
    session: Session,
    hab: Habilitation,
    user: Actor,
    reason: str,
    *,
    now: dt.datetime,
    mailer: Mailer | None = None,
) -> Habilitation:
    """[000 §14] the notice "ne couvre pas" a security problem: terminated at once."""
    check_staff(user, StaffAction.TERMINATE)
    _move(session, hab, Action.REVOKE, user, reason, now)
    hab.valid_until = now
    _notify_standing(
        session,
        hab,
        mailer,
        f"Habilitation {_environment(hab)} résiliée : {hab.demarche}",
        f"Bonjour,\n\nPour raison de sécurité, l'habilitation « {hab.demarche} » est "
        f"résiliée avec effet immédiat.\n\nMotif : {reason.strip()}\n",
        "habilitation:terminated",
    )
    return hab


# --- renewing the client secret --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rotation:
    """A renewed secret: waiting on ``/identifiants`` (``delivery_id``), or, for the
    console, in ``secret`` — never both."""

    client_id: str
    delivery_id: uuid.UUID | None
    secret: str | None


def habilitation_client(session: Session, hab: Habilitation) -> Client | None:
    """The habilitation's OAuth client (validation issues one; updates keep it)."""
    return session.scalars(
        select(Client).where(Client.habilitation_id == hab.id).order_by(Client.created_at)
    ).first()


def _drop_stale_deliveries(
    session: Session, client_id: str, master: MasterSecret, now: dt.datetime
) -> None:
    """A secret not yet collected is the old one: it must not be shown after the rotation.
    What else the delivery carries (the federation's secret) stays to collect."""
    pending = session.scalars(
        select(CredentialDelivery).where(
            CredentialDelivery.client_id == client_id,
            CredentialDelivery.secret_encrypted.is_not(None),
        )
    )
    for delivery in pending:
        assert delivery.secret_encrypted is not None
        payload = json.loads(master.decrypt(delivery.secret_encrypted))
        payload["client_secret"] = None
        if any(payload.values()):
            delivery.secret_encrypted = master.encrypt(json.dumps(payload).encode())
        else:
            delivery.secret_encrypted = None
            delivery.collected_at = now  # nothing left to collect: it leaves the list


def rotate_client_secret(
    session: Session,
    hab: Habilitation,
    actor: Actor,
    *,
    now: dt.datetime,
    master: MasterSecret,
    mailer: Mailer | None = None,
) -> Rotation:
    """Replace the habilitation's client secret; the old one stops working on the next
    token request (generation bumped). The technical contact collects the new one once on
    ``/identifiants`` [000 §4]; the console (operators) gets it back to print it once."""
    by_contact = isinstance(actor, User) and is_technical_contact(session, actor, hab)
    if not by_contact:
        if is_party(actor, hab):
            raise HabilitationActionRefused(
                "Seul le responsable technique déclaré dans la demande renouvelle le secret."
            )
        check_staff(actor, StaffAction.ROTATE_SECRET)
    if hab.status is HabilitationStatus.TERMINATED:
        raise TransitionRefused("Une habilitation résiliée n'a plus de secret à renouveler.")
    client = habilitation_client(session, hab)
    if client is None:
        raise TransitionRefused("Cette habilitation n'a pas d'identifiants OAuth.")
    _drop_stale_deliveries(session, client.client_id, master, now)
    try:
        secret = rotate_secret(session, client.client_id, now)
    except ValueError:
        raise TransitionRefused(
            "Ce client s'authentifie par certificat seulement : il n'a pas de secret."
        ) from None
    delivery_id: uuid.UUID | None = None
    request = last_decided_request(session, hab)
    if by_contact and isinstance(actor, User) and request is not None:
        delivery = CredentialDelivery(
            id=uuid.uuid4(),
            request_id=request.id,
            habilitation_id=hab.id,
            client_id=client.client_id,
            recipient_id=actor.id,
            secret_encrypted=master.encrypt(
                json.dumps({"client_secret": secret, "federation_client_secret": None}).encode()
            ),
            created_at=now,
            collected_at=None,
        )
        session.add(delivery)
        delivery_id = delivery.id
    session.add(
        HabilitationEvent(
            habilitation_id=hab.id,
            at=now,
            actor=actor_label(actor),
            name="habilitation:secret_rotated",
            reason="Secret renouvelé : l'ancien ne fonctionne plus.",
        )
    )
    session.flush()
    event(
        log,
        "habilitation:secret_rotated",
        habilitation_id=hab.id,
        client_id=client.client_id,
        by="technical_contact" if by_contact else "staff",
    )
    _notify_standing(
        session,
        hab,
        mailer,
        f"Secret renouvelé : {hab.demarche}",
        f"Bonjour,\n\nLe secret du client {client.client_id} de l'habilitation "
        f"« {hab.demarche} » a été renouvelé le {now:%d/%m/%Y à %H:%M} (UTC) : l'ancien ne "
        "fonctionne plus. Si vous n'êtes pas à l'origine de ce renouvellement, prévenez "
        "aussitôt le fournisseur de données.\n",
        "habilitation:secret_rotated",
    )
    return Rotation(client.client_id, delivery_id, None if delivery_id else secret)
