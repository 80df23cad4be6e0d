"""The federation's endpoints for programs: discovery and keys, ``/token``, ``/userinfo``,
the data providers' ``/checktoken``, and RP-Initiated Logout's ``/session/end``."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from authlib.oauth2.rfc6749 import OAuth2Error
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from guichet.federation.providers import PROVIDERS
from guichet.federation_web.forms import read_form, single_values
from guichet.federation_web.origin import FederationOrigin
from guichet.federation_web.pages import error_page, page
from guichet.logs import event

log = logging.getLogger(__name__)

FormRun = Callable[[dict[str, str], Request], Response]


class Endpoints:
    """The endpoints a partner's or a data provider's program calls (and the home page)."""

    def __init__(self, origin: FederationOrigin) -> None:
        self.origin = origin
        self.server = origin.server

    async def home(self, _: Request) -> Response:
        return page("home.html", issuer=self.origin.deps.issuer, providers=PROVIDERS)

    async def discovery(self, _: Request) -> Response:
        return JSONResponse(
            self.server.metadata(), headers={"Cache-Control": "public, max-age=300"}
        )

    async def jwks(self, _: Request) -> Response:
        body = await run_in_threadpool(self.server.jwks)
        return JSONResponse(
            body, media_type="application/jwk-set+json", headers={"Cache-Control": "max-age=60"}
        )

    def form_endpoint(self, run: FormRun) -> Callable[[Request], Awaitable[Response]]:
        """``run`` on the request's form, read in full first (each parameter once)."""

        async def handle(request: Request) -> Response:
            form = await read_form(request)
            if isinstance(form, OAuth2Error):
                return self.server.handle_error_response(None, form)
            return await run_in_threadpool(run, form, request)

        return handle

    def token(self, form: dict[str, str], request: Request) -> Response:
        return self.server.create_token_response(  # type: ignore[no-any-return]
            self.origin.oauth_request(request, "/token", form=form)
        )

    def checktoken(self, form: dict[str, str], request: Request) -> Response:
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
        provider = self.server.authenticate_data_provider(form["client_id"], form["client_secret"])
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
        body = self.server.checktoken(provider, form["token"])
        return Response(
            body,
            media_type="application/token-introspection+jwt",
            headers={"Cache-Control": "no-store"},
        )

    async def userinfo(self, request: Request) -> Response:
        """RFC 6750 §2.1 bearer token; §3.1 ``invalid_token`` when it is not live."""
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            return Response(
                status_code=401, headers={"WWW-Authenticate": 'Bearer realm="franceconnect"'}
            )
        body = await run_in_threadpool(self.server.userinfo, value.strip())
        if body is None:
            return Response(
                status_code=401,
                headers={
                    "WWW-Authenticate": 'Bearer error="invalid_token", '
                    'error_description="The access token is unknown, expired or revoked"'
                },
            )
        return Response(body, media_type="application/jwt", headers={"Cache-Control": "no-store"})

    async def end_session(self, request: Request) -> Response:
        """OpenID Connect RP-Initiated Logout 1.0 §2–3: the session ends; redirection only to
        a registered ``post_logout_redirect_uri`` of the ID token's client, with ``state``.

        §2: "The OP MUST support the use of the HTTP GET and POST methods": with POST, the
        parameters come form-serialised in the body (and only there).
        """
        origin = self.origin
        if request.method == "POST":
            form = await read_form(request)
            if isinstance(form, OAuth2Error):
                return error_page(
                    "Déconnexion impossible",
                    "La demande de déconnexion est illisible.",
                    code=f"{form.error}: {form.description or ''}",
                )
            oreq = origin.oauth_request(request, "/session/end", form=form)
        else:
            args = single_values(list(request.query_params.multi_items()))
            if isinstance(args, str):
                return error_page("Déconnexion impossible", "Paramètre répété.", code=args)
            oreq = origin.oauth_request(request, "/session/end", args=args)

        def run() -> Response | OAuth2Error:
            try:
                validated = self.server.validate_endpoint_request("end_session", oreq)
            except OAuth2Error as error:
                return error
            response: Response | None = self.server.create_endpoint_response(
                "end_session", validated
            )
            return response or page("logged_out.html")

        result = await run_in_threadpool(run)
        if isinstance(result, OAuth2Error):
            event(log, "federation:session_end:refused", error=result.error)
            return error_page(
                "Déconnexion impossible",
                "La demande de déconnexion ne vient pas d'un service connu de FranceConnect "
                "(bac à sable).",
                code=f"{result.error}: {result.description or ''}",
            )
        origin.codec.clear(result)
        event(log, "federation:session:ended")
        return result
