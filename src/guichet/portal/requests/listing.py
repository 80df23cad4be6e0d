"""My requests: the list, a new request, one request's page, its documents."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy.orm import Session
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from guichet.accounts.models import User
from guichet.application import issuance as service
from guichet.application.permissions import is_member
from guichet.catalog.products import PRODUCTS
from guichet.habilitation import lifecycle
from guichet.habilitation.errors import RequestNotFound
from guichet.habilitation.models import Habilitation, HabilitationStatus
from guichet.habilitation.request_models import EDITABLE, HabilitationRequest, RequestStatus
from guichet.habilitation.validation import TERMS_OF_USE, validate_block
from guichet.portal.requests.pages import in_transaction, parse_id, portal_of
from guichet.portal.requests.views import FORM_CONTEXT, request_view, steps_of, summary
from guichet.portal.web import csrf_protected, field, redirect, render


async def my_requests(request: Request) -> Response:
    def work(session: Session, user: User, now: dt.datetime) -> dict[str, Any]:
        rows = [
            {**summary(r, now), **draft_progress(r, now)}
            for r in service.list_requests(session, user)
            if is_member(user, r)
        ]
        organisations = [
            (str(m.organisation_id), m.organisation.name)
            for m in sorted(user.memberships, key=lambda m: m.created_at)
        ]
        return {
            "rows": rows,
            "apis": [(key, PRODUCTS[key].name) for key in TERMS_OF_USE if key in PRODUCTS],
            "organisations": list(dict(organisations).items()),
            "deliveries": len(service.pending_deliveries(session, user)),
        }

    view = await in_transaction(request, work)
    return await render(request, "requests/list.html", form=True, **view)


def draft_progress(request: HabilitationRequest, now: dt.datetime) -> dict[str, Any]:
    """A draft's steps complete and the first one to do (to resume it from the list)."""
    if request.status not in EDITABLE:
        return {}
    steps = steps_of(request)
    saved = request.data or {}
    complete = [b.value in saved and not validate_block(request, b, now=now) for b in steps]
    return {
        "steps_done": sum(complete),
        "steps_total": len(steps),
        "resume_at": next((n for n, ok in enumerate(complete, 1) if not ok), None),
    }


async def _new_request(request: Request, form: FormData, _: Any) -> Response:
    def work(session: Session, user: User, now: dt.datetime) -> str:
        memberships = {str(m.organisation_id) for m in user.memberships}
        chosen = field(form, "organisation_id", 64) or next(iter(sorted(memberships)), "")
        if chosen not in memberships:
            raise RequestNotFound("Choisissez une organisation dont vous êtes membre.")
        created = service.start_request(
            session,
            user,
            uuid.UUID(chosen),
            api=field(form, "api", 64) or "impot_particulier",
            now=now,
        )
        return str(created.id)

    new_id = await in_transaction(request, work)
    return redirect(request, f"/demandes/{new_id}/etapes/1", notice="request_created")


async def request_page(request: Request) -> Response:
    request_id = request.path_params["request_id"]

    def work(session: Session, user: User, now: dt.datetime) -> dict[str, Any]:
        found = service.get_request(session, user, parse_id(request_id))
        view = request_view(session, user, found, now)
        view.update(_request_actions(session, user, found))
        return view

    view = await in_transaction(request, work)
    return await render(request, "requests/request.html", form=True, r=view, **FORM_CONTEXT)


def _request_actions(session: Session, user: User, request: HabilitationRequest) -> dict[str, Any]:
    """What a member may do with the request beyond its form: archive it (where the
    transition table allows), update the habilitation it validated."""
    member = is_member(user, request)
    hab = session.get(Habilitation, request.habilitation_id) if request.habilitation_id else None
    pending = lifecycle.open_update_request(session, hab) if hab is not None else None
    return {
        "can_archive": member
        and (request.status, lifecycle.RequestAction.ARCHIVE) in lifecycle.TRANSITIONS,
        "can_update": member
        and request.status is RequestStatus.VALIDATED
        and hab is not None
        and hab.status is not HabilitationStatus.TERMINATED
        and pending is None,
        "open_update_id": str(pending.id) if member and pending is not None else None,
    }


async def document(request: Request) -> Response:
    """An uploaded PDF, to whoever may read its request."""
    hp = portal_of(request)

    def work(session: Session, user: User, now: dt.datetime) -> tuple[str, bytes]:
        doc, content = service.read_document(
            session, user, parse_id(request.path_params["document_id"]), uploads_dir=hp.uploads_dir
        )
        return doc.original_name, content

    name, content = await in_transaction(request, work)
    safe = "".join(ch for ch in name if ch.isalnum() or ch in "._- ") or "document.pdf"
    return Response(
        content,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{safe}"'},
    )


new_request = csrf_protected(_new_request)
