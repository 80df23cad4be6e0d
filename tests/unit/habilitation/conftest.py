"""Fixtures for the request workflow: a certificate, an outbox, the uploads directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from guichet.clock import FrozenClock
from guichet.mail.outbox import Outbox, OutboxMailer
from guichet.pki import LocalPki, ensure_local_pki, issue_client_certificate


@pytest.fixture
def pki(tmp_path: Path, clock: FrozenClock) -> LocalPki:
    return ensure_local_pki(tmp_path / "pki", clock.now(), ["127.0.0.1"])


@pytest.fixture
def cert_pem(pki: LocalPki, clock: FrozenClock) -> str:
    cert, _key = issue_client_certificate(pki, "qf client", "Ville A", 365, clock.now())
    return cert.decode()


@pytest.fixture
def outbox(tmp_path: Path) -> Outbox:
    return Outbox(tmp_path / "outbox")


@pytest.fixture
def mailer(outbox: Outbox, clock: FrozenClock) -> OutboxMailer:
    return OutboxMailer(outbox.directory, "guichet <ne-pas-repondre@guichet.example>", clock)


@pytest.fixture
def uploads_dir(tmp_path: Path) -> Path:
    return tmp_path / "var" / "uploads"
