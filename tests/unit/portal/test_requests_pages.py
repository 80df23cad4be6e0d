"""The partner's habilitation pages over HTTP: the form block by block with its errors,
uploads, submission, who may see a request, CSRF, and the one-time credentials page."""

from __future__ import annotations

import datetime as dt
import re
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
from guichet.application.issuance import submit
from guichet.application.management import suspend_habilitation
from guichet.clock import FrozenClock
from guichet.db import transaction
from guichet.habilitation.models import Habilitation, HabilitationStatus
from guichet.habilitation.request_models import (
    CredentialDelivery,
    HabilitationRequest,
    RequestStatus,
)
from guichet.oauth.models import Client
from guichet.pki import ensure_local_pki, issue_client_certificate, self_signed_certificate
from guichet.secrets import MasterSecret, check_secret
from tests.support.second_factor import finish_sign_in
from tests.unit.accounts.conftest import FAST_HASHER, PASSWORD
from tests.unit.habilitation.support import (
    PDF,
    World,
    make_world,
    new_complete_request,
    user,
    validated,
)
from tests.unit.portal.conftest import CSRF

EMAILS = {
    "applicant": "demandeur@ville-a.fr",
    "technical": "technique@ville-a.fr",
    "stranger": "demandeur@societe-b.fr",
    "instructor": "instructeur@dgfip.test",
    "instructor_of_a": "agent@ville-a.fr",
    "operator": "exploitant@dgfip.test",
    "security_officer": "rssi@dgfip.test",
}


@pytest.fixture
def world(session_factory: sessionmaker[Session], clock: FrozenClock) -> World:
    """The people of ``tests.unit.habilitation.support``, each with a password."""
    hashed = Passwords(FAST_HASHER).hash(PASSWORD)
    with transaction(session_factory) as session:
        made = make_world(session, clock.now())
        for u in session.scalars(select(User)):
            u.password_hash = hashed
    return made


@pytest.fixture
def cert_pem(tmp_path: Path, clock: FrozenClock) -> str:
    pki = ensure_local_pki(tmp_path / "pki", clock.now(), ["127.0.0.1"])
    cert, _key = issue_client_certificate(pki, "qf client", "Ville A", 365, clock.now())
    return cert.decode()


@pytest.fixture
def browser(portal: Starlette) -> Iterator[TestClient]:
    with TestClient(portal, follow_redirects=False) as c:
        yield c


def csrf(client: TestClient, path: str = "/connexion") -> str:
    page = client.get(path)
    assert page.status_code == 200, page.text
    found = CSRF.search(page.text)
    assert found, path
    return found.group(1)


def sign_in(client: TestClient, who: str) -> None:
    client.cookies.clear()
    answer = client.post(
        "/connexion",
        data={"email": EMAILS[who], "password": PASSWORD, "csrf_token": csrf(client)},
    )
    assert answer.status_code == 303, answer.text
    # Staff give their second factor (issue 14, C4), enrolled on their first sign-in.
    finish_sign_in(client, answer, EMAILS[who])


def post(client: TestClient, path: str, page: str, data: dict[str, object], **kw: object):  # type: ignore[no-untyped-def]
    return client.post(path, data={**data, "csrf_token": csrf(client, page)}, **kw)  # type: ignore[arg-type]


def complete_request(
    session_factory: sessionmaker[Session], world: World, cert_pem: str, clock: FrozenClock
) -> uuid.UUID:
    with transaction(session_factory) as session:
        return new_complete_request(session, world, cert_pem, clock.now()).id


def submitted_request(
    session_factory: sessionmaker[Session], world: World, cert_pem: str, clock: FrozenClock
) -> uuid.UUID:
    request_id = complete_request(session_factory, world, cert_pem, clock)
    with transaction(session_factory) as session:
        found = session.get(HabilitationRequest, request_id)
        assert found is not None
        submit(session, found, user(session, world.applicant), now=clock.now())
    return request_id


def test_partner_files_a_request_step_by_step(
    browser: TestClient, world: World, cert_pem: str, tmp_path: Path
) -> None:
    sign_in(browser, "applicant")
    listing = browser.get("/demandes")
    assert listing.status_code == 200
    assert "Aucune demande" in listing.text
    assert "API FICOBA" in listing.text  # the API is chosen when the request starts
    created = post(browser, "/demandes", "/demandes", {"api": "impot_particulier"})
    assert created.status_code == 303
    step_one = created.headers["location"]
    assert re.fullmatch(r"/demandes/[0-9a-f-]{36}/etapes/1", step_one)
    page_url = step_one.removesuffix("/etapes/1")

    # One block per page, in the DSFR stepper; nothing is in error before it is checked.
    first = browser.get(step_one).text
    assert 'class="fr-stepper"' in first
    assert "Étape 1 sur 7" in first
    assert "Étape suivante :</span> Cadre juridique" in first
    assert 'id="f-basics-description" name="description"' in first
    assert "Précédent" not in first
    # Saved on "Suivant" though incomplete: the next step follows, the value is kept.
    saved = post(browser, f"{page_url}/blocs/basics", step_one, {"demarche": "Quotient"})
    assert saved.status_code == 303
    assert saved.headers["location"] == f"{page_url}/etapes/2"
    # The draft is resumed from the list, at its first step not complete.
    drafts = browser.get("/demandes").text
    assert "0 étape complète sur 7" in drafts
    assert f'href="{page_url}/etapes/1"' in drafts
    again = browser.get(step_one).text
    assert 'value="Quotient"' in again
    assert 'aria-invalid="true"' not in again
    # Asked from the summary, the step shows its errors next to each field.
    checked = browser.get(f"{step_one}?verifier=1").text
    assert 'aria-invalid="true" aria-describedby="f-basics-description-messages"' in checked
    assert re.search(
        r'id="f-basics-description-messages"[^>]*>\s*<p class="fr-message fr-message--error">'
        r"Description de la démarche : champ obligatoire",
        checked,
    )
    # "Précédent" saves too, and "Enregistrer le brouillon" stays on the step.
    back = post(
        browser,
        f"{page_url}/blocs/legal",
        f"{page_url}/etapes/2",
        {"reference": "Délibération", "aller": "precedent"},
    )
    assert back.headers["location"] == step_one
    assert 'value="Délibération"' in browser.get(f"{page_url}/etapes/2").text
    stay = post(browser, f"{page_url}/blocs/legal", step_one, {"aller": "rester"})
    assert stay.headers["location"] == f"{page_url}/etapes/2"
    # A refused character: the step again, as typed (the character left out), the error next
    # to its field; what was saved before is untouched.
    refused = post(
        browser,
        f"{page_url}/blocs/basics",
        step_one,
        {"demarche": "Quotient familial", "description": "Une\x07 description"},
    )
    assert refused.status_code == 400
    assert "Étape 1 sur 7" in refused.text
    assert 'value="Quotient familial"' in refused.text
    assert "Une description" in refused.text
    assert 'id="f-basics-description-messages"' in refused.text
    assert "caractère invisible non autorisé" in refused.text

    # The perimeter: each choice with its justification next to it, before any save.
    perimeter = browser.get(f"{page_url}/etapes/3").text
    assert 'id="f-perimeter-data_scopes-dgfip_rfr"' in perimeter
    assert 'id="f-perimeter-labels-dgfip_rfr"' in perimeter
    # A refused justification: the error sits next to it, the choices stay as typed.
    typo = post(
        browser,
        f"{page_url}/blocs/perimeter",
        step_one,
        {
            "data_scopes": ["dgfip_rfr", "dgfip_nbpart"],
            "justification_dgfip_rfr": "Le \x0b RFR",
            "justification_dgfip_nbpart": "Le nombre de parts divise le RFR.",
        },
    )
    assert typo.status_code == 400
    assert "Étape 3 sur 7" in typo.text
    assert re.search(
        r'id="f-perimeter-data_scopes-dgfip_rfr-messages"[^>]*>\s*<p class="fr-message '
        r'fr-message--error">Ce champ contient un caractère invisible',
        typo.text,
    )
    assert 'id="scope-dgfip_nbpart" name="data_scopes" value="dgfip_nbpart" checked' in typo.text
    assert "Le nombre de parts divise le RFR." in typo.text

    blocks = {
        "basics": {"demarche": "Quotient familial", "description": "d", "intended_use": "u"},
        "perimeter": {
            "data_scopes": ["dgfip_rfr"],
            "justification_dgfip_rfr": "Le quotient se calcule sur le RFR.",
            "label_dgfip_rfr": "Revenu fiscal de référence",
            "access_modes": ["spi"],
            "year_scopes": ["dgfip_annee_n_moins_1"],
            "r11494_domain": "famille",
        },
        "recipients": {"services": "Direction de l'éducation\nCCAS"},
        "personal_data": {"retention_months": "12"},
        "contacts": {
            "controller_name": "Le maire",
            "controller_email": "maire@ville-a.fr",
            "technical_name": "Technique",
            "technical_email": EMAILS["technical"],
        },
        "technical": {
            "ip_ranges": "127.0.0.1/32",
            "certificate_pem": cert_pem,
            "volumetry_per_minute": "50",
            "annual_files": "6000",
            "hourly_peak": "200",
        },
    }
    for block, values in blocks.items():
        answer = post(browser, f"{page_url}/blocs/{block}", step_one, values)
        assert answer.status_code == 303, (block, answer.text)
    # The last step leads to the summary.
    assert answer.headers["location"] == f"{page_url}#recapitulatif"

    # The legal text: a PNG is refused at the field, the text typed kept; a PDF is kept.
    legal = {"nature": "deliberation", "reference": "Délibération du 1er décembre", "url": ""}
    png = post(
        browser,
        f"{page_url}/blocs/legal",
        step_one,
        {**legal, "local_authority": "1"},
        files={"document": ("../../etc/passwd.pdf", b"\x89PNG\r\n\x1a\n....", "application/pdf")},
    )
    assert png.status_code == 400
    assert 'id="f-legal-document_id-messages"' in png.text
    assert "Seuls les documents PDF sont acceptés" in png.text
    assert 'value="Délibération du 1er décembre"' in png.text
    pdf = post(
        browser,
        f"{page_url}/blocs/legal",
        step_one,
        {**legal, "local_authority": "1"},
        files={"document": ("../../délibération.pdf", PDF, "application/pdf")},
    )
    assert pdf.status_code == 303
    assert "délibération.pdf" in browser.get(f"{page_url}/etapes/2").text
    technical = browser.get(f"{page_url}/etapes/7").text
    assert "Certificat enregistré" in technical
    assert "Empreinte SHA-256" in technical
    assert not list((tmp_path / "uploads").glob("*passwd*"))

    # The summary: every step's state and values, then the terms and the submission.
    summary = browser.get(page_url).text
    assert "7 étapes complètes sur 7" in summary
    assert "Quotient familial" in summary
    assert f'href="{page_url}/etapes/3"' in summary
    # Submitting before accepting the terms: every missing piece is listed, nothing moves.
    early = post(browser, f"{page_url}/soumettre", page_url, {})
    assert early.status_code == 400
    assert "Acceptez les conditions générales" in early.text
    accepted = post(
        browser,
        f"{page_url}/cgu",
        page_url,
        {"version": "impot_particulier-2023-01", "accept": "1"},
    )
    assert accepted.status_code == 303
    done = post(browser, f"{page_url}/soumettre", page_url, {})
    assert done.status_code == 303, done.text
    page = browser.get(page_url).text
    assert "Soumise" in page
    assert "Demande soumise" in page
    # Submitted: no step is a form any more.
    assert f'action="{page_url}/blocs/basics"' not in page
    assert browser.get(step_one).headers["location"] == page_url
    assert "Soumise" in browser.get("/demandes").text


def test_a_partner_of_another_organisation_gets_404(
    browser: TestClient,
    world: World,
    cert_pem: str,
    session_factory: sessionmaker[Session],
    clock: FrozenClock,
) -> None:
    request_id = complete_request(session_factory, world, cert_pem, clock)
    sign_in(browser, "stranger")
    answer = browser.get(f"/demandes/{request_id}")
    assert answer.status_code == 404
    assert "fr-alert--error" in answer.text
    assert "Quotient familial" not in answer.text
    token = csrf(browser, "/demandes")
    refused = browser.post(
        f"/demandes/{request_id}/blocs/basics", data={"demarche": "x", "csrf_token": token}
    )
    assert refused.status_code == 404
    assert browser.get("/demandes/not-a-uuid").status_code == 404
    assert browser.get(f"/demandes/{request_id}/../{uuid.uuid4()}").status_code == 404


def test_pages_need_a_signed_in_user(browser: TestClient, world: World) -> None:
    for path in ["/demandes", "/habilitations", "/identifiants", "/instruction"]:
        answer = browser.get(path)
        assert answer.status_code == 303
        assert answer.headers["location"] == "/connexion"


def test_every_new_post_checks_csrf(
    browser: TestClient,
    world: World,
    cert_pem: str,
    session_factory: sessionmaker[Session],
    clock: FrozenClock,
) -> None:
    request_id = complete_request(session_factory, world, cert_pem, clock)
    sign_in(browser, "applicant")
    paths = [
        "/demandes",
        f"/demandes/{request_id}/blocs/basics",
        f"/demandes/{request_id}/cgu",
        f"/demandes/{request_id}/soumettre",
        f"/demandes/{request_id}/production",
        f"/identifiants/{uuid.uuid4()}",
        f"/demandes/{request_id}/archiver",
        f"/habilitations/{uuid.uuid4()}/mise-a-jour",
        f"/habilitations/{uuid.uuid4()}/resiliation",
        f"/habilitations/{uuid.uuid4()}/secret",
        f"/instruction/demandes/{request_id}/decision",
        f"/instruction/demandes/{request_id}/commentaires",
        f"/instruction/habilitations/{uuid.uuid4()}/gestion",
    ]
    for path in paths:
        answer = browser.post(path, data={"csrf_token": "wrong", "reason": "x"})
        assert answer.status_code == 403, path
        assert "Formulaire expiré" in answer.text
    with session_factory() as session:
        found = session.get(HabilitationRequest, request_id)
        assert found is not None
        assert found.status.value == "draft"
        assert (
            session.scalar(select(HabilitationRequest).where(HabilitationRequest.id != request_id))
            is None
        )


def test_credentials_are_shown_once_to_the_technical_contact(
    browser: TestClient,
    world: World,
    cert_pem: str,
    session_factory: sessionmaker[Session],
    clock: FrozenClock,
    master_secret: MasterSecret,
    portal: Starlette,
) -> None:
    request_id = complete_request(session_factory, world, cert_pem, clock)
    with transaction(session_factory) as session:
        found = session.get(HabilitationRequest, request_id)
        assert found is not None
        issuance = validated(session, world, found, clock.now(), portal.state.habilitations.master)
    assert issuance.delivery_id is not None

    # The applicant has nothing to collect; the credentials are not theirs.
    sign_in(browser, "applicant")
    assert "Aucun identifiant en attente" in browser.get("/identifiants").text
    token = csrf(browser, "/identifiants")
    stolen = browser.post(f"/identifiants/{issuance.delivery_id}", data={"csrf_token": token})
    assert stolen.status_code == 404

    sign_in(browser, "technical")
    assert "Des identifiants vous attendent" in browser.get("/demandes").text
    listing = browser.get("/identifiants").text
    assert issuance.client_id in listing
    assert "ne sera affiché qu'une seule fois" in listing
    shown = post(browser, f"/identifiants/{issuance.delivery_id}", "/identifiants", {})
    assert shown.status_code == 200
    assert shown.headers["cache-control"] == "no-store"
    secret = re.search(r'<code id="client-secret">([^<]+)</code>', shown.text)
    assert secret
    assert len(secret.group(1)) >= 20
    # Then never again, anywhere.
    again = post(browser, f"/identifiants/{issuance.delivery_id}", "/identifiants", {})
    assert again.status_code == 409
    assert secret.group(1) not in again.text
    assert "Aucun identifiant en attente" in browser.get("/identifiants").text
    for path in ["/demandes", f"/demandes/{request_id}", "/habilitations"]:
        assert secret.group(1) not in browser.get(path).text
    with session_factory() as session:
        delivery = session.get(CredentialDelivery, issuance.delivery_id)
        assert delivery is not None
        assert delivery.secret_encrypted is None


def test_my_habilitations_show_status_quotas_and_last_calls_without_subject(
    browser: TestClient,
    world: World,
    cert_pem: str,
    session_factory: sessionmaker[Session],
    clock: FrozenClock,
    portal: Starlette,
) -> None:
    from guichet.journal.models import JournalRecord

    request_id = complete_request(session_factory, world, cert_pem, clock)
    with transaction(session_factory) as session:
        found = session.get(HabilitationRequest, request_id)
        assert found is not None
        issuance = validated(session, world, found, clock.now(), portal.state.habilitations.master)
        session.add(
            JournalRecord(
                id=uuid.uuid4(),
                at=clock.now(),
                environment="sandbox",
                correlation_id="c-1",
                partner_id=world.org_a,
                habilitation_id=issuance.habilitation_id,
                client_id=issuance.client_id,
                api="impot_particulier",
                operation="GET ir_assiettes_spi",
                source_ip="127.0.0.1",
                cert_thumbprint=None,
                subject="pseudonyme-secret-du-sujet",
                data_scopes=["dgfip_rfr"],
                outcome="ok",
                http_status=200,
                latency_ms=3.0,
                prev_hash="0" * 64,
                hash="1" * 64,
            )
        )
    sign_in(browser, "applicant")
    page = browser.get("/habilitations").text
    assert "Quotient familial" in page
    assert "Active" in page
    assert "50 appels par minute" in page
    # The data in the catalogue's words, the scope's code in the technical details.
    assert "Revenu fiscal de référence (RFR)" in page
    assert "(dgfip_rfr)" not in page
    assert "<code>dgfip_rfr</code>" in page
    assert "Revenus de l&#39;année N-1 (" in page
    assert "Situation d&#39;impôt sur le revenu (par numéro fiscal)" in page
    assert "Données transmises" in page
    assert "pseudonyme-secret-du-sujet" not in page
    sign_in(browser, "stranger")
    other = browser.get("/habilitations").text
    assert "Quotient familial" not in other
    assert "Situation d&#39;impôt sur le revenu" not in other
    with session_factory() as session:
        assert session.get(Habilitation, issuance.habilitation_id) is not None


def test_production_step_from_a_validated_sandbox_request(
    browser: TestClient,
    world: World,
    cert_pem: str,
    session_factory: sessionmaker[Session],
    clock: FrozenClock,
    portal: Starlette,
) -> None:
    request_id = complete_request(session_factory, world, cert_pem, clock)
    sign_in(browser, "applicant")
    assert "Passer en production" not in browser.get(f"/demandes/{request_id}").text
    with transaction(session_factory) as session:
        found = session.get(HabilitationRequest, request_id)
        assert found is not None
        validated(session, world, found, clock.now(), portal.state.habilitations.master)
    page = f"/demandes/{request_id}"
    assert "Passer en production" in browser.get(page).text
    started = post(browser, f"{page}/production", page, {})
    assert started.status_code == 303
    production = browser.get(started.headers["location"]).text
    assert "Prérequis de la production encore manquants" in production
    # The production step is the eighth, after the sandbox's seven.
    assert "8. Prérequis de la production" in production
    step = browser.get(f"{started.headers['location']}/etapes/8").text
    assert "Étape 8 sur 8" in step
    assert "Attestation d'homologation" in step
    # Submitting without the attestation is refused, field by field.
    refused = post(
        browser, f"{started.headers['location']}/soumettre", started.headers["location"], {}
    )
    assert refused.status_code == 400
    assert "Engagement de sécurité : joignez" in refused.text
    # A second production step is not offered.
    assert "Passer en production</button>" not in browser.get(page).text


def _validated_habilitation(
    session_factory: sessionmaker[Session],
    world: World,
    cert_pem: str,
    clock: FrozenClock,
    portal: Starlette,
) -> tuple[uuid.UUID, uuid.UUID, str]:
    request_id = complete_request(session_factory, world, cert_pem, clock)
    with transaction(session_factory) as session:
        found = session.get(HabilitationRequest, request_id)
        assert found is not None
        issuance = validated(session, world, found, clock.now(), portal.state.habilitations.master)
    return request_id, issuance.habilitation_id, issuance.client_id


def _call(
    factory: sessionmaker[Session],
    world: World,
    hab_id: uuid.UUID,
    at: dt.datetime,
    status: int = 200,
) -> None:
    from guichet.journal.models import JournalRecord

    with transaction(factory) as session:
        session.add(
            JournalRecord(
                id=uuid.uuid4(),
                at=at,
                environment="sandbox",
                correlation_id=str(uuid.uuid4()),
                partner_id=world.org_a,
                habilitation_id=hab_id,
                client_id="c",
                api="impot_particulier",
                operation="ir_assiettes",
                source_ip="127.0.0.1",
                cert_thumbprint=None,
                subject=None,
                data_scopes=[],
                outcome="ok" if status == 200 else "refused",
                http_status=status,
                latency_ms=1.0,
                prev_hash="0" * 64,
                hash="1" * 64,
            )
        )


def test_my_habilitations_show_history_client_id_and_the_minute_s_quota_use(
    browser: TestClient,
    world: World,
    cert_pem: str,
    session_factory: sessionmaker[Session],
    clock: FrozenClock,
    portal: Starlette,
) -> None:
    _, hab_id, client_id = _validated_habilitation(session_factory, world, cert_pem, clock, portal)
    now = clock.now()
    _call(session_factory, world, hab_id, now - dt.timedelta(seconds=10))
    _call(session_factory, world, hab_id, now - dt.timedelta(seconds=30))
    _call(session_factory, world, hab_id, now - dt.timedelta(seconds=20), status=429)
    _call(session_factory, world, hab_id, now - dt.timedelta(seconds=20), status=403)
    _call(session_factory, world, hab_id, now - dt.timedelta(seconds=61))
    with transaction(session_factory) as session:
        hab = session.get(Habilitation, hab_id)
        assert hab is not None
        suspend_habilitation(
            session, hab, user(session, world.operator), "Maintenance", now=clock.now()
        )
    sign_in(browser, "technical")
    # Collected or not, the client_id stays on the page.
    with session_factory() as session:
        delivery = session.scalar(select(CredentialDelivery))
        assert delivery is not None
    post(browser, f"/identifiants/{delivery.id}", "/identifiants", {})
    page = browser.get("/habilitations").text
    assert f'<code class="client-id">{client_id}</code>' in page
    assert "API Impôt Particulier : 2 appels sur 50 par minute (4 %)" in page
    assert "D'après le journal des échanges" in page
    assert re.search(r"Habilitation délivrée \(demande validée\).*Suspendue", page, re.S)
    assert "Motif : Maintenance" in page
    # One badge per card, its status: the history does not use badges.
    assert page.count('class="fr-badge') == 1
    assert "par Exploitant" in page
    sign_in(browser, "stranger")
    assert client_id not in browser.get("/habilitations").text


def test_partner_updates_the_habilitation_by_a_new_request_and_archives_it(
    browser: TestClient,
    world: World,
    cert_pem: str,
    session_factory: sessionmaker[Session],
    clock: FrozenClock,
    portal: Starlette,
) -> None:
    request_id, hab_id, _ = _validated_habilitation(session_factory, world, cert_pem, clock, portal)
    update_url = f"/habilitations/{hab_id}/mise-a-jour"
    sign_in(browser, "stranger")
    assert post(browser, update_url, "/habilitations", {}).status_code == 404
    sign_in(browser, "instructor")
    assert post(browser, update_url, "/instruction", {}).status_code == 404
    sign_in(browser, "applicant")
    assert f'action="{update_url}"' in browser.get("/habilitations").text
    assert f'action="{update_url}"' in browser.get(f"/demandes/{request_id}").text
    started = post(browser, update_url, "/habilitations", {})
    assert started.status_code == 303
    draft_url = started.headers["location"]
    # A second click leads to the same draft, not a second one.
    assert post(browser, update_url, "/habilitations", {}).headers["location"] == draft_url
    with session_factory() as session:
        draft = session.get(HabilitationRequest, uuid.UUID(draft_url.rsplit("/", 1)[1]))
        assert draft is not None
        assert draft.parent_habilitation_id == hab_id
        assert draft.status is RequestStatus.DRAFT
        assert draft.data["basics"]["demarche"] == "Quotient familial"
    assert f'href="{draft_url}"' in browser.get("/habilitations").text
    assert f'action="{update_url}"' not in browser.get(f"/demandes/{request_id}").text

    # Archiving: a stranger does not learn the request exists; a member archives it.
    sign_in(browser, "stranger")
    assert post(browser, f"{draft_url}/archiver", "/habilitations", {}).status_code == 404
    sign_in(browser, "applicant")
    page = browser.get(draft_url).text
    assert "Archiver la demande" in page
    archived = post(browser, f"{draft_url}/archiver", draft_url, {"reason": "Plus utile."})
    assert archived.status_code == 303
    page = browser.get(draft_url).text
    assert "Archivée" in page
    assert "Motif : Plus utile." in page
    assert "Archiver la demande</button>" not in page
    again = post(browser, f"{draft_url}/archiver", draft_url, {})
    assert again.status_code == 409
    # The habilitation can be updated again.
    assert f'action="{update_url}"' in browser.get("/habilitations").text


def test_a_submitted_request_is_not_archived(
    browser: TestClient,
    world: World,
    cert_pem: str,
    session_factory: sessionmaker[Session],
    clock: FrozenClock,
) -> None:
    request_id = submitted_request(session_factory, world, cert_pem, clock)
    page = f"/demandes/{request_id}"
    sign_in(browser, "applicant")
    assert "Archiver la demande" not in browser.get(page).text
    assert post(browser, f"{page}/archiver", page, {}).status_code == 409
    with session_factory() as session:
        found = session.get(HabilitationRequest, request_id)
        assert found is not None
        assert found.status is RequestStatus.SUBMITTED


def test_partner_gives_termination_notice_with_a_reason(
    browser: TestClient,
    world: World,
    cert_pem: str,
    session_factory: sessionmaker[Session],
    clock: FrozenClock,
    portal: Starlette,
) -> None:
    _, hab_id, _ = _validated_habilitation(session_factory, world, cert_pem, clock, portal)
    url = f"/habilitations/{hab_id}/resiliation"
    sign_in(browser, "stranger")
    name = "Ville A"
    answer = post(browser, url, "/habilitations", {"reason": "x", "organisation_confirm": name})
    assert answer.status_code == 404
    sign_in(browser, "applicant")
    unconfirmed = post(browser, url, "/habilitations", {"reason": "Fin du service."})
    assert unconfirmed.status_code == 400
    assert "Saisissez exactement le nom de l&#39;organisation" in unconfirmed.text
    # The confirmation dialog opens again on its error.
    assert 'data-fr-opened="true" aria-controls="resilier-' in unconfirmed.text
    no_reason = post(browser, url, "/habilitations", {"reason": " ", "organisation_confirm": name})
    assert no_reason.status_code == 400
    assert f'id="f-notice-{hab_id}-messages"' in no_reason.text
    assert "Une résiliation est motivée par écrit." in no_reason.text
    with session_factory() as session:
        hab = session.get(Habilitation, hab_id)
        assert hab is not None
        assert hab.valid_until is None
    done = post(
        browser, url, "/habilitations", {"reason": "Fin du service.", "organisation_confirm": name}
    )
    assert done.status_code == 303
    with session_factory() as session:
        hab = session.get(Habilitation, hab_id)
        assert hab is not None
        assert hab.status is HabilitationStatus.ACTIVE  # calls go on during the notice
        assert hab.valid_until == dt.datetime(2027, 1, 23, 10, 0, tzinfo=dt.UTC)
    page = browser.get("/habilitations").text
    assert "Préavis de résiliation de deux mois" in page
    assert "Résiliation enregistrée" in page  # the notice the action left (post/redirect/get)
    assert "Résiliation enregistrée" not in browser.get("/habilitations").text  # shown once
    assert "jusqu'au 23/01/2027 à 11:00" in page  # Paris time (10:00 UTC)
    assert f'action="{url}"' not in page
    again = {"reason": "x", "organisation_confirm": name}
    assert post(browser, url, "/habilitations", again).status_code == 409


def test_the_technical_contact_renews_the_secret_and_collects_it_once(
    browser: TestClient,
    world: World,
    cert_pem: str,
    session_factory: sessionmaker[Session],
    clock: FrozenClock,
    portal: Starlette,
) -> None:
    _, hab_id, client_id = _validated_habilitation(session_factory, world, cert_pem, clock, portal)
    url = f"/habilitations/{hab_id}/secret"
    sign_in(browser, "applicant")
    assert f'action="{url}"' not in browser.get("/habilitations").text
    assert post(browser, url, "/habilitations", {"confirm": "1"}).status_code == 403
    sign_in(browser, "stranger")
    assert post(browser, url, "/habilitations", {"confirm": "1"}).status_code == 404
    sign_in(browser, "technical")
    # Not offered before the first secret was collected: the page leads to the credentials.
    first = browser.get("/habilitations").text
    assert f'action="{url}"' not in first
    assert "Récupérer mes identifiants" in first
    with session_factory() as session:
        delivery = session.scalar(select(CredentialDelivery))
        assert delivery is not None
    post(browser, f"/identifiants/{delivery.id}", "/identifiants", {})
    collected = browser.get("/habilitations").text
    assert f'action="{url}"' in collected
    assert "Récupérer mes identifiants" not in collected
    unconfirmed = post(browser, url, "/habilitations", {})
    assert unconfirmed.status_code == 400
    assert "ancien secret cessera aussitôt de fonctionner" in unconfirmed.text
    renewed = post(browser, url, "/habilitations", {"confirm": "1"})
    assert renewed.status_code == 303
    assert renewed.headers["location"] == "/identifiants?renouvele=1"
    with session_factory() as session:
        pending = session.scalars(
            select(CredentialDelivery).where(CredentialDelivery.secret_encrypted.is_not(None))
        ).all()
    assert len(pending) == 1  # the first delivery's old secret went with the rotation
    listing = browser.get("/identifiants").text
    assert client_id in listing
    shown = post(browser, f"/identifiants/{pending[0].id}", "/identifiants", {})
    assert shown.status_code == 200
    secret = re.search(r'<code id="client-secret">([^<]+)</code>', shown.text)
    assert secret
    with session_factory() as session:
        client = session.scalar(select(Client).where(Client.client_id == client_id))
        assert client is not None
        assert client.secret_hash is not None
        assert check_secret(secret.group(1), client.secret_hash)
    assert secret.group(1) not in browser.get("/habilitations").text
    assert "Secret renouvelé" in browser.get("/habilitations").text


def test_partner_files_a_ficoba_request_and_its_certificate_must_be_trusted(
    browser: TestClient, world: World, cert_pem: str, clock: FrozenClock
) -> None:
    """Issue 14: API FICOBA's form in the same steps (search types with their purpose,
    derogation, volumes, agents); a self-signed certificate is refused in French."""
    sign_in(browser, "applicant")
    created = post(browser, "/demandes", "/demandes", {"api": "ficoba"})
    assert created.status_code == 303
    page_url = created.headers["location"].removesuffix("/etapes/1")
    perimeter = browser.get(f"{page_url}/etapes/3").text
    assert "API FICOBA" in perimeter
    assert "Étape 3 sur 7" in perimeter
    # The eleven search types in words, each with its purpose next to it.
    for words in (
        "Personne physique",
        "Vérification IBAN personne morale",
        "Multi-détention SIRET",
    ):
        assert f">{words}</label>" in perimeter
    assert 'id="f-perimeter-search_types-multi_detention_siret"' in perimeter
    assert "agents habilités à consulter FICOBA" in perimeter
    assert "article 103 du livre des procédures fiscales" in perimeter
    assert "dgfip_" not in perimeter
    technical = browser.get(f"{page_url}/etapes/7").text
    assert "un certificat autosigné est refusé" in technical
    assert "Nombre de dossiers par an" not in technical  # Impôt Particulier's

    own, _key = self_signed_certificate("ficoba client", 365, clock.now())
    blocks: dict[str, dict[str, object]] = {
        "basics": {"demarche": "Recouvrement", "description": "d", "intended_use": "u"},
        "legal": {"nature": "loi", "reference": "Article L. 262 du LPF", "url": "https://x.fr/t"},
        "perimeter": {
            "search_types": ["personne_physique", "multi_detention_siret"],
            "purpose_personne_physique": "Retrouver les comptes d'un débiteur.",
            "purpose_multi_detention_siret": "Contrôler les livrets d'une entreprise.",
            "secrecy_derogation": "Article L. 135 ZC du LPF",
            "annual_searches": "12000",
            "daily_peak": "100",
            "agents_count": "3",
            "agents_description": "Trois agents du recouvrement, habilités par arrêté.",
        },
        "recipients": {"services": "Service du recouvrement"},
        "personal_data": {"retention_months": "12"},
        "contacts": {
            "controller_name": "Le maire",
            "controller_email": "maire@ville-a.fr",
            "technical_name": "Technique",
            "technical_email": EMAILS["technical"],
        },
        "technical": {
            "ip_ranges": "127.0.0.1/32",
            "certificate_pem": own.decode(),
            "volumetry_per_minute": "20",
        },
    }
    for block, values in blocks.items():
        answer = post(browser, f"{page_url}/blocs/{block}", page_url, values)
        assert answer.status_code == 303, (block, answer.text)
    post(browser, f"{page_url}/cgu", page_url, {"version": "ficoba-2025-11", "accept": "1"})
    summary = browser.get(page_url).text
    assert "6 étapes complètes sur 7" in summary
    assert "Finalité de la recherche « multi-détention SIRET »" in summary
    assert "Contrôler les livrets d&#39;une entreprise." in summary
    refused = post(browser, f"{page_url}/soumettre", page_url, {})
    assert refused.status_code == 400
    assert "autosigné n&#39;est pas accepté pour l&#39;API FICOBA" in refused.text
    assert f'href="{page_url}/etapes/7?verifier=1#f-technical-certificate_pem"' in refused.text

    # A certificate from the authority the gateways trust: submitted.
    fixed = post(
        browser,
        f"{page_url}/blocs/technical",
        page_url,
        {**blocks["technical"], "certificate_pem": cert_pem},
    )
    assert fixed.status_code == 303
    assert (
        "Autorité reconnue par le guichet</dt><dd>oui" in browser.get(f"{page_url}/etapes/7").text
    )
    done = post(browser, f"{page_url}/soumettre", page_url, {})
    assert done.status_code == 303, done.text
    assert "Soumise" in browser.get(page_url).text
