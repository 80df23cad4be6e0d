"""The outbox: RFC 5322 files, private, listed newest first, read back."""

from __future__ import annotations

import email
import email.policy
import stat
from pathlib import Path

import pytest

from guichet.clock import FrozenClock
from guichet.mail import Mail, build_mailer
from guichet.mail.outbox import Outbox, OutboxMailer
from guichet.settings import Settings

SENDER = "guichet <ne-pas-repondre@guichet.example>"


def mail(subject: str = "Bonjour", html: str | None = None) -> Mail:
    return Mail(
        to="camille@mairie-exemple.fr",
        subject=subject,
        text="Voici un lien : https://portail.test/x?token=abc\nÀ bientôt.",
        kind="test",
        ref="42",
        html=html,
    )


def test_each_mail_is_one_private_eml_file(tmp_path: Path, clock: FrozenClock) -> None:
    mailer = OutboxMailer(tmp_path / "outbox", SENDER, clock)
    message_id = mailer.send(mail("Réinitialisation", html="<p>Bonjour</p>"))
    [path] = (tmp_path / "outbox").glob("*.eml")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    parsed = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert parsed["Message-ID"] == message_id
    assert parsed["Subject"] == "Réinitialisation"
    assert parsed["From"] == SENDER
    assert parsed["Date"] == "Mon, 23 Nov 2026 10:00:00 +0000"
    assert parsed.get_content_type() == "multipart/alternative"
    assert not list((tmp_path / "outbox").glob(".*.tmp"))


def test_outbox_lists_newest_first_and_reads_back(tmp_path: Path, clock: FrozenClock) -> None:
    mailer = OutboxMailer(tmp_path / "outbox", SENDER, clock)
    mailer.send(mail("premier"))
    mailer.send(mail("deuxième"))
    clock.advance(1)
    mailer.send(mail("troisième"))
    box = Outbox(tmp_path / "outbox")
    entries = box.list()
    assert [e.subject for e in entries] == ["troisième", "deuxième", "premier"]
    message = box.get(entries[0].id)
    assert message is not None
    assert "https://portail.test/x?token=abc" in message.text
    assert message.entry.to == "camille@mairie-exemple.fr"


@pytest.mark.parametrize("name", ["../secret", "x", "20261123T100000000000Z-1/../../etc"])
def test_outbox_refuses_other_names(tmp_path: Path, name: str) -> None:
    assert Outbox(tmp_path).get(name) is None


def test_empty_or_missing_outbox(tmp_path: Path) -> None:
    assert Outbox(tmp_path / "nothing").list() == []


def test_without_smtp_the_mailer_is_the_outbox(tmp_path: Path, clock: FrozenClock) -> None:
    mailer = build_mailer(Settings(data_dir=tmp_path, smtp_url=None), clock)
    assert isinstance(mailer, OutboxMailer)
    assert mailer.directory == tmp_path / "outbox"
