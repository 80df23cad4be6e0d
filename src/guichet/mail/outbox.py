"""The local outbox: one RFC 5322 ``.eml`` file per mail, and the reader the portal shows."""

from __future__ import annotations

import datetime as dt
import email.policy
import email.utils
import os
import re
import time
import uuid
from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

from guichet.clock import Clock
from guichet.mail.mailer import Mail, MailError, build_message, log_sent

# File names are ours: a sortable UTC stamp, a monotonic tie-break (two mails in the same
# microsecond, or under a frozen clock) and random bits; nothing from the message.
MESSAGE_ID = re.compile(r"^\d{8}T\d{12}Z-\d{20}-[0-9a-f]{12}$")


@dataclass(frozen=True)
class OutboxEntry:
    id: str
    date: dt.datetime
    to: str
    subject: str


@dataclass(frozen=True)
class OutboxMessage:
    entry: OutboxEntry
    text: str
    html: str | None


class OutboxMailer:
    """Writes each mail as ``DIR/<stamp>-<uuid>.eml`` (mode 0600: mails carry sign-in links)."""

    def __init__(self, directory: Path, sender: str, clock: Clock) -> None:
        self.directory = directory
        self.sender = sender
        self.clock = clock

    def send(self, mail: Mail) -> str:
        msg = build_message(mail, self.sender, self.clock)
        stamp = self.clock.now().astimezone(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
        name = f"{stamp}-{time.monotonic_ns():020d}-{uuid.uuid4().hex[:12]}"
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            tmp = self.directory / f".{name}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(msg.as_bytes(policy=email.policy.SMTP))
                f.flush()
                os.fsync(f.fileno())
            tmp.replace(self.directory / f"{name}.eml")
        except OSError as exc:
            raise MailError(f"outbox: {type(exc).__name__}") from exc
        message_id = str(msg["Message-ID"])
        log_sent(mail, message_id, "outbox")
        return message_id


class Outbox:
    """Reads the outbox directory, newest first."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _parse(self, path: Path) -> EmailMessage:
        with path.open("rb") as f:
            parsed = BytesParser(policy=email.policy.default).parse(f)
        assert isinstance(parsed, EmailMessage)
        return parsed

    def _entry(self, message_id: str, msg: EmailMessage) -> OutboxEntry:
        date = email.utils.parsedate_to_datetime(str(msg["Date"]))
        return OutboxEntry(id=message_id, date=date, to=str(msg["To"]), subject=str(msg["Subject"]))

    def list(self, limit: int = 200) -> list[OutboxEntry]:
        if not self.directory.is_dir():
            return []
        paths = sorted(self.directory.glob("*.eml"), reverse=True)[:limit]
        return [self._entry(p.stem, self._parse(p)) for p in paths]

    def get(self, message_id: str) -> OutboxMessage | None:
        if not MESSAGE_ID.match(message_id):
            return None
        path = self.directory / f"{message_id}.eml"
        if not path.is_file():
            return None
        msg = self._parse(path)
        text_part = msg.get_body(preferencelist=("plain",))
        html_part = msg.get_body(preferencelist=("html",))
        text = text_part.get_content() if isinstance(text_part, EmailMessage) else ""
        html = html_part.get_content() if isinstance(html_part, EmailMessage) else None
        return OutboxMessage(entry=self._entry(message_id, msg), text=str(text), html=html)


__all__ = ["Mail", "MailError", "Outbox", "OutboxEntry", "OutboxMailer", "OutboxMessage"]
