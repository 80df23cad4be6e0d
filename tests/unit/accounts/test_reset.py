"""Password reset: one-hour single-use links, no enumeration, sessions ended, lock lifted."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from guichet.accounts.errors import AccountTokenInvalid, FormInvalid, SignInFailed
from guichet.accounts.models import PortalSession
from guichet.accounts.service import AccountService
from guichet.accounts.sessions import SessionStore
from guichet.clock import FrozenClock
from guichet.mail.outbox import Outbox
from tests.unit.accounts.conftest import PASSWORD, form, link_token

EMAIL = "camille.martin@mairie-exemple.fr"
NEW = "un tout nouveau mot de passe"


@pytest.fixture
def account(service: AccountService, outbox: Outbox) -> AccountService:
    service.sign_up(form())
    service.verify_email(link_token(outbox, "/verification-email"))
    return service


def test_reset_link_sets_a_new_password_once(account: AccountService, outbox: Outbox) -> None:
    account.request_password_reset(EMAIL.upper())
    token = link_token(outbox, "/mot-de-passe/nouveau")
    assert account.check_reset_token(token)
    account.reset_password(token, NEW)
    assert not account.check_reset_token(token)
    account.sign_in(EMAIL, NEW)
    with pytest.raises(SignInFailed):
        account.sign_in(EMAIL, PASSWORD)
    with pytest.raises(AccountTokenInvalid):
        account.reset_password(token, "encore un autre mot de passe")


def test_reset_link_expires_after_one_hour(
    account: AccountService, outbox: Outbox, clock: FrozenClock
) -> None:
    account.request_password_reset(EMAIL)
    token = link_token(outbox, "/mot-de-passe/nouveau")
    clock.advance(3600)
    assert not account.check_reset_token(token)
    with pytest.raises(AccountTokenInvalid):
        account.reset_password(token, NEW)


def test_unknown_address_sends_nothing_and_raises_nothing(
    account: AccountService, outbox: Outbox
) -> None:
    before = len(outbox.list())
    account.request_password_reset("personne@mairie-exemple.fr")
    assert len(outbox.list()) == before


def test_a_refused_password_does_not_spend_the_link(
    account: AccountService, outbox: Outbox
) -> None:
    account.request_password_reset(EMAIL)
    token = link_token(outbox, "/mot-de-passe/nouveau")
    with pytest.raises(FormInvalid) as caught:
        account.reset_password(token, "short")
    assert "password" in caught.value.errors
    with pytest.raises(FormInvalid):
        account.reset_password(token, EMAIL)
    account.reset_password(token, NEW)


def test_a_new_password_ends_other_links_sessions_and_the_lock_out(
    account: AccountService,
    outbox: Outbox,
    session_factory: sessionmaker[Session],
    clock: FrozenClock,
) -> None:
    user_id = account.sign_in(EMAIL, PASSWORD).user_id
    SessionStore(session_factory, clock).create(user_id, "password")
    for _ in range(5):
        with pytest.raises(SignInFailed):
            account.sign_in(EMAIL, "wrong password!")
    account.request_password_reset(EMAIL)
    first = link_token(outbox, "/mot-de-passe/nouveau")
    account.request_password_reset(EMAIL)
    second = link_token(outbox, "/mot-de-passe/nouveau")
    account.reset_password(second, NEW)
    assert not account.check_reset_token(first)
    with session_factory() as s:
        assert s.scalar(select(func.count()).select_from(PortalSession)) == 0
    # Locked a moment ago; the reset lifted it.
    account.sign_in(EMAIL, NEW)
