"""The operations clock: one idempotent ``tick`` that ends notice periods, watches security
commitments (notice, suspension, resumption) and purges old request data, consents and the
portal's expired sessions.

Each piece of work runs in its own transaction and records what it did (a flag, a state,
a deletion) in the same transaction as its mail, so running ``tick`` twice sends nothing
twice; a mail that fails rolls its piece back and the next tick tries again.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol

from dateutil.relativedelta import relativedelta
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from guichet.accounts.sessions import purge_expired as purge_expired_sessions
from guichet.application.notifications import notify_contacts
from guichet.clock import Clock, utc
from guichet.db import transaction
from guichet.federation.consent import purge_consents
from guichet.habilitation import uploads
from guichet.habilitation.models import Habilitation, HabilitationEvent, HabilitationStatus
from guichet.habilitation.request_models import (
    CredentialDelivery,
    HabilitationRequest,
    RequestComment,
    RequestDocument,
    RequestVersion,
    SecurityCommitment,
    SecurityKind,
)
from guichet.habilitation.service import Action, transition
from guichet.logs import event
from guichet.mail import Mailer, build_mailer
from guichet.mail.mailer import MailError
from guichet.settings import Settings

log = logging.getLogger(__name__)

ACTOR: Final = "scheduler"
# [000 §3.4.1] a new attestation is due three months before the current one expires.
NOTICE_BEFORE_EXPIRY: Final = relativedelta(months=3)
# [000 §6.8] DataPass data is kept six years after data delivery stops.
REQUEST_RETENTION: Final = relativedelta(years=6)
TERMINATION_NOTIFIED: Final = "habilitation:termination_notified"


class TickRuntime(Protocol):
    """What ``tick`` needs of a runtime (``guichet.runtime.Runtime`` has it)."""

    settings: Settings
    session_factory: sessionmaker[Session]
    clock: Clock


@dataclass
class TickReport:
    at: dt.datetime
    notices: list[str] = field(default_factory=list)  # habilitation ids
    suspended: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    terminated: list[str] = field(default_factory=list)
    purged_requests: list[str] = field(default_factory=list)
    purged_consents: int = 0  # federation consent records past 36 months (no ids: pseudonyms)
    purged_sessions: int = 0  # the portal's sessions past their end or idle timeout
    failures: list[str] = field(default_factory=list)  # "<task>:<id>", retried next tick

    @property
    def idle(self) -> bool:
        return not any(
            (
                self.notices,
                self.suspended,
                self.resumed,
                self.terminated,
                self.purged_requests,
                self.purged_consents,
                self.purged_sessions,
                self.failures,
            )
        )

    def as_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["at"] = self.at.isoformat()
        return values


def tick(runtime: TickRuntime, now: dt.datetime, *, mailer: Mailer | None = None) -> TickReport:
    """Run every due task once, as of ``now``."""
    mailer = mailer or build_mailer(runtime.settings, runtime.clock)
    report = TickReport(at=now)
    factory = runtime.session_factory
    _end_notice_periods(factory, now, mailer, report)
    _watch_security_commitments(factory, now, mailer, report)
    purge_request_data(factory, now, runtime.settings.data_dir / "uploads", report)
    with transaction(factory) as session:
        # [003 art. 4] the citizen's consents are kept thirty-six months.
        report.purged_consents = purge_consents(session, now)
    with transaction(factory) as session:
        report.purged_sessions = purge_expired_sessions(session, now)
    event(
        log,
        "operations:tick",
        notices=len(report.notices),
        suspended=len(report.suspended),
        resumed=len(report.resumed),
        terminated=len(report.terminated),
        purged=len(report.purged_requests),
        purged_consents=report.purged_consents,
        purged_sessions=report.purged_sessions,
        failures=len(report.failures),
    )
    return report


@contextmanager
def _guarded(report: TickReport, task: str, ident: uuid.UUID) -> Iterator[None]:
    """One piece of work: a failed mail leaves it (rolled back) for the next tick."""
    try:
        yield
    except MailError:
        report.failures.append(f"{task}:{ident}")
        event(log, "operations:tick_failed", level=logging.WARNING, task=task, id=ident)


# --- termination at the end of the notice ----------------------------------------------------


def _end_notice_periods(
    factory: sessionmaker[Session], now: dt.datetime, mailer: Mailer, report: TickReport
) -> None:
    """[000 §14] after two months' notice, the habilitation is terminated."""
    with factory() as session:
        due = list(
            session.scalars(
                select(Habilitation.id).where(
                    Habilitation.status != HabilitationStatus.TERMINATED,
                    Habilitation.valid_until.is_not(None),
                    Habilitation.valid_until <= now,
                    Habilitation.id.in_(
                        select(HabilitationEvent.habilitation_id).where(
                            HabilitationEvent.name == TERMINATION_NOTIFIED
                        )
                    ),
                )
            )
        )
    for hab_id in due:
        with _guarded(report, "terminate", hab_id), transaction(factory) as session:
            hab = session.get(Habilitation, hab_id)
            if hab is None or hab.status is HabilitationStatus.TERMINATED:
                continue
            transition(
                session,
                hab,
                Action.REVOKE,
                reason="Fin du préavis de résiliation de deux mois.",
                actor=ACTOR,
                now=now,
            )
            notify_contacts(
                session,
                hab,
                mailer,
                f"Habilitation résiliée : {hab.demarche}",
                f"Bonjour,\n\nLe préavis de résiliation de l'habilitation « {hab.demarche} » "
                "est écoulé : elle est résiliée et les appels sont refusés.\n",
                "habilitation:terminated",
            )
            report.terminated.append(str(hab_id))


# --- the security commitment's watch --------------------------------------------------------


def _kind_words(kind: SecurityKind) -> str:
    if kind is SecurityKind.HOMOLOGATION:
        return "l'attestation d'homologation de sécurité"
    return "le questionnaire de sécurité"


def watch_commitment(
    session: Session,
    hab: Habilitation,
    commitment: SecurityCommitment,
    now: dt.datetime,
    mailer: Mailer | None,
) -> str | None:
    """[000 §3.4.1] one step of the watch for one habilitation: "notice", "suspended",
    "resumed" or None. Callers commit; the flags make it idempotent."""
    expires = utc(commitment.expires_at)
    words = _kind_words(commitment.kind)
    day = f"{expires:%d/%m/%Y}"
    if now >= expires:
        if commitment.suspended_at is not None or hab.status is not HabilitationStatus.ACTIVE:
            return None
        transition(
            session,
            hab,
            Action.SUSPEND,
            reason=f"Échéance de {words} le {day} sans nouvelle transmission.",
            actor=ACTOR,
            now=now,
        )
        commitment.suspended_at = now
        commitment.updated_at = now
        notify_contacts(
            session,
            hab,
            mailer,
            f"Échanges suspendus : {hab.demarche}",
            f"Bonjour,\n\n{words.capitalize()} de « {hab.demarche} » a expiré le {day}. "
            "Les échanges en production sont suspendus jusqu'à la validation d'une nouvelle "
            "attestation (déposez-la par une demande de mise à jour sur le portail) ; ils "
            "reprendront alors automatiquement.\n",
            "habilitation:security_suspended",
        )
        return "suspended"
    if commitment.suspended_at is not None:
        commitment.suspended_at = None
        commitment.updated_at = now
        if hab.status is HabilitationStatus.SUSPENDED:
            transition(
                session,
                hab,
                Action.RESUME,
                reason=f"Nouvel engagement de sécurité validé, valable jusqu'au {day}.",
                actor=ACTOR,
                now=now,
            )
            notify_contacts(
                session,
                hab,
                mailer,
                f"Échanges rétablis : {hab.demarche}",
                f"Bonjour,\n\nLa nouvelle attestation de « {hab.demarche} » est validée "
                f"(valable jusqu'au {day}) : les échanges en production reprennent.\n",
                "habilitation:security_resumed",
            )
            return "resumed"
    if now >= expires - NOTICE_BEFORE_EXPIRY and commitment.notice_sent_at is None:
        commitment.notice_sent_at = now
        commitment.updated_at = now
        notify_contacts(
            session,
            hab,
            mailer,
            f"Renouvelez {words} avant le {day} : {hab.demarche}",
            f"Bonjour,\n\n{words.capitalize()} de « {hab.demarche} » expire le {day}. "
            "Transmettez-en une nouvelle dès maintenant par une demande de mise à jour sur le "
            "portail : sans elle, les échanges en production seront suspendus à cette date "
            "jusqu'à sa transmission.\n",
            "habilitation:security_notice",
        )
        return "notice"
    return None


def _watch_security_commitments(
    factory: sessionmaker[Session], now: dt.datetime, mailer: Mailer, report: TickReport
) -> None:
    with factory() as session:
        ids = list(
            session.scalars(
                select(SecurityCommitment.id)
                .join(Habilitation, Habilitation.id == SecurityCommitment.habilitation_id)
                .where(Habilitation.status != HabilitationStatus.TERMINATED)
            )
        )
    outcomes = {"notice": report.notices, "suspended": report.suspended, "resumed": report.resumed}
    for commitment_id in ids:
        with _guarded(report, "security", commitment_id), transaction(factory) as session:
            commitment = session.get(SecurityCommitment, commitment_id)
            hab = session.get(Habilitation, commitment.habilitation_id) if commitment else None
            if commitment is None or hab is None:
                continue
            outcome = watch_commitment(session, hab, commitment, now, mailer)
            if outcome is not None:
                outcomes[outcome].append(str(hab.id))


# --- six years after the end ---------------------------------------------------------------


def ended_at(hab: Habilitation) -> dt.datetime | None:
    """When data delivery stopped: the end of a terminated habilitation."""
    if hab.status is not HabilitationStatus.TERMINATED:
        return None
    return utc(hab.valid_until or hab.updated_at)


def _purge_due(
    request: HabilitationRequest, habs: dict[uuid.UUID, Habilitation], horizon: dt.datetime
) -> bool:
    linked = [h for h in (request.habilitation_id, request.parent_habilitation_id) if h]
    if linked:
        ends = [ended_at(habs[h]) if h in habs else None for h in linked]
        return all(end is not None and end <= horizon for end in ends)
    return utc(request.decided_at or request.updated_at) <= horizon


def purge_request_data(
    factory: sessionmaker[Session], now: dt.datetime, uploads_dir: Path, report: TickReport
) -> None:
    """[000 §6.8] "conservées pendant six (6) ans à compter de l'arrêt de la délivrance des
    données": requests (form data, versions, comments, documents, events) are deleted six
    years after their habilitation ended — or after their last activity when none was
    issued. The habilitation keeps an event saying so."""
    horizon = now - REQUEST_RETENTION
    with transaction(factory) as session:
        habs = {h.id: h for h in session.scalars(select(Habilitation))}
        due = [
            r for r in session.scalars(select(HabilitationRequest)) if _purge_due(r, habs, horizon)
        ]
        if not due:
            return
        ids = [r.id for r in due]
        files = list(
            session.scalars(
                select(RequestDocument.stored_name).where(RequestDocument.request_id.in_(ids))
            )
        )
        session.execute(
            update(HabilitationRequest)
            .where(HabilitationRequest.sandbox_request_id.in_(ids))
            .values(sandbox_request_id=None)
        )
        session.execute(
            update(SecurityCommitment)
            .where(SecurityCommitment.request_id.in_(ids))
            .values(request_id=None)
        )
        for model in (RequestDocument, RequestVersion, RequestComment, CredentialDelivery):
            session.execute(delete(model).where(model.request_id.in_(ids)))
        for request in due:
            for hab_id in {
                h for h in (request.habilitation_id, request.parent_habilitation_id) if h
            }:
                session.add(
                    HabilitationEvent(
                        habilitation_id=hab_id,
                        at=now,
                        actor=ACTOR,
                        name="habilitation:request_data_purged",
                        reason=f"Demande {request.id} supprimée (six ans après la fin).",
                    )
                )
            session.delete(request)
            report.purged_requests.append(str(request.id))
    for name in files:
        uploads.remove(uploads_dir, name)
