"""The citizen's path through the federation: ``/authorize`` → ``/interaction/{id}`` (choose an
identity provider) → ``/interaction/{id}/fi/{provider}`` (sign in as a sandbox citizen) →
``/interaction/{id}/consent`` (the consent step) → back to the partner with a code."""

from __future__ import annotations

import datetime as dt
import logging
import re
import secrets
from typing import Any, Final

from authlib.oauth2.rfc6749 import InvalidRequestError, OAuth2Error
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from guichet.federation import citizens
from guichet.federation.consent import Interaction
from guichet.federation.providers import BY_SLUG, PROVIDERS, IdentityProvider
from guichet.federation.server import EndUser
from guichet.federation.session import CSRF_FIELD, csrf_ok, csrf_token
from guichet.federation_web.forms import single_values, text
from guichet.federation_web.origin import FederationOrigin
from guichet.federation_web.pages import expired, form_expired, page, scope_labels, unknown_idp
from guichet.logs import event

log = logging.getLogger(__name__)

# RFC 3986 §2: a URI is printable US-ASCII, no space; registered ones fit well within this.
URI: Final = re.compile(r"[\x21-\x7e]{1,2048}")


def pending_of(request: Request, data: dict[str, Any]) -> dict[str, Any] | None:
    """The sign-in in progress in the browser's session, if it is this page's interaction."""
    pending = data.get("pending")
    if not isinstance(pending, dict) or pending.get("id") != request.path_params["iid"]:
        return None
    return pending


class CitizenPath:
    """The citizen's pages, from the partner's authorization request back to the partner."""

    def __init__(self, origin: FederationOrigin) -> None:
        self.origin = origin
        self.deps = origin.deps
        self.codec = origin.codec
        self.consent_step = origin.deps.consent_step

    async def authorize(self, request: Request) -> Response:
        """OpenID Connect Core §3.1.2.1–2: validate the request, then authenticate."""
        origin = self.origin
        args = single_values(list(request.query_params.multi_items()))
        if isinstance(args, str):
            return origin.refusal(
                None, InvalidRequestError(description=f"Parameter '{args}' is repeated.")
            )
        redirect_uri = args.get("redirect_uri")
        if redirect_uri is not None and not URI.fullmatch(redirect_uri):
            # Spaces, control characters, non-ASCII or an overlong value: no registered URI
            # looks like that, and Authlib cannot even quote it in its error (a 500 before).
            return origin.refusal(
                None, InvalidRequestError(description="The 'redirect_uri' parameter is malformed.")
            )
        oreq = origin.oauth_request(request, "/authorize", args=args)
        try:
            grant = await run_in_threadpool(origin.server.get_consent_grant, oreq)
        except OAuth2Error as error:
            return origin.refusal(oreq, error)
        client = grant.request.client
        data = self.codec.load(request)
        interaction = secrets.token_urlsafe(16)
        data["pending"] = {"id": interaction, "params": args, "client_name": client.name}
        data.pop("auth", None)
        response = RedirectResponse(f"{origin.base}/interaction/{interaction}", status_code=302)
        self.codec.save(response, data)
        event(log, "federation:authorize:accepted", client_id=client.client_id)
        return response

    async def chooser(self, request: Request) -> Response:
        data = self.codec.load(request)
        pending = pending_of(request, data)
        if pending is None:
            return expired()
        response = page(
            "chooser.html",
            interaction=pending["id"],
            client_name=pending["client_name"],
            requested=scope_labels(tuple(str(pending["params"].get("scope", "")).split())),
            providers=PROVIDERS,
            csrf=csrf_token(data),
        )
        self.codec.save(response, data)
        return response

    def _login_page(
        self,
        data: dict[str, Any],
        pending: dict[str, Any],
        idp: IdentityProvider,
        *,
        error: str | None = None,
        spi: str = "",
        status: int = 200,
    ) -> Response:
        response = page(
            "login.html",
            status,
            interaction=pending["id"],
            client_name=pending["client_name"],
            idp=idp,
            suggested=self.deps.suggested,
            password=citizens.SANDBOX_PASSWORD,
            csrf=csrf_token(data),
            error=error,
            spi=spi,
        )
        self.codec.save(response, data)
        return response

    async def sign_in_page(self, request: Request) -> Response:
        data = self.codec.load(request)
        pending = pending_of(request, data)
        idp = BY_SLUG.get(request.path_params["idp"])
        if pending is None:
            return expired()
        if idp is None:
            return unknown_idp()
        return self._login_page(data, pending, idp)

    async def sign_in(self, request: Request) -> Response:
        data = self.codec.load(request)
        pending = pending_of(request, data)
        idp = BY_SLUG.get(request.path_params["idp"])
        if pending is None:
            return expired()
        if idp is None:
            return unknown_idp()
        form = await request.form()
        if not csrf_ok(data, text(form.get(CSRF_FIELD))):
            return form_expired()
        spi = text(form.get("spi")) or ""
        password = text(form.get("password")) or ""

        def check() -> citizens.Citizen | None:
            with self.deps.session_factory() as session:
                return citizens.sign_in(session, spi, password)

        citizen = await run_in_threadpool(check)
        if citizen is None:
            event(log, "federation:sign_in:failed", idp=idp.slug)
            return self._login_page(
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
            "at": int(self.deps.clock.now().timestamp()),
        }
        data["csrf"] = secrets.token_urlsafe(32)  # a new session state, a new token
        event(log, "federation:sign_in:succeeded", idp=idp.slug)
        response = RedirectResponse(
            f"{self.origin.base}/interaction/{pending['id']}/consent", status_code=303
        )
        self.codec.save(response, data)
        return response

    async def _signed_in(
        self, request: Request, data: dict[str, Any]
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
            with self.deps.session_factory() as session:
                return citizens.find(session, str(auth.get("spi")))

        citizen = await run_in_threadpool(find)
        if citizen is None or idp is None:
            return expired()
        auth_time = dt.datetime.fromtimestamp(int(auth["at"]), dt.UTC)
        return pending, EndUser(citizen, idp, auth_time)

    def _interaction(
        self, pending: dict[str, Any], user: EndUser, client: Any, data: dict[str, Any]
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
            action=f"{self.origin.base}/interaction/{pending['id']}/consent",
        )

    async def _finish(
        self,
        request: Request,
        data: dict[str, Any],
        pending: dict[str, Any],
        user: EndUser | None,
    ) -> Response:
        """RFC 6749 §4.1.2: back to the partner with a code — or ``access_denied``."""
        origin = self.origin
        oreq = origin.oauth_request(request, "/authorize", args=pending["params"])
        oreq.method = "GET"

        def run() -> Response:
            try:
                grant = origin.server.get_consent_grant(oreq, end_user=user)
            except OAuth2Error as error:
                return origin.refusal(oreq, error)
            return origin.server.create_authorization_response(oreq, grant_user=user, grant=grant)  # type: ignore[no-any-return]

        response = await run_in_threadpool(run)
        data.pop("pending", None)
        data.pop("auth", None)
        self.codec.save(response, data)
        return response

    async def consent(self, request: Request) -> Response:
        data = self.codec.load(request)
        found = await self._signed_in(request, data)
        if isinstance(found, Response):
            return found
        pending, user = found
        client = await run_in_threadpool(
            self.origin.server.query_client, pending["params"].get("client_id", "")
        )
        if client is None:
            return expired()
        interaction = self._interaction(pending, user, client, data)
        consent_step = self.consent_step
        if request.method == "POST":
            form = await request.form()
            if not csrf_ok(data, text(form.get(CSRF_FIELD))):
                return form_expired()
            answer = {k: v for k, v in form.items() if isinstance(v, str)}
            accepted = await consent_step.decide(interaction, answer)
            return await self._finish(request, data, pending, user if accepted else None)
        shown = await consent_step.show(interaction)
        if shown is None:
            return await self._finish(request, data, pending, user)
        self.codec.save(shown, data)
        return shown

    async def cancel(self, request: Request) -> Response:
        """The citizen gives up: the partner receives ``access_denied``."""
        data = self.codec.load(request)
        pending = pending_of(request, data)
        if pending is None:
            return expired()
        form = await request.form()
        if not csrf_ok(data, text(form.get(CSRF_FIELD))):
            return form_expired()
        return await self._finish(request, data, pending, None)
