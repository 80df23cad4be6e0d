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
import logging
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, ClassVar, Final

from dateutil.relativedelta import relativedelta
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from guichet.accounts.models import ProviderRole, User
from guichet.clock import utc
from guichet.errors import BadRequest, Forbidden, GuichetError, NotFound
from guichet.habilitation.models import Habilitation
from guichet.habilitation.request_models import HabilitationRequest, RequestEvent, RequestStatus
from guichet.habilitation.service import (
    Action,
    HabilitationError,
    terminate_with_notice,
    transition,
)
from guichet.logs import event
from guichet.mail import Mail, Mailer

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


def habilitation_contacts(session: Session, hab: Habilitation) -> list[str]:
    """The addresses of the contacts of the request that last set this habilitation."""
    request = session.scalars(
        select(HabilitationRequest)
        .where(
            HabilitationRequest.habilitation_id == hab.id,
            HabilitationRequest.decided_at.is_not(None),
        )
        .order_by(HabilitationRequest.decided_at.desc())
    ).first()
    contacts = (request.data or {}).get("contacts", {}) if request else {}
    addresses: dict[str, None] = {}
    for role in ("controller", "dpo", "technical"):
        contact = contacts.get(role) if isinstance(contacts, Mapping) else None
        email = contact.get("email") if isinstance(contact, Mapping) else None
        if isinstance(email, str) and email.strip():
            addresses[email.strip()] = None
    return list(addresses)


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


def _check_staff(user: User) -> None:
    if not is_staff(user):
        raise HabilitationActionRefused("Réservé aux agents du fournisseur de données.")


def _move(
    session: Session, hab: Habilitation, action: Action, user: User, reason: str, now: dt.datetime
) -> None:
    if not reason.strip():
        raise ReasonRequired("Écrivez le motif : il est notifié aux contacts.", field="reason")
    try:
        transition(session, hab, action, reason=reason, actor=f"user:{user.id}", now=now)
    except HabilitationError as exc:
        raise TransitionRefused(str(exc)) from None


def _environment(hab: Habilitation) -> str:
    return "de production" if hab.environment.value == "production" else "du bac à sable"


def suspend_habilitation(
    session: Session,
    hab: Habilitation,
    user: User,
    reason: str,
    *,
    now: dt.datetime,
    mailer: Mailer | None = None,
) -> Habilitation:
    """[000 §12] the provider may suspend without notice (maintenance, security) and
    informs the partner in writing: the next call is refused."""
    _check_staff(user)
    _move(session, hab, Action.SUSPEND, user, reason, now)
    notify_contacts(
        session,
        hab,
        mailer,
        f"Habilitation {_environment(hab)} suspendue : {hab.demarche}",
        f"Bonjour,\n\nL'habilitation « {hab.demarche} » est suspendue : les appels sont "
        f"refusés jusqu'à son rétablissement.\n\nMotif : {reason.strip()}\n",
        "habilitation:suspended",
    )
    return hab


def resume_habilitation(
    session: Session,
    hab: Habilitation,
    user: User,
    reason: str,
    *,
    now: dt.datetime,
    mailer: Mailer | None = None,
) -> Habilitation:
    _check_staff(user)
    _move(session, hab, Action.RESUME, user, reason, now)
    notify_contacts(
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
    user: User,
    reason: str,
    *,
    now: dt.datetime,
    mailer: Mailer | None = None,
) -> Habilitation:
    """[000 §14] either party ends the exchange in writing, with reasons; two months'
    notice during which calls keep working (the scheduler terminates it at the end)."""
    if not (
        is_staff(user) or any(m.organisation_id == hab.organisation_id for m in user.memberships)
    ):
        raise HabilitationActionRefused("Réservé aux parties de la convention.")
    if not reason.strip():
        raise ReasonRequired("Une résiliation est motivée par écrit.", field="reason")
    try:
        terminate_with_notice(session, hab, reason=reason, actor=f"user:{user.id}", now=now)
    except HabilitationError as exc:
        raise TransitionRefused(str(exc)) from None
    end = hab.valid_until
    assert end is not None
    notify_contacts(
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
    user: User,
    reason: str,
    *,
    now: dt.datetime,
    mailer: Mailer | None = None,
) -> Habilitation:
    """[000 §14] the notice "ne couvre pas" a security problem: terminated at once."""
    _check_staff(user)
    _move(session, hab, Action.REVOKE, user, reason, now)
    hab.valid_until = now
    notify_contacts(
        session,
        hab,
        mailer,
        f"Habilitation {_environment(hab)} résiliée : {hab.demarche}",
        f"Bonjour,\n\nPour raison de sécurité, l'habilitation « {hab.demarche} » est "
        f"résiliée avec effet immédiat.\n\nMotif : {reason.strip()}\n",
        "habilitation:terminated",
    )
    return hab
