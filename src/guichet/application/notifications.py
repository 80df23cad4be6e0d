"""Notices to a habilitation's contacts, by mail [000 §12]."""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from guichet.habilitation.lifecycle import habilitation_contacts
from guichet.habilitation.models import Habilitation
from guichet.logs import event
from guichet.mail import Mail, Mailer
from guichet.mail.mailer import MailError

log = logging.getLogger(__name__)


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


def notify_standing(
    session: Session, hab: Habilitation, mailer: Mailer | None, subject: str, text: str, kind: str
) -> None:
    """A person's decision stands even if its notice fails (a suspension for security must
    not wait for the mail server); the failure is logged for the operators to resend."""
    try:
        notify_contacts(session, hab, mailer, subject, text, kind)
    except MailError:
        event(log, "habilitation:mail_failed", level=logging.WARNING, kind=kind, ref=hab.id)
