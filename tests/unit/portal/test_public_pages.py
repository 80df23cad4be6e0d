"""The pages anyone reads first: home, errors, accessibility statement, legal notice, docs."""

from __future__ import annotations

import re

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.testclient import TestClient

SNAKE = re.compile(r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b")


def test_home_speaks_to_people_not_to_operators(client: TestClient) -> None:
    home = client.get("/").text
    assert "<title>Accueil — guichet, les API de la DGFiP</title>" in home
    assert "<h1>Les API de la DGFiP pour les partenaires habilités</h1>" in home
    assert "0.1.0" not in home
    assert "/metrics" not in home
    assert "Prometheus" not in home
    assert "var/demo" not in home
    assert "/tmp" not in home
    assert 'href="/accessibilite">Accessibilité : partiellement conforme</a>' in home
    assert 'href="/mentions-legales">Mentions légales</a>' in home


def test_unknown_page_is_a_design_system_404(client: TestClient) -> None:
    page = client.get("/nulle-part")
    assert page.status_code == 404
    assert "<h1>Page introuvable</h1>" in page.text
    assert "Erreur 404" in page.text
    assert 'class="fr-header"' in page.text
    assert 'class="fr-footer"' in page.text
    assert '<a class="fr-btn" href="/">Page d\'accueil</a>' in page.text


def test_accessibility_statement_and_legal_notice(client: TestClient) -> None:
    statement = client.get("/accessibilite")
    assert statement.status_code == 200
    assert "partiellement conforme" in statement.text
    assert "RGAA" in statement.text
    assert "mailto:contact@guichet.example" in statement.text
    assert "Défenseur des droits" in statement.text
    notice = client.get("/mentions-legales")
    assert notice.status_code == 200
    assert "<h1>Mentions légales</h1>" in notice.text


def test_docs_are_french_with_the_running_ports_and_working_links(client: TestClient) -> None:
    quickstart = client.get("/docs/partner-quickstart").text
    assert "<h1>Démarrage rapide pour les partenaires</h1>" in quickstart
    assert "https://127.0.0.1:8443/token" in quickstart  # from the settings, not the file
    assert "{{" not in quickstart
    pages = ["partner-quickstart", "sandbox", "catalogue", "portal", "architecture"]
    for name in pages:
        page = client.get(f"/docs/{name}")
        assert page.status_code == 200, name
        for link in re.findall(r'href="(/[^"#]*)', page.text):
            if link.startswith("/static/"):
                continue
            assert client.get(link).status_code == 200, (name, link)
    catalogue = client.get("/docs/catalogue").text
    assert "Revenu fiscal de référence (RFR)" in catalogue
    assert "<code>dgfip_rfr</code> : <code>rfr</code>" in catalogue


def test_citizen_pages_offer_no_partner_sign_in(client: TestClient) -> None:
    home = client.get("/").text
    assert 'class="fr-btn fr-icon-lock-line" href="/connexion"' in home
    citizen = client.get("/mes-donnees").text
    assert 'class="fr-btn fr-icon-lock-line" href="/connexion"' not in citizen
    assert 'href="/inscription"' not in citizen


def test_a_failure_is_a_french_design_system_500(portal: Starlette) -> None:
    async def broken(_: Request) -> Response:
        raise RuntimeError("détail interne à ne pas montrer")

    portal.router.routes.insert(0, Route("/panne", broken))
    with TestClient(portal, raise_server_exceptions=False, client=("127.0.0.1", 50000)) as c:
        page = c.get("/panne")
    assert page.status_code == 500
    assert "<h1>Erreur technique</h1>" in page.text
    assert "Réessayez dans quelques minutes." in page.text
    assert 'class="fr-header"' in page.text
    assert 'class="fr-footer"' in page.text
    assert "détail interne" not in page.text
    assert "RuntimeError" not in page.text
