"""The ``Mailer`` interface, the message every sender builds, and the choice of sender."""

from __future__ import annotations

import email.utils
import logging
import re
import uuid
from dataclasses import dataclass
from email.message import EmailMessage
from typing import TYPE_CHECKING, Protocol

from guichet.clock import Clock
from guichet.logs import event

if TYPE_CHECKING:
    from guichet.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Mail:
    """One message to one recipient: French plain text, optionally an HTML alternative.

    ``kind`` (e.g. ``accounts:verify_email``) and ``ref`` (an id, never an address) are what
    the logs say about the message.
    """

    to: str
    subject: str
    text: str
    kind: str
    ref: str = ""
    html: str | None = None


# What Python's email package (and SMTP) takes as a line end or refuses in a header.
_HEADER_BREAKS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def one_line(value: str) -> str:
    """A header value on one line: a subject quotes partners' words (a démarche written
    before the portal refused line separators must not stop a decision's mail)."""
    return _HEADER_BREAKS.sub(" ", value).strip()


def build_message(mail: Mail, sender: str, clock: Clock) -> EmailMessage:
    """An RFC 5322 message (``Date``, ``Message-ID``, UTF-8 MIME parts) for ``mail``."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = mail.to
    msg["Subject"] = one_line(mail.subject)
    msg["Date"] = email.utils.format_datetime(clock.now())
    domain = email.utils.parseaddr(sender)[1].rpartition("@")[2] or "guichet.example"
    msg["Message-ID"] = f"<{uuid.uuid4()}@{domain}>"
    msg["Content-Language"] = "fr"
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(mail.text)
    if mail.html is not None:
        msg.add_alternative(mail.html, subtype="html")
    return msg


class Mailer(Protocol):
    """Sends a mail; returns its ``Message-ID``. Raises ``MailError`` when it could not."""

    def send(self, mail: Mail) -> str: ...


class MailError(RuntimeError):
    """The mail could not be handed over (the SMTP server refused it, the disk is full…)."""


def log_sent(mail: Mail, message_id: str, transport: str) -> None:
    event(log, "mail.sent", kind=mail.kind, ref=mail.ref, message_id=message_id, via=transport)


def build_mailer(settings: Settings, clock: Clock) -> Mailer:
    """SMTP when ``GUICHET_SMTP_URL`` is set, otherwise the outbox directory."""
    if settings.smtp_url:
        from guichet.mail.smtp import SmtpMailer

        return SmtpMailer(settings.smtp_url, settings.mail_from, clock)
    from guichet.mail.outbox import OutboxMailer

    return OutboxMailer(settings.resolved_outbox_dir, settings.mail_from, clock)
