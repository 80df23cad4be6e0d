"""Issue 4 §5 in a real browser (Debian's Chromium through Playwright), against the running
product (``guichet run``: the portal and both gateways on one database).

A partner signs up, verifies the email from the outbox, files a sandbox request for Impôt
Particulier step by step (the DSFR stepper, back and forth without losing a value, the summary
before submission) (the controller and, in production, the DPO confirm their
addresses by the links the outbox shows; submission waits for them); an instructor requests
changes; the partner fixes and resubmits; the instructor validates; the technical contact
collects the credentials, once, and calls the sandbox gateway with them (real HTTP over
mutual TLS, with the certificate declared in the request). The partner then files the
production step: its submission is refused without the homologation attestation, accepted
with it, and the instructor validates. Last, the instructor suspends the sandbox
habilitation and the very next call with the same token is refused. Every page passes
axe-core and is screenshotted."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

from playwright import sync_api as playwright_sync

from guichet.catalog.products import IR_FIELD_SCOPES
from guichet.pki import ensure_local_pki, issue_client_certificate
from tests.functional.conftest import Product, api_headers
from tests.functional.test_portal_browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    check_accessibility,
    submit,  # importing the module also brings its "no browser → fail" check
)
from tests.support.second_factor import give_totp_in_browser

EMAIL = "camille.martin@mairie-exemple.fr"
PASSWORD = "un mot de passe solide"
PERSONA = "3999999930262"
IR_MEDIA = "application/prs.dgfip.part.situations.ir.assiettes.v1+json"
# A policy change reaches the gateway within ``cache_poll_interval`` (0.1 s by default):
# the suspension is checked after ten times that.
POLICY_PROPAGATION = 1.0
# The smallest PDF the upload accepts: the header, one object, the end-of-file marker.
ATTESTATION_PDF = (
    b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n"
    b"2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\n"
    b"trailer\n<< /Root 1 0 R >>\n%%EOF\n"
)


def sign_in(
    page: Any,
    url: str,
    email: str,
    password: str,
    lands: str = "mon-compte",
    totp: str | None = None,
) -> None:
    """Signed in, on the role's home: a partner's account page, the instructor's queue (staff
    give the code of their TOTP seed ``totp`` as second factor, issue 14 C4)."""
    page.goto(url + "/connexion")
    page.locator("#email").fill(email)
    page.locator("#password").fill(password)
    page.get_by_role("button", name="Se connecter").click()
    if totp is not None:
        give_totp_in_browser(page, totp, email)
    page.wait_for_url(f"**/{lands}")


def confirm_contact(page: Any, url: str, address: str) -> None:
    """The contact's confirmation mail, opened from the outbox, and its link followed (in the
    embedded default the outbox shows every mail, the contacts' too)."""
    page.goto(url + "/outbox")
    row = page.locator("tr", has_text=address)
    row.get_by_role("link", name="Confirmez votre adresse de contact").first.click()
    page.locator("pre a").first.click()
    page.wait_for_url("**/contacts/confirmation?token=*")
    assert page.locator("h1").inner_text() == "Adresse confirmée"


def instructor_credentials(product: Product) -> tuple[str, str, str]:
    """The demo instructor that ``guichet run`` seeded, from ``DATA_DIR/demo/instructor.txt``:
    address, password and the seed of its TOTP second factor."""
    text = (product.data_dir / "demo" / "instructor.txt").read_text(encoding="utf-8")
    lines = dict(line.split(" : ", 1) for line in text.splitlines() if " : " in line)
    return (
        lines["adresse"].strip(),
        lines["mot de passe"].strip(),
        lines["second facteur (TOTP)"].strip(),
    )


def last_year_path() -> str:
    year = dt.datetime.now(dt.UTC).year - 1
    return f"/impotparticulier/1.0/spi/{PERSONA}/situations/ir/assiettes/annrev/{year}"


def request_id_of(page_url: str) -> str:
    return page_url.split("?")[0].rstrip("/").rsplit("/", 1)[-1]


def test_request_to_credentials_to_production_to_suspension(
    product: Product, tmp_path: Path
) -> None:
    url = product.portal_url
    instructor_email, instructor_password, instructor_totp = instructor_credentials(product)
    # The partner's client certificate, from the running product's local CA (its gateways'
    # TLS trusts it); the partner declares it in the request.
    now = dt.datetime.now(dt.UTC)
    pki = ensure_local_pki(product.data_dir / "pki", now, ["127.0.0.1"])
    cert, key = issue_client_certificate(pki, "qf client", "Commune d'Exemple", 365, now)
    cert_file, key_file = tmp_path / "client.crt", tmp_path / "client.key"
    cert_file.write_bytes(cert)
    key_file.write_bytes(key)
    mtls = (str(cert_file), str(key_file))

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
            # "Mon organisation": its only member so far, with the role chosen at sign-up.
            page.get_by_role("link", name="Mon organisation").first.click()
            page.wait_for_url("**/mon-organisation")
            assert "Responsable technique" in page.locator("#membres-1").inner_text()
            check_accessibility(page, "mon-organisation")

            # A new sandbox request, step by step (the DSFR stepper, one block per page).
            page.get_by_role("link", name="Mes demandes").first.click()
            page.wait_for_url("**/demandes")
            check_accessibility(page, "demandes")
            submit(page, "Nouvelle demande")
            page.wait_for_url("**/etapes/1")
            request_url = page.url.split("?")[0].rsplit("/etapes/", 1)[0]
            sandbox_id = request_id_of(request_url)
            stepper = page.locator(".fr-stepper")
            assert "Étape 1 sur 7" in stepper.inner_text()
            check_accessibility(page, "demande-etape-1")
            page.locator("#f-basics-demarche").fill("Quotient familial")
            submit(page, "Suivant")
            assert "Étape 2 sur 7" in stepper.inner_text()
            # Back and forth: nothing typed is lost.
            page.locator("#f-legal-reference").fill("Délibération du 1er décembre 2022")
            submit(page, "Précédent")
            assert page.locator("#f-basics-demarche").input_value() == "Quotient familial"
            # The summary says what is missing; its link opens the step with the error
            # next to the field.
            page.goto(request_url)
            assert page.locator("#bloc-perimeter .fr-badge").text_content() == "Non commencée"
            page.get_by_role("link", name="Description de la démarche : champ obligatoire.").click()
            page.wait_for_url("**/etapes/1?verifier=1*")
            description = page.locator("#f-basics-description")
            assert description.get_attribute("aria-invalid") == "true"
            messages = page.locator("#" + (description.get_attribute("aria-describedby") or ""))
            assert "champ obligatoire" in messages.inner_text()
            check_accessibility(page, "demande-erreurs")
            description.fill("Mise à jour du quotient familial en ligne.")
            page.locator("#f-basics-intended_use").fill("Calcul des tarifs scolaires.")
            submit(page, "Suivant")

            assert (
                page.locator("#f-legal-reference").input_value()
                == "Délibération du 1er décembre 2022"
            )
            page.locator("#f-legal-nature").select_option("deliberation")
            page.locator("#f-legal-local_authority").check(force=True)
            page.locator("#f-legal-url").fill("https://mairie-exemple.fr/deliberation.pdf")
            submit(page, "Suivant")

            # The justification is asked next to the data, as soon as it is ticked.
            justification = page.locator("#f-perimeter-data_scopes-dgfip_rfr")
            assert not justification.is_visible()
            page.locator("#scope-dgfip_rfr").check(force=True)
            assert justification.is_visible()
            justification.fill("Le quotient familial se calcule sur le RFR.")
            page.locator("#f-perimeter-labels-dgfip_rfr").fill("Revenu fiscal de référence")
            page.locator("#mode-spi").check(force=True)
            page.locator("#annee-dgfip_annee_n_moins_1").check(force=True)
            page.locator("#f-perimeter-r11494_domain").select_option("famille")
            check_accessibility(page, "demande-etape-perimetre")
            submit(page, "Suivant")

            page.locator("#f-recipients-services").fill("Direction de l'éducation")
            submit(page, "Suivant")
            page.locator("#f-personal_data-retention_months").fill("48")
            submit(page, "Suivant")
            page.locator("#f-contacts-controller-name").fill("Le maire")
            page.locator("#f-contacts-controller-email").fill("maire@mairie-exemple.fr")
            page.locator("#f-contacts-technical-name").fill("Camille Martin")
            page.locator("#f-contacts-technical-email").fill(EMAIL)
            submit(page, "Suivant")
            assert "Étape 7 sur 7" in stepper.inner_text()
            page.locator("#f-technical-ip_ranges").fill("127.0.0.1/32")
            page.locator("#f-technical-certificate_pem").fill(cert.decode())
            page.locator("#f-technical-volumetry_per_minute").fill("50")
            page.locator("#f-technical-annual_files").fill("6000")
            page.locator("#f-technical-hourly_peak").fill("200")
            submit(page, "Voir le récapitulatif")
            # The summary: each step's state and values, the contacts' addresses.
            assert page.url.split("#")[0] == request_url
            assert "empreinte SHA-256" in page.locator("#bloc-technical").inner_text()
            # The controller has no account: a confirmation link went to their address.
            assert page.locator("#statut-controller .fr-badge").text_content() == "en attente"
            assert page.locator("#statut-technical .fr-badge").text_content() == "confirmée"
            check_accessibility(page, "demande-recapitulatif")
            page.locator("#f-terms-version").check(force=True)
            submit(page, "Accepter les conditions")
            # Retention beyond 36 months without justification: submission names the field.
            submit(page, "Soumettre la demande")
            assert page.locator("#erreurs").is_visible()
            assert "justifiez la durée" in page.locator("#erreurs").inner_text()
            assert (
                "Responsable de traitement : adresse non confirmée"
                in page.locator("#erreurs").inner_text()
            )
            check_accessibility(page, "demande-soumission-refusee")
            confirm_contact(page, url, "maire@mairie-exemple.fr")
            check_accessibility(page, "contact-confirme")
            page.goto(request_url)
            assert page.locator("#statut-controller .fr-badge").text_content() == "confirmée"
            page.goto(request_url + "/etapes/5")
            page.locator("#f-personal_data-retention_months").fill("24")
            submit(page, "Enregistrer le brouillon")
            assert page.locator("#notice").inner_text() == "Étape enregistrée dans votre brouillon."
            page.goto(request_url)
            page.get_by_role("button", name="Soumettre la demande").click()
            page.wait_for_url("**/demandes/*?soumise=1")
            assert page.locator("#statut").text_content() == "Soumise"
            check_accessibility(page, "demande-soumise")

            # The instructor asks for changes, with a reason.
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            staff = context.new_page()
            sign_in(
                staff,
                url,
                instructor_email,
                instructor_password,
                lands="instruction",
                totp=instructor_totp,
            )
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
            page.goto(request_url + "/etapes/4")
            page.locator("#f-recipients-services").fill("Direction de l'éducation\nCCAS")
            submit(page, "Suivant")
            page.goto(request_url)
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
            client_id = page.locator("#client-id").inner_text().strip()
            secret = page.locator("#client-secret").inner_text().strip()
            assert client_id
            assert len(secret) >= 20
            check_accessibility(page, "identifiants-affiches")
            page.goto(url + "/identifiants")
            assert "Aucun identifiant en attente" in page.content()
            assert secret not in page.content()

            # The credentials call the sandbox gateway: mutual TLS with the declared
            # certificate, a token from /token, the persona's last revenue year.
            with product.http(cert=mtls) as gateway:
                token = product.token(gateway, client_id, secret)
                answer = gateway.get(last_year_path(), headers=api_headers(token))
            assert answer.status_code == 200, answer.text
            assert answer.headers["content-type"].startswith(IR_MEDIA)
            returned = {k for k in answer.json() if k in IR_FIELD_SCOPES or k == "rev"}
            # Only the data scope the request asked for (dgfip_rfr).
            assert returned == {"rfr"}, returned

            page.goto(url + "/habilitations")
            assert "Quotient familial" in page.content()
            check_accessibility(page, "habilitations")

            # The production step, from the validated sandbox request.
            page.goto(request_url)
            submit(page, "Passer en production")
            production_url = page.url.split("?")[0]
            production_id = request_id_of(production_url)
            assert production_id != sandbox_id
            assert "Production" in page.locator("h1 + p").inner_text()
            assert page.locator("#prerequis").is_visible()
            # The sandbox request's data came along; the production step is the eighth.
            page.goto(production_url + "/etapes/1")
            assert page.locator("#f-basics-demarche").input_value() == "Quotient familial"
            page.goto(production_url)
            check_accessibility(page, "production-prerequis")
            page.goto(production_url + "/etapes/2")
            assert "Étape 2 sur 8" in page.locator(".fr-stepper").inner_text()
            page.locator("#f-legal-secrecy_derogation").fill("L. 114-8 et R. 114-9-4 du CRPA")
            submit(page, "Suivant")
            page.goto(production_url + "/etapes/6")
            page.locator("#f-contacts-dpo-name").fill("Dominique Petit")
            page.locator("#f-contacts-dpo-email").fill("dpo@mairie-exemple.fr")
            submit(page, "Suivant")
            page.goto(production_url)
            assert page.locator("#statut-dpo .fr-badge").text_content() == "en attente"
            confirm_contact(page, url, "dpo@mairie-exemple.fr")
            page.goto(production_url)
            assert page.locator("#statut-dpo .fr-badge").text_content() == "confirmée"
            # Every prerequisite but the homologation attestation.
            page.goto(production_url + "/etapes/8")
            page.locator("#f-production-recette_confirmed").check(force=True)
            page.locator("#f-production-recette_results").fill(
                "Recette réalisée au bac à sable sur les 12 personas : résultats conformes."
            )
            page.locator("#f-production-formalities_declared").check(force=True)
            page.locator("#f-production-security_kind").select_option("homologation")
            submit(page, "Voir le récapitulatif")
            page.locator("#f-terms-version").check(force=True)
            submit(page, "Accepter les conditions")
            submit(page, "Soumettre la demande")
            summary = page.locator("#erreurs")
            assert summary.is_visible()
            assert page.locator("#statut").text_content() == "Brouillon"
            missing = [t.strip() for t in summary.locator("li").all_inner_texts()]
            assert "Attestation d'homologation : joignez le PDF." in " ".join(missing)
            # Nothing else is missing: only the attestation blocks the submission.
            assert all("homologation" in m for m in missing), missing
            summary.locator("a").first.click()
            page.wait_for_url("**/etapes/8?verifier=1*")
            attestation = page.locator("#f-production-homologation-document_id")
            assert attestation.get_attribute("aria-invalid") == "true"
            check_accessibility(page, "production-attestation-manquante")

            # The attestation: the PDF, signing authority, signatory, start date, duration.
            attestation.set_input_files(
                files=[
                    {
                        "name": "attestation-homologation.pdf",
                        "mimeType": "application/pdf",
                        "buffer": ATTESTATION_PDF,
                    }
                ]
            )
            page.locator("#f-production-homologation-authority").fill(
                "Autorité d'homologation de la commune"
            )
            page.locator("#f-production-homologation-signatory_name").fill("Claude Durand")
            page.locator("#f-production-homologation-signatory_function").fill(
                "Directeur général des services"
            )
            start = (dt.datetime.now(dt.UTC) - dt.timedelta(days=30)).date()
            page.locator("#f-production-homologation-start_date").fill(start.isoformat())
            page.locator("#f-production-homologation-duration_months").fill("36")
            submit(page, "Voir le récapitulatif")
            assert "attestation-homologation.pdf" in page.locator("#bloc-production").inner_text()
            assert page.locator("#prerequis").count() == 0
            page.get_by_role("button", name="Soumettre la demande").click()
            page.wait_for_url("**/demandes/*?soumise=1")
            assert page.locator("#statut").text_content() == "Soumise"
            check_accessibility(page, "production-soumise")

            # The instructor validates the production step.
            staff.goto(f"{url}/instruction/demandes/{production_id}")
            assert "Production" in staff.content()
            check_accessibility(staff, "instruction-production")
            staff.locator("#f-reason").fill("Homologation jointe, recette conforme.")
            staff.get_by_role("button", name="Valider et délivrer les accès").click()
            staff.wait_for_url("**/instruction/demandes/*?decision=validate")
            assert staff.locator("#statut").text_content() == "Validée"
            page.goto(url + "/identifiants")
            assert "Production" in page.locator("main").inner_text()

            # The instructor suspends the sandbox habilitation from its page, with a reason.
            staff.goto(f"{url}/instruction/demandes/{sandbox_id}")
            staff.get_by_role("link", name="Voir l'habilitation et ses statistiques").click()
            staff.wait_for_url("**/instruction/habilitations/*")
            assert staff.locator("#statut").text_content() == "Active"
            deadline = time.monotonic() + 10
            while staff.locator("#statistiques").count() == 0:
                assert time.monotonic() < deadline, "the call never reached the statistics"
                time.sleep(0.2)
                staff.reload()
            assert "Données transmises" in staff.locator("#statistiques").inner_text()
            check_accessibility(staff, "instruction-habilitation")
            # An irreversible action asks for confirmation in a dialog.
            staff.get_by_role("button", name="Suspendre…").click()
            dialog = staff.get_by_role("dialog", name="Suspendre")
            dialog.wait_for(state="visible")
            check_accessibility(staff, "instruction-suspension-confirmation")
            dialog.get_by_label("Motif").fill("Incident de sécurité signalé par la commune.")
            dialog.get_by_role("button", name="Suspendre", exact=True).click()
            staff.wait_for_url("**/instruction/habilitations/*?action=suspend")
            assert staff.locator("#notice").inner_text() == "Habilitation suspendue."
            assert staff.locator("#statut").text_content() == "Suspendue"
            assert "Incident de sécurité" in staff.locator("h1 + p").inner_text()
            check_accessibility(staff, "instruction-habilitation-suspendue")
            time.sleep(POLICY_PROPAGATION)

            # The partner watches their habilitations while the next call goes out.
            page.goto(url + "/habilitations")
            calls_region = page.locator("#derniers-appels")
            assert "Refusé : habilitation suspendue" not in calls_region.inner_text()
            page.evaluate("window.__sansRechargement = true")

            # The very next call, with the same token, is refused.
            with product.http(cert=mtls) as gateway:
                refused = gateway.get(last_year_path(), headers=api_headers(token))
            assert refused.status_code == 403, refused.text
            assert refused.headers["content-type"].startswith("application/problem+json")
            problem = refused.json()
            assert problem["code"] == "habilitation_suspended"
            assert problem["status"] == 403

            # The open page shows that refusal by itself (htmx refreshes the calls every 10 s),
            # without being reloaded.
            calls_region.get_by_text("Refusé : habilitation suspendue").wait_for(timeout=20_000)
            assert page.evaluate("window.__sansRechargement") is True

            page.goto(url + "/habilitations")
            sandbox_card = page.locator(".fr-card", has_text="Bac à sable")
            assert sandbox_card.locator(".fr-badge").text_content() == "Suspendue"
            assert "Incident de sécurité" in sandbox_card.inner_text()
            check_accessibility(page, "habilitations-suspendue")
            context.close()
        finally:
            browser.close()
    assert not csp, csp
