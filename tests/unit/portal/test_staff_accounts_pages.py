"""The administrators' "Agents" page over HTTP (issue 12 §2): staff accounts disabled,
enabled and removed from the portal; other roles refused; an administrator never locks
themselves out."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from starlette.testclient import TestClient

from guichet.accounts.models import ProviderRole, User
from guichet.accounts.passwords import Passwords
from guichet.accounts.service import create_user, email_key, grant_provider_role
from guichet.clock import FrozenClock
from guichet.db import transaction
from tests.support.second_factor import finish_sign_in
from tests.unit.accounts.conftest import FAST_HASHER, PASSWORD
from tests.unit.habilitation.support import World
from tests.unit.portal.test_requests_pages import (
    EMAILS,
    browser,  # noqa: F401 - fixture
    csrf,
    post,
    sign_in,
    world,  # noqa: F401 - fixture
)

ADMIN = "administrateur@dgfip.test"
AGENTS = "/instruction/agents"


def _add_admin(session_factory: sessionmaker[Session], clock: FrozenClock) -> uuid.UUID:
    with transaction(session_factory) as session:
        user = create_user(
            session,
            ADMIN,
            "Administratrice",
            clock.now(),
            password_hash=Passwords(FAST_HASHER).hash(PASSWORD),
            verified=True,
        )
        grant_provider_role(session, user, ProviderRole.ADMINISTRATOR, clock.now())
        return user.id


def _sign_in_admin(client: TestClient) -> None:
    client.cookies.clear()
    answer = client.post(
        "/connexion", data={"email": ADMIN, "password": PASSWORD, "csrf_token": csrf(client)}
    )
    assert answer.status_code == 303, answer.text
    finish_sign_in(client, answer, ADMIN)


def _user(session_factory: sessionmaker[Session], who: str) -> User | None:
    with session_factory() as session:
        return session.scalar(select(User).where(User.email_key == email_key(EMAILS[who])))


def _password_sign_in(client: TestClient, who: str) -> int:
    client.cookies.clear()
    answer = client.post(
        "/connexion",
        data={"email": EMAILS[who], "password": PASSWORD, "csrf_token": csrf(client)},
    )
    return answer.status_code


def test_an_administrator_disables_enables_and_removes_staff(
    browser: TestClient,  # noqa: F811
    world: World,  # noqa: F811
    session_factory: sessionmaker[Session],
    clock: FrozenClock,
) -> None:
    admin_id = _add_admin(session_factory, clock)
    sign_in(browser, "operator")
    assert browser.get(AGENTS).status_code == 403
    _sign_in_admin(browser)
    page = browser.get(AGENTS)
    assert page.status_code == 200, page.text
    assert EMAILS["instructor"] in page.text
    assert "Votre compte" in page.text
    assert 'href="/instruction/agents"' in page.text  # in the administrator's navigation
    instructor = _user(session_factory, "instructor")
    assert instructor is not None
    target = f"{AGENTS}/{instructor.id}"
    answer = post(browser, target, AGENTS, {"action": "disable"})
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == AGENTS
    assert "Désactivé le" in browser.get(AGENTS).text
    disabled = _user(session_factory, "instructor")
    assert disabled is not None
    assert disabled.disabled_at is not None
    assert _password_sign_in(browser, "instructor") != 303  # refused, as a wrong password

    _sign_in_admin(browser)
    assert post(browser, target, AGENTS, {"action": "enable"}).status_code == 303
    enabled = _user(session_factory, "instructor")
    assert enabled is not None
    assert enabled.disabled_at is None

    operator = _user(session_factory, "operator")
    assert operator is not None
    assert post(browser, f"{AGENTS}/{operator.id}", AGENTS, {"action": "remove"}).status_code == 303
    assert EMAILS["operator"] not in browser.get(AGENTS).text

    # Never one's own account; an unknown action or account is not found.
    self_disable = post(browser, f"{AGENTS}/{admin_id}", AGENTS, {"action": "disable"})
    assert self_disable.status_code == 403
    assert "votre propre compte" in self_disable.text
    assert post(browser, target, AGENTS, {"action": "erase"}).status_code == 404
    assert (
        post(browser, f"{AGENTS}/{uuid.uuid4()}", AGENTS, {"action": "disable"}).status_code == 404
    )
