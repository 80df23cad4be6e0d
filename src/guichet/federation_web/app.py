"""The sandbox federation as a Starlette app: OpenID Connect endpoints and the citizen's pages.

Routes are thin: they read the request, call ``FederationServer`` (Authlib underneath) in a
thread (it is synchronous and reads the database), and render. The citizen's pages are
``interaction.CitizenPath``'s, the programs' endpoints ``endpoints.Endpoints``'.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.routing import Route

from guichet.federation.server import FederationDeps
from guichet.federation_web.endpoints import Endpoints
from guichet.federation_web.interaction import CitizenPath
from guichet.federation_web.origin import FederationOrigin
from guichet.federation_web.pages import too_large


def build_federation_app(deps: FederationDeps) -> Starlette:
    """The sandbox federation's origin (its issuer is ``deps.issuer``)."""
    origin = FederationOrigin(deps)
    path = CitizenPath(origin)
    api = Endpoints(origin)
    return Starlette(
        routes=[
            Route("/", api.home),
            Route("/.well-known/openid-configuration", api.discovery),
            Route("/jwks", api.jwks),
            Route("/authorize", path.authorize),
            Route("/interaction/{iid}", path.chooser),
            Route("/interaction/{iid}/fi/{idp}", path.sign_in_page, methods=["GET"]),
            Route("/interaction/{iid}/fi/{idp}", path.sign_in, methods=["POST"]),
            Route("/interaction/{iid}/consent", path.consent, methods=["GET", "POST"]),
            Route("/interaction/{iid}/cancel", path.cancel, methods=["POST"]),
            Route("/token", api.form_endpoint(api.token), methods=["POST"]),
            Route("/userinfo", api.userinfo, methods=["GET", "POST"]),
            Route("/checktoken", api.form_endpoint(api.checktoken), methods=["POST"]),
            Route("/session/end", api.end_session, methods=["GET", "POST"]),
        ]
    )


__all__ = ["FederationDeps", "build_federation_app", "too_large"]
