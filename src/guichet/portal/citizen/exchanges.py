"""The citizen's exchanges, a page at a time (``/mes-donnees/echanges``)."""

from __future__ import annotations

from typing import Final

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from guichet.portal.citizen.space import HOME_PATH, signed_in, space
from guichet.portal.web import redirect, render

MAX_PAGE: Final = 100_000


def _page_number(request: Request) -> int:
    raw = request.query_params.get("page", "1")
    return int(raw) if raw.isdigit() and len(raw) <= 6 else 1


async def exchanges(request: Request) -> Response:
    citizen = await signed_in(request)
    if citizen is None:
        return redirect(request, HOME_PATH)
    found = await run_in_threadpool(
        space(request).history.page, citizen.subject, min(_page_number(request), MAX_PAGE)
    )
    return await render(request, "citizen/exchanges.html", form=True, citizen=citizen, page=found)
