"""The citizen signs in through the sandbox federation and out again: ``/mes-donnees``,
``/mes-donnees/connexion`` → the federation → ``/mes-donnees/retour``, and the sign-out."""

from __future__ import annotations

import logging
from typing import Final

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from guichet.accounts.sessions import SessionData
from guichet.logs import event
from guichet.portal.citizen.identity import Citizen, find_citizen
from guichet.portal.citizen.relying_party import PendingSignIn, SignInRefused, _refused, _same
from guichet.portal.citizen.space import (
    EXCHANGES_PATH,
    HOME_PATH,
    CitizenSpace,
    signed_in,
    space,
)
from guichet.portal.web import (
    csrf_protected,
    current_session,
    deps,
    ensure_session,
    finish,
    render,
    use_session,
)

log = logging.getLogger(__name__)

FLOW_LIFETIME: Final = 600  # seconds to come back from the federation
SIGNED_IN_LIFETIME: Final = 1800  # the citizen's view lasts 30 minutes


async def _error(
    request: Request, title: str, message: str, status: int, code: str | None = None
) -> Response:
    return await render(
        request, "citizen/error.html", status_code=status, title=title, message=message, code=code
    )


async def home(request: Request) -> Response:
    return await render(
        request,
        "citizen/home.html",
        configured=space(request).relying_party() is not None,
        citizen=await signed_in(request),
        signed_out=request.query_params.get("deconnecte") == "1",
    )


async def sign_in(request: Request) -> Response:
    """Starts the sign-in: a new pending request in the cookie, then to the federation."""
    party = space(request).relying_party()
    if party is None:
        return await render(
            request, "citizen/home.html", status_code=503, configured=False, citizen=None
        )
    session = await ensure_session(request)
    try:
        url, pending = await party.start()
    except SignInRefused as exc:
        return await _error(request, "Connexion impossible", exc.message, exc.status, exc.code)
    except Exception as exc:  # never a traceback to the citizen
        event(log, "portal.citizen:start_failed", logging.ERROR, error=type(exc).__name__)
        return await _error(
            request,
            "Connexion impossible",
            "Une erreur technique empêche la connexion. Réessayez dans quelques minutes.",
            500,
        )
    response = RedirectResponse(url, status_code=302)
    space(request).cookie.save(
        request, response, session, {"flow": pending.as_dict()}, FLOW_LIFETIME
    )
    event(log, "portal.citizen:sign_in_started")
    return finish(request, response)


async def callback(request: Request) -> Response:
    """OpenID Connect Core §3.1.2.5–7: the federation's answer. Whatever happens, the
    pending request is spent (the cookie is replaced or cleared)."""
    citizen_space = space(request)
    session = await current_session(request)
    data = citizen_space.cookie.load(request, session)
    pending = PendingSignIn.of(data.get("flow"))
    try:
        citizen = await _complete(request, citizen_space, pending)
    except SignInRefused as exc:
        event(log, "portal.citizen:sign_in_refused", code=exc.code)
        title = "Connexion annulée" if exc.code == "access_denied" else "Connexion impossible"
        response = await _error(request, title, exc.message, exc.status, exc.code)
        citizen_space.cookie.clear(request, response)
        return response
    except Exception as exc:  # never a traceback to the citizen
        event(log, "portal.citizen:sign_in_failed", logging.ERROR, error=type(exc).__name__)
        response = await _error(
            request,
            "Connexion impossible",
            "Une erreur technique a interrompu la connexion. Recommencez dans quelques minutes.",
            500,
        )
        citizen_space.cookie.clear(request, response)
        return response
    assert session is not None  # _complete needs a pending request, bound to a session
    sessions = deps(request).sessions
    if session.user_id is None:
        # A new anonymous session, a new CSRF token: no fixation of the previous one.
        await run_in_threadpool(sessions.destroy, session.token)
        session = await run_in_threadpool(sessions.create)
        use_session(request, session)
    response = RedirectResponse(EXCHANGES_PATH, status_code=303)
    citizen_space.cookie.save(
        request,
        response,
        session,
        {"subject": citizen.subject, "name": citizen.display_name},
        SIGNED_IN_LIFETIME,
    )
    event(log, "portal.citizen:signed_in")
    return finish(request, response)


async def _complete(
    request: Request, citizen_space: CitizenSpace, pending: PendingSignIn | None
) -> Citizen:
    party = citizen_space.relying_party()
    if party is None:
        raise SignInRefused("not_configured", "Ce service n'est pas configuré sur ce guichet.", 503)
    params = request.query_params
    if any(len(params.getlist(name)) > 1 for name in params):
        raise _refused("parameter_repeated")
    if pending is None:
        raise SignInRefused(
            "no_pending_sign_in",
            "Votre demande de connexion a expiré ou a déjà servi. Recommencez depuis la page "
            "« Qui a consulté mes données ».",
        )
    if not _same(params.get("state"), pending.state):
        event(log, "portal.citizen:state_mismatch")
        raise SignInRefused(
            "state_mismatch",
            "Cette réponse ne correspond pas à la connexion que vous avez demandée depuis ce "
            "navigateur : par prudence, elle est ignorée. Recommencez la connexion.",
        )
    if params.get("error"):
        if params["error"] == "access_denied":
            raise SignInRefused(
                "access_denied",
                "Vous avez annulé la connexion avec FranceConnect : rien n'a été transmis.",
            )
        raise _refused("authorization_error")
    code = params.get("code")
    if not code or len(code) > 512:
        raise _refused("code_missing")
    info = await party.finish(pending, code)
    return await run_in_threadpool(
        find_citizen, citizen_space.session_factory, citizen_space.master, info
    )


@csrf_protected
async def sign_out(request: Request, _: FormData, session: SessionData) -> Response:
    """Forgets the citizen: the cookie goes, and an anonymous portal session with it."""
    if session.user_id is None:
        await run_in_threadpool(deps(request).sessions.destroy, session.token)
        use_session(request, None)
    response = RedirectResponse(f"{HOME_PATH}?deconnecte=1", status_code=303)
    space(request).cookie.clear(request, response)
    event(log, "portal.citizen:signed_out")
    return finish(request, response)
