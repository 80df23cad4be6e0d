"""An administrator resets a person's second factors from the "Agents" page (issue 14, C4): a
staff account from its row, a partner member's by its address, after a DSFR confirmation; the
person's factors, recovery codes and sessions go, a mail tells them (no secret in it), and
they enrol a new factor at their next sign-in. Other roles, one's own account and unknown
accounts are refused."""

from __future__ import annotations

import re
import uuid
from html import unescape

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette
from starlette.testclient import TestClient

from guichet.accounts.models import RecoveryCode, SecondFactor
from guichet.clock import FrozenClock
from guichet.db import transaction
from guichet.mail.outbox import Outbox
from guichet.secrets import MasterSecret
from tests.support.second_factor import ADD_PATH, TOTP_SECRET, enrol_totp
from tests.unit.accounts.conftest import PASSWORD
from tests.unit.habilitation.support import World
from tests.unit.portal.test_requests_pages import (
    EMAILS,
    browser,  # noqa: F401 - fixture
    csrf,
    post,
    sign_in,
    world,  # noqa: F401 - fixture
)
from tests.unit.portal.test_staff_accounts_pages import ADMIN, _add_admin, _sign_in_admin

AGENTS = "/instruction/agents"
RESET = AGENTS + "/second-facteur"
OPENED = re.compile(r'data-fr-opened="true" aria-controls="([^"]+)"')


def _factors(session_factory: sessionmaker[Session], user_id: uuid.UUID) -> int:
    with session_factory() as session:
        return len(
            session.scalars(select(SecondFactor).where(SecondFactor.user_id == user_id)).all()
        ) + len(session.scalars(select(RecoveryCode).where(RecoveryCode.user_id == user_id)).all())


def _mails_to(outbox: Outbox, address: str) -> list[str]:
    texts = []
    for entry in outbox.list():
        if entry.to == address and entry.subject == "Votre second facteur a été réinitialisé":
            mail = outbox.get(entry.id)
            assert mail is not None
            texts.append(mail.text)
    return texts


def test_an_administrator_resets_a_staff_account_s_second_factor(
    browser: TestClient,  # noqa: F811
    world: World,  # noqa: F811
    portal: Starlette,
    session_factory: sessionmaker[Session],
    clock: FrozenClock,
    outbox: Outbox,
) -> None:
    # The instructor enrols a factor at their first sign-in and keeps a session open.
    with TestClient(portal, follow_redirects=False) as instructor:
        sign_in(instructor, "instructor")
        assert instructor.get("/mon-compte").status_code == 200
        assert _factors(session_factory, world.instructor) > 1  # the factor, its codes

        _add_admin(session_factory, clock)
        _sign_in_admin(browser)
        page = browser.get(AGENTS)
        assert page.status_code == 200, page.text
        assert "Second facteur : 1 enregistré" in page.text
        assert "Réinitialiser le second facteur…" in page.text
        assert f'action="{AGENTS}/{world.instructor}/second-facteur"' in page.text

        # The modal's box unchecked: nothing done, the page again with the modal open.
        target = f"{AGENTS}/{world.instructor}/second-facteur"
        unchecked = post(browser, target, AGENTS, {})
        assert unchecked.status_code == 400
        assert "Cochez la case pour confirmer" in unchecked.text
        opened = OPENED.search(unchecked.text)
        assert opened is not None
        assert opened[1] == f"second-facteur-{world.instructor}"
        assert _factors(session_factory, world.instructor) > 1

        done = post(browser, target, AGENTS, {"confirm": "1"})
        assert done.status_code == 303, done.text
        assert done.headers["location"] == AGENTS
        assert _factors(session_factory, world.instructor) == 0
        # Their open session ended.
        ended = instructor.get("/mon-compte")
        assert ended.status_code in {302, 303, 307}
        assert ended.headers["location"].startswith("/connexion")

    [text] = _mails_to(outbox, EMAILS["instructor"])
    assert "un administrateur du portail guichet a réinitialisé votre second facteur" in text
    assert "http://testserver/connexion" in text
    assert "token=" not in text
    assert TOTP_SECRET not in text
    # At the next sign-in, a new factor is enrolled before anything else.
    browser.cookies.clear()
    answer = browser.post(
        "/connexion",
        data={
            "email": EMAILS["instructor"],
            "password": PASSWORD,
            "csrf_token": csrf(browser),
        },
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == ADD_PATH


def test_an_administrator_resets_a_partner_member_by_address(
    browser: TestClient,  # noqa: F811
    world: World,  # noqa: F811
    session_factory: sessionmaker[Session],
    clock: FrozenClock,
    master_secret: MasterSecret,
    outbox: Outbox,
) -> None:
    with transaction(session_factory) as session:
        enrol_totp(session, master_secret, world.applicant, clock.now())
    admin_id = _add_admin(session_factory, clock)
    _sign_in_admin(browser)
    page = browser.get(AGENTS)
    assert "Second facteur d'un compte partenaire" in unescape(page.text)
    assert f'action="{RESET}"' in page.text

    # A partner's account is not reset from a staff row (it has none).
    assert (
        post(
            browser, f"{AGENTS}/{world.applicant}/second-facteur", AGENTS, {"confirm": "1"}
        ).status_code
        == 404
    )
    missing = post(browser, RESET, AGENTS, {"email": "", "confirm": "1"})
    assert missing.status_code == 400
    assert "Indiquez l'adresse du compte" in unescape(missing.text)
    unknown = post(browser, RESET, AGENTS, {"email": "personne@nulle-part.test", "confirm": "1"})
    assert unknown.status_code == 400
    assert "Aucun compte « personne@nulle-part.test »" in unescape(unknown.text)
    unchecked = post(browser, RESET, AGENTS, {"email": EMAILS["applicant"]})
    assert unchecked.status_code == 400
    assert 'value="demandeur@ville-a.fr"' in unchecked.text  # kept for the next try
    reopened = OPENED.search(unchecked.text)
    assert reopened is not None
    assert reopened[1] == "second-facteur-compte"
    assert _factors(session_factory, world.applicant) == 1

    # Never one's own factors from here.
    own = post(browser, RESET, AGENTS, {"email": ADMIN, "confirm": "1"})
    assert own.status_code == 403
    assert "votre propre second facteur" in unescape(own.text)
    assert _factors(session_factory, admin_id) > 0

    done = post(browser, RESET, AGENTS, {"email": EMAILS["applicant"], "confirm": "1"})
    assert done.status_code == 303, done.text
    assert _factors(session_factory, world.applicant) == 0
    [text] = _mails_to(outbox, EMAILS["applicant"])
    assert TOTP_SECRET not in text


def test_only_administrators_reset(
    browser: TestClient,  # noqa: F811
    world: World,  # noqa: F811
    session_factory: sessionmaker[Session],
    clock: FrozenClock,
    master_secret: MasterSecret,
) -> None:
    with transaction(session_factory) as session:
        enrol_totp(session, master_secret, world.applicant, clock.now())
    sign_in(browser, "operator")
    token = csrf(browser, "/mon-compte")
    for path, data in [
        (RESET, {"email": EMAILS["applicant"], "confirm": "1"}),
        (f"{AGENTS}/{world.instructor}/second-facteur", {"confirm": "1"}),
    ]:
        answer = browser.post(path, data={**data, "csrf_token": token})
        assert answer.status_code == 403, (path, answer.text)
    assert _factors(session_factory, world.applicant) == 1
    # Without the CSRF token, nobody.
    assert (
        browser.post(RESET, data={"email": EMAILS["applicant"], "confirm": "1"}).status_code == 403
    )
