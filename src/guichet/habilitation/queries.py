"""Read functions over habilitations and organisations for the pages that show them."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from guichet.habilitation.models import Habilitation, HabilitationEvent, Organisation
from guichet.habilitation.request_models import (
    HabilitationRequest,
    RequestDocument,
    RequestStatus,
    SecurityCommitment,
)


def partners_of(
    session: Session, habilitation_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, tuple[str, str]]:
    """Each habilitation's organisation name and démarche, by habilitation id."""
    if not habilitation_ids:
        return {}
    rows = session.execute(
        select(Habilitation.id, Habilitation.demarche, Organisation.name)
        .join(Organisation, Organisation.id == Habilitation.organisation_id)
        .where(Habilitation.id.in_(habilitation_ids))
    )
    return {hab_id: (org_name, demarche) for hab_id, demarche, org_name in rows}


def organisation_names(
    session: Session, organisation_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, str]:
    """Each organisation's name, by id."""
    if not organisation_ids:
        return {}
    rows = session.execute(
        select(Organisation.id, Organisation.name).where(Organisation.id.in_(organisation_ids))
    )
    return {org_id: org_name for org_id, org_name in rows}


def requests_of(session: Session, habilitation_id: uuid.UUID) -> Sequence[HabilitationRequest]:
    """The requests that built or updated a habilitation, oldest first."""
    return session.scalars(
        select(HabilitationRequest)
        .where(HabilitationRequest.habilitation_id == habilitation_id)
        .order_by(HabilitationRequest.created_at)
    ).all()


def habilitations_of(
    session: Session, organisation_ids: Collection[uuid.UUID]
) -> Sequence[Habilitation]:
    """The organisations' habilitations, oldest first."""
    if not organisation_ids:
        return []
    return session.scalars(
        select(Habilitation)
        .where(Habilitation.organisation_id.in_(organisation_ids))
        .order_by(Habilitation.created_at)
    ).all()


def events_of(session: Session, habilitation_id: uuid.UUID) -> Sequence[HabilitationEvent]:
    """The habilitation's events, oldest first."""
    return session.scalars(
        select(HabilitationEvent)
        .where(HabilitationEvent.habilitation_id == habilitation_id)
        .order_by(HabilitationEvent.at)
    ).all()


def security_commitment_of(
    session: Session, habilitation_id: uuid.UUID
) -> SecurityCommitment | None:
    """The habilitation's security commitment, if it has one."""
    return session.scalar(
        select(SecurityCommitment).where(SecurityCommitment.habilitation_id == habilitation_id)
    )


def documents_of(session: Session, request_id: uuid.UUID) -> Sequence[RequestDocument]:
    """The documents attached to a request."""
    return session.scalars(
        select(RequestDocument).where(RequestDocument.request_id == request_id)
    ).all()


def production_request_of(session: Session, sandbox_request_id: uuid.UUID) -> uuid.UUID | None:
    """The id of the production request (not archived) started from a sandbox request."""
    return session.scalar(
        select(HabilitationRequest.id).where(
            HabilitationRequest.sandbox_request_id == sandbox_request_id,
            HabilitationRequest.status != RequestStatus.ARCHIVED,
        )
    )
