"""The technical contact's credentials: the secrets waiting, each shown once."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.orm import Session
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from guichet.accounts.models import User
from guichet.application import issuance as service
from guichet.clock import utc
from guichet.habilitation.models import Habilitation
from guichet.portal.requests.pages import (
    ENVIRONMENT_LABELS,
    in_transaction,
    parse_id,
    portal_of,
)
from guichet.portal.web import csrf_protected, render


async def credentials_page(request: Request) -> Response:
    def work(session: Session, user: User, now: dt.datetime) -> list[dict[str, Any]]:
        found = []
        for d in service.pending_deliveries(session, user):
            hab = session.get(Habilitation, d.habilitation_id)
            found.append(
                {
                    "id": str(d.id),
                    "client_id": d.client_id,
                    "created_at": utc(d.created_at),
                    "demarche": hab.demarche if hab else "",
                    "environment": ENVIRONMENT_LABELS[hab.environment] if hab else "",
                }
            )
        return found

    deliveries = await in_transaction(request, work)
    return await render(request, "requests/credentials.html", form=True, deliveries=deliveries)


async def _collect(request: Request, _form: FormData, _: Any) -> Response:
    """The secret, shown once in this answer (never cached: ``Cache-Control: no-store``)."""
    delivery_id = parse_id(request.path_params["delivery_id"])
    hp = portal_of(request)

    def work(session: Session, user: User, now: dt.datetime) -> service.Credentials:
        return service.collect_credentials(session, user, delivery_id, master=hp.master, now=now)

    credentials = await in_transaction(request, work)
    return await render(request, "requests/credentials_shown.html", credentials=credentials)


collect = csrf_protected(_collect)
