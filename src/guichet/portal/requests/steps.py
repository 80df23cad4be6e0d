"""The request as a guided sequence (issue 15): one block per page, « Étape n sur N », each
step saved on « Suivant » or « Précédent » (``editing.save_block``), the summary before
submission (``listing.request_page``)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response

from guichet.accounts.models import User
from guichet.application import issuance as service
from guichet.application.permissions import is_member
from guichet.habilitation.request_models import EDITABLE
from guichet.habilitation.validation import Block
from guichet.portal.requests.pages import PageNotFound, in_transaction, parse_id
from guichet.portal.requests.views import render_step, steps_of
from guichet.portal.web import redirect


async def step_page(request: Request) -> Response:
    """Step ``number`` of a request its organisation may still edit; otherwise the request's
    page (a submitted request reads as its summary)."""
    request_id = parse_id(request.path_params["request_id"])
    number = request.path_params["number"]

    def work(session: Session, user: User, now: dt.datetime) -> tuple[tuple[Block, ...], bool]:
        found = service.get_request(session, user, request_id)
        return steps_of(found), found.status in EDITABLE and is_member(user, found)

    steps, editable = await in_transaction(request, work)
    if not number.isdigit() or not 1 <= int(number) <= len(steps):
        raise PageNotFound("Cette étape n'existe pas.")
    if not editable:
        return redirect(request, f"/demandes/{request_id}")
    verify = request.query_params.get("verifier") == "1"
    return await render_step(request, request_id, steps[int(number) - 1], verify=verify)
