"""The SMTP mailer against a real SMTP server (aiosmtpd) on 127.0.0.1."""

from __future__ import annotations

import email
import email.policy
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from guichet.clock import FrozenClock
from guichet.mail import Mail, build_mailer
from guichet.mail.mailer import MailError
from guichet.mail.smtp import SmtpMailer, SmtpTarget
from guichet.settings import Settings
from tests.support.postgres import free_port


class Collect:
    def __init__(self) -> None:
        self.received: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


@pytest.fixture
def smtp_server() -> Iterator[tuple[Collect, int]]:
    handler = Collect()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield handler, port
    controller.stop()


def test_mail_goes_through_smtp_without_addresses_in_logs(
    smtp_server: tuple[Collect, int], clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    handler, port = smtp_server
    settings = Settings(
        smtp_url=f"smtp://127.0.0.1:{port}", mail_from="guichet <g@guichet.example>"
    )
    mailer = build_mailer(settings, clock)
    assert isinstance(mailer, SmtpMailer)
    with caplog.at_level(logging.INFO):
        message_id = mailer.send(
            Mail(to="camille@mairie-exemple.fr", subject="Sujet é", text="Corps", kind="t", ref="7")
        )
    [(sender, recipients, content)] = handler.received
    assert sender == "g@guichet.example"
    assert recipients == ["camille@mairie-exemple.fr"]
    parsed = email.message_from_bytes(content, policy=email.policy.default)
    assert parsed["Subject"] == "Sujet é"
    assert parsed["Message-ID"] == message_id
    ours = [r for r in caplog.records if r.name.startswith("guichet")]
    assert [r.getMessage() for r in ours] == ["mail.sent"]
    assert "camille" not in repr([(r.getMessage(), r.__dict__.get("fields")) for r in ours])


def test_unreachable_server_raises_mail_error(clock: FrozenClock) -> None:
    mailer = SmtpMailer(f"smtp://127.0.0.1:{free_port()}", "g@guichet.example", clock)
    with pytest.raises(MailError):
        mailer.send(Mail(to="a@b.example", subject="s", text="t", kind="t"))


def test_url_forms() -> None:
    plain = SmtpTarget.parse("smtp://relay.example")
    assert (plain.port, plain.implicit_tls, plain.starttls, plain.username) == (
        25,
        False,
        False,
        None,
    )
    tls = SmtpTarget.parse("smtps://user%40x:p%3Ass@relay.example")
    assert (tls.port, tls.implicit_tls, tls.username, tls.password) == (465, True, "user@x", "p:ss")
    assert SmtpTarget.parse("smtp://relay.example:587?starttls=true").starttls
    with pytest.raises(ValueError, match="smtp://"):
        SmtpTarget.parse("http://relay.example")
