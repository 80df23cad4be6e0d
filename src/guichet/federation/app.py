"""The sandbox federation as a Starlette app: OpenID Connect endpoints and the citizen's pages.

Routes are thin: they read the request, call ``FederationServer`` (Authlib underneath) in a
thread (it is synchronous and reads the database), and render. The citizen's path:
``/authorize`` → ``/interaction/{id}`` (choose an identity provider) →
``/interaction/{id}/fi/{provider}`` (sign in as a sandbox citizen) →
``/interaction/{id}/consent`` (the consent step) → back to the partner with a code.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qsl

from authlib.oauth2.rfc6749 import InvalidRequestError, OAuth2Error
from jinja2 import Environment as Jinja
from jinja2 import FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from guichet.federation import citizens
from guichet.federation.consent import Interaction
from guichet.federation.providers import BY_SLUG, PROVIDERS, IdentityProvider
from guichet.federation.scopes import DATA_SCOPES
from guichet.federation.server import EndUser, FederationDeps, FederationServer, FedRequest
from guichet.federation.session import CSRF_FIELD, SessionCodec, csrf_ok, csrf_token
from guichet.logs import event

log = logging.getLogger(__name__)

TEMPLATES: Final = Jinja(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
)
_MAX_BODY: Final = 16 * 1024
_FORM: Final = "application/x-www-form-urlencoded"
_PAGE_HEADERS: Final = {
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


def _page(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(
        TEMPLATES.get_template(name).render(**context), status_code=status, headers=_PAGE_HEADERS
    )


def _error_page(title: str, detail: str, status: int = 400, code: str | None = None) -> Response:
    return _page("error.html", status, title=title, detail=detail, code=code)


def _single_values(pairs: list[tuple[str, str]]) -> dict[str, str] | str:
    """RFC 6749 §3.1 / §3.2: parameters "MUST NOT be included more than once"."""
    values: dict[str, str] = {}
    for name, value in pairs:
        if name in values:
            return name
        values[name] = value
    return values


async def _read_form(request: Request) -> dict[str, str] | OAuth2Error:
    """An ``application/x-www-form-urlencoded`` UTF-8 body, each parameter once."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != _FORM:
        return InvalidRequestError(description=f"The request body must be {_FORM}.")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_BODY:
            return InvalidRequestError(description="The request body is too large.")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
    except (UnicodeDecodeError, ValueError):
        return InvalidRequestError(description="The request body is not valid form data.")
    values = _single_values(pairs)
    if isinstance(values, str):
        return InvalidRequestError(description=f"Parameter '{values}' is repeated.")
    return values


def build_federation_app(deps: FederationDeps) -> Starlette:
    """The sandbox federation's origin (its issuer is ``deps.issuer``)."""
    server = FederationServer(deps)
    codec = SessionCodec(
        deps.master,
        deps.clock,
        secure=deps.issuer.startswith("https://"),
        lifetime=deps.session_lifetime,
    )
    base = deps.issuer.rstrip("/")
    consent_step = deps.consent_step

    def oauth_request(
        request: Request, path: str, *, args: Mapping[str, str] | None = None, form: Any = None
    ) -> FedRequest:
        return FedRequest(request.method, base + path, request.headers, args=args, form=form)

    def refusal(request: FedRequest | None, error: OAuth2Error) -> Response:
        """Back to the partner when the redirect URI is known good; else, never redirect:
        an error page (RFC 6749 §4.1.2.1, OpenID Connect Core §3.1.2.6)."""
        if error.redirect_uri:
            return server.handle_error_response(request, error)
        event(log, "federation:authorize:refused", error=error.error)
        return _error_page(
            "La demande de connexion est invalide",
            "Le service qui vous a envoyé ici a formé une demande que FranceConnect "
            "(bac à sable) ne peut pas accepter. Aucune information ne lui a été transmise.",
            code=f"{error.error}: {error.description or ''}",
        )

    # --- discovery and keys -------------------------------------------------------------

    async def discovery(_: Request) -> Response:
        return JSONResponse(server.metadata(), headers={"Cache-Control": "public, max-age=300"})

    async def jwks(_: Request) -> Response:
        body = await run_in_threadpool(server.jwks)
        return JSONResponse(
            body, media_type="application/jwk-set+json", headers={"Cache-Control": "max-age=60"}
        )

    async def home(_: Request) -> Response:
        return _page("home.html", issuer=deps.issuer, providers=PROVIDERS)

    # --- the citizen's path ---------------------------------------------------------------

    async def authorize(request: Request) -> Response:
        """OpenID Connect Core §3.1.2.1–2: validate the request, then authenticate."""
        args = _single_values(list(request.query_params.multi_items()))
        if isinstance(args, str):
            return refusal(
                None, InvalidRequestError(description=f"Parameter '{args}' is repeated.")
            )
        oreq = oauth_request(request, "/authorize", args=args)
        try:
            grant = await run_in_threadpool(server.get_consent_grant, oreq)
        except OAuth2Error as error:
            return refusal(oreq, error)
        client = grant.request.client
        data = codec.load(request)
        interaction = secrets.token_urlsafe(16)
        data["pending"] = {"id": interaction, "params": args, "client_name": client.name}
        data.pop("auth", None)
        response = RedirectResponse(f"{base}/interaction/{interaction}", status_code=302)
        codec.save(response, data)
        event(log, "federation:authorize:accepted", client_id=client.client_id)
        return response

    def pending_of(request: Request, data: dict[str, Any]) -> dict[str, Any] | None:
        pending = data.get("pending")
        if not isinstance(pending, dict) or pending.get("id") != request.path_params["iid"]:
            return None
        return pending

    def unknown_idp() -> Response:
        return _error_page("Fournisseur d'identité inconnu", "Choisissez-en un dans la liste.", 404)

    def expired() -> Response:
        return _error_page(
            "Votre session a expiré",
            "Retournez sur le site du service et recommencez la connexion avec FranceConnect.",
        )

    async def chooser(request: Request) -> Response:
        data = codec.load(request)
        pending = pending_of(request, data)
        if pending is None:
            return expired()
        response = _page(
            "chooser.html",
            interaction=pending["id"],
            client_name=pending["client_name"],
            requested=scope_labels(tuple(str(pending["params"].get("scope", "")).split())),
            providers=PROVIDERS,
            csrf=csrf_token(data),
        )
        codec.save(response, data)
        return response

    def login_page(
        data: dict[str, Any],
        pending: dict[str, Any],
        idp: IdentityProvider,
        *,
        error: str | None = None,
        spi: str = "",
        status: int = 200,
    ) -> Response:
        response = _page(
            "login.html",
            status,
            interaction=pending["id"],
            client_name=pending["client_name"],
            idp=idp,
            suggested=citizens.SUGGESTED,
            password=citizens.SANDBOX_PASSWORD,
            csrf=csrf_token(data),
            error=error,
            spi=spi,
        )
        codec.save(response, data)
        return response

    async def sign_in_page(request: Request) -> Response:
        data = codec.load(request)
        pending = pending_of(request, data)
        idp = BY_SLUG.get(request.path_params["idp"])
        if pending is None:
            return expired()
        if idp is None:
            return _error_page(
                "Fournisseur d'identité inconnu", "Choisissez-en un dans la liste.", 404
            )
        return login_page(data, pending, idp)

    async def sign_in(request: Request) -> Response:
        data = codec.load(request)
        pending = pending_of(request, data)
        idp = BY_SLUG.get(request.path_params["idp"])
        if pending is None:
            return expired()
        if idp is None:
            return _error_page(
                "Fournisseur d'identité inconnu", "Choisissez-en un dans la liste.", 404
            )
        form = await request.form()
        if not csrf_ok(data, _text(form.get(CSRF_FIELD))):
            return _error_page(
                "Formulaire expiré", "Rechargez la page et recommencez.", 403, "csrf_invalid"
            )
        spi = _text(form.get("spi")) or ""
        password = _text(form.get("password")) or ""

        def check() -> citizens.Citizen | None:
            with deps.session_factory() as session:
                return citizens.sign_in(session, spi, password)

        citizen = await run_in_threadpool(check)
        if citizen is None:
            event(log, "federation:sign_in:failed", idp=idp.slug)
            return login_page(
                data,
                pending,
                idp,
                error="Identifiant ou mot de passe incorrect.",
                spi=spi,
                status=401,
            )
        data["auth"] = {
            "interaction": pending["id"],
            "spi": citizen.spi,
            "idp": idp.slug,
            "at": int(deps.clock.now().timestamp()),
        }
        data["csrf"] = secrets.token_urlsafe(32)  # a new session state, a new token
        event(log, "federation:sign_in:succeeded", idp=idp.slug)
        response = RedirectResponse(f"{base}/interaction/{pending['id']}/consent", status_code=303)
        codec.save(response, data)
        return response

    async def signed_in(
        request: Request, data: dict[str, Any]
    ) -> tuple[dict[str, Any], EndUser] | Response:
        pending = pending_of(request, data)
        auth = data.get("auth")
        if (
            pending is None
            or not isinstance(auth, dict)
            or auth.get("interaction") != pending["id"]
        ):
            return expired()
        idp = BY_SLUG.get(str(auth.get("idp")))

        def find() -> citizens.Citizen | None:
            with deps.session_factory() as session:
                return citizens.find(session, str(auth.get("spi")))

        citizen = await run_in_threadpool(find)
        if citizen is None or idp is None:
            return expired()
        auth_time = dt.datetime.fromtimestamp(int(auth["at"]), dt.UTC)
        return pending, EndUser(citizen, idp, auth_time)

    def interaction_of(
        pending: dict[str, Any], user: EndUser, client: Any, data: dict[str, Any]
    ) -> Interaction:
        scopes = tuple(pending["params"].get("scope", "").split())
        return Interaction(
            id=pending["id"],
            client_id=client.client_id,
            client_name=client.name,
            habilitation_id=client.habilitation_id,
            scopes=scopes,
            citizen=user.citizen,
            idp=user.idp,
            csrf=csrf_token(data),
            action=f"{base}/interaction/{pending['id']}/consent",
        )

    async def finish(
        request: Request, data: dict[str, Any], pending: dict[str, Any], user: EndUser | None
    ) -> Response:
        """RFC 6749 §4.1.2: back to the partner with a code — or ``access_denied``."""
        oreq = oauth_request(request, "/authorize", args=pending["params"])
        oreq.method = "GET"

        def run() -> Response:
            try:
                grant = server.get_consent_grant(oreq, end_user=user)
            except OAuth2Error as error:
                return refusal(oreq, error)
            return server.create_authorization_response(oreq, grant_user=user, grant=grant)  # type: ignore[no-any-return]

        response = await run_in_threadpool(run)
        data.pop("pending", None)
        data.pop("auth", None)
        codec.save(response, data)
        return response

    async def consent(request: Request) -> Response:
        data = codec.load(request)
        found = await signed_in(request, data)
        if isinstance(found, Response):
            return found
        pending, user = found
        client = await run_in_threadpool(
            server.query_client, pending["params"].get("client_id", "")
        )
        if client is None:
            return expired()
        interaction = interaction_of(pending, user, client, data)
        if request.method == "POST":
            form = await request.form()
            if not csrf_ok(data, _text(form.get(CSRF_FIELD))):
                return _error_page(
                    "Formulaire expiré", "Rechargez la page et recommencez.", 403, "csrf_invalid"
                )
            answer = {k: v for k, v in form.items() if isinstance(v, str)}
            accepted = await consent_step.decide(interaction, answer)
            return await finish(request, data, pending, user if accepted else None)
        page = await consent_step.show(interaction)
        if page is None:
            return await finish(request, data, pending, user)
        codec.save(page, data)
        return page

    async def cancel(request: Request) -> Response:
        """The citizen gives up: the partner receives ``access_denied``."""
        data = codec.load(request)
        pending = pending_of(request, data)
        if pending is None:
            return expired()
        form = await request.form()
        if not csrf_ok(data, _text(form.get(CSRF_FIELD))):
            return _error_page(
                "Formulaire expiré", "Rechargez la page et recommencez.", 403, "csrf_invalid"
            )
        return await finish(request, data, pending, None)

    # --- back channel -------------------------------------------------------------------

    def form_endpoint(
        run: Callable[[dict[str, str], Request], Response],
    ) -> Callable[[Request], Any]:
        async def handle(request: Request) -> Response:
            form = await _read_form(request)
            if isinstance(form, OAuth2Error):
                return server.handle_error_response(None, form)
            return await run_in_threadpool(run, form, request)

        return handle

    def token(form: dict[str, str], request: Request) -> Response:
        return server.create_token_response(oauth_request(request, "/token", form=form))  # type: ignore[no-any-return]

    def checktoken(form: dict[str, str], request: Request) -> Response:
        """FranceConnect v2 data providers' check: form ``token``, ``client_id``,
        ``client_secret``; 400 ``invalid_request``, 401 ``invalid_client`` (RFC 7662 §2.3)."""
        missing = [n for n in ("token", "client_id", "client_secret") if not form.get(n)]
        if missing:
            return JSONResponse(
                {
                    "error": "invalid_request",
                    "error_description": f"Missing parameter(s): {', '.join(missing)}.",
                },
                status_code=400,
                headers={"Cache-Control": "no-store"},
            )
        provider = server.authenticate_data_provider(form["client_id"], form["client_secret"])
        if provider is None:
            event(log, "federation:checktoken:refused", error="invalid_client")
            return JSONResponse(
                {
                    "error": "invalid_client",
                    "error_description": "Data provider authentication failed.",
                },
                status_code=401,
                headers={"Cache-Control": "no-store"},
            )
        body = server.checktoken(provider, form["token"])
        return Response(
            body,
            media_type="application/token-introspection+jwt",
            headers={"Cache-Control": "no-store"},
        )

    async def userinfo(request: Request) -> Response:
        """RFC 6750 §2.1 bearer token; §3.1 ``invalid_token`` when it is not live."""
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            return Response(
                status_code=401, headers={"WWW-Authenticate": 'Bearer realm="franceconnect"'}
            )
        body = await run_in_threadpool(server.userinfo, value.strip())
        if body is None:
            return Response(
                status_code=401,
                headers={
                    "WWW-Authenticate": 'Bearer error="invalid_token", '
                    'error_description="The access token is unknown, expired or revoked"'
                },
            )
        return Response(body, media_type="application/jwt", headers={"Cache-Control": "no-store"})

    async def end_session(request: Request) -> Response:
        """OpenID Connect RP-Initiated Logout 1.0 §2–3: the session ends; redirection only to
        a registered ``post_logout_redirect_uri`` of the ID token's client, with ``state``.

        §2: "The OP MUST support the use of the HTTP GET and POST methods": with POST, the
        parameters come form-serialised in the body (and only there).
        """
        if request.method == "POST":
            form = await _read_form(request)
            if isinstance(form, OAuth2Error):
                return _error_page(
                    "Déconnexion impossible",
                    "La demande de déconnexion est illisible.",
                    code=f"{form.error}: {form.description or ''}",
                )
            oreq = oauth_request(request, "/session/end", form=form)
        else:
            args = _single_values(list(request.query_params.multi_items()))
            if isinstance(args, str):
                return _error_page("Déconnexion impossible", "Paramètre répété.", code=args)
            oreq = oauth_request(request, "/session/end", args=args)

        def run() -> Response | OAuth2Error:
            try:
                validated = server.validate_endpoint_request("end_session", oreq)
            except OAuth2Error as error:
                return error
            response: Response | None = server.create_endpoint_response("end_session", validated)
            return response or _page("logged_out.html")

        result = await run_in_threadpool(run)
        if isinstance(result, OAuth2Error):
            event(log, "federation:session_end:refused", error=result.error)
            return _error_page(
                "Déconnexion impossible",
                "La demande de déconnexion ne vient pas d'un service connu de FranceConnect "
                "(bac à sable).",
                code=f"{result.error}: {result.description or ''}",
            )
        codec.clear(result)
        event(log, "federation:session:ended")
        return result

    return Starlette(
        routes=[
            Route("/", home),
            Route("/.well-known/openid-configuration", discovery),
            Route("/jwks", jwks),
            Route("/authorize", authorize),
            Route("/interaction/{iid}", chooser),
            Route("/interaction/{iid}/fi/{idp}", sign_in_page, methods=["GET"]),
            Route("/interaction/{iid}/fi/{idp}", sign_in, methods=["POST"]),
            Route("/interaction/{iid}/consent", consent, methods=["GET", "POST"]),
            Route("/interaction/{iid}/cancel", cancel, methods=["POST"]),
            Route("/token", form_endpoint(token), methods=["POST"]),
            Route("/userinfo", userinfo, methods=["GET", "POST"]),
            Route("/checktoken", form_endpoint(checktoken), methods=["POST"]),
            Route("/session/end", end_session, methods=["GET", "POST"]),
        ]
    )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def scope_labels(scopes: tuple[str, ...]) -> list[str]:
    """Plain-French labels of identity scopes (the data scopes are the consent page's)."""
    return [SCOPE_LABELS[s] for s in scopes if s in SCOPE_LABELS and s not in DATA_SCOPES]


__all__ = ["FederationDeps", "build_federation_app"]
