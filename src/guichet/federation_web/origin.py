"""What every handler of the federation's web app shares: the server, the session cookie's
codec, the issuer, and the way a refused authorization request is answered."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from authlib.oauth2.rfc6749 import OAuth2Error
from starlette.requests import Request
from starlette.responses import Response

from guichet.federation.server import FederationDeps, FederationServer, FedRequest
from guichet.federation.session import SessionCodec
from guichet.federation_web.pages import error_page
from guichet.logs import event

log = logging.getLogger(__name__)


class FederationOrigin:
    """The federation's server and browser session, for the handlers (one per app)."""

    def __init__(self, deps: FederationDeps) -> None:
        self.deps = deps
        self.server = FederationServer(deps)
        self.codec = SessionCodec(
            deps.master,
            deps.clock,
            secure=deps.issuer.startswith("https://"),
            lifetime=deps.session_lifetime,
        )
        self.base = deps.issuer.rstrip("/")

    def oauth_request(
        self,
        request: Request,
        path: str,
        *,
        args: Mapping[str, str] | None = None,
        form: Any = None,
    ) -> FedRequest:
        return FedRequest(request.method, self.base + path, request.headers, args=args, form=form)

    def refusal(self, request: FedRequest | None, error: OAuth2Error) -> Response:
        """Back to the partner when the redirect URI is known good; else, never redirect:
        an error page (RFC 6749 §4.1.2.1, OpenID Connect Core §3.1.2.6)."""
        if error.redirect_uri:
            return self.server.handle_error_response(request, error)
        event(log, "federation:authorize:refused", error=error.error)
        return error_page(
            "La demande de connexion est invalide",
            "Le service qui vous a envoyé ici a formé une demande que FranceConnect "
            "(bac à sable) ne peut pas accepter. Aucune information ne lui a été transmise.",
            code=f"{error.error}: {error.description or ''}",
        )
