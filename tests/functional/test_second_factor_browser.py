"""Strong authentication (issue 14, DICP C4) in a real browser (Debian's Chromium through
Playwright): a staff member signs in with their password, is taken to the enrolment page and
can reach nothing else, scans (here: reads) the TOTP key, confirms a code, notes the recovery
codes and lands on the queue; the next sign-in asks the code. Then a security key is added
from "Mon compte" with Chromium's virtual authenticator (DevTools' WebAuthn domain), and the
next sign-in is done with the key alone: real ``navigator.credentials`` calls, verified by
``webauthn`` on the server. Every page passes axe-core; no CSP violation."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from playwright import sync_api as playwright_sync
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from guichet.accounts.models import PortalSession, ProviderRole, SecondFactor, SecondFactorKind
from guichet.accounts.passwords import Passwords
from guichet.accounts.service import create_user, grant_provider_role
from guichet.clock import SystemClock
from guichet.db import make_engine, make_sessionmaker, transaction
from guichet.portal.app import build_portal_app
from guichet.quota import QuotaService
from guichet.runtime import Runtime
from guichet.sandbox.personas import PERSONAS
from guichet.schema import metadata
from guichet.secrets import MasterSecret
from guichet.settings import Settings
from tests.functional.test_portal_browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    check_accessibility,
    submit,  # importing the module also brings its "no browser → fail" check
)
from tests.support.postgres import free_port
from tests.support.second_factor import ADD_PATH, VERIFY_PATH, fresh_code
from tests.unit.accounts.conftest import FAST_HASHER

EMAIL = "rssi@dgfip.test"
PASSWORD = "un mot de passe solide"


@dataclass(frozen=True)
class Portal:
    url: str
    session_factory: sessionmaker[Session]


@pytest.fixture
def portal(tmp_path: Path) -> Iterator[Portal]:
    """The portal on ``localhost`` (WebAuthn wants a domain as the relying party's id, and
    takes ``localhost`` over plain HTTP as a secure context), with one security officer."""
    port = free_port()
    settings = Settings(
        data_dir=tmp_path,
        smtp_url=None,
        portal_port=port,
        portal_public_url=f"http://localhost:{port}",
    )
    engine = make_engine(f"sqlite:///{tmp_path / 'guichet.db'}")
    metadata.create_all(engine)
    factory = make_sessionmaker(engine)
    runtime = Runtime(settings, engine, factory, MasterSecret(b"k" * 48), SystemClock())
    with transaction(factory) as session:
        now = runtime.clock.now()
        hashed = Passwords(FAST_HASHER).hash(PASSWORD)
        officer = create_user(
            session, EMAIL, "Camille RSSI", now, password_hash=hashed, verified=True
        )
        grant_provider_role(session, officer, ProviderRole.SECURITY_OFFICER, now)
        grant_provider_role(session, officer, ProviderRole.INSTRUCTOR, now)
    app = build_portal_app(
        runtime, QuotaService(None), password_hasher=FAST_HASHER, personas=PERSONAS
    )
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the portal did not start"
        time.sleep(0.02)
    yield Portal(settings.resolved_portal_url, factory)
    server.should_exit = True
    thread.join(10)
    engine.dispose()


def password_step(page: Any, url: str) -> None:
    page.context.clear_cookies()
    page.goto(url + "/connexion")
    page.locator("#email").fill(EMAIL)
    page.locator("#password").fill(PASSWORD)
    page.get_by_role("button", name="Se connecter", exact=True).click()
    page.wait_for_url(lambda u: not u.endswith("/connexion"))


def test_staff_enrol_totp_then_sign_in_with_it_and_with_a_security_key(portal: Portal) -> None:
    url = portal.url
    csp: list[str] = []
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="fr-FR")
            page.on(
                "console",
                lambda m: csp.append(m.text) if "Content Security Policy" in m.text else None,
            )
            # The password is right: the enrolment page, and nothing else.
            password_step(page, url)
            page.wait_for_url(f"**{ADD_PATH}")
            assert page.get_by_role(
                "heading", name="Authentification forte obligatoire"
            ).is_visible()
            assert page.locator("svg.guichet-qr").is_visible()
            check_accessibility(page, "second-facteur-ajout")
            for elsewhere in ("/instruction", "/mon-compte", "/demandes"):
                page.goto(url + elsewhere)
                assert page.url.endswith(ADD_PATH), (elsewhere, page.url)

            # The key typed into an application (here: computed), then its code.
            secret = page.locator("#cle-totp").inner_text().replace(" ", "")
            page.locator("#code").fill(fresh_code(secret, None, EMAIL))
            submit(page, "Valider le code")
            assert page.get_by_role("heading", name="Vos codes de secours").is_visible()
            assert page.locator("#codes-de-secours li").count() == 10
            check_accessibility(page, "codes-de-secours")
            page.get_by_role("link", name="J'ai noté mes codes, continuer").click()
            page.wait_for_url("**/instruction")

            # The next sign-in asks the code; a wrong one is said on the page.
            password_step(page, url)
            page.wait_for_url(f"**{VERIFY_PATH}")
            check_accessibility(page, "second-facteur")
            page.locator("#code").fill("000000")
            submit(page, "Valider le code")
            assert (
                "Code ou clé de sécurité refusé"
                in page.locator("#erreur-second-facteur").inner_text()
            )
            page.locator("#code").fill(fresh_code(secret, None, EMAIL))
            submit(page, "Valider le code")
            page.wait_for_url("**/instruction")

            # A security key added from "Mon compte", on Chromium's virtual authenticator.
            cdp = page.context.new_cdp_session(page)
            cdp.send("WebAuthn.enable")
            cdp.send(
                "WebAuthn.addVirtualAuthenticator",
                {
                    "options": {
                        "protocol": "ctap2",
                        "transport": "usb",
                        "hasResidentKey": False,
                        "hasUserVerification": True,
                        "isUserVerified": True,
                        "automaticPresenceSimulation": True,
                    }
                },
            )
            page.goto(url + "/mon-compte")
            page.get_by_role("link", name="Mes seconds facteurs (authentification forte)").click()
            page.wait_for_url("**/mon-compte/second-facteur")
            check_accessibility(page, "mes-seconds-facteurs")
            page.get_by_role("link", name="Ajouter un second facteur").click()
            page.wait_for_url(f"**{ADD_PATH}")
            page.locator("#key-label").fill("Clé du bureau")
            page.get_by_role("button", name="Enregistrer ma clé de sécurité").click()
            page.wait_for_url("**/mon-compte/second-facteur")
            table = page.locator("#seconds-facteurs").inner_text()
            assert "Clé de sécurité" in table
            assert "Clé du bureau" in table

            # Signing in with the key alone.
            password_step(page, url)
            page.wait_for_url(f"**{VERIFY_PATH}")
            page.get_by_role("button", name="Utiliser ma clé de sécurité").click()
            page.wait_for_url("**/instruction")
        finally:
            browser.close()
    assert not csp, csp
    with portal.session_factory() as session:
        key = session.scalars(
            select(SecondFactor).where(SecondFactor.kind == SecondFactorKind.WEBAUTHN)
        ).one()
        assert key.public_key
        assert key.last_used_at is not None
        methods = set(session.scalars(select(PortalSession.auth_method)))
        assert "password+webauthn" in methods
