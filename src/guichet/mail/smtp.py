"""Sending through an SMTP server (stdlib ``smtplib``), configured by one URL."""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

from guichet.clock import Clock
from guichet.mail.mailer import Mail, MailError, build_message, log_sent

TIMEOUT = 15.0


@dataclass(frozen=True)
class SmtpTarget:
    """``smtp://[user:password@]host[:port][?starttls=true]`` or ``smtps://…`` (implicit TLS)."""

    host: str
    port: int
    implicit_tls: bool
    starttls: bool
    username: str | None
    password: str | None

    @classmethod
    def parse(cls, url: str) -> SmtpTarget:
        parts = urlsplit(url)
        if parts.scheme not in {"smtp", "smtps"} or not parts.hostname:
            raise ValueError("GUICHET_SMTP_URL must look like smtp://host[:port] or smtps://host")
        implicit = parts.scheme == "smtps"
        query = parse_qs(parts.query)
        starttls = query.get("starttls", ["false"])[0].lower() in {"1", "true", "yes"}
        return cls(
            host=parts.hostname,
            port=parts.port or (465 if implicit else 25),
            implicit_tls=implicit,
            starttls=starttls and not implicit,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )


class SmtpMailer:
    """One SMTP connection per mail: mails are rare (sign-up, reset, notices)."""

    def __init__(self, url: str, sender: str, clock: Clock) -> None:
        self.target = SmtpTarget.parse(url)
        self.sender = sender
        self.clock = clock

    def send(self, mail: Mail) -> str:
        msg = build_message(mail, self.sender, self.clock)
        t = self.target
        try:
            smtp: smtplib.SMTP
            if t.implicit_tls:
                smtp = smtplib.SMTP_SSL(
                    t.host, t.port, timeout=TIMEOUT, context=ssl.create_default_context()
                )
            else:
                smtp = smtplib.SMTP(t.host, t.port, timeout=TIMEOUT)
            with smtp:
                if t.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if t.username:
                    smtp.login(t.username, t.password or "")
                smtp.send_message(msg)
        except (OSError, smtplib.SMTPException) as exc:
            raise MailError(f"SMTP: {type(exc).__name__}") from exc
        message_id = str(msg["Message-ID"])
        log_sent(mail, message_id, "smtp")
        return message_id
