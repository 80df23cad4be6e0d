"""Managing a validated habilitation: the staff's list and views, suspension, resumption,
termination (with notice or at once), and the renewal of its client secret — each checked
against ``permissions`` and notified to the request's contacts."""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from guichet.accounts.models import User
from guichet.application.notifications import notify_standing
from guichet.application.permissions import (
    Actor,
    StaffAction,
    actor_label,
    check_staff,
    is_party,
    is_technical_contact,
    may,
    staff_roles,
)
from guichet.clock import utc
from guichet.habilitation.errors import (
    HabilitationActionRefused,
    HabilitationNotFound,
    ReasonRequired,
    SecurityCommitmentExpired,
    TransitionRefused,
)
from guichet.habilitation.lifecycle import expired_commitment, last_decided_request, notice_given
from guichet.habilitation.models import (
    Environment,
    Habilitation,
    HabilitationEvent,
    HabilitationStatus,
)
from guichet.habilitation.request_models import CredentialDelivery, SecurityKind
from guichet.habilitation.service import (
    Action,
    HabilitationError,
    terminate_with_notice,
    transition,
)
from guichet.logs import event
from guichet.mail import Mailer
from guichet.oauth.clients import rotate_secret
from guichet.oauth.models import Client
from guichet.secrets import MasterSecret

log = logging.getLogger(__name__)


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
    notify_standing(
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
    notify_standing(
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
    notify_standing(
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
    notify_standing(
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
    notify_standing(
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
