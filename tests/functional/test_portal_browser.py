"""A partner signs up in a real browser (Debian's Chromium through Playwright), reads the
verification mail in the outbox, follows it, signs in and sees "mon compte"; every page
passes axe-core without serious or critical violations and is screenshotted for the README."""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from playwright import sync_api as playwright_sync

from guichet.clock import SystemClock
from guichet.db import make_engine, make_sessionmaker
from guichet.portal.app import STATIC_DIR, build_portal_app
from guichet.quota import QuotaService
from guichet.runtime import Runtime
from guichet.sandbox.personas import PERSONAS
from guichet.schema import metadata
from guichet.secrets import MasterSecret
from guichet.settings import Settings
from tests.support.postgres import free_port
from tests.unit.accounts.conftest import FAST_HASHER

ROOT = Path(__file__).resolve().parents[2]
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
# `make screenshots` refreshes the README's pictures; a plain test run leaves docs/ alone.
SCREENSHOTS = Path(
    os.environ.get("GUICHET_SCREENSHOTS_DIR") or Path(tempfile.gettempdir()) / "guichet-screenshots"
)
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Never a silent skip: without the browser or the assets, the suite fails and says why.
if not (Path(CHROMIUM).exists() and AXE.exists() and (STATIC_DIR / "dsfr").is_dir()):
    pytest.fail(
        "browser tests need /usr/bin/chromium, npm ci and scripts/build-assets.sh: run make test",
        pytrace=False,
    )


@pytest.fixture
def portal_url(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    settings = Settings(
        data_dir=tmp_path,
        smtp_url=None,
        portal_port=port,
        portal_public_url=f"http://127.0.0.1:{port}",
    )
    url = f"sqlite:///{tmp_path / 'guichet.db'}"
    engine = make_engine(url)
    metadata.create_all(engine)
    runtime = Runtime(
        settings, engine, make_sessionmaker(engine), MasterSecret(b"k" * 48), SystemClock()
    )
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
    yield settings.resolved_portal_url
    server.should_exit = True
    thread.join(10)
    engine.dispose()


def check_accessibility(page: Any, name: str) -> None:
    """axe-core on the page as shown; no serious or critical violation; a screenshot."""
    # As the user ends up seeing it: a dialog fading in is half transparent, and axe would
    # measure the contrast of that instant.
    page.evaluate("() => Promise.all(document.getAnimations().map((a) => a.finished))")
    # Through DevTools: the page's CSP (rightly) refuses injected scripts.
    page.evaluate(AXE.read_text(encoding="utf-8"))
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    bad = [
        f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:3]}"
        for v in result["violations"]
        if v["impact"] in {"serious", "critical"}
    ]
    assert not bad, f"{name}: " + "\n".join(bad)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def submit(page: Any, button: str) -> None:
    """Press a form's button and wait for the page the server answers with.

    A form that posts back to its own address (a block saved, errors shown) ends on a URL
    that already matched before the click, so ``wait_for_url`` cannot tell the two pages
    apart: wait for the navigation itself."""
    with page.expect_navigation(wait_until="load"):
        page.get_by_role("button", name=button).click()


def test_partner_signs_up_verifies_and_signs_in(portal_url: str) -> None:
    csp_violations: list[str] = []
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="fr-FR")
            page.on(
                "console",
                lambda m: (
                    csp_violations.append(m.text) if "Content Security Policy" in m.text else None
                ),
            )
            page.goto(portal_url + "/")
            assert page.locator(".fr-header__service-title").inner_text() == "guichet"
            # The DSFR's stylesheet is served and applied (Marianne on the body).
            assert "Marianne" in page.evaluate("getComputedStyle(document.body).fontFamily")
            check_accessibility(page, "accueil")
            page.get_by_role("link", name="Les personnes de test du bac à sable").click()
            page.wait_for_url("**/bac-a-sable")
            assert page.locator("#personnes tbody tr").count() > 20
            check_accessibility(page, "bac-a-sable")
            page.goto(portal_url + "/")

            page.get_by_role("link", name="Créer un compte partenaire").click()
            page.wait_for_url("**/inscription")
            check_accessibility(page, "inscription")
            # A first attempt with a wrong SIRET: the error is tied to the field.
            page.get_by_label("Prénom et nom").fill("Camille Martin")
            page.locator("#email").fill("camille.martin@mairie-exemple.fr")
            page.locator("#password").fill("un mot de passe solide")
            page.get_by_label("Numéro SIRET").fill("732 829 320 00075")
            page.get_by_label("Dénomination de l'organisation").fill("Commune d'Exemple")
            page.get_by_label("Votre rôle").select_option("applicant")
            submit(page, "Créer mon compte")
            siret = page.locator("#siret")
            assert siret.get_attribute("aria-invalid") == "true"
            described = page.locator("#" + (siret.get_attribute("aria-describedby") or ""))
            assert "clé de contrôle" in described.inner_text()
            check_accessibility(page, "inscription-erreurs")

            page.locator("#password").fill("un mot de passe solide")
            siret.fill("732 829 320 00074")
            page.get_by_role("button", name="Créer mon compte").click()
            page.wait_for_url("**/inscription/envoyee")
            check_accessibility(page, "inscription-envoyee")

            page.get_by_role("link", name="boîte d'envoi", exact=True).click()
            page.wait_for_url("**/outbox")
            check_accessibility(page, "boite-envoi")
            page.get_by_role("link", name="Confirmez votre adresse électronique").click()
            check_accessibility(page, "courriel-verification")
            page.locator("pre a").first.click()
            page.wait_for_url("**/verification-email?token=*")
            assert page.get_by_role("heading", name="Adresse électronique vérifiée").is_visible()
            check_accessibility(page, "adresse-verifiee")

            page.get_by_role("link", name="Se connecter").last.click()
            page.wait_for_url("**/connexion")
            check_accessibility(page, "connexion")
            page.locator("#email").fill("Camille.Martin@mairie-exemple.fr")
            # Keyboard only: type the password and submit with Enter.
            page.locator("#password").focus()
            page.keyboard.type("un mot de passe solide")
            page.keyboard.press("Enter")
            page.wait_for_url("**/mon-compte")
            assert page.get_by_role("heading", name="Mon compte").is_visible()
            assert page.get_by_role("cell", name="Commune d'Exemple").is_visible()
            check_accessibility(page, "mon-compte")

            # Narrow screens: the header collapses into the DSFR menu.
            page.set_viewport_size({"width": 375, "height": 800})
            page.get_by_role("button", name="Menu").click()
            assert page.get_by_role("link", name="Mon compte").last.is_visible()
            page.screenshot(path=str(SCREENSHOTS / "mon-compte-mobile.png"))
        finally:
            browser.close()
    assert not csp_violations, csp_violations
