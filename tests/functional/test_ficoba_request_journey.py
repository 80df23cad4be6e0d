"""Issues 14 and 15 in a real browser (Debian's Chromium through Playwright), against the
running product (``guichet run``): a partner files an API FICOBA habilitation request in the
DSFR stepper — the eleven search types in words, each purpose asked next to its choice, the
derogation to professional secrecy, the volumes and the agents —, goes back and forth without
losing a value, and reads the summary; a self-signed client certificate is refused at
submission with a French message that leads to the field; with a certificate from the
authority the gateways trust the request is submitted, and the instructor validates it. Each
page passes axe-core at desktop and phone widths and shows no internal name."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from playwright import sync_api as playwright_sync

from guichet.pki import ensure_local_pki, issue_client_certificate, self_signed_certificate
from tests.functional.conftest import Product
from tests.functional.test_habilitation_journey import instructor_credentials, sign_in
from tests.functional.test_portal_browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    check_accessibility,
    submit,
)
from tests.functional.test_portal_vocabulary import PROVIDER_CODE, SNAKE, TECHNICAL, VISIBLE_TEXT
from tests.support.second_factor import ADD_PATH, fresh_code

EMAIL = "dominique.bernard@recouvrement-exemple.fr"
PASSWORD = "un mot de passe solide"
SIRET = "13002526500013"


def check_page(page: Any, name: str) -> None:
    """axe-core at desktop and phone widths; no internal name in the visible text."""
    text = page.evaluate(VISIBLE_TEXT, TECHNICAL)
    assert not SNAKE.findall(text), (name, SNAKE.findall(text))
    assert not PROVIDER_CODE.findall(text), name
    check_accessibility(page, name)
    page.set_viewport_size({"width": 375, "height": 800})
    check_accessibility(page, name + "-mobile")
    page.set_viewport_size({"width": 1280, "height": 900})


def test_a_ficoba_request_in_the_stepper_needs_a_trusted_certificate(
    product: Product, tmp_path: Path
) -> None:
    url = product.portal_url
    now = dt.datetime.now(dt.UTC)
    pki = ensure_local_pki(product.data_dir / "pki", now, ["127.0.0.1"])
    trusted, _key = issue_client_certificate(pki, "recouvrement", "Agence Exemple", 365, now)
    own, _own_key = self_signed_certificate("recouvrement", 365, now)
    instructor_email, instructor_password, instructor_totp = instructor_credentials(product)
    csp: list[str] = []
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="fr-FR")
            page.on(
                "console",
                lambda m: csp.append(m.text) if "Content Security Policy" in m.text else None,
            )
            page.goto(url + "/inscription")
            page.get_by_label("Prénom et nom").fill("Dominique Bernard")
            page.locator("#email").fill(EMAIL)
            page.locator("#password").fill(PASSWORD)
            page.get_by_label("Numéro SIRET").fill(SIRET)
            page.get_by_label("Dénomination de l'organisation").fill("Agence Exemple")
            page.get_by_label("Votre rôle").select_option("technical_contact")
            page.get_by_role("button", name="Créer mon compte").click()
            page.wait_for_url("**/inscription/envoyee")
            page.goto(url + "/outbox")
            page.get_by_role("link", name="Confirmez votre adresse électronique").click()
            page.locator("pre a").first.click()
            page.wait_for_url("**/verification-email?token=*")
            sign_in(page, url, EMAIL, PASSWORD)

            # The API is chosen when the request starts.
            page.goto(url + "/demandes")
            page.get_by_label("API FICOBA (fichier national des comptes bancaires)").check(
                force=True
            )
            submit(page, "Nouvelle demande")
            page.wait_for_url("**/etapes/1")
            request_url = page.url.split("?")[0].rsplit("/etapes/", 1)[0]
            stepper = page.locator(".fr-stepper")
            assert "Étape 1 sur 7" in stepper.inner_text()
            page.locator("#f-basics-demarche").fill("Recouvrement des créances")
            page.locator("#f-basics-description").fill("Saisies administratives à tiers détenteur.")
            page.locator("#f-basics-intended_use").fill("Identifier les comptes des débiteurs.")
            submit(page, "Suivant")
            page.locator("#f-legal-nature").select_option("loi")
            page.locator("#f-legal-reference").fill(
                "Article L. 262 du livre des procédures fiscales"
            )
            page.locator("#f-legal-url").fill("https://www.legifrance.gouv.fr/")
            submit(page, "Suivant")

            # The perimeter: the search types in words, each purpose next to its choice.
            assert "Étape 3 sur 7" in stepper.inner_text()
            assert "Multi-détention SIRET" in page.locator("#f-perimeter-search_types").inner_text()
            purpose = page.locator("#f-perimeter-search_types-personne_physique")
            assert not purpose.is_visible()
            page.locator("#recherche-personne_physique").check(force=True)
            assert purpose.is_visible()
            purpose.fill("Retrouver les comptes d'un débiteur par son état civil.")
            page.locator("#recherche-verification_iban_personne_physique").check(force=True)
            page.locator("#f-perimeter-search_types-verification_iban_personne_physique").fill(
                "Vérifier l'IBAN qu'un débiteur nous communique."
            )
            page.locator("#f-perimeter-secrecy_derogation").fill(
                "Article L. 135 ZC du livre des procédures fiscales"
            )
            page.locator("#f-perimeter-annual_searches").fill("12000")
            page.locator("#f-perimeter-daily_peak").fill("150")
            page.locator("#f-perimeter-agents_count").fill("4")
            page.locator("#f-perimeter-agents_description").fill(
                "Quatre agents du service du recouvrement, habilités individuellement."
            )
            check_page(page, "ficoba-etape-perimetre")
            # Back and forth: every value is kept.
            submit(page, "Précédent")
            assert "Étape 2 sur 7" in stepper.inner_text()
            assert page.locator("#f-legal-nature").input_value() == "loi"
            submit(page, "Suivant")
            assert page.locator("#recherche-personne_physique").is_checked()
            assert (
                purpose.input_value() == "Retrouver les comptes d'un débiteur par son état civil."
            )
            assert page.locator("#f-perimeter-agents_count").input_value() == "4"
            assert not page.locator("#recherche-compte").is_checked()
            submit(page, "Suivant")

            page.locator("#f-recipients-services").fill("Service du recouvrement")
            submit(page, "Suivant")
            page.locator("#f-personal_data-retention_months").fill("12")
            submit(page, "Suivant")
            page.locator("#f-contacts-controller-name").fill("Dominique Bernard")
            page.locator("#f-contacts-controller-email").fill(EMAIL)
            page.locator("#f-contacts-technical-name").fill("Dominique Bernard")
            page.locator("#f-contacts-technical-email").fill(EMAIL)
            submit(page, "Suivant")
            assert "Étape 7 sur 7" in stepper.inner_text()
            assert "autosigné est refusé" in page.locator("main").inner_text()
            page.locator("#f-technical-ip_ranges").fill("127.0.0.1/32")
            page.locator("#f-technical-certificate_pem").fill(own.decode())
            page.locator("#f-technical-volumetry_per_minute").fill("20")
            check_page(page, "ficoba-etape-technique")
            submit(page, "Voir le récapitulatif")

            # The summary: six steps complete, the technical one says why it is not.
            assert "6 étapes complètes sur 7" in page.locator("#avancement").inner_text()
            assert (
                "Finalité de la recherche « vérification IBAN personne physique »"
                in page.locator("#bloc-perimeter").inner_text()
            )
            technical = page.locator("#bloc-technical")
            assert "autosigné n'est pas accepté pour l'API FICOBA" in technical.inner_text()
            check_page(page, "ficoba-recapitulatif")
            page.locator("#f-terms-version").check(force=True)
            submit(page, "Accepter les conditions")
            submit(page, "Soumettre la demande")
            errors = page.locator("#erreurs")
            assert "autosigné n'est pas accepté pour l'API FICOBA" in errors.inner_text()
            assert page.locator("#statut").text_content() == "Brouillon"
            errors.locator("a").first.click()
            page.wait_for_url("**/etapes/7?verifier=1*")
            certificate = page.locator("#f-technical-certificate_pem")
            assert certificate.get_attribute("aria-invalid") == "true"
            check_page(page, "ficoba-certificat-refuse")

            # A certificate from the authority the gateways trust: submitted.
            certificate.fill(trusted.decode())
            submit(page, "Enregistrer le brouillon")
            assert (
                "Autorité reconnue par le guichet\noui"
                in page.locator("#certificat-enregistre").inner_text()
            )
            page.goto(request_url)
            assert "7 étapes complètes sur 7" in page.locator("#avancement").inner_text()
            page.get_by_role("button", name="Soumettre la demande").click()
            page.wait_for_url("**/demandes/*?soumise=1")
            assert page.locator("#statut").text_content() == "Soumise"
            check_page(page, "ficoba-soumise")

            # The instructor reads the form in words and validates it.
            staff = browser.new_page(viewport={"width": 1280, "height": 900}, locale="fr-FR")
            sign_in(
                staff,
                url,
                instructor_email,
                instructor_password,
                lands="instruction",
                totp=instructor_totp,
            )
            staff.get_by_role("link", name="Recouvrement des créances").click()
            staff.wait_for_url("**/instruction/demandes/*")
            assert "Article L. 135 ZC" in staff.locator("main").inner_text()
            check_page(staff, "ficoba-instruction")
            staff.locator("#f-reason").fill("Dérogation vérifiée.")
            staff.get_by_role("button", name="Valider et délivrer les accès").click()
            staff.wait_for_url("**/instruction/demandes/*?decision=validate")
            assert staff.locator("#statut").text_content() == "Validée"
            # FICOBA issued (C4): the partner's session, opened without a second factor,
            # ended at the validation; they sign in again and enrol one first.
            page.goto(url + "/identifiants")
            page.wait_for_url("**/connexion*")
            page.locator("#email").fill(EMAIL)
            page.locator("#password").fill(PASSWORD)
            page.get_by_role("button", name="Se connecter").click()
            page.wait_for_url(f"**{ADD_PATH}")
            secret = page.locator("#cle-totp").inner_text().replace(" ", "")
            page.locator("#code").fill(fresh_code(secret, None, EMAIL))
            submit(page, "Valider le code")
            page.get_by_role("link", name="J'ai noté mes codes, continuer").click()
            page.wait_for_load_state()
            page.goto(url + "/identifiants")
            assert "Recouvrement des créances" in page.locator("main").inner_text()
        finally:
            browser.close()
    assert not csp, csp
