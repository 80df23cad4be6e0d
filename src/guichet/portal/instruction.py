"""The instructors' pages: the queue by state and age, a request with all its blocks, the
diff since the last review and the comments per block, the decisions with their mandatory
reason, and a habilitation's view with its call statistics and management actions.

Routes are thin (STYLE 3): the services decide who may act (an instructor never decides on
their own organisation's request); the pages map their errors to readable answers.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from guichet.accounts.models import User
from guichet.clock import utc
from guichet.errors import GuichetError
from guichet.habilitation import lifecycle
from guichet.habilitation import requests as service
from guichet.habilitation.lifecycle import (
    DisplayStatus,
    HabilitationActionRefused,
    ReasonRequired,
    display_status,
    is_instructor,
    may_decide,
)
from guichet.habilitation.models import Habilitation, HabilitationEvent
from guichet.habilitation.request_models import HabilitationRequest
from guichet.habilitation.validation import FieldError
from guichet.portal.requests import (
    BLOCK_LABELS,
    FORM_CONTEXT,
    PageNotFound,
    call_statistics,
    error_map,
    error_page,
    field_label,
    habilitation_row,
    in_transaction,
    parse_block,
    parse_id,
    portal_of,
    request_view,
    summary,
    user_names,
)
from guichet.portal.web import csrf_protected, field, redirect, render

QUEUE_SECTIONS: Final = (
    (DisplayStatus.SUBMITTED, "À instruire"),
    (DisplayStatus.IMPLICITLY_REJECTED, "Sans décision depuis deux mois (rejet implicite)"),
    (DisplayStatus.CHANGES_REQUESTED, "En attente de modifications du partenaire"),
    (DisplayStatus.VALIDATED, "Validées"),
    (DisplayStatus.REFUSED, "Refusées"),
)
DECISIONS: Final = {
    "request_changes": (service.request_changes, "Modifications demandées au partenaire."),
    "refuse": (service.refuse, "Demande refusée."),
}
MANAGEMENT: Final = {
    "suspend": lifecycle.suspend_habilitation,
    "resume": lifecycle.resume_habilitation,
    "notice": lifecycle.give_termination_notice,
    "terminate": lifecycle.terminate_for_security,
}
REASON_TEXT_LIMIT: Final = 5000


def _instructor(user: User) -> None:
    if not is_instructor(user):
        raise HabilitationActionRefused("Cet espace est réservé aux instructeurs du fournisseur.")


async def queue(request: Request) -> Response:
    def work(session: Session, user: User, now: dt.datetime) -> list[dict[str, Any]]:
        _instructor(user)
        rows = [
            (display_status(r, now), summary(r, now)) for r in service.list_requests(session, user)
        ]
        sections = []
        for status, title in QUEUE_SECTIONS:
            items = sorted(
                (row for shown, row in rows if shown is status),
                key=lambda row: row["age"] or 0,
                reverse=True,
            )
            sections.append({"status": status.value, "title": title, "rows": items})
        return sections

    try:
        sections = await in_transaction(request, work)
    except GuichetError as exc:
        return await error_page(request, exc)
    return await render(request, "instruction/queue.html", sections=sections)


def _view(session: Session, user: User, request_id: uuid.UUID, now: dt.datetime) -> dict[str, Any]:
    _instructor(user)
    found = service.get_request(session, user, request_id)
    view = request_view(session, user, found, now)
    view["may_decide"] = may_decide(user, found)
    view["decidable"] = found.status.value == "submitted"
    return view


async def request_page(request: Request) -> Response:
    request_id = request.path_params["request_id"]
    try:
        view = await in_transaction(
            request, lambda s, u, now: _view(s, u, parse_id(request_id), now)
        )
    except GuichetError as exc:
        return await error_page(request, exc)
    return await render(
        request, "instruction/request.html", form=True, r=view, labels=BLOCK_LABELS, **FORM_CONTEXT
    )


async def _page_with_errors(
    request: Request, request_id: uuid.UUID, errors: list[FieldError], alert: str, reason: str
) -> Response:
    view = await in_transaction(request, lambda s, u, now: _view(s, u, request_id, now))
    return await render(
        request,
        "instruction/request.html",
        status_code=400,
        form=True,
        r=view,
        labels=BLOCK_LABELS,
        alert=alert,
        alert_errors=[(field_label(e.field), e.message) for e in errors],
        decision_errors=error_map(errors),
        reason=reason,
        **FORM_CONTEXT,
    )


async def _decide(request: Request, form: FormData, _: Any) -> Response:
    request_id = parse_id(request.path_params["request_id"])
    action = field(form, "action", 32)
    reason = field(form, "reason", REASON_TEXT_LIMIT)
    hp = portal_of(request)

    def work(session: Session, user: User, now: dt.datetime) -> None:
        _instructor(user)
        found = service.get_request(session, user, request_id)
        if action == "validate":
            service.validate(
                session, found, user, reason, now=now, master=hp.master, mailer=hp.mailer
            )
        elif action in DECISIONS:
            DECISIONS[action][0](session, found, user, reason, now=now, mailer=hp.mailer)
        else:
            raise PageNotFound("Décision inconnue.")

    try:
        await in_transaction(request, work)
    except ReasonRequired as exc:
        return await _page_with_errors(
            request,
            request_id,
            [FieldError("reason", exc.detail)],
            "Aucune décision n'a été enregistrée.",
            reason,
        )
    except service.RequestInvalid as exc:
        return await _page_with_errors(
            request,
            request_id,
            exc.errors,
            "La demande ne peut pas être validée : il lui manque des éléments.",
            reason,
        )
    except GuichetError as exc:
        return await error_page(request, exc)
    return redirect(request, f"/instruction/demandes/{request_id}?decision={action}")


async def _comment(request: Request, form: FormData, _: Any) -> Response:
    request_id = parse_id(request.path_params["request_id"])
    block = parse_block(field(form, "block", 32))
    text = field(form, "text", REASON_TEXT_LIMIT)

    def work(session: Session, user: User, now: dt.datetime) -> None:
        _instructor(user)
        found = service.get_request(session, user, request_id)
        service.comment(session, found, user, block, text, now=now)

    try:
        await in_transaction(request, work)
    except GuichetError as exc:
        if exc.field == "text":
            return await _page_with_errors(
                request,
                request_id,
                [FieldError(f"comment.{block.value}", exc.detail)],
                "Le commentaire n'a pas été enregistré.",
                "",
            )
        return await error_page(request, exc)
    return redirect(request, f"/instruction/demandes/{request_id}#bloc-{block.value}")


# --- a habilitation ---------------------------------------------------------------------------


def _habilitation_view(
    session: Session, user: User, habilitation_id: uuid.UUID, now: dt.datetime
) -> dict[str, Any]:
    _instructor(user)
    hab = session.get(Habilitation, habilitation_id)
    if hab is None:
        raise PageNotFound("Habilitation introuvable.")
    events = session.scalars(
        select(HabilitationEvent)
        .where(HabilitationEvent.habilitation_id == hab.id)
        .order_by(HabilitationEvent.at)
    ).all()
    requests = session.scalars(
        select(HabilitationRequest)
        .where(HabilitationRequest.habilitation_id == hab.id)
        .order_by(HabilitationRequest.created_at)
    ).all()
    actors = {
        uuid.UUID(e.actor.removeprefix("user:"))
        for e in events
        if e.actor.startswith("user:") and len(e.actor) == 41
    }
    names = user_names(session, set(actors))
    return {
        **habilitation_row(hab),
        "statistics": call_statistics(session, hab.id, now),
        "events": [
            {
                "at": utc(e.at),
                "name": e.name,
                "reason": e.reason,
                "who": names.get(uuid.UUID(e.actor[5:]), e.actor)
                if e.actor.startswith("user:") and len(e.actor) == 41
                else e.actor,
            }
            for e in events
        ],
        "requests": [summary(r, now) for r in requests],
    }


async def habilitation_page(request: Request) -> Response:
    habilitation_id = request.path_params["habilitation_id"]
    try:
        view = await in_transaction(
            request, lambda s, u, now: _habilitation_view(s, u, parse_id(habilitation_id), now)
        )
    except GuichetError as exc:
        return await error_page(request, exc)
    return await render(request, "instruction/habilitation.html", form=True, h=view, errors={})


async def _manage(request: Request, form: FormData, _: Any) -> Response:
    habilitation_id = parse_id(request.path_params["habilitation_id"])
    action = field(form, "action", 32)
    reason = field(form, "reason", REASON_TEXT_LIMIT)
    hp = portal_of(request)

    def work(session: Session, user: User, now: dt.datetime) -> None:
        _instructor(user)
        hab = session.get(Habilitation, habilitation_id)
        if hab is None:
            raise PageNotFound("Habilitation introuvable.")
        if action not in MANAGEMENT:
            raise PageNotFound("Action inconnue.")
        MANAGEMENT[action](session, hab, user, reason, now=now, mailer=hp.mailer)

    try:
        await in_transaction(request, work)
    except ReasonRequired as exc:
        view = await in_transaction(
            request, lambda s, u, now: _habilitation_view(s, u, habilitation_id, now)
        )
        return await render(
            request,
            "instruction/habilitation.html",
            status_code=400,
            form=True,
            h=view,
            errors={f"reason-{action}": exc.detail},
        )
    except GuichetError as exc:
        return await error_page(request, exc)
    return redirect(request, f"/instruction/habilitations/{habilitation_id}?action={action}")


decide = csrf_protected(_decide)
comment = csrf_protected(_comment)
manage = csrf_protected(_manage)

ROUTES = [
    Route("/instruction", queue, methods=["GET"]),
    Route("/instruction/demandes/{request_id}", request_page, methods=["GET"]),
    Route("/instruction/demandes/{request_id}/decision", decide, methods=["POST"]),
    Route("/instruction/demandes/{request_id}/commentaires", comment, methods=["POST"]),
    Route("/instruction/habilitations/{habilitation_id}", habilitation_page, methods=["GET"]),
    Route("/instruction/habilitations/{habilitation_id}/gestion", manage, methods=["POST"]),
]
