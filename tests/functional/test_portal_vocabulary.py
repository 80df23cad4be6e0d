"""Issue 15: the portal speaks the users' language. Against the running product (``guichet
run``), a partner, an instructor, two other staff roles and a citizen each sign in, then a
crawler follows every link of the portal they can reach; on every page the visible text holds
no internal name (no ``snake_case`` token, no ``dgfip_`` code) outside the technical
contact's details, and axe-core finds no serious or critical violation at desktop and at
375 px."""

from __future__ import annotations

import datetime as dt
import re
from collections import deque
from typing import Any
from urllib.parse import urldefrag, urlsplit

from playwright import sync_api as playwright_sync
from sqlalchemy import select

from guichet.accounts.models import User
from guichet.accounts.passwords import Passwords
from guichet.application.issuance import request_changes, submit
from guichet.db import transaction
from guichet.pki import ensure_local_pki, issue_client_certificate
from guichet.sandbox import personas
from guichet.secrets import MasterSecret
from tests.functional.conftest import Product, api_headers
from tests.functional.test_portal_browser import CHROMIUM, CHROMIUM_ARGS, check_accessibility
from tests.support.second_factor import (
    TOTP_SECRET,
    VERIFY_PATH,
    enrol_totp,
    give_totp_in_browser,
)
from tests.unit.accounts.conftest import FAST_HASHER
from tests.unit.habilitation.support import (
    World,
    make_world,
    new_complete_request,
    start_request,
    user,
    validated,
)

PASSWORD = "un mot de passe solide"
DUBOIS_NAME = "Angela Claire Louise DUBOIS"
SNAKE = re.compile(r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b")
PROVIDER_CODE = re.compile(r"dgfip_\w*", re.IGNORECASE)
# What the technical contact may read as it is: the details marked for them, and the code
# of the documentation's examples.
TECHNICAL = ".guichet-technical, .guichet-doc pre, .guichet-doc code"
# Never followed: leaving, downloads, documents, the outbox's mails (their own words).
SKIPPED = re.compile(
    r"^/(deconnexion|static/|documents/|outbox|mes-donnees/(connexion|deconnexion)|metrics)"
    r"|\.(csv|json|ya?ml|pdf)$"
)
MAX_PAGES = 40
VISIBLE_TEXT = """(technical) => {
  const parts = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode;
    const parent = node.parentElement;
    if (!parent || parent.closest(technical) || parent.closest("script, style")) continue;
    if (!parent.getClientRects().length) continue;
    const style = getComputedStyle(parent);
    if (style.visibility === "hidden" || style.display === "none") continue;
    parts.push(node.textContent);
  }
  return parts.join(" ");
}"""
EMAILS = {
    "partenaire": "demandeur@ville-a.fr",
    "instructeur": "instructeur@dgfip.test",
    "exploitant": "exploitant@dgfip.test",
    "rssi": "rssi@dgfip.test",
}


def seed(product: Product) -> World:
    """The people of the unit tests, with passwords, and requests in several states: a
    validated one (its habilitation and credentials), one sent back for changes, a draft."""
    now = dt.datetime.now(dt.UTC)
    pki = ensure_local_pki(product.data_dir / "pki", now, ["127.0.0.1"])
    cert = issue_client_certificate(pki, "crawler", "Ville A", 365, now)[0].decode()
    master = MasterSecret.load(product.data_dir, None)
    hashed = Passwords(FAST_HASHER).hash(PASSWORD)
    with transaction(product.session_factory) as session:
        world = make_world(session, now)
        for u in session.scalars(select(User)):
            if u.email in EMAILS.values():
                u.password_hash = hashed
        # Staff sign in with a second factor (issue 14, C4).
        for staff in (world.instructor, world.operator, world.security_officer):
            enrol_totp(session, master, staff, now)
        validated(session, world, new_complete_request(session, world, cert, now), now, master)
        second = new_complete_request(session, world, cert, now)
        submit(session, second, user(session, world.applicant), now=now)
        request_changes(
            session, second, user(session, world.instructor), "Précisez la durée.", now=now
        )
        start_request(session, user(session, world.applicant), world.org_a, now=now)
    return world


def demo_call(product: Product) -> None:
    """One real exchange about the federation's test citizen, so that their list has a row."""
    year = dt.datetime.now(dt.UTC).year - 1
    path = f"/impotparticulier/1.0/spi/{personas.DUBOIS.spi}/situations/ir/assiettes/annrev/{year}"
    with product.http(cert=product.demo_cert()) as client:
        token = product.token(client)
        client.get(product.sandbox_url + path, headers=api_headers(token))


def crawl(page: Any, base: str, starts: list[str], who: str) -> dict[str, list[str]]:
    """Every page reachable by links from ``starts``: the internal names each one shows."""
    found: dict[str, list[str]] = {}
    queue, seen = deque(starts), set(starts)
    while queue and len(found) < MAX_PAGES:
        path = queue.popleft()
        answer = page.goto(base + path)
        assert answer is not None
        assert answer.status < 500, (who, path, answer.status)
        text = page.evaluate(VISIBLE_TEXT, TECHNICAL)
        bad = sorted(set(SNAKE.findall(text)) | set(PROVIDER_CODE.findall(text)))
        if bad:
            found[path] = bad
        else:
            found.setdefault(path, [])
        name = (
            f"vocabulaire-{who}-{re.sub(r'[^a-z0-9]+', '-', path.lower()).strip('-') or 'accueil'}"
        )
        check_accessibility(page, name)
        page.set_viewport_size({"width": 375, "height": 800})
        check_accessibility(page, name + "-mobile")
        page.set_viewport_size({"width": 1280, "height": 900})
        for href in page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)"):
            link, _ = urldefrag(href)
            parts = urlsplit(link)
            if f"{parts.scheme}://{parts.netloc}" != base:
                continue
            local = parts.path + (f"?{parts.query}" if parts.query else "")
            if local not in seen and not SKIPPED.search(parts.path):
                seen.add(local)
                queue.append(local)
    return {path: bad for path, bad in found.items() if bad}


def sign_in(page: Any, base: str, email: str) -> None:
    page.context.clear_cookies()
    page.goto(base + "/connexion")
    page.locator("#email").fill(email)
    page.locator("#password").fill(PASSWORD)
    page.get_by_role("button", name="Se connecter", exact=True).click()
    page.wait_for_url(lambda url: not url.endswith("/connexion"))
    page.wait_for_load_state("load")
    if page.url.endswith(VERIFY_PATH):
        give_totp_in_browser(page, TOTP_SECRET, email)


def test_no_internal_name_on_any_page_of_any_role(product: Product) -> None:
    seed(product)
    demo_call(product)
    base = product.portal_url
    leaks: dict[str, dict[str, list[str]]] = {}
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="fr-FR")
            leaks["visiteur"] = crawl(page, base, ["/", "/nulle-part"], "visiteur")
            for who, email in EMAILS.items():
                sign_in(page, base, email)
                assert "/connexion" not in page.url, (who, page.url)
                leaks[who] = crawl(page, base, [urlsplit(page.url).path, "/"], who)

            # The citizen: signing in to see their own exchanges asks no consent.
            page.context.clear_cookies()
            page.goto(base + "/mes-donnees")
            page.locator("a.fr-connect").click()
            page.wait_for_url(product.federation_url + "/interaction/*")
            page.get_by_role("link", name="impots.gouv.fr").click()
            page.get_by_role(
                "button", name="Se connecter comme Angela Claire Louise DUBOIS"
            ).click()
            page.wait_for_url(base + "/mes-donnees/echanges*")
            # The header offers no partner sign-in on the citizen's pages.
            assert page.locator(".fr-header__tools a[href='/connexion']").count() == 0
            # On a phone, each exchange shows the data transmitted and the outcome.
            page.set_viewport_size({"width": 375, "height": 800})
            exchange = page.locator(".guichet-exchange").first
            assert exchange.is_visible()
            text = exchange.inner_text()
            assert "Données transmises" in text
            assert "Revenu fiscal de référence" in text
            page.set_viewport_size({"width": 1280, "height": 900})
            leaks["citoyen"] = crawl(page, base, ["/mes-donnees/echanges"], "citoyen")
        finally:
            browser.close()
    assert not any(leaks.values()), leaks
