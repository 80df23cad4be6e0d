"""The federation's HTML pages: its templates, the security headers they carry, the error page."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from jinja2 import ChoiceLoader, FileSystemLoader, select_autoescape
from jinja2 import Environment as Jinja
from starlette.responses import HTMLResponse, Response

import guichet.federation
from guichet.federation.scopes import DATA_SCOPES

# The pages' own templates; their layout (``base.html``) is the domain's, shared with the
# consent page (``guichet.federation.consent``).
TEMPLATES: Final = Jinja(
    loader=ChoiceLoader(
        [
            FileSystemLoader(Path(__file__).parent / "templates"),
            FileSystemLoader(Path(guichet.federation.__file__).parent / "templates"),
        ]
    ),
    autoescape=select_autoescape(["html"]),
)
PAGE_HEADERS: Final = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'"
    ),
}
SCOPE_LABELS: Final = {
    "openid": "Identifiant technique",
    "given_name": "Prénoms",
    "family_name": "Nom de naissance",
    "birthdate": "Date de naissance",
    "gender": "Sexe",
    "birthplace": "Lieu de naissance",
    "birthcountry": "Pays de naissance",
    "preferred_username": "Nom d'usage",
    "email": "Adresse électronique",
}


def page(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(
        TEMPLATES.get_template(name).render(**context), status_code=status, headers=PAGE_HEADERS
    )


def error_page(title: str, detail: str, status: int = 400, code: str | None = None) -> Response:
    return page("error.html", status, title=title, detail=detail, code=code)


def too_large(limit: int) -> Response:
    """The answer to a body beyond the origin's limit (``guichet.connections.BodyLimit``)."""
    return error_page(
        "Envoi trop volumineux",
        f"La demande envoyée dépasse {limit // 1024} Kio : elle n'a pas été lue.",
        413,
        "request_too_large",
    )


def expired() -> Response:
    return error_page(
        "Votre session a expiré",
        "Retournez sur le site du service et recommencez la connexion avec FranceConnect.",
    )


def unknown_idp() -> Response:
    return error_page("Fournisseur d'identité inconnu", "Choisissez-en un dans la liste.", 404)


def form_expired() -> Response:
    return error_page("Formulaire expiré", "Rechargez la page et recommencez.", 403, "csrf_invalid")


def scope_labels(scopes: tuple[str, ...]) -> list[str]:
    """Plain-French labels of identity scopes (the data scopes are the consent page's)."""
    return [SCOPE_LABELS[s] for s in scopes if s in SCOPE_LABELS and s not in DATA_SCOPES]
