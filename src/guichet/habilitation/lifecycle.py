"""The request's lifecycle — one transition table and the one function that checks it, the
status both sides see under the injected clock — and what a habilitation's lifecycle reads
(the requests behind it, its contacts, its notice, its security commitment).

SPEC §4: draft → submitted → (changes requested ↔ submitted) → validated | refused;
archived. A request left without a decision two months after its submission is shown as
implicitly rejected (``display_status``); nothing is written for it. Habilitations:
active ↔ suspended, terminated with two months' notice or at once for security [000 §12, §14]
(the state table itself is ``guichet.habilitation.service.TRANSITIONS``). Who may move a
request or a habilitation, and the notices to its contacts, are the application layer's
(``guichet.application.permissions``, ``issuance``, ``management``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from enum import StrEnum
from typing import Final

from dateutil.relativedelta import relativedelta
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from guichet.clock import utc
from guichet.habilitation.blocks import Block, Contacts
from guichet.habilitation.errors import TransitionRefused
from guichet.habilitation.models import Environment, Habilitation, HabilitationEvent
from guichet.habilitation.request_models import (
    HabilitationRequest,
    RequestEvent,
    RequestStatus,
    SecurityCommitment,
)

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

STATUS_LABELS: Final = {
    DisplayStatus.DRAFT: "Brouillon",
    DisplayStatus.SUBMITTED: "Soumise",
    DisplayStatus.CHANGES_REQUESTED: "Modifications demandées",
    DisplayStatus.VALIDATED: "Validée",
    DisplayStatus.REFUSED: "Refusée",
    DisplayStatus.ARCHIVED: "Archivée",
    DisplayStatus.IMPLICITLY_REJECTED: "Rejet implicite (sans décision depuis deux mois)",
}


# --- the table, checked ------------------------------------------------------------------


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


# --- what a habilitation's lifecycle reads ------------------------------------------------


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


def contact_email(request: HabilitationRequest | None, role: str) -> str | None:
    if request is None:
        return None
    return Contacts.read((request.data or {}).get(Block.CONTACTS.value)).contact(role).address()


def habilitation_contacts(session: Session, hab: Habilitation) -> list[str]:
    """The addresses of the contacts of the request that last set this habilitation."""
    request = last_decided_request(session, hab)
    addresses: dict[str, None] = {}
    for role in ("controller", "dpo", "technical"):
        email = contact_email(request, role)
        if email:
            addresses[email] = None
    return list(addresses)


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
