"""The contacts block over HTTP: saving it mails the controller a confirmation link, the
request page shows each contact's status with a resend button, the link confirms, and only
then does submission go through."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette
from starlette.testclient import TestClient

from guichet.accounts.models import User
from guichet.accounts.passwords import Passwords
from guichet.clock import FrozenClock
from guichet.db import transaction
from guichet.habilitation.request_models import HabilitationRequest, RequestStatus
from guichet.mail.outbox import Outbox
from guichet.pki import ensure_local_pki, issue_client_certificate
from tests.support.second_factor import finish_sign_in
from tests.unit.accounts.conftest import FAST_HASHER, PASSWORD
from tests.unit.habilitation.support import World, make_world, new_complete_request
from tests.unit.portal.conftest import csrf_of, newest_link


@pytest.fixture
def world(session_factory: sessionmaker[Session], clock: FrozenClock) -> World:
    hashed = Passwords(FAST_HASHER).hash(PASSWORD)
    with transaction(session_factory) as session:
        made = make_world(session, clock.now())
        for u in session.scalars(select(User)):
            u.password_hash = hashed
    return made


@pytest.fixture
def request_id(
    world: World, session_factory: sessionmaker[Session], clock: FrozenClock, tmp_path: Path
) -> uuid.UUID:
    pki = ensure_local_pki(tmp_path / "pki", clock.now(), ["127.0.0.1"])
    cert, _key = issue_client_certificate(pki, "qf client", "Ville A", 365, clock.now())
    with transaction(session_factory) as session:
        return new_complete_request(session, world, cert.decode(), clock.now()).id


@pytest.fixture
def browser(portal: Starlette) -> Iterator[TestClient]:
    with TestClient(portal, follow_redirects=False) as c:
        yield c


def sign_in(client: TestClient, email: str) -> None:
    client.cookies.clear()
    answer = client.post(
        "/connexion",
        data={"email": email, "password": PASSWORD, "csrf_token": csrf_of(client, "/connexion")},
    )
    assert answer.status_code == 303, answer.text
    finish_sign_in(client, answer, email)


def test_the_controller_confirms_from_the_mail_and_the_request_is_submitted(
    browser: TestClient,
    request_id: uuid.UUID,
    outbox: Outbox,
    clock: FrozenClock,
    session_factory: sessionmaker[Session],
) -> None:
    page_url = f"/demandes/{request_id}"
    sign_in(browser, "demandeur@ville-a.fr")
    contacts = {
        "controller_name": "Responsable",
        "controller_email": "rt@ville-a.fr",
        "technical_name": "Technique",
        "technical_email": "technique@ville-a.fr",
        "csrf_token": csrf_of(browser, page_url),
    }
    saved = browser.post(f"{page_url}/blocs/contacts", data=contacts)
    assert saved.status_code == 303
    [mail] = [m for m in outbox.list() if m.to == "rt@ville-a.fr"]
    assert mail.subject == "Confirmez votre adresse de contact"
    page = browser.get(page_url).text
    assert 'id="statut-controller"' in page
    assert "en attente" in page
    assert "Renvoi possible dans une minute" in page
    assert "adresse non confirmée" in page  # the field's error

    early = browser.post(f"{page_url}/soumettre", data={"csrf_token": csrf_of(browser, page_url)})
    assert early.status_code == 400
    assert "Responsable de traitement : adresse non confirmée" in early.text

    clock.advance(60)
    page = browser.get(page_url).text
    assert f'action="{page_url}/contacts/controller/renvoyer"' in page
    resent = browser.post(
        f"{page_url}/contacts/controller/renvoyer", data={"csrf_token": csrf_of(browser, page_url)}
    )
    assert resent.status_code == 303
    assert len([m for m in outbox.list() if m.to == "rt@ville-a.fr"]) == 2
    assert browser.post(f"{page_url}/contacts/controller/renvoyer").status_code == 403  # CSRF

    # The contact, in another browser, without an account.
    confirmed = TestClient(browser.app).get(newest_link(outbox, "/contacts/confirmation"))
    assert confirmed.status_code == 200
    assert "Adresse confirmée" in confirmed.text
    page = browser.get(page_url).text
    assert "adresse non confirmée" not in page
    submitted = browser.post(
        f"{page_url}/soumettre", data={"csrf_token": csrf_of(browser, page_url)}
    )
    assert submitted.status_code == 303, submitted.text
    with session_factory() as s:
        assert s.get_one(HabilitationRequest, request_id).status is RequestStatus.SUBMITTED


def test_another_organisation_cannot_resend(
    browser: TestClient, request_id: uuid.UUID, outbox: Outbox, clock: FrozenClock
) -> None:
    sign_in(browser, "demandeur@societe-b.fr")
    refused = browser.post(
        f"/demandes/{request_id}/contacts/controller/renvoyer",
        data={"csrf_token": csrf_of(browser, "/demandes")},
    )
    assert refused.status_code == 404
    assert outbox.list() == []
