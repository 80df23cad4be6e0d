"""Email verification: single-use, expiring links whose secret is stored hashed."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from guichet.accounts.errors import AccountTokenInvalid
from guichet.accounts.models import AccountToken, User
from guichet.accounts.service import AccountService
from guichet.clock import FrozenClock
from guichet.mail.outbox import Outbox
from guichet.secrets import hash_secret
from tests.unit.accounts.conftest import form, link_token


def test_link_verifies_once(
    service: AccountService, session_factory: sessionmaker[Session], outbox: Outbox
) -> None:
    service.sign_up(form())
    token = link_token(outbox, "/verification-email")
    user_id = service.verify_email(token)
    with session_factory() as s:
        assert s.get_one(User, user_id).email_verified_at is not None
        stored = s.scalars(select(AccountToken)).one()
        # Only the hash is stored.
        assert stored.token_hash == hash_secret(token)
        assert token not in stored.token_hash
    with pytest.raises(AccountTokenInvalid):
        service.verify_email(token)


def test_link_expires_after_48_hours(
    service: AccountService, outbox: Outbox, clock: FrozenClock
) -> None:
    service.sign_up(form())
    token = link_token(outbox, "/verification-email")
    clock.advance(48 * 3600)
    with pytest.raises(AccountTokenInvalid):
        service.verify_email(token)


def test_link_works_just_before_expiry(
    service: AccountService, outbox: Outbox, clock: FrozenClock
) -> None:
    service.sign_up(form())
    token = link_token(outbox, "/verification-email")
    clock.advance(48 * 3600 - 1)
    service.verify_email(token)


@pytest.mark.parametrize("token", ["", "x", "a" * 500])
def test_unknown_tokens_are_refused(service: AccountService, token: str) -> None:
    with pytest.raises(AccountTokenInvalid):
        service.verify_email(token)


def test_a_reset_token_does_not_verify(service: AccountService, outbox: Outbox) -> None:
    service.sign_up(form())
    service.request_password_reset("camille.martin@mairie-exemple.fr")
    reset = link_token(outbox, "/mot-de-passe/nouveau")
    with pytest.raises(AccountTokenInvalid):
        service.verify_email(reset)
