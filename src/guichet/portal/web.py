"""What every portal view shares: dependencies, the session cookie, CSRF, page rendering."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment as Jinja
from jinja2 import FileSystemLoader, select_autoescape
from markupsafe import Markup, escape
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.types import Message, Receive

from guichet.accounts.errors import FormInvalid
from guichet.accounts.service import AccountService, AccountView
from guichet.accounts.sessions import SessionData, SessionStore
from guichet.catalog import vocabulary
from guichet.errors import GuichetError
from guichet.logs import event
from guichet.mail.outbox import Outbox
from guichet.portal.origin import loopback_peer, request_is_https
from guichet.settings import Settings

log = logging.getLogger(__name__)

TEMPLATES = Jinja(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
)
COOKIE = "guichet_session"
# Over HTTPS the __Host- prefix pins the cookie to this origin (Secure, Path=/, no Domain).
SECURE_COOKIE = "__Host-guichet_session"
CSRF_FIELD = "csrf_token"
MAX_FORM_FIELDS = 50
# Forms without files: the largest (a request's perimeter block) is far below.
MAX_FORM_BODY = 2 * 1024 * 1024
_URL = re.compile(r"https?://[^\s<>\"']+")


def linkify(text: str) -> Markup:
    """Plain text, escaped, with its http(s) links made clickable (the outbox's mails)."""
    escaped = str(escape(text))
    return Markup(_URL.sub(lambda m: f'<a href="{m.group(0)}">{m.group(0)}</a>', escaped))  # noqa: S704


TEMPLATES.filters["linkify"] = linkify
# What people read: Paris time, and the catalogue's words for codes (``catalog.vocabulary``).
TEMPLATES.filters["heure"] = vocabulary.datetime_words
TEMPLATES.filters["jour"] = vocabulary.date_words
TEMPLATES.filters["donnee"] = vocabulary.scope_name
TEMPLATES.filters["annee"] = vocabulary.year_name
TEMPLATES.filters["champ"] = vocabulary.field_name
TEMPLATES.filters["resultat"] = vocabulary.outcome_sentence
TEMPLATES.filters["operation"] = vocabulary.operation_name
TEMPLATES.filters["cgu"] = vocabulary.terms_version
TEMPLATES.globals["vocabulary"] = vocabulary

# Post/redirect/get: the notice an action leaves for the page it redirects to. The cookie
# holds a key of this table only (never text from a form), read once.
NOTICE_COOKIE = "guichet_notice"
NOTICES: dict[str, str] = {
    "block_saved": "Bloc enregistré.",
    "step_saved": "Étape enregistrée dans votre brouillon.",
    "terms_accepted": "Conditions générales d'utilisation acceptées.",
    "submitted": "Demande soumise : l'instruction vous répondra sur ce portail et par courriel.",
    "contact_link_sent": "Lien de confirmation renvoyé.",
    "request_created": "Demande créée.",
    "production_started": "Demande de production créée à partir de la demande au bac à sable.",
    "update_started": "Demande de mise à jour créée.",
    "notice_given": "Résiliation enregistrée : les échanges continuent pendant le préavis de "
    "deux mois.",
    "secret_rotated": "Secret renouvelé : récupérez le nouveau ci-dessous.",
    "archived": "Demande archivée.",
    "decision_request_changes": "Modifications demandées au partenaire.",
    "decision_refuse": "Demande refusée.",
    "decision_validate": "Demande validée : les accès sont délivrés.",
    "comment_added": "Commentaire ajouté.",
    "action_suspend": "Habilitation suspendue.",
    "action_resume": "Habilitation rétablie.",
    "action_notice": "Résiliation avec préavis de deux mois enregistrée.",
    "action_terminate": "Habilitation résiliée immédiatement.",
    "second_factor_added": "Second facteur ajouté.",
    "second_factor_removed": "Second facteur retiré.",
    "staff_disable": "Compte désactivé : ses sessions sont fermées.",
    "staff_enable": "Compte réactivé.",
    "staff_remove": "Compte d'agent retiré.",
    "signed_out": "Vous êtes déconnecté.",
    "second_factors_reset": "Second facteur réinitialisé : les sessions du compte sont "
    "fermées et la personne a été prévenue par courriel.",
}


@dataclass
class PortalDeps:
    settings: Settings
    accounts: AccountService
    sessions: SessionStore
    outbox: Outbox | None


def deps(request: Request) -> PortalDeps:
    found = request.app.state.deps
    assert isinstance(found, PortalDeps)
    return found


def is_https(request: Request) -> bool:
    """The browser came over HTTPS (TLS here, or a TLS proxy in front): cookies are Secure."""
    return request_is_https(request.scope, deps(request).settings)


def cookie_name(request: Request) -> str:
    return SECURE_COOKIE if is_https(request) else COOKIE


async def current_session(request: Request) -> SessionData | None:
    """The request's live session (read once per request)."""
    if not hasattr(request.state, "session"):
        token = request.cookies.get(cookie_name(request))
        request.state.session = await run_in_threadpool(deps(request).sessions.load, token)
    found = request.state.session
    return found if isinstance(found, SessionData) else None


async def ensure_session(request: Request) -> SessionData:
    """The visitor's session, created (anonymous) if there is none: forms need its CSRF token."""
    session = await current_session(request)
    if session is None:
        session = await run_in_threadpool(deps(request).sessions.create)
        use_session(request, session)
    return session


def use_session(request: Request, session: SessionData | None) -> None:
    """From now on this request's session is ``session``; the response sets the cookie."""
    request.state.session = session
    request.state.session_changed = True


def finish(request: Request, response: Response) -> Response:
    """Sets or clears the session cookie if the session changed during the request."""
    if getattr(request.state, "session_changed", False):
        session = request.state.session
        name = cookie_name(request)
        if session is None:
            response.delete_cookie(
                name, path="/", secure=is_https(request), httponly=True, samesite="lax"
            )
        else:
            response.set_cookie(
                name,
                session.token,
                path="/",
                secure=is_https(request),
                httponly=True,
                samesite="lax",
            )
    return response


async def current_account(request: Request) -> AccountView | None:
    session = await current_session(request)
    if session is None or session.user_id is None:
        return None
    return await run_in_threadpool(deps(request).accounts.account, session.user_id)


async def render(
    request: Request, template: str, status_code: int = 200, *, form: bool = False, **context: Any
) -> Response:
    """A page of the layout, with the visitor's account and the session's CSRF token.

    A page with a form (``form=True``) gives an anonymous visitor a session, for its CSRF
    token; other pages create nothing.
    """
    session = await ensure_session(request) if form else await current_session(request)
    d = deps(request)
    flash = NOTICES.get(request.cookies.get(NOTICE_COOKIE, ""))
    page = TEMPLATES.get_template(template).render(
        request_path=request.url.path,
        account=await current_account(request),
        csrf_token=session.csrf_token if session else "",
        outbox_enabled=d.outbox is not None and loopback_peer(request.scope),
        flash=flash if status_code < 400 else None,
        status_code=status_code,
        **context,
    )
    response = HTMLResponse(page, status_code=status_code)
    if NOTICE_COOKIE in request.cookies and status_code < 400:
        response.delete_cookie(NOTICE_COOKIE, path="/", httponly=True, samesite="lax")
    return finish(request, response)


def redirect(request: Request, url: str, *, notice: str | None = None) -> Response:
    """A 303 to ``url``; ``notice`` (a key of ``NOTICES``) is shown once on the next page."""
    response = RedirectResponse(url, status_code=303)
    if notice is not None:
        assert notice in NOTICES, notice
        response.set_cookie(
            NOTICE_COOKIE,
            notice,
            max_age=120,
            path="/",
            secure=is_https(request),
            httponly=True,
            samesite="lax",
        )
    return finish(request, response)


def _cross_site(request: Request) -> bool:
    """Defence in depth before the CSRF token: browsers say where a request comes from.

    ``Sec-Fetch-Site`` first (modern browsers); otherwise a real ``Origin`` must be ours.
    ``Origin: null`` is what browsers send under ``Referrer-Policy: no-referrer``: the
    token decides then.
    """
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None:
        return fetch_site not in {"same-origin", "none"}
    origin = request.headers.get("origin")
    if origin and origin != "null":
        scheme = "https" if is_https(request) else "http"
        return origin.rstrip("/") != f"{scheme}://{request.url.netloc}"
    return False


FormHandler = Callable[[Request, FormData, SessionData], Awaitable[Response]]


class BodyTooLarge(GuichetError):
    status = 413
    code = "body_too_large"
    title = "Envoi trop volumineux"


def limited_receive(request: Request, max_body: int) -> Receive:
    """The request's body stream, cut at ``max_body`` bytes: a larger body is refused as it
    arrives (its ``Content-Length`` first), never read in full before being measured."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_body:
        raise BodyTooLarge(_too_large(max_body))
    received = 0

    async def receive() -> Message:
        nonlocal received
        message = await request.receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > max_body:
                raise BodyTooLarge(_too_large(max_body))
        return message

    return receive


def _too_large(max_body: int) -> str:
    return (
        f"Le formulaire envoyé dépasse {max_body // (1024 * 1024)} Mo : "
        "réduisez la taille des fichiers joints."
    )


def csrf_protected(
    handler: FormHandler,
    *,
    max_files: int = 0,
    max_fields: int = MAX_FORM_FIELDS,
    max_body: int = MAX_FORM_BODY,
) -> Callable[[Request], Awaitable[Response]]:
    """Every POST of the portal goes through here: a cross-site request, or a form without
    the session's synchronizer token, is refused with 403 before the handler runs.

    Forms take no file unless the route says how many (``max_files``, the request's uploads);
    a body beyond ``max_body`` bytes is refused with 413 while it streams in.
    """

    async def endpoint(request: Request) -> Response:
        body = Request(request.scope, limited_receive(request, max_body))
        form = await body.form(max_files=max_files, max_fields=max_fields)
        session = await current_session(request)
        if (
            _cross_site(request)
            or session is None
            or not session.csrf_matches(str(form.get(CSRF_FIELD) or ""))
        ):
            event(log, "portal.csrf_refused", path=request.url.path)
            return await render(
                request,
                "error.html",
                status_code=403,
                title="Formulaire expiré",
                message="Ce formulaire a expiré ou ne vient pas de ce site. "
                "Rechargez la page et recommencez.",
            )
        return await handler(request, form, session)

    endpoint.__name__ = handler.__name__
    endpoint.__doc__ = handler.__doc__
    return endpoint


# C0 and C1 controls, DEL, and the Unicode line and paragraph separators: invisible on the
# page, they break mail headers and logs (a U+2028 in a démarche stopped every decision mail).
_CONTROL = "\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029"
FORBIDDEN_ONE_LINE = re.compile(f"[{_CONTROL}\t\n\r]")
FORBIDDEN_MULTILINE = re.compile(f"[{_CONTROL}]")


class TextInvalid(FormInvalid):
    """A text field holds a control character or a line separator."""

    code = "text_invalid"
    title = "Caractère non autorisé"

    def __init__(self, name: str, *, multiline: bool) -> None:
        allowed = "" if multiline else " (ni tabulation ni retour à la ligne sur une seule ligne)"
        message = (
            "Ce champ contient un caractère invisible non autorisé : caractère de contrôle ou "
            f"séparateur de ligne Unicode{allowed}. Retirez-le puis enregistrez à nouveau."
        )
        super().__init__({name: message})
        self.detail = f"Champ « {name} » : {message}"


def field(form: FormData, name: str, limit: int = 1000, *, multiline: bool = False) -> str:
    """The text field ``name`` (at most ``limit`` characters; ``""`` if absent).

    Every text field of the portal is read here: control characters and U+2028/U+2029 are
    refused (``TextInvalid``, a field error), and line ends too unless ``multiline``.
    """
    value = form.get(name)
    if not isinstance(value, str):
        return ""
    value = value[:limit]
    if (FORBIDDEN_MULTILINE if multiline else FORBIDDEN_ONE_LINE).search(value):
        raise TextInvalid(name, multiline=multiline)
    return value
