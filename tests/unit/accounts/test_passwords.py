"""The password policy and argon2id hashing."""

from __future__ import annotations

import pytest

from guichet.accounts.passwords import Passwords, password_problem
from tests.unit.accounts.conftest import FAST_HASHER


@pytest.mark.parametrize(
    ("password", "refused"),
    [
        ("a" * 11, True),
        ("tulipe balcon", False),
        ("jean.dupont@example.org", True),
        ("Jean.Dupont", True),
        ("jean.dupont@example.org!", False),
        ("tulipe orange 47 balcon " + "x" * 232, False),
        ("tulipe orange 47 balcon " + "x" * 233, True),
        ("a" * 12, True),  # repeated
        ("azertyuiop123", True),  # a keyboard row
        ("Password1234", True),  # a common password
    ],
)
def test_policy(password: str, refused: bool) -> None:
    assert (password_problem(password, "jean.dupont@example.org") is not None) is refused


def test_hash_verify_and_no_hash() -> None:
    passwords = Passwords(FAST_HASHER)
    stored = passwords.hash("un mot de passe solide")
    assert stored.startswith("$argon2id$")
    assert passwords.verify(stored, "un mot de passe solide")
    assert not passwords.verify(stored, "un autre mot de passe")
    assert not passwords.verify(None, "un mot de passe solide")
    assert not passwords.verify("not a hash", "x")


def test_weaker_parameters_ask_for_a_rehash() -> None:
    old = Passwords(FAST_HASHER).hash("un mot de passe solide")
    assert Passwords().needs_rehash(old)
