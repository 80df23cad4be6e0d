"""The instructors' pages over HTTP: queue, decisions with mandatory reasons, comments, the
diff since the last review, a habilitation's statistics and management actions, and who is
refused."""

from __future__ import annotations

import datetime as dt
import uuid
from html import unescape
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette
from starlette.testclient import TestClient

from guichet.accounts.models import ProviderRole
from guichet.accounts.passwords import Passwords
from guichet.accounts.service import create_user, grant_provider_role
from guichet.application.management import suspend_habilitation
from guichet.application.permissions import ConsoleActor
from guichet.clock import FrozenClock
from guichet.db import transaction
from guichet.habilitation.models import Habilitation, HabilitationStatus
from guichet.habilitation.request_models import (
    CredentialDelivery,
    HabilitationRequest,
    RequestStatus,
    SecurityCommitment,
)
from guichet.mail.outbox import Outbox
from tests.support.second_factor import finish_sign_in
from tests.unit.accounts.conftest import FAST_HASHER, PASSWORD
from tests.unit.habilitation.support import (
    SIRET_A,
    World,
    new_complete_request,
    production_request,
    validated,
)
from tests.unit.portal.test_requests_pages import (
    EMAILS,
    _validated_habilitation,
    browser,  # noqa: F401 - fixture
    cert_pem,  # noqa: F401 - fixture
    csrf,
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
    assert "Durée de conservation (en mois)" in review
    assert "retention_months" not in review
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


def _status(factory: sessionmaker[Session], hab_id: uuid.UUID) -> HabilitationStatus:
    with factory() as session:
        hab = session.get(Habilitation, hab_id)
        assert hab is not None
        return hab.status


def _administrator(factory: sessionmaker[Session], clock: FrozenClock) -> None:
    with transaction(factory) as session:
        admin = create_user(session, "admin@dgfip.test", "Admin", clock.now(), verified=True)
        admin.password_hash = Passwords(FAST_HASHER).hash(PASSWORD)
        grant_provider_role(session, admin, ProviderRole.ADMINISTRATOR, clock.now())
    EMAILS["administrator"] = "admin@dgfip.test"


def test_every_staff_role_lists_the_habilitations_and_partners_are_refused(
    browser: TestClient,  # noqa: F811
    world: World,  # noqa: F811
    cert_pem: str,  # noqa: F811
    session_factory: sessionmaker[Session],
    clock: FrozenClock,
    portal: Starlette,
) -> None:
    _, hab_id, _ = _validated_habilitation(session_factory, world, cert_pem, clock, portal)
    _administrator(session_factory, clock)
    listing = "/instruction/habilitations"
    page = f"{listing}/{hab_id}"
    for who in ("instructor", "operator", "security_officer", "administrator"):
        sign_in(browser, who)
        answer = browser.get(listing)
        assert answer.status_code == 200, who
        assert f'href="{page}"' in answer.text
        assert browser.get(page).status_code == 200, who
    # Only instructors have the queue; the other staff's menu leads to the list.
    for who in ("operator", "security_officer", "administrator"):
        sign_in(browser, who)
        assert browser.get("/instruction").status_code == 403, who
        assert 'href="/instruction/habilitations"' in browser.get("/mon-compte").text, who
    # Filters: state, environment, organisation (name or SIRET).
    sign_in(browser, "operator")
    assert f'href="{page}"' in browser.get(f"{listing}?etat=active&organisation=ville").text
    assert f'href="{page}"' in browser.get(f"{listing}?organisation=21000000610001").text
    assert f'href="{page}"' not in browser.get(f"{listing}?etat=suspended").text
    assert f'href="{page}"' not in browser.get(f"{listing}?environnement=production").text
    assert f'href="{page}"' not in browser.get(f"{listing}?organisation=Société B").text
    assert browser.get(f"{listing}?etat=<script>").status_code == 200
    # Partners, of the organisation or not, get nothing of the staff pages.
    for who in ("applicant", "technical", "stranger"):
        sign_in(browser, who)
        assert browser.get(listing).status_code == 403, who
        assert browser.get(page).status_code == 403, who
        refused = post(
            browser, f"{page}/gestion", "/habilitations", {"action": "suspend", "reason": "x"}
        )
        assert refused.status_code == 403, who
        assert "Suspendre" not in browser.get(listing).text
    assert _status(session_factory, hab_id) is HabilitationStatus.ACTIVE
    browser.cookies.clear()
    assert browser.get(listing).headers["location"] == "/connexion"


def test_each_role_sees_and_does_only_its_actions(
    browser: TestClient,  # noqa: F811
    world: World,  # noqa: F811
    cert_pem: str,  # noqa: F811
    session_factory: sessionmaker[Session],
    clock: FrozenClock,
    portal: Starlette,
) -> None:
    _, hab_id, _ = _validated_habilitation(session_factory, world, cert_pem, clock, portal)
    page = f"/instruction/habilitations/{hab_id}"

    def act(action: str, organisation: str = "Ville A") -> int:
        form = {"action": action, "reason": "Motif.", "organisation_confirm": organisation}
        answer = post(browser, f"{page}/gestion", page, form)
        return int(answer.status_code)

    sign_in(browser, "operator")
    shown = browser.get(page).text
    assert 'value="suspend"' in shown
    assert 'value="terminate"' not in shown
    assert 'value="notice"' not in shown
    assert act("terminate") == 403
    assert act("notice") == 403
    assert act("suspend") == 303
    assert _status(session_factory, hab_id) is HabilitationStatus.SUSPENDED
    assert 'value="resume"' in browser.get(page).text
    assert act("resume") == 303
    assert _status(session_factory, hab_id) is HabilitationStatus.ACTIVE

    sign_in(browser, "instructor")
    shown = browser.get(page).text
    assert 'value="notice"' in shown
    assert 'value="terminate"' not in shown
    assert act("terminate") == 403
    assert act("bogus") == 404

    sign_in(browser, "security_officer")
    shown = browser.get(page).text
    assert 'value="terminate"' in shown
    assert 'value="suspend"' in shown
    assert act("suspend") == 303
    assert 'value="resume"' not in browser.get(page).text
    assert act("resume") == 403
    assert _status(session_factory, hab_id) is HabilitationStatus.SUSPENDED
    # A termination is confirmed by typing the organisation's name (case and spaces aside).
    assert act("terminate", "Société B") == 400
    assert _status(session_factory, hab_id) is HabilitationStatus.SUSPENDED
    assert act("terminate", "  ville   a ") == 303
    assert _status(session_factory, hab_id) is HabilitationStatus.TERMINATED
    final = browser.get(page).text
    assert "Habilitation résiliée : plus aucune action." in final
    assert "Résiliée" in final
    assert "par RSSI" in final


def test_production_on_an_expired_attestation_is_not_resumed_by_hand(
    browser: TestClient,  # noqa: F811
    world: World,  # noqa: F811
    cert_pem: str,  # noqa: F811
    session_factory: sessionmaker[Session],
    clock: FrozenClock,
    portal: Starlette,
    tmp_path: Path,
) -> None:
    master = portal.state.habilitations.master
    with transaction(session_factory) as session:
        sandbox = new_complete_request(session, world, cert_pem, clock.now())
        validated(session, world, sandbox, clock.now(), master)
        request = production_request(session, world, sandbox, tmp_path / "up", clock.now())
        hab_id = validated(session, world, request, clock.now(), master).habilitation_id
        commitment = session.scalar(
            select(SecurityCommitment).where(SecurityCommitment.habilitation_id == hab_id)
        )
        assert commitment is not None
        # The attestation expired yesterday; the watch suspended production.
        commitment.expires_at = clock.now() - dt.timedelta(days=1)
        hab = session.get(Habilitation, hab_id)
        assert hab is not None
        suspend_habilitation(session, hab, ConsoleActor("scheduler"), "Échéance", now=clock.now())
    page = f"/instruction/habilitations/{hab_id}"
    sign_in(browser, "operator")
    shown = browser.get(page).text
    assert 'id="engagement-expire"' in shown
    assert 'value="resume"' not in shown
    answer = post(browser, f"{page}/gestion", page, {"action": "resume", "reason": "Je rétablis."})
    assert answer.status_code == 409
    assert "ne peut pas être rétablie à la main" in answer.text
    assert _status(session_factory, hab_id) is HabilitationStatus.SUSPENDED


def test_the_instructor_lands_on_the_queue_which_names_the_filing_organisation(
    browser: TestClient,  # noqa: F811
    world: World,  # noqa: F811
    cert_pem: str,  # noqa: F811
    session_factory: sessionmaker[Session],
    clock: FrozenClock,
) -> None:
    request_id = submitted_request(session_factory, world, cert_pem, clock)
    browser.cookies.clear()
    answer = browser.post(
        "/connexion",
        data={"email": EMAILS["instructor"], "password": PASSWORD, "csrf_token": csrf(browser)},
    )
    # Staff enrol a second factor first (issue 14, C4); the page after leads to the queue,
    # and so does every later sign-in once the factor is given.
    assert answer.headers["location"] == "/second-facteur/ajout"
    assert 'href="/instruction"' in finish_sign_in(browser, answer, EMAILS["instructor"]).text
    browser.cookies.clear()
    answer = browser.post(
        "/connexion",
        data={"email": EMAILS["instructor"], "password": PASSWORD, "csrf_token": csrf(browser)},
    )
    assert answer.headers["location"] == "/connexion/second-facteur"
    answer = finish_sign_in(browser, answer, EMAILS["instructor"])
    assert answer.headers["location"] == "/instruction"
    queue = browser.get("/instruction").text
    for shown in ["Ville A", SIRET_A, "Organisation", "SIRET", "Ancienneté", "0 jour"]:
        assert shown in queue, shown
    view = browser.get(f"/instruction/demandes/{request_id}").text
    assert "Déposée par <strong>Ville A</strong>" in view
    assert f"SIRET {SIRET_A}" in view
    assert "il y a 0 jour" in view
    # A partner still lands on their account page.
    browser.cookies.clear()
    answer = browser.post(
        "/connexion",
        data={"email": EMAILS["applicant"], "password": PASSWORD, "csrf_token": csrf(browser)},
    )
    assert answer.headers["location"] == "/mon-compte"


def test_each_role_finds_its_next_step_and_the_mail_links_to_the_credentials(
    browser: TestClient,  # noqa: F811
    world: World,  # noqa: F811
    cert_pem: str,  # noqa: F811
    session_factory: sessionmaker[Session],
    clock: FrozenClock,
    tmp_path: Path,
) -> None:
    request_id = submitted_request(session_factory, world, cert_pem, clock)
    sign_in(browser, "applicant")
    home = unescape(browser.get("/mon-compte").text)
    assert "Vos prochaines étapes" in home
    assert "En attente d'instruction" in home
    assert f'href="/demandes/{request_id}"' in home
    assert "Demandes à instruire" not in home

    sign_in(browser, "instructor")
    home = unescape(browser.get("/mon-compte").text)
    assert "Demandes à instruire (1)" in home
    assert "Ville A" in home
    assert SIRET_A in home
    assert "Vos prochaines étapes" not in home
    page = f"/instruction/demandes/{request_id}"
    post(browser, f"{page}/decision", page, {"action": "validate", "reason": "OK."})
    assert "Demandes à instruire (0)" in unescape(browser.get("/mon-compte").text)

    outbox = Outbox(tmp_path / "outbox")
    ready = [
        m
        for m in (outbox.get(e.id) for e in outbox.list())
        if m and "sont prêts" in m.entry.subject
    ]
    assert len(ready) == 1
    assert ready[0].entry.to == EMAILS["technical"]
    assert "http://testserver/identifiants" in ready[0].text

    sign_in(browser, "technical")
    home = unescape(browser.get("/mon-compte").text)
    assert "Récupérez vos identifiants" in home
    assert 'href="/identifiants"' in home
    habilitations = unescape(browser.get("/habilitations").text)
    assert "Vos identifiants vous attendent" in habilitations
    assert "Récupérer mes identifiants" in habilitations
    assert "Renouveler le secret" not in habilitations
    with session_factory() as session:
        delivery = session.scalar(select(CredentialDelivery))
        assert delivery is not None
    post(browser, f"/identifiants/{delivery.id}", "/identifiants", {})
    assert "Récupérez vos identifiants" not in unescape(browser.get("/mon-compte").text)
    habilitations = unescape(browser.get("/habilitations").text)
    assert "Vos identifiants vous attendent" not in habilitations
    assert "Renouveler le secret" in habilitations

    sign_in(browser, "applicant")  # validated: nothing left for the applicant to do
    home = unescape(browser.get("/mon-compte").text)
    assert "En attente d'instruction" not in home
    assert "Récupérez vos identifiants" not in home
