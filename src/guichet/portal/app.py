"""The portal origin: the assembly of its pages, static assets and middleware.

Pages: home with the documentation, ``/docs/{name}``, the account pages, the partner's
requests, habilitations and credentials (``/demandes``, ``/habilitations``,
``/identifiants``), the instructors' pages (``/instruction``), the citizen's
"Qui a consulté mes données" (``/mes-donnees``), ``/outbox`` in the embedded default,
Prometheus ``/metrics`` and ``/healthz``. The State Design System (DSFR)
is served from ``/static/dsfr/``, built from npm by ``scripts/build-assets.sh``.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Protocol

from argon2 import PasswordHasher
from jinja2 import Environment as Jinja
from jinja2 import StrictUndefined
from markdown_it import MarkdownIt
from prometheus_client import CONTENT_TYPE_LATEST, Gauge, generate_latest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

import guichet
from guichet.accounts.passwords import Passwords
from guichet.accounts.second_factor import SecondFactors
from guichet.accounts.service import AccountService
from guichet.accounts.sessions import SessionStore
from guichet.catalog import vocabulary
from guichet.logs import event
from guichet.mail import Mailer, build_mailer
from guichet.mail.outbox import Outbox
from guichet.portal import accounts, citizen, instruction, outbox, requests, staff_accounts
from guichet.portal.citizen import CitizenSpace
from guichet.portal.errors import EXCEPTION_HANDLERS
from guichet.portal.origin import (
    HostCheck,
    OutboxExposed,
    allowed_hosts,
    metrics_reader,
    outbox_exposure,
    request_is_https,
)
from guichet.portal.requests import HabilitationPortal
from guichet.portal.runtime import PortalRuntime
from guichet.portal.security import SecurityHeaders
from guichet.portal.throttle import Throttle
from guichet.portal.web import PortalDeps, render
from guichet.quota import QuotaService

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
# The portal serves the French documentation (``docs/fr``); the repository's developer
# documentation (``docs/*.md``) stays in English and is read in the repository.
DOCS_DIR = Path(guichet.__file__).resolve().parents[2] / "docs" / "fr"
DOC_NAME = re.compile(r"^[a-z0-9-]{1,64}$")

DOCS = [
    ("partner-quickstart", "Démarrage rapide pour les partenaires"),
    ("sandbox", "Bac à sable : les personnes fictives"),
    ("catalogue", "Catalogue des API et des données"),
    ("portal", "Le portail : comptes, demandes, habilitations"),
    ("architecture", "Comment fonctionne le guichet"),
]
# The documentation's examples use the running origins, never a hard-coded port.
DOC_TEMPLATES = Jinja(autoescape=False, undefined=StrictUndefined)  # noqa: S701 (Markdown source)


class SandboxPersona(Protocol):
    """A sandbox persona as ``/bac-a-sable`` lists it."""

    @property
    def spi(self) -> str: ...

    @property
    def who(self) -> str: ...

    @property
    def purpose(self) -> str: ...


POLICY_GENERATION = Gauge("guichet_policy_generation", "Generation of the policy snapshot in use.")


def build_portal_app(
    runtime: PortalRuntime,
    quota: QuotaService,
    *,
    mailer: Mailer | None = None,
    password_hasher: PasswordHasher | None = None,
    citizen_space: CitizenSpace | None = None,
    personas: Sequence[SandboxPersona] = (),
) -> Starlette:
    """The portal origin; ``personas`` are the sandbox's, listed on ``/bac-a-sable`` (the
    composition passes ``guichet.sandbox.personas.PERSONAS``)."""
    settings = runtime.settings
    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    mailer = mailer or build_mailer(settings, runtime.clock)
    accounts_service = AccountService(
        runtime.session_factory,
        runtime.clock,
        mailer,
        settings.resolved_portal_url,
        Passwords(password_hasher),
    )
    if refusal := outbox_exposure(settings):
        raise OutboxExposed(refusal)
    show_outbox = settings.smtp_url is None and settings.outbox_web
    portal_deps = PortalDeps(
        settings=settings,
        accounts=accounts_service,
        sessions=SessionStore(runtime.session_factory, runtime.clock),
        outbox=Outbox(settings.resolved_outbox_dir) if show_outbox else None,
    )
    if not (STATIC_DIR / "dsfr" / "dsfr.min.css").is_file():
        event(log, "portal.assets_missing", logging.WARNING, hint="scripts/build-assets.sh")

    async def home(request: Request) -> Response:
        return await render(
            request,
            "home.html",
            sandbox_url=settings.public_url("sandbox"),
            production_url=settings.public_url("production"),
            docs=DOCS,
            quota_degraded=quota.degraded,
        )

    async def doc(request: Request) -> Response:
        name = request.path_params["name"]
        path = DOCS_DIR / f"{name}.md"
        if not DOC_NAME.match(name) or not path.is_file():
            return await render(
                request,
                "error.html",
                status_code=404,
                title="Page introuvable",
                message="Cette page n'existe pas.",
            )
        text = DOC_TEMPLATES.from_string(path.read_text(encoding="utf-8")).render(
            sandbox_url=settings.public_url("sandbox"),
            production_url=settings.public_url("production"),
            portal_url=settings.resolved_portal_url,
            federation_url=settings.embedded_federation_url,
            vocabulary=vocabulary,
        )
        title = next((line[2:] for line in text.splitlines() if line.startswith("# ")), name)
        # Code and tables scroll sideways on a phone: reachable by the keyboard too.
        body = md.render(text).replace("<pre>", '<pre tabindex="0">')
        body = body.replace("<table>", '<table tabindex="0">')
        return await render(request, "doc.html", title=title, body=body, docs=DOCS)

    async def accessibility(request: Request) -> Response:
        return await render(request, "accessibility.html", contact=settings.contact_email)

    async def legal_notice(request: Request) -> Response:
        return await render(
            request,
            "legal_notice.html",
            contact=settings.contact_email,
            security_contact=settings.security_contact,
        )

    async def security_txt(_: Request) -> Response:
        # RFC 9116: where to report a flaw; "Expires" under a year ahead, as §2.5.5 asks.
        expires = (runtime.clock.now() + dt.timedelta(days=180)).strftime("%Y-%m-%dT%H:%M:%SZ")
        return PlainTextResponse(
            f"Contact: mailto:{settings.security_contact}\n"
            f"Expires: {expires}\n"
            "Preferred-Languages: fr, en\n"
            f"Canonical: {settings.resolved_portal_url}/.well-known/security.txt\n"
            f"Policy: {settings.resolved_portal_url}/mentions-legales#securite\n"
        )

    async def sandbox(request: Request) -> Response:
        return await render(
            request,
            "sandbox.html",
            sandbox_url=settings.public_url("sandbox"),
            federation_url=settings.embedded_federation_url,
            personas=personas,
        )

    async def metrics(request: Request) -> Response:
        # Counts per API and outcome: for the operator's scraper, not for the public.
        if not metrics_reader(request.scope, settings):
            return await render(
                request,
                "error.html",
                status_code=404,
                title="Page introuvable",
                message="Cette page n'existe pas.",
            )
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    async def healthz(_: Request) -> Response:
        return Response('{"status":"ok"}', media_type="application/json")

    app = Starlette(
        routes=[
            Route("/", home),
            Route("/docs/{name}", doc),
            Route("/bac-a-sable", sandbox),
            Route("/accessibilite", accessibility),
            Route("/mentions-legales", legal_notice),
            Route("/.well-known/security.txt", security_txt),
            *accounts.ROUTES,
            *citizen.ROUTES,
            *requests.ROUTES,
            *instruction.ROUTES,
            *staff_accounts.ROUTES,
            *outbox.ROUTES,
            Route("/metrics", metrics),
            Route("/healthz", healthz),
            Mount("/static", StaticFiles(directory=STATIC_DIR, check_dir=False), name="static"),
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[
            Middleware(SecurityHeaders, is_https=partial(request_is_https, settings=settings)),
            Middleware(
                HostCheck, hosts=allowed_hosts(settings), public_url=settings.resolved_portal_url
            ),
        ],
    )
    app.state.deps = portal_deps
    app.state.throttle = Throttle(quota, settings)
    # The second factor of staff and FICOBA organisations' members (issue 14, C4).
    app.state.second_factors = SecondFactors(
        runtime.session_factory,
        runtime.clock,
        runtime.master,
        settings.resolved_portal_url,
        accounts_service.passwords,
        mailer,
    )
    app.state.habilitations = HabilitationPortal.from_runtime(runtime, mailer)
    # The citizen's space reaches the federation over HTTP; tests pass one on an in-process
    # transport (``CitizenSpace.from_runtime(runtime, transport=…)``).
    app.state.citizen = citizen_space or CitizenSpace.from_runtime(runtime)
    return app
