"""``/outbox``: the mails of the embedded default, for whoever runs it (no SMTP configured).

Served to a loopback peer only: the mails hold sign-in and password reset links.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from guichet.mail.outbox import Outbox
from guichet.portal.origin import loopback_peer
from guichet.portal.web import deps, render


def _outbox(request: Request) -> Outbox | None:
    """The outbox, if this visitor may read it (this very machine, not through a proxy)."""
    return deps(request).outbox if loopback_peer(request.scope) else None


async def outbox_list(request: Request) -> Response:
    box = _outbox(request)
    if box is None:
        return await render(
            request,
            "error.html",
            status_code=404,
            title="Page introuvable",
            message="Cette page n'existe pas.",
        )
    entries = await run_in_threadpool(box.list)
    return await render(request, "outbox/list.html", entries=entries)


async def outbox_message(request: Request) -> Response:
    box = _outbox(request)
    message = await run_in_threadpool(box.get, request.path_params["id"]) if box else None
    if message is None:
        return await render(
            request,
            "error.html",
            status_code=404,
            title="Message introuvable",
            message="Ce message n'existe pas dans la boîte d'envoi.",
        )
    return await render(request, "outbox/message.html", message=message)


ROUTES = [
    Route("/outbox", outbox_list, methods=["GET"]),
    Route("/outbox/{id}", outbox_message, methods=["GET"]),
]
