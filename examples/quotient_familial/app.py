"""Ville de Démoville — quotient familial: a partner's web app in FranceConnect mode.

This is the path a partner's developer copies. A family:

1. reads, before anything is exchanged, which data the city will obtain, from whom and why
   (SPEC §8: perimeter and origin in plain words) — page ``/``;
2. clicks "S'identifier avec FranceConnect": an OpenID Connect authorization-code flow with
   ``state``, ``nonce`` and PKCE (Authlib's client) — ``POST /connexion``;
3. chooses an identity provider, signs in and consents at the federation;
4. comes back to ``/retour``: the app checks ``state``, exchanges the code, validates the ID
   token (signature, issuer, audience, expiry, nonce, ``at_hash``, ``acr``), then gets its
   own gateway token (OAuth client credentials over mutual TLS with the city's certificate)
   and calls API Impôt Particulier with **both** tokens: its gateway token in
   ``Authorization`` and the citizen's federation access token in ``X-FranceConnect-OAuth``;
5. sees its RFR, number of parts, quotient familial and tariff bracket — and the app forgets
   them: nothing fiscal and no tax number (SPI) is stored, logged or put in a cookie.

Run it against ``guichet run`` (which writes ``var/demo/franceconnect.json``)::

    python -m examples.quotient_familial --config var/demo/franceconnect.json

then open http://127.0.0.1:8700. The pieces, one concern each:

- ``config.py`` — the credentials and addresses the city received;
- ``franceconnect.py`` — the OpenID Connect relying party (Authlib's client);
- ``gateway.py`` — the calls to API Impôt Particulier with both tokens;
- ``quotient.py`` — the city's deliberation: quotient familial and tariff brackets;
- this file — the pages and the démarche that ties them together.

Only the standard library, Starlette, uvicorn, httpx, Authlib (with joserfc) and Jinja2
are used; the app does not import guichet.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import hmac
import logging
import re
import secrets
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo

import httpx
import uvicorn
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if __package__ in (None, ""):  # run as a script: python examples/quotient_familial/app.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from examples.quotient_familial.config import Config
from examples.quotient_familial.franceconnect import (
    FLOW_LIFETIME,
    Flows,
    FranceConnect,
    SignInError,
)
from examples.quotient_familial.gateway import Gateway, GatewayAnswer
from examples.quotient_familial.quotient import (
    TRANCHES,
    Tranche,
    euros,
    quotient_familial,
    tranche_of,
)

log = logging.getLogger("quotient_familial")

CITY: Final = "Ville de Démoville"
ORIGIN: Final = "Direction générale des Finances publiques"
FLOW_COOKIE: Final = "qf_parcours"
# Forms carry a token bound to the browser's session cookie (OWASP "signed double submit
# cookie"): another site can make a browser post here, but cannot read the token.
CSRF_COOKIE: Final = "qf_session"
CSRF_FIELD: Final = "csrf"
_SESSION_ID = re.compile(r"[A-Za-z0-9_-]{43}")
MAX_FORM: Final = 4096  # the forms hold a token and a button: nothing more is read
PARIS: Final = ZoneInfo("Europe/Paris")
TEMPLATES: Final = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
)


# --- the city's démarche ------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    """What the family sees — built, rendered and dropped within one request."""

    annrev: int
    rfr: int | None
    parts: Decimal
    qf: Decimal | None
    tranche: Tranche


def revenue_years(today: dt.date) -> tuple[int, int]:
    """The deliberation's article 2: revenus N-1, à défaut N-2 (N in Paris time)."""
    return today.year - 1, today.year - 2


class Problem(Exception):
    """A message for the family, in plain words (and the call's id for the city's support)."""

    def __init__(self, title: str, detail: str, correlation_id: str | None = None) -> None:
        super().__init__(title)
        self.title = title
        self.detail = detail
        self.correlation_id = correlation_id


async def obtain_result(gateway: Gateway, federation_token: str, today: dt.date) -> Result:
    """N-1, else N-2 when N-1 has no situation (404) or no RFR yet (null).

    The answer is the provider's ``SituationsIRAssiettesJAXBbean``, limited to the data the
    citizen consented to: ``rfr`` an integer or ``null`` (not established yet, as the
    convention allows), ``nbPart`` a number; the other members are not read."""
    years = revenue_years(today)
    last: GatewayAnswer | None = None
    for annrev in years:
        answer = await gateway.assiettes(federation_token, annrev)
        last = answer
        if answer.status == 404:
            continue
        if answer.status != 200 or not isinstance(answer.body, dict):
            raise problem_of(answer, years)
        rfr = answer.body.get("rfr")
        parts = _decimal(answer.body.get("nbPart"))
        if rfr is None and annrev != years[-1]:
            continue
        malformed = rfr is not None and (isinstance(rfr, bool) or not isinstance(rfr, int))
        if malformed or parts is None or parts <= 0 or (rfr is not None and rfr < 0):
            raise problem_of(GatewayAnswer(500, None, answer.correlation_id), years)
        qf = quotient_familial(rfr, parts) if rfr is not None else None
        return Result(annrev, rfr, parts, qf, tranche_of(qf))
    assert last is not None
    raise problem_of(last, years)


def problem_of(answer: GatewayAnswer, years: tuple[int, int]) -> Problem:
    """The provider's answer (RFC 9457 problem+json, stable ``code``) in the family's words."""
    code = answer.body.get("code") if isinstance(answer.body, dict) else None
    cid = answer.correlation_id
    if answer.status == 404:
        return Problem(
            "Aucune situation fiscale trouvée pour votre identité",
            f"La {ORIGIN} n'a trouvé aucune déclaration de revenus {years[0]} ni {years[1]} "
            "correspondant à l'identité transmise par FranceConnect (nom de naissance, "
            "prénoms, date et lieu de naissance). Cela arrive lorsque vous n'avez pas déclaré "
            "de revenus ces années-là, ou lorsque votre état civil diffère entre votre compte "
            "et les fichiers des impôts. Aucune donnée n'a été transmise à la ville. Vous "
            "pouvez présenter votre dernier avis d'imposition à l'accueil de la mairie.",
            cid,
        )
    if answer.status in (429, 503):
        return Problem(
            "Service momentanément indisponible",
            f"Le service de la {ORIGIN} est momentanément indisponible. Réessayez dans "
            "quelques minutes ; aucune donnée n'a été transmise.",
            cid,
        )
    if answer.status == 403:
        return Problem(
            "La ville n'a pas pu obtenir vos données",
            f"La {ORIGIN} a refusé la demande de la ville (motif : {code or 'non précisé'}). "
            "Aucune donnée n'a été transmise. Recommencez la démarche ; si le problème "
            "persiste, contactez la mairie en citant la référence ci-dessous.",
            cid,
        )
    return Problem(
        "Erreur technique",
        "Une erreur technique empêche d'obtenir vos données. Réessayez plus tard ; si le "
        "problème persiste, contactez la mairie en citant la référence ci-dessous.",
        cid,
    )


def _decimal(value: object) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


# --- the web app -----------------------------------------------------------------------------


def page(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(
        TEMPLATES.get_template(name).render(city=CITY, origin=ORIGIN, **context),
        status_code=status,
        headers={"Cache-Control": "no-store"},  # fiscal data never sits in a browser cache
    )


async def small_form(request: Request) -> dict[str, str] | None:
    """The posted form, if it is a small ``application/x-www-form-urlencoded`` one."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM:
            return None
    try:
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    except (UnicodeDecodeError, ValueError):
        return None


def build_app(
    config: Config,
    *,
    today: Callable[[], dt.date] | None = None,
    federation_transport: httpx.AsyncBaseTransport | None = None,
    max_flows: int | None = None,
) -> Starlette:
    """The city's démarche. ``today`` gives the date in Paris (a test may fix it), and
    ``federation_transport`` the way to the federation (the network when ``None``)."""
    france_connect = FranceConnect(config, transport=federation_transport)
    gateway = Gateway(config)
    flows = Flows() if max_flows is None else Flows(max_flows)
    secure_cookie = config.partner_url.startswith("https://")
    csrf_key = secrets.token_bytes(32)  # per process: a restart only expires open forms
    issuer_origin = "{0.scheme}://{0.netloc}".format(urlsplit(config.issuer))

    def current_date() -> dt.date:
        return today() if today is not None else dt.datetime.now(PARIS).date()

    def session_of(request: Request) -> str | None:
        value = request.cookies.get(CSRF_COOKIE, "")
        return value if _SESSION_ID.fullmatch(value) else None

    def csrf_token(session: str) -> str:
        return hmac.new(csrf_key, session.encode(), hashlib.sha256).hexdigest()

    def render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        """A page whose forms carry the token of the browser's session (made if need be)."""
        session = session_of(request)
        fresh = session is None
        session = session or secrets.token_urlsafe(32)
        response = page(name, status, csrf=csrf_token(session), **context)
        if fresh:
            response.set_cookie(
                CSRF_COOKIE, session, httponly=True, secure=secure_cookie, samesite="lax"
            )
        return response

    async def csrf_ok(request: Request) -> bool:
        session = session_of(request)
        form = await small_form(request)
        if session is None or form is None:
            return False
        return hmac.compare_digest(form.get(CSRF_FIELD, ""), csrf_token(session))

    def expired_form(request: Request) -> Response:
        log.info("quotient_familial:csrf:refused path=%s", request.url.path)
        return render(
            request,
            "message.html",
            403,
            title="Ce formulaire a expiré",
            detail="Il ne vient pas de cette page ou elle est trop ancienne : revenez à "
            "l'accueil et recommencez.",
        )

    async def home(request: Request) -> Response:
        n1, n2 = revenue_years(current_date())
        return render(request, "accueil.html", n1=n1, n2=n2, tranches=TRANCHES, euros=euros)

    async def sign_in(request: Request) -> Response:
        if not await csrf_ok(request):
            return expired_form(request)
        flows.forget(request.cookies.get(FLOW_COOKIE))  # one sign-in at a time per browser
        key, flow = flows.start()
        try:
            url = await france_connect.authorization_url(flow)
        except (httpx.HTTPError, SignInError, KeyError):
            flows.forget(key)
            log.warning("quotient_familial:federation:unreachable")
            return render(
                request,
                "message.html",
                503,
                title="FranceConnect est momentanément indisponible",
                detail="Réessayez dans quelques minutes.",
            )
        response = RedirectResponse(url, status_code=303)
        response.set_cookie(
            FLOW_COOKIE,
            key,
            max_age=FLOW_LIFETIME,
            httponly=True,
            secure=secure_cookie,
            samesite="lax",  # sent on the top-level return from FranceConnect
        )
        return response

    async def callback(request: Request) -> Response:
        key = request.cookies.get(FLOW_COOKIE)
        flow = flows.get(key)
        if flow is None or flow.id_token is not None:
            return render(
                request,
                "message.html",
                400,
                title="Votre session a expiré",
                detail="Recommencez la démarche depuis la page d'accueil.",
            )
        params = dict(request.query_params)
        try:
            citizen = await france_connect.finish(params, flow)
        except SignInError as exc:
            flows.forget(key)
            log.info("quotient_familial:sign_in:failed refused=%s", exc.refused)
            if exc.refused:
                return render(
                    request,
                    "message.html",
                    200,
                    title="Vous avez refusé la transmission de vos données",
                    detail=f"Vous avez refusé que la {ORIGIN} transmette vos données à la "
                    "ville : aucune donnée n'a été transmise et votre quotient familial n'a "
                    "pas été calculé. Vous pouvez recommencer, ou présenter votre dernier "
                    "avis d'imposition à l'accueil de la mairie.",
                )
            return render(
                request,
                "message.html",
                400,
                title="La connexion avec FranceConnect n'a pas abouti",
                detail="Aucune donnée n'a été transmise. Recommencez la démarche.",
            )
        except httpx.HTTPError:
            flows.forget(key)
            log.warning("quotient_familial:federation:unreachable")
            return render(
                request,
                "message.html",
                503,
                title="FranceConnect est momentanément indisponible",
                detail="Réessayez dans quelques minutes.",
            )
        # Keep only the ID token, to sign the family out of FranceConnect on request.
        flow.id_token = citizen.id_token
        try:
            result = await obtain_result(gateway, citizen.access_token, current_date())
        except Problem as problem:
            return render(
                request,
                "message.html",
                200,
                title=problem.title,
                detail=problem.detail,
                correlation_id=problem.correlation_id,
                signed_in=True,
            )
        except httpx.HTTPError:
            log.warning("quotient_familial:gateway:unreachable")
            return render(
                request,
                "message.html",
                503,
                title="Service momentanément indisponible",
                detail=f"Le service de la {ORIGIN} ne répond pas. Réessayez dans quelques "
                "minutes ; aucune donnée n'a été transmise.",
                signed_in=True,
            )
        # Shown once, never stored: the response is rendered and the values are dropped.
        return render(
            request,
            "resultat.html",
            who=f"{citizen.given_name} {citizen.family_name}".strip(),
            result=result,
            tranches=TRANCHES,
            euros=euros,
            signed_in=True,
        )

    async def sign_out(request: Request) -> Response:
        if not await csrf_ok(request):
            return expired_form(request)
        key = request.cookies.get(FLOW_COOKIE)
        flow = flows.get(key)
        flows.forget(key)
        target = "/"
        if flow is not None and flow.id_token:
            with contextlib.suppress(httpx.HTTPError, KeyError):
                target = await france_connect.logout_url(flow.id_token)
        response = RedirectResponse(target, status_code=303)
        response.delete_cookie(FLOW_COOKIE)
        return response

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        await gateway.close()

    app = Starlette(
        routes=[
            Route("/", home),
            Route("/connexion", sign_in, methods=["POST"]),
            Route("/retour", callback),
            Route("/deconnexion", sign_out, methods=["POST"]),
        ],
        middleware=[
            Middleware(
                SecurityHeaders,
                csp="default-src 'none'; style-src 'unsafe-inline'; "
                f"form-action 'self' {issuer_origin}; frame-ancestors 'none'; base-uri 'none'",
            )
        ],
        lifespan=lifespan,
    )
    app.state.flows = flows
    return app


class SecurityHeaders:
    """Plain ASGI middleware: every page refuses framing, sniffing, referrers, and scripts."""

    def __init__(self, app: ASGIApp, csp: str) -> None:
        self.app = app
        self.headers = [
            (b"x-frame-options", b"DENY"),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
            (b"content-security-policy", csp.encode()),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *self.headers]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Ville de Démoville — quotient familial (exemple de partenaire FranceConnect)"
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=Path("var/demo/franceconnect.json"),
        help="the file `guichet init` writes (default: var/demo/franceconnect.json)",
    )
    parser.add_argument("--host", help="listening address (default: the config's partner_url)")
    parser.add_argument("--port", type=int, help="listening port (default: the config's)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    config = Config.load(args.config)
    origin = urlsplit(config.partner_url)
    host = args.host or origin.hostname or "127.0.0.1"
    port = args.port or origin.port or 8700
    print(f"{CITY} — quotient familial : {config.partner_url}", flush=True)
    # access_log off: request lines carry query strings (codes, states) that need no trace.
    uvicorn.run(build_app(config), host=host, port=port, access_log=False, log_level="info")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
