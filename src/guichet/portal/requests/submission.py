"""A request's moves by its organisation: submitting it, starting its production step,
archiving it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable
from typing import Any

from sqlalchemy.orm import Session
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from guichet.accounts.models import User
from guichet.application import issuance as service
from guichet.application.permissions import is_member
from guichet.errors import GuichetError
from guichet.habilitation.errors import RequestForbidden
from guichet.portal.requests.pages import (
    in_transaction,
    in_transaction_or_refusal,
    parse_id,
    portal_of,
)
from guichet.portal.requests.views import render_with_errors
from guichet.portal.web import csrf_protected, field, redirect


async def _submit(request: Request, _form: FormData, _: Any) -> Response:
    request_id = parse_id(request.path_params["request_id"])

    trust_store = portal_of(request).trust_store

    def work(session: Session, user: User, now: dt.datetime) -> None:
        found = service.get_request(session, user, request_id)
        service.submit(session, found, user, now=now, trust_store=trust_store)

    def refusal(exc: GuichetError) -> Awaitable[Response] | None:
        if not isinstance(exc, service.RequestInvalid):
            return None
        return render_with_errors(
            request, request_id, exc.errors, 400, "La demande n'a pas été soumise."
        )

    refused = await in_transaction_or_refusal(request, work, refusal)
    if isinstance(refused, Response):
        return refused
    return redirect(request, f"/demandes/{request_id}?soumise=1", notice="submitted")


async def _start_production(request: Request, _form: FormData, _: Any) -> Response:
    request_id = parse_id(request.path_params["request_id"])

    def work(session: Session, user: User, now: dt.datetime) -> str:
        sandbox = service.get_request(session, user, request_id)
        return str(service.start_production_request(session, user, sandbox, now=now).id)

    new_id = await in_transaction(request, work)
    return redirect(request, f"/demandes/{new_id}", notice="production_started")


async def _archive(request: Request, form: FormData, _: Any) -> Response:
    """A member archives a request the transition table lets go (draft, changes requested,
    refused, validated); the reason, optional, goes to the timeline."""
    request_id = parse_id(request.path_params["request_id"])
    reason = field(form, "reason", 5000, multiline=True)

    def work(session: Session, user: User, now: dt.datetime) -> None:
        found = service.get_request(session, user, request_id)
        if not is_member(user, found):
            raise RequestForbidden("Seuls les membres de l'organisation l'archivent.")
        service.archive(session, found, user, reason or None, now=now)

    await in_transaction(request, work)
    return redirect(request, f"/demandes/{request_id}?archivee=1", notice="archived")


submit = csrf_protected(_submit)


start_production = csrf_protected(_start_production)


archive = csrf_protected(_archive)
