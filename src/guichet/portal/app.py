"""The portal origin: home page with the documentation, and Prometheus ``/metrics``.

The full partner and instructor portal (DSFR) arrives with the habilitation workflow.
"""

from __future__ import annotations

import re
from pathlib import Path

from jinja2 import Environment as Jinja
from jinja2 import FileSystemLoader, select_autoescape
from markdown_it import MarkdownIt
from prometheus_client import CONTENT_TYPE_LATEST, Gauge, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

import guichet
from guichet.gateway.quota import QuotaService
from guichet.runtime import Runtime

TEMPLATES = Jinja(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
)
DOCS_DIR = Path(guichet.__file__).resolve().parents[2] / "docs"
DOC_NAME = re.compile(r"^[a-z0-9-]{1,64}$")

DOCS = [
    ("partner-quickstart", "Démarrage rapide pour les partenaires"),
    ("sandbox", "Bac à sable : population fictive et personas"),
    ("catalogue", "Catalogue des API, portées et champs"),
    ("operator-guide", "Guide d'exploitation"),
    ("architecture", "Architecture"),
]

POLICY_GENERATION = Gauge("guichet_policy_generation", "Generation of the policy snapshot in use.")


def build_portal_app(runtime: Runtime, quota: QuotaService) -> Starlette:
    settings = runtime.settings
    md = MarkdownIt("commonmark", {"html": False}).enable("table")

    async def home(_: Request) -> Response:
        page = TEMPLATES.get_template("home.html").render(
            version=guichet.__version__,
            sandbox_url=settings.public_url("sandbox"),
            production_url=settings.public_url("production"),
            demo_dir=(settings.data_dir / "demo").resolve(),
            docs=DOCS,
            quota_degraded=quota.degraded,
        )
        return HTMLResponse(page)

    async def doc(request: Request) -> Response:
        name = request.path_params["name"]
        path = DOCS_DIR / f"{name}.md"
        if not DOC_NAME.match(name) or not path.is_file():
            page = TEMPLATES.get_template("doc.html").render(title="Page introuvable", body="")
            return HTMLResponse(page, status_code=404)
        text = path.read_text(encoding="utf-8")
        title = next((line[2:] for line in text.splitlines() if line.startswith("# ")), name)
        page = TEMPLATES.get_template("doc.html").render(title=title, body=md.render(text))
        return HTMLResponse(page)

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    async def healthz(_: Request) -> Response:
        return Response('{"status":"ok"}', media_type="application/json")

    return Starlette(
        routes=[
            Route("/", home),
            Route("/docs/{name}", doc),
            Route("/metrics", metrics),
            Route("/healthz", healthz),
        ]
    )
