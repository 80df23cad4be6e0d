"""The portal origin: the assembly of its pages, static assets and middleware.

Pages: home with the documentation, ``/docs/{name}``, the account pages, the partner's
requests, habilitations and credentials (``/demandes``, ``/habilitations``,
``/identifiants``), the instructors' pages (``/instruction``), the citizen's
"Qui a consulté mes données" (``/mes-donnees``), ``/outbox`` in the embedded default,
Prometheus ``/metrics`` and ``/healthz``. The State Design System (DSFR)
is served from ``/static/dsfr/``, built from npm by ``scripts/build-assets.sh``.
"""

from __future__ import annotations

import logging
import re
from functools import partial
from pathlib import Path

from argon2 import PasswordHasher
from markdown_it import MarkdownIt
from prometheus_client import CONTENT_TYPE_LATEST, Gauge, generate_latest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

import guichet
from guichet.accounts.passwords import Passwords
from guichet.accounts.service import AccountService
from guichet.accounts.sessions import SessionStore
from guichet.gateway.quota import QuotaService
from guichet.logs import event
from guichet.mail import Mailer, build_mailer
from guichet.mail.outbox import Outbox
from guichet.portal import accounts, citizen, instruction, outbox, requests
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
from guichet.portal.security import SecurityHeaders
from guichet.portal.web import PortalDeps, render
from guichet.runtime import Runtime
from guichet.sandbox.personas import PERSONAS

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
DOCS_DIR = Path(guichet.__file__).resolve().parents[2] / "docs"
DOC_NAME = re.compile(r"^[a-z0-9-]{1,64}$")

DOCS = [
    ("partner-quickstart", "Démarrage rapide pour les partenaires"),
    ("sandbox", "Bac à sable : population fictive et personas"),
    ("catalogue", "Catalogue des API, portées et champs"),
    ("portal", "Le portail : comptes, connexion, accessibilité"),
    ("operator-guide", "Guide d'exploitation"),
    ("architecture", "Architecture"),
]

POLICY_GENERATION = Gauge("guichet_policy_generation", "Generation of the policy snapshot in use.")


def build_portal_app(
    runtime: Runtime,
    quota: QuotaService,
    *,
    mailer: Mailer | None = None,
    password_hasher: PasswordHasher | None = None,
    citizen_space: CitizenSpace | None = None,
) -> Starlette:
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
            version=guichet.__version__,
            sandbox_url=settings.public_url("sandbox"),
            production_url=settings.public_url("production"),
            demo_dir=(settings.data_dir / "demo").resolve(),
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
        text = path.read_text(encoding="utf-8")
        title = next((line[2:] for line in text.splitlines() if line.startswith("# ")), name)
        return await render(request, "doc.html", title=title, body=md.render(text))

    async def sandbox(request: Request) -> Response:
        return await render(
            request,
            "sandbox.html",
            sandbox_url=settings.public_url("sandbox"),
            federation_url=settings.embedded_federation_url,
            personas=PERSONAS,
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
            *accounts.ROUTES,
            *citizen.ROUTES,
            *requests.ROUTES,
            *instruction.ROUTES,
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
    app.state.habilitations = HabilitationPortal.from_runtime(runtime, mailer)
    # The citizen's space reaches the federation over HTTP; tests pass one on an in-process
    # transport (``CitizenSpace.from_runtime(runtime, transport=…)``).
    app.state.citizen = citizen_space or CitizenSpace.from_runtime(runtime)
    return app
