"""Issue 4 §5 in a real browser (Debian's Chromium through Playwright): a partner signs up,
verifies the email from the outbox, files a sandbox request for Impôt Particulier block by
block; an instructor requests changes; the partner fixes and resubmits; the instructor
validates; the technical contact collects the credentials, once. Every page passes axe-core
and is screenshotted."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from guichet.accounts.passwords import Passwords
from guichet.accounts.seed import ensure_instructor
from guichet.clock import SystemClock
from guichet.db import make_engine, make_sessionmaker
from guichet.db.registry import metadata
from guichet.gateway.quota import QuotaService
from guichet.pki import ensure_local_pki, issue_client_certificate
from guichet.portal.app import build_portal_app
from guichet.runtime import Runtime
from guichet.secrets import MasterSecret
from guichet.settings import Settings
from tests.functional.test_portal_browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    check_accessibility,
    pytestmark,  # noqa: F401 - the same skip conditions
)
from tests.support.postgres import free_port
from tests.unit.accounts.conftest import FAST_HASHER

playwright_sync = pytest.importorskip("playwright.sync_api")

EMAIL = "camille.martin@mairie-exemple.fr"
PASSWORD = "un mot de passe solide"


@pytest.fixture
def portal(tmp_path: Path) -> Iterator[tuple[str, Runtime]]:
    port = free_port()
    settings = Settings(
        data_dir=tmp_path,
        smtp_url=None,
        portal_port=port,
        portal_public_url=f"http://127.0.0.1:{port}",
    )
    engine = make_engine(f"sqlite:///{tmp_path / 'guichet.db'}")
    metadata.create_all(engine)
    runtime = Runtime(
        settings, engine, make_sessionmaker(engine), MasterSecret(b"k" * 48), SystemClock()
    )
    app = build_portal_app(runtime, QuotaService(None), password_hasher=FAST_HASHER)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the portal did not start"
        time.sleep(0.02)
    yield settings.resolved_portal_url, runtime
    server.should_exit = True
    thread.join(10)
    engine.dispose()


def sign_in(page: object, url: str, email: str, password: str) -> None:
    page.goto(url + "/connexion")  # type: ignore[attr-defined]
    page.locator("#email").fill(email)  # type: ignore[attr-defined]
    page.locator("#password").fill(password)  # type: ignore[attr-defined]
    page.get_by_role("button", name="Se connecter").click()  # type: ignore[attr-defined]
    page.wait_for_url("**/mon-compte")  # type: ignore[attr-defined]


def test_request_to_credentials_in_the_browser(portal: tuple[str, Runtime], tmp_path: Path) -> None:
    url, runtime = portal
    instructor_email, instructor_password = ensure_instructor(runtime, Passwords(FAST_HASHER))
    assert instructor_password
    pki = ensure_local_pki(tmp_path / "pki", runtime.clock.now(), ["127.0.0.1"])
    cert, _key = issue_client_certificate(pki, "qf client", "Commune", 365, runtime.clock.now())
    csp: list[str] = []
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="fr-FR")
            page.on(
                "console",
                lambda m: csp.append(m.text) if "Content Security Policy" in m.text else None,
            )
            # Sign up as the organisation's technical contact, verify from the outbox.
            page.goto(url + "/inscription")
            page.get_by_label("Prénom et nom").fill("Camille Martin")
            page.locator("#email").fill(EMAIL)
            page.locator("#password").fill(PASSWORD)
            page.get_by_label("Numéro SIRET").fill("732 829 320 00074")
            page.get_by_label("Dénomination de l'organisation").fill("Commune d'Exemple")
            page.get_by_label("Votre rôle").select_option("technical_contact")
            page.get_by_role("button", name="Créer mon compte").click()
            page.wait_for_url("**/inscription/envoyee")
            page.goto(url + "/outbox")
            page.get_by_role("link", name="Confirmez votre adresse électronique").click()
            page.locator("pre a").first.click()
            page.wait_for_url("**/verification-email?token=*")
            sign_in(page, url, EMAIL, PASSWORD)

            # A new sandbox request, block by block.
            page.get_by_role("link", name="Mes demandes").first.click()
            page.wait_for_url("**/demandes")
            check_accessibility(page, "demandes")
            page.get_by_role("button", name="Nouvelle demande").click()
            page.wait_for_url("**/demandes/*")
            request_url = page.url
            page.locator("#f-basics-demarche").fill("Quotient familial")
            page.get_by_role("button", name="Enregistrer « Informations générales »").click()
            page.wait_for_url("**/demandes/*")
            # The missing fields are pointed at, next to each field.
            description = page.locator("#f-basics-description")
            assert description.get_attribute("aria-invalid") == "true"
            messages = page.locator("#" + (description.get_attribute("aria-describedby") or ""))
            assert "champ obligatoire" in messages.inner_text()
            check_accessibility(page, "demande-erreurs")
            description.fill("Mise à jour du quotient familial en ligne.")
            page.locator("#f-basics-intended_use").fill("Calcul des tarifs scolaires.")
            page.get_by_role("button", name="Enregistrer « Informations générales »").click()
            page.wait_for_url("**/demandes/*")

            page.locator("#f-legal-nature").select_option("deliberation")
            page.locator("#f-legal-local_authority").check(force=True)
            page.locator("#f-legal-reference").fill("Délibération du 1er décembre 2022")
            page.locator("#f-legal-url").fill("https://mairie-exemple.fr/deliberation.pdf")
            page.get_by_role("button", name="Enregistrer « Cadre juridique »").click()
            page.wait_for_url("**/demandes/*")

            page.locator("#scope-dgfip_rfr").check(force=True)
            page.get_by_role("button", name="Enregistrer « Périmètre des données »").click()
            page.wait_for_url("**/demandes/*")
            page.locator("#f-perimeter-data_scopes-dgfip_rfr").fill(
                "Le quotient familial se calcule sur le RFR."
            )
            page.locator("#f-perimeter-labels-dgfip_rfr").fill("Revenu fiscal de référence")
            page.locator("#mode-spi").check(force=True)
            page.locator("#annee-dgfip_annee_n_moins_1").check(force=True)
            page.locator("#f-perimeter-r11494_domain").select_option("famille")
            page.get_by_role("button", name="Enregistrer « Périmètre des données »").click()
            page.wait_for_url("**/demandes/*")

            page.locator("#f-recipients-services").fill("Direction de l'éducation")
            page.get_by_role("button", name="Enregistrer « Destinataires des données »").click()
            page.wait_for_url("**/demandes/*")
            page.locator("#f-personal_data-retention_months").fill("48")
            page.get_by_role("button", name="Enregistrer « Données personnelles »").click()
            page.wait_for_url("**/demandes/*")
            page.locator("#f-contacts-controller-name").fill("Le maire")
            page.locator("#f-contacts-controller-email").fill("maire@mairie-exemple.fr")
            page.locator("#f-contacts-technical-name").fill("Camille Martin")
            page.locator("#f-contacts-technical-email").fill(EMAIL)
            page.get_by_role("button", name="Enregistrer « Contacts »").click()
            page.wait_for_url("**/demandes/*")
            page.locator("#f-technical-ip_ranges").fill("127.0.0.1/32")
            page.locator("#f-technical-certificate_pem").fill(cert.decode())
            page.locator("#f-technical-volumetry_per_minute").fill("50")
            page.locator("#f-technical-annual_files").fill("6000")
            page.locator("#f-technical-hourly_peak").fill("200")
            page.get_by_role("button", name="Enregistrer « Données techniques »").click()
            page.wait_for_url("**/demandes/*")
            assert page.locator("#certificat-enregistre").is_visible()
            page.locator("#f-terms-version").check(force=True)
            page.get_by_role("button", name="Accepter les conditions").click()
            page.wait_for_url("**/demandes/*")
            # Retention beyond 36 months without justification: submission names the field.
            page.get_by_role("button", name="Soumettre la demande").click()
            assert page.locator("#erreurs").is_visible()
            assert "justifiez la durée" in page.locator("#erreurs").inner_text()
            check_accessibility(page, "demande-soumission-refusee")
            page.locator("#f-personal_data-retention_months").fill("24")
            page.get_by_role("button", name="Enregistrer « Données personnelles »").click()
            page.wait_for_url("**/demandes/*")
            page.get_by_role("button", name="Soumettre la demande").click()
            page.wait_for_url("**/demandes/*?soumise=1")
            assert page.locator("#statut").text_content() == "Soumise"
            check_accessibility(page, "demande-soumise")

            # The instructor asks for changes, with a reason.
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            staff = context.new_page()
            sign_in(staff, url, instructor_email, instructor_password)
            staff.get_by_role("link", name="Instruction").first.click()
            staff.wait_for_url("**/instruction")
            check_accessibility(staff, "instruction-file")
            staff.get_by_role("link", name="Quotient familial").click()
            staff.wait_for_url("**/instruction/demandes/*")
            check_accessibility(staff, "instruction-demande")
            staff.locator("#f-reason").fill("Ajoutez le CCAS aux destinataires.")
            staff.get_by_role("button", name="Demander des modifications").click()
            staff.wait_for_url("**/instruction/demandes/*?decision=request_changes")

            # The partner reads why, fixes and resubmits.
            page.goto(request_url)
            assert (
                "Ajoutez le CCAS aux destinataires."
                in page.locator("#historique ~ ol").inner_text()
            )
            page.locator("#f-recipients-services").fill("Direction de l'éducation\nCCAS")
            page.get_by_role("button", name="Enregistrer « Destinataires des données »").click()
            page.wait_for_url("**/demandes/*")
            page.get_by_role("button", name="Soumettre la demande").click()
            page.wait_for_url("**/demandes/*?soumise=1")
            check_accessibility(page, "demande-historique")

            # The instructor sees what changed and validates.
            staff.reload()
            assert "CCAS" in staff.locator("#titre-diff ~ div").inner_text()
            staff.locator("#f-reason").fill("Conforme à la délibération.")
            staff.get_by_role("button", name="Valider et délivrer les accès").click()
            staff.wait_for_url("**/instruction/demandes/*?decision=validate")
            assert staff.locator("#statut").text_content() == "Validée"

            # The technical contact collects the credentials, once.
            page.goto(url + "/identifiants")
            check_accessibility(page, "identifiants")
            page.get_by_role("button", name="Afficher le secret une seule fois").click()
            secret = page.locator("#client-secret").inner_text()
            assert len(secret) >= 20
            check_accessibility(page, "identifiants-affiches")
            page.goto(url + "/identifiants")
            assert "Aucun identifiant en attente" in page.content()
            assert secret not in page.content()
            page.goto(url + "/habilitations")
            assert "Quotient familial" in page.content()
            check_accessibility(page, "habilitations")
            context.close()
        finally:
            browser.close()
    assert not csp, csp
