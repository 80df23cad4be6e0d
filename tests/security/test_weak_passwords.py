"""Issue 11 §8: passwords were accepted with their length as the only rule."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.testclient import TestClient

from guichet.accounts.models import User
from tests.security.conftest import PortalFactory
from tests.unit.portal.conftest import csrf_of, sign_up_data

# What a guessing attack tries first: leaked lists, keyboard rows, repeats, the address.
WEAK = ["Password1234", "azertyuiop123", "123456789012", "motdepasse2024", "camillemartin1"]


@pytest.mark.parametrize("password", WEAK)
def test_sign_up_refuses_a_guessable_password(
    make_portal: PortalFactory, session_factory: sessionmaker[Session], password: str
) -> None:
    portal = make_portal(portal_public_url="http://testserver")
    with TestClient(portal, follow_redirects=False) as visitor:
        answer = visitor.post(
            "/inscription",
            data={
                **sign_up_data(email="camille.martin@mairie-exemple.fr", password=password),
                "csrf_token": csrf_of(visitor, "/inscription"),
            },
        )
    assert answer.status_code == 400
    assert "trop facile à deviner" in answer.text
    assert 'aria-describedby="password-messages"' in answer.text
    with session_factory() as s:
        assert s.scalar(select(func.count()).select_from(User)) == 0
