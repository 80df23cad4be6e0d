"""Issue 15: no irreversible action in one click, a notice after each, and the pages every
visitor can reach from the footer. In a real browser (Debian's Chromium through Playwright):
the partner withdraws a colleague's role and cancels an invitation, the administrator
disables and removes an agent's account, each through a DSFR modal that says what will
happen (cancelling it changes nothing), then reads a success notice; the 404 page, the
accessibility statement and the legal notice are French DSFR pages. axe-core runs on each
state, the modals open, at desktop width and at 375 px."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import uvicorn
from playwright import sync_api as playwright_sync
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from guichet.accounts.models import ProviderRole, User
from guichet.accounts.passwords import Passwords
from guichet.accounts.service import create_user, grant_provider_role
from guichet.application.issuance import submit
from guichet.clock import SystemClock
from guichet.db import make_engine, make_sessionmaker, transaction
from guichet.pki import ensure_local_pki, issue_client_certificate
from guichet.portal.app import build_portal_app
from guichet.quota import QuotaService
from guichet.runtime import Runtime
from guichet.schema import metadata
from guichet.secrets import MasterSecret
from guichet.settings import Settings
from tests.functional.test_portal_browser import CHROMIUM, CHROMIUM_ARGS, check_accessibility
from tests.support.postgres import free_port
from tests.support.second_factor import TOTP_SECRET, enrol_totp, give_totp_in_browser
from tests.unit.accounts.conftest import FAST_HASHER
from tests.unit.habilitation.support import (
    make_world,
    new_complete_request,
    user,
    validated,
)

PASSWORD = "un mot de passe solide"
ADMIN = "administratrice@dgfip.test"
MASTER = MasterSecret(b"k" * 48)


@dataclass
class Portal:
    url: str
    session_factory: sessionmaker[Session]
    habilitation_id: str


@pytest.fixture
def portal(tmp_path: Path) -> Iterator[Portal]:
    """The portal in this process on SQLite, with the unit tests' people (passwords set), an
    administrator who manages the agents' accounts, and Ville A's validated habilitation."""
    port = free_port()
    settings = Settings(
        data_dir=tmp_path,
        smtp_url=None,
        portal_port=port,
        portal_public_url=f"http://127.0.0.1:{port}",
    )
    engine = make_engine(f"sqlite:///{tmp_path / 'guichet.db'}")
    metadata.create_all(engine)
    factory = make_sessionmaker(engine)
    now = dt.datetime.now(dt.UTC)
    pki = ensure_local_pki(tmp_path / "pki", now, ["127.0.0.1"])
    cert = issue_client_certificate(pki, "confirmations", "Ville A", 365, now)[0].decode()
    with transaction(factory) as session:
        world = make_world(session, now)
        issued = validated(
            session, world, new_complete_request(session, world, cert, now), now, MASTER
        )
        # One request waiting in the instructors' queue.
        submit(
            session,
            new_complete_request(session, world, cert, now),
            user(session, world.applicant),
            now=now,
        )
        admin = create_user(session, ADMIN, "Alice Administratrice", now, verified=True)
        grant_provider_role(session, admin, ProviderRole.ADMINISTRATOR, now)
        hashed = Passwords(FAST_HASHER).hash(PASSWORD)
        for u in session.scalars(select(User)):
            u.password_hash = hashed
        for staff in (admin.id, world.security_officer, world.instructor):
            enrol_totp(session, MASTER, staff, now)
    runtime = Runtime(settings, engine, factory, MASTER, SystemClock())
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
    yield Portal(settings.resolved_portal_url, factory, str(issued.habilitation_id))
    server.should_exit = True
    thread.join(10)
    engine.dispose()


def sign_in(page: Any, base: str, email: str) -> None:
    page.context.clear_cookies()
    page.goto(base + "/connexion")
    page.locator("#email").fill(email)
    page.locator("#password").fill(PASSWORD)
    with page.expect_navigation(wait_until="load"):
        page.get_by_role("button", name="Se connecter", exact=True).click()


def open_modal(page: Any, opener: str) -> Any:
    """Click the button that opens a confirmation; the DSFR dialog it controls, shown."""
    button = page.get_by_role("button", name=opener)
    dialog = page.locator("dialog#" + (button.get_attribute("aria-controls") or ""))
    button.click()
    dialog.wait_for(state="visible")
    return dialog


def confirm(page: Any, dialog: Any, submit: str) -> None:
    with page.expect_navigation(wait_until="load"):
        dialog.get_by_role("button", name=submit).click()


def check_both_widths(page: Any, name: str) -> None:
    check_accessibility(page, name)
    page.set_viewport_size({"width": 375, "height": 800})
    check_accessibility(page, name + "-mobile")
    page.set_viewport_size({"width": 1280, "height": 900})


def assert_tables_fit(page: Any) -> None:
    """At this width no table is cut: each fits the region that holds it."""
    widths = page.evaluate(
        "() => [...document.querySelectorAll('main table')].map(t => [t.id, t.scrollWidth,"
        " (t.closest('.fr-table__container') || t.parentElement).clientWidth])"
    )
    assert all(table <= region for _, table, region in widths), widths


def members(page: Any) -> str:
    text = page.locator("#membres-1").inner_text()
    assert isinstance(text, str)
    return text


def test_irreversible_actions_are_confirmed_then_acknowledged(portal: Portal) -> None:
    base = portal.url
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="fr-FR")

            # The partner: withdrawing a colleague's only role asks first, says the
            # consequence, and "Annuler" leaves everything as it was.
            sign_in(page, base, "demandeur@ville-a.fr")
            page.goto(base + "/mon-organisation")
            assert "technique@ville-a.fr" in members(page)
            dialog = open_modal(page, "Retirer « Responsable technique »… à technique")
            text = dialog.inner_text()
            assert "Retirer le rôle « Responsable technique » à technique ?" in text
            assert "n'est plus membre de l'organisation" in text
            assert "il faudra l'inviter de nouveau" in text
            check_both_widths(page, "confirmation-retrait-role")
            dialog.get_by_role("button", name="Annuler").click()
            dialog.wait_for(state="hidden")
            page.reload()
            assert "technique@ville-a.fr" in members(page)

            dialog = open_modal(page, "Retirer « Responsable technique »… à technique")
            confirm(page, dialog, "Retirer le rôle")
            assert page.get_by_role("status").inner_text() == "Le rôle est retiré."
            assert "technique@ville-a.fr" not in members(page)

            # An invitation sent, then cancelled through its confirmation.
            page.locator("#invite-email-1").fill("nouvelle.collegue@ville-a.fr")
            page.locator("#invite-role-1").select_option(
                label="Délégué à la protection des données"
            )
            with page.expect_navigation(wait_until="load"):
                page.get_by_role("button", name="Envoyer l'invitation").first.click()
            assert "L'invitation est partie" in page.get_by_role("status").inner_text()
            dialog = open_modal(page, "Annuler l'invitation… de nouvelle.collegue@ville-a.fr")
            assert "Le lien envoyé à nouvelle.collegue@ville-a.fr cessera aussitôt" in (
                dialog.inner_text()
            )
            check_both_widths(page, "confirmation-annulation-invitation")
            confirm(page, dialog, "Annuler l'invitation")
            assert "L'invitation est annulée" in page.get_by_role("status").inner_text()
            assert "nouvelle.collegue@ville-a.fr" not in page.locator("main").inner_text()

            # Signing out is said too.
            with page.expect_navigation(wait_until="load"):
                page.get_by_role("button", name="Se déconnecter").click()
            assert page.get_by_role("status").inner_text() == "Vous êtes déconnecté."

            # The administrator: disabling an agent is confirmed, then said done.
            sign_in(page, base, ADMIN)
            give_totp_in_browser(page, TOTP_SECRET, ADMIN)
            page.goto(base + "/instruction/agents")
            check_both_widths(page, "agents")
            # Nothing cut at 1280 px.
            assert_tables_fit(page)
            dialog = open_modal(page, "Désactiver… le compte exploitant@dgfip.test")
            text = dialog.inner_text()
            assert "Désactiver le compte de Exploitant ?" in text
            assert "ne pourra plus se connecter" in text
            check_both_widths(page, "confirmation-desactivation-agent")
            confirm(page, dialog, "Désactiver le compte")
            assert page.get_by_role("status").inner_text() == (
                "Compte désactivé : ses sessions sont fermées."
            )
            row = page.locator("#agents tr", has_text="exploitant@dgfip.test")
            assert "Désactivé le" in (row.text_content() or "")

            # Removing an account says it cannot be undone.
            dialog = open_modal(page, "Retirer… le compte rssi@dgfip.test")
            assert "ne peut pas être annulée" in dialog.inner_text()
            confirm(page, dialog, "Retirer le compte")
            assert page.get_by_role("status").inner_text() == "Compte d'agent retiré."
        finally:
            browser.close()


def test_error_and_statement_pages_are_french_dsfr_pages(portal: Portal) -> None:
    base = portal.url
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="fr-FR")
            answer = page.goto(base + "/nulle-part")
            assert answer is not None
            assert answer.status == 404
            assert page.get_by_role("heading", level=1).inner_text() == "Page introuvable"
            assert "Erreur 404" in page.locator("main").inner_text()
            assert page.locator("header.fr-header").count() == 1
            assert page.get_by_role("link", name="Page d'accueil").is_visible()
            check_both_widths(page, "erreur-404")

            # From any page's footer: the accessibility statement, its level stated honestly.
            page.get_by_role("link", name="Accessibilité : partiellement conforme").click()
            page.wait_for_url("**/accessibilite")
            assert page.get_by_role("heading", level=1).inner_text() == (
                "Déclaration d'accessibilité"
            )
            text = page.locator("main").inner_text()
            assert "partiellement conforme" in text
            assert "RGAA" in text
            assert "Défenseur des droits" in text
            check_both_widths(page, "declaration-accessibilite")

            page.get_by_role("link", name="Mentions légales").click()
            page.wait_for_url("**/mentions-legales")
            assert page.get_by_role("heading", level=1).inner_text() == "Mentions légales"
            assert "Cookies" in page.locator("main").inner_text()
            check_both_widths(page, "mentions-legales")
        finally:
            browser.close()


def test_first_steps_are_explained_and_terminations_ask_for_the_name(portal: Portal) -> None:
    base = portal.url
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="fr-FR")
            # Signing up: each role is explained next to the choice.
            page.goto(base + "/inscription")
            text = page.locator("main").inner_text()
            assert "Quel rôle choisir ?" in text
            assert "Responsable technique : vous recevez les identifiants" in text
            assert "Délégué à la protection des données (DPO)" in text

            # A partner with no request yet is told what to prepare.
            sign_in(page, base, "demandeur@societe-b.fr")
            page.goto(base + "/demandes")
            text = page.locator("main").inner_text()
            assert "Aucune demande pour l'instant." in text
            prepare = page.locator("#a-preparer").inner_text()
            for thing in (
                "texte qui vous autorise",
                "certificat client",
                "adresses IP sortantes",
                "délégué à la protection des données (DPO)",
                "responsable technique",
                "sept étapes",
            ):
                assert thing in prepare, thing
            check_both_widths(page, "demandes-vides")

            # Termination with notice by the partner: the organisation's name, typed.
            sign_in(page, base, "demandeur@ville-a.fr")
            page.goto(base + "/habilitations")
            dialog = open_modal(page, "Résilier avec préavis…")
            assert "ne peut pas être annulée" in dialog.inner_text()
            dialog.get_by_label("Motif de la résiliation").fill("Service arrêté.")
            dialog.get_by_label("Pour confirmer, saisissez le nom de l'organisation").fill(
                "Ville B"
            )
            confirm(page, dialog, "Résilier avec préavis")
            # Refused: the dialog is open again, the mistake said next to the field.
            dialog = page.locator("dialog[open]")
            dialog.wait_for(state="visible")
            assert "Saisissez exactement le nom de l'organisation, « Ville A »" in (
                dialog.inner_text()
            )
            check_both_widths(page, "resiliation-nom-errone")

            # The instructor lands on the queue: who filed, their SIRET, nothing cut at 1280 px.
            sign_in(page, base, "instructeur@dgfip.test")
            give_totp_in_browser(page, TOTP_SECRET, "instructeur@dgfip.test")
            assert page.url.endswith("/instruction")
            queue = page.locator("main table").first.inner_text()
            assert "Ville A" in queue
            assert "21000000610001" in queue.replace(" ", "")
            assert_tables_fit(page)
            page.goto(base + "/instruction/habilitations")
            assert_tables_fit(page)

            # The security officer: a suspension, then an immediate termination.
            sign_in(page, base, "rssi@dgfip.test")
            give_totp_in_browser(page, TOTP_SECRET, "rssi@dgfip.test")
            page.goto(base + f"/instruction/habilitations/{portal.habilitation_id}")
            dialog = open_modal(page, "Suspendre…")
            dialog.get_by_label("Motif").fill("Appels anormaux à vérifier.")
            confirm(page, dialog, "Suspendre")
            assert page.get_by_role("status").inner_text() == "Habilitation suspendue."
            assert page.locator("#statut").text_content() == "Suspendue"
            # Its time in the history is Paris time, as the reader's clock shows it.
            paris = dt.datetime.now(ZoneInfo("Europe/Paris"))
            shown = page.locator(".guichet-event", has_text="Appels anormaux").inner_text()
            assert any(
                (paris - dt.timedelta(minutes=m)).strftime("le %d/%m/%Y à %H:%M") in shown
                for m in (0, 1)
            ), shown
            dialog = open_modal(page, "Résilier immédiatement (sécurité)…")
            assert "ne peut pas être annulée" in dialog.inner_text()
            check_both_widths(page, "resiliation-immediate-confirmation")
            dialog.get_by_label("Motif").fill("Fuite de secret confirmée.")
            dialog.get_by_label("Pour confirmer, saisissez le nom de l'organisation").fill(
                "ville a"
            )
            confirm(page, dialog, "Résilier immédiatement (sécurité)")
            assert page.get_by_role("status").inner_text() == (
                "Habilitation résiliée immédiatement."
            )
            assert page.locator("#statut").text_content() == "Résiliée"
        finally:
            browser.close()
