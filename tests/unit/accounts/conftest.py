"""An account service over the test database, a frozen clock and a real outbox directory."""

from __future__ import annotations

from pathlib import Path

import pytest
from argon2 import PasswordHasher
from sqlalchemy.orm import Session, sessionmaker

from guichet.accounts.passwords import Passwords
from guichet.accounts.service import AccountService, SignUpForm
from guichet.clock import FrozenClock
from guichet.mail.outbox import Outbox, OutboxMailer

# Real argon2id, with small costs so that the suite stays fast.
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
SIRET = "73282932000074"  # a valid SIRET (Luhn), used across the tests
PASSWORD = "correct horse battery"


@pytest.fixture
def outbox(tmp_path: Path) -> Outbox:
    return Outbox(tmp_path / "outbox")


@pytest.fixture
def service(
    session_factory: sessionmaker[Session], clock: FrozenClock, outbox: Outbox
) -> AccountService:
    mailer = OutboxMailer(outbox.directory, "guichet <ne-pas-repondre@guichet.example>", clock)
    return AccountService(
        session_factory, clock, mailer, "http://portail.test", Passwords(FAST_HASHER)
    )


def form(**overrides: str) -> SignUpForm:
    values = {
        "email": "Camille.Martin@Mairie-Exemple.fr",
        "display_name": "Camille Martin",
        "password": PASSWORD,
        "siret": SIRET,
        "organisation_name": "Commune d'Exemple",
        "role": "applicant",
    }
    values.update(overrides)
    return SignUpForm(**values)


def link_token(outbox: Outbox, path: str) -> str:
    """The token of the newest mail's link to ``path``."""
    newest = outbox.get(outbox.list()[0].id)
    assert newest is not None
    marker = f"{path}?token="
    start = newest.text.index(marker) + len(marker)
    return newest.text[start:].split()[0]
