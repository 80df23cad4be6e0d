"""The portal's exception handlers: every failure is a French page, never a bare 500.

Domain errors (``GuichetError``) raised by a route, its parsing included, become a page with
their status and French message (on the page ``shown_on`` names, else the generic one);
Starlette's HTTP errors (unknown page, wrong method, unreadable form) get French words;
anything else is logged and answered with a French 500. Routes raise; they do not catch.
"""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from guichet.errors import GuichetError
from guichet.logs import event
from guichet.portal.security import HEADERS
from guichet.portal.web import TEMPLATES, redirect, render

log = logging.getLogger(__name__)

ERROR_PAGE = "error.html"

HTTP_TITLES = {
    400: ("Requête invalide", "Le formulaire envoyé est illisible : rechargez la page."),
    403: ("Accès refusé", "Vous n'avez pas accès à cette page."),
    404: ("Page introuvable", "Cette page n'existe pas."),
    405: ("Action impossible", "Cette page ne permet pas cette action."),
    413: ("Envoi trop volumineux", "Le formulaire ou le fichier envoyé est trop volumineux."),
    429: ("Trop de tentatives", "Trop de demandes en peu de temps : réessayez dans une minute."),
}


def shown_on(request: Request, exc: GuichetError, template: str) -> None:
    """``exc``, on its way to ``domain_error``, is shown on ``template`` rather than on the
    generic page (the services' refusals on the partner's and the instructors' pages come
    with a way back to the requests)."""
    request.state.error_page = (exc, template)


def _template_of(request: Request, exc: GuichetError) -> str:
    marked = getattr(request.state, "error_page", None)
    return marked[1] if isinstance(marked, tuple) and marked[0] is exc else ERROR_PAGE


async def domain_error(request: Request, exc: Exception) -> Response:
    """A domain error as a readable page with its status (400, 403, 404, 409…)."""
    assert isinstance(exc, GuichetError)
    if exc.code == "sign_in_required":
        return redirect(request, "/connexion")
    event(log, "portal.page_refused", path=request.url.path, code=exc.code, status=exc.status)
    response = await render(
        request,
        _template_of(request, exc),
        status_code=exc.status,
        title=exc.title,
        message=exc.detail,
    )
    if exc.retry_after is not None:
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (no such route, method, unreadable form) in French."""
    assert isinstance(exc, HTTPException)
    title, message = HTTP_TITLES.get(exc.status_code, ("Requête refusée", "Requête refusée."))
    response = await render(
        request, "error.html", status_code=exc.status_code, title=title, message=message
    )
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def unexpected_error(request: Request, exc: Exception) -> Response:
    """A bug or an outage: logged with its type (never its text: it may hold personal data),
    answered without touching the database (it may be what failed)."""
    event(
        log,
        "portal.unexpected_error",
        logging.ERROR,
        path=request.url.path,
        error=type(exc).__name__,
    )
    page = TEMPLATES.get_template("error.html").render(
        request_path=request.url.path,
        account=None,
        csrf_token="",
        outbox_enabled=False,
        status_code=500,
        title="Erreur technique",
        message="Une erreur technique empêche d'afficher cette page. Réessayez dans quelques "
        "minutes.",
    )
    return HTMLResponse(page, status_code=500, headers=HEADERS)


EXCEPTION_HANDLERS = {
    GuichetError: domain_error,
    HTTPException: http_error,
    Exception: unexpected_error,
}
