"""The instructors' pages over HTTP: queue, decisions with mandatory reasons, comments, the
diff since the last review, a habilitation's statistics and management actions, and who is
refused."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session, sessionmaker
from starlette.testclient import TestClient

from guichet.clock import FrozenClock
from guichet.db import transaction
from guichet.habilitation.models import Habilitation, HabilitationStatus
from guichet.habilitation.request_models import HabilitationRequest, RequestStatus
from tests.unit.habilitation.support import World
from tests.unit.portal.test_requests_pages import (
    browser,  # noqa: F401 - fixture
    cert_pem,  # noqa: F401 - fixture
    post,
    sign_in,
    submitted_request,
    world,  # noqa: F401 - fixture
)


def status_of(factory: sessionmaker[Session], request_id: uuid.UUID) -> RequestStatus:
    with factory() as session:
        found = session.get(HabilitationRequest, request_id)
        assert found is not None
        return found.status


def test_queue_and_request_view_are_for_instructors_only(
    browser: TestClient,  # noqa: F811
    world: World,  # noqa: F811
    cert_pem: str,  # noqa: F811
    session_factory: sessionmaker[Session],
    clock: FrozenClock,
) -> None:
    request_id = submitted_request(session_factory, world, cert_pem, clock)
    sign_in(browser, "applicant")
    assert browser.get("/instruction").status_code == 403
    assert browser.get(f"/instruction/demandes/{request_id}").status_code == 403
    sign_in(browser, "instructor")
    queue = browser.get("/instruction")
    assert queue.status_code == 200
    assert "À instruire (1)" in queue.text
    assert f"/instruction/demandes/{request_id}" in queue.text
    view = browser.get(f"/instruction/demandes/{request_id}")
    assert view.status_code == 200
    for label in ["Informations générales", "Cadre juridique", "Données techniques"]:
        assert label in view.text
    assert "Valider et délivrer les accès" in view.text
    assert browser.get(f"/instruction/demandes/{uuid.uuid4()}").status_code == 404


def test_an_instructor_cannot_validate_their_own_organisations_request(
    browser: TestClient,  # noqa: F811
    world: World,  # noqa: F811
    cert_pem: str,  # noqa: F811
    session_factory: sessionmaker[Session],
    clock: FrozenClock,
) -> None:
    request_id = submitted_request(session_factory, world, cert_pem, clock)
    sign_in(browser, "instructor_of_a")
    page = f"/instruction/demandes/{request_id}"
    view = browser.get(page)
    assert "elle émane d'une organisation dont vous êtes membre" in view.text
    assert "Valider et délivrer les accès" not in view.text
    answer = post(browser, f"{page}/decision", page, {"action": "validate", "reason": "Je valide."})
    assert answer.status_code == 403
    assert "fr-alert--error" in answer.text
    assert status_of(session_factory, request_id) is RequestStatus.SUBMITTED


def test_decisions_need_a_reason_and_the_partner_sees_why_and_the_diff(
    browser: TestClient,  # noqa: F811
    world: World,  # noqa: F811
    cert_pem: str,  # noqa: F811
    session_factory: sessionmaker[Session],
    clock: FrozenClock,
) -> None:
    request_id = submitted_request(session_factory, world, cert_pem, clock)
    page = f"/instruction/demandes/{request_id}"
    sign_in(browser, "instructor")
    no_reason = post(
        browser, f"{page}/decision", page, {"action": "request_changes", "reason": " "}
    )
    assert no_reason.status_code == 400
    assert 'aria-describedby="f-reason-messages"' in no_reason.text
    assert "écrivez le motif" in no_reason.text
    assert status_of(session_factory, request_id) is RequestStatus.SUBMITTED
    commented = post(
        browser,
        f"{page}/commentaires",
        page,
        {"block": "personal_data", "text": "Précisez la durée de conservation."},
    )
    assert commented.status_code == 303
    changes = post(
        browser,
        f"{page}/decision",
        page,
        {"action": "request_changes", "reason": "La durée de conservation est à revoir."},
    )
    assert changes.status_code == 303
    assert status_of(session_factory, request_id) is RequestStatus.CHANGES_REQUESTED

    sign_in(browser, "applicant")
    mine = f"/demandes/{request_id}"
    shown = browser.get(mine).text
    assert "La durée de conservation est à revoir." in shown
    assert "Précisez la durée de conservation." in shown
    fixed = post(browser, f"{mine}/blocs/personal_data", mine, {"retention_months": "24"})
    assert fixed.status_code == 303
    assert post(browser, f"{mine}/soumettre", mine, {}).status_code == 303
    timeline = browser.get(mine).text
    assert "Ce qui a changé depuis la soumission précédente" in timeline

    sign_in(browser, "instructor")
    review = browser.get(page).text
    assert "Modifié depuis la dernière revue" in review
    assert "retention_months" in review
    validated = post(browser, f"{page}/decision", page, {"action": "validate", "reason": "OK."})
    assert validated.status_code == 303
    assert status_of(session_factory, request_id) is RequestStatus.VALIDATED
    assert "Voir l'habilitation et ses statistiques" in browser.get(page).text


def test_habilitation_view_statistics_and_suspension(
    browser: TestClient,  # noqa: F811
    world: World,  # noqa: F811
    cert_pem: str,  # noqa: F811
    session_factory: sessionmaker[Session],
    clock: FrozenClock,
) -> None:
    request_id = submitted_request(session_factory, world, cert_pem, clock)
    page = f"/instruction/demandes/{request_id}"
    sign_in(browser, "instructor")
    post(browser, f"{page}/decision", page, {"action": "validate", "reason": "OK."})
    with session_factory() as session:
        found = session.get(HabilitationRequest, request_id)
        assert found is not None
        hab_id = found.habilitation_id
    assert hab_id is not None
    hab_page = f"/instruction/habilitations/{hab_id}"
    view = browser.get(hab_page)
    assert view.status_code == 200
    assert "Appels des 7 derniers jours" in view.text
    missing = post(browser, f"{hab_page}/gestion", hab_page, {"action": "suspend", "reason": ""})
    assert missing.status_code == 400
    assert 'id="f-reason-suspend-messages"' in missing.text
    suspended = post(
        browser, f"{hab_page}/gestion", hab_page, {"action": "suspend", "reason": "Incident."}
    )
    assert suspended.status_code == 303
    with transaction(session_factory) as session:
        hab = session.get(Habilitation, hab_id)
        assert hab is not None
        assert hab.status is HabilitationStatus.SUSPENDED
    assert "Rétablir" in browser.get(hab_page).text
    sign_in(browser, "applicant")
    assert "Suspendue" in browser.get("/habilitations").text
    assert browser.get(hab_page).status_code == 403
