"""Sign-in: one error message, lock-out after five failures for fifteen minutes, per account."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from guichet.accounts.errors import EmailNotVerified, SignInFailed
from guichet.accounts.models import User
from guichet.accounts.service import AccountService
from guichet.clock import FrozenClock
from guichet.mail.outbox import Outbox
from tests.unit.accounts.conftest import PASSWORD, form, link_token

EMAIL = "camille.martin@mairie-exemple.fr"


@pytest.fixture
def verified(service: AccountService, outbox: Outbox) -> AccountService:
    service.sign_up(form())
    service.verify_email(link_token(outbox, "/verification-email"))
    return service


def test_right_password_signs_in_whatever_the_case_of_the_address(
    verified: AccountService,
) -> None:
    signed_in = verified.sign_in("  Camille.MARTIN@mairie-exemple.FR ", PASSWORD)
    assert signed_in.method == "password"


def test_wrong_password_and_unknown_address_get_the_same_error(verified: AccountService) -> None:
    with pytest.raises(SignInFailed) as wrong:
        verified.sign_in(EMAIL, "not the password")
    with pytest.raises(SignInFailed) as unknown:
        verified.sign_in("personne@mairie-exemple.fr", "not the password")
    assert wrong.value.detail == unknown.value.detail
    assert wrong.value.code == unknown.value.code == "sign_in_failed"


def test_unknown_address_costs_a_full_password_check(verified: AccountService) -> None:
    """Timing: an unknown address still runs argon2 (against a dummy hash)."""
    hasher = verified.passwords.hasher
    verified.passwords.hasher = type(hasher)(time_cost=4, memory_cost=32768, parallelism=1)
    verified.passwords._dummy = verified.passwords.hasher.hash("dummy")
    start = time.perf_counter()
    with pytest.raises(SignInFailed):
        verified.sign_in("personne@mairie-exemple.fr", "whatever it is")
    unknown = time.perf_counter() - start
    reference = time.perf_counter()
    verified.passwords.hasher.hash("reference")
    one_hash = time.perf_counter() - reference
    assert unknown >= 0.5 * one_hash


def test_unverified_account_is_told_after_the_right_password_only(
    service: AccountService, outbox: Outbox, clock: FrozenClock
) -> None:
    service.sign_up(form())
    with pytest.raises(SignInFailed):
        service.sign_in(EMAIL, "wrong password!")
    with pytest.raises(EmailNotVerified):
        service.sign_in(EMAIL, PASSWORD)
    # The first link is recent: no second mail yet; after ten minutes, a new one.
    assert len(outbox.list()) == 1
    clock.advance(601)
    with pytest.raises(EmailNotVerified):
        service.sign_in(EMAIL, PASSWORD)
    assert len(outbox.list()) == 2


def test_five_failures_lock_the_account_for_fifteen_minutes(
    verified: AccountService, clock: FrozenClock, outbox: Outbox
) -> None:
    for _ in range(4):
        with pytest.raises(SignInFailed):
            verified.sign_in(EMAIL, "wrong password!")
    # Four failures: still open.
    verified.sign_in(EMAIL, PASSWORD)
    for _ in range(5):
        with pytest.raises(SignInFailed):
            verified.sign_in(EMAIL, "wrong password!")
    assert outbox.list()[0].subject == "Votre compte est temporairement bloqué"
    # Locked: even the right password fails, with the same message.
    clock.advance(15 * 60 - 1)
    with pytest.raises(SignInFailed):
        verified.sign_in(EMAIL, PASSWORD)
    # The lock ends after fifteen minutes.
    clock.advance(1)
    verified.sign_in(EMAIL, PASSWORD)


def test_lock_out_is_per_account(verified: AccountService, outbox: Outbox) -> None:
    verified.sign_up(form(email="autre@mairie-exemple.fr", siret="21000000610001"))
    verified.verify_email(link_token(outbox, "/verification-email"))
    for _ in range(5):
        with pytest.raises(SignInFailed):
            verified.sign_in(EMAIL, "wrong password!")
    verified.sign_in("autre@mairie-exemple.fr", PASSWORD)


def test_lock_out_window_is_stored(
    verified: AccountService, session_factory: sessionmaker[Session], clock: FrozenClock
) -> None:
    for _ in range(5):
        with pytest.raises(SignInFailed):
            verified.sign_in(EMAIL, "wrong password!")
    with session_factory() as s:
        user = s.scalars(select(User)).one()
        assert user.failed_sign_ins == 0
        assert user.locked_until is not None
        assert (user.locked_until - clock.now()).total_seconds() == 15 * 60


def test_identity_seam_signs_in_a_linked_account(verified: AccountService) -> None:
    user_id = verified.sign_in(EMAIL, PASSWORD).user_id
    assert verified.sign_in_with_identity("proconnect", "sub-123") is None
    verified.link_identity(user_id, "proconnect", "sub-123")
    signed_in = verified.sign_in_with_identity("proconnect", "sub-123")
    assert signed_in is not None
    assert (signed_in.user_id, signed_in.method) == (user_id, "proconnect")
