"""The provider staff's pages: the instructors' queue by state and age, a request with all
its blocks, the diff since the last review and the comments per block, the decisions with
their mandatory reason; for every staff role, the list of all habilitations and a
habilitation's view with its call statistics, history and the management actions its role
allows (``permissions.STAFF_PERMISSIONS``).

Routes are thin (STYLE 3): the services decide who may act (an instructor never decides on
their own organisation's request; each management action is checked against the permission
table); the pages map their errors to readable answers.
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
from guichet.application import issuance as service
from guichet.application import management
from guichet.application.permissions import StaffAction, check_staff, may_decide, staff_actions
from guichet.clock import utc
from guichet.errors import BadRequest
from guichet.federation.clients import describe_client
from guichet.habilitation import lifecycle, queries
from guichet.habilitation.errors import ReasonRequired
from guichet.habilitation.lifecycle import DisplayStatus, display_status
from guichet.habilitation.models import (
    Environment,
    Habilitation,
    HabilitationStatus,
    Organisation,
)
from guichet.habilitation.request_models import HabilitationRequest
from guichet.habilitation.validation import FieldError, form_of
from guichet.portal.confirmation import NameNotConfirmed, check_typed_name
from guichet.portal.requests.habilitations import (
    call_statistics,
    habilitation_row,
    habilitation_timeline,
)
from guichet.portal.requests.pages import (
    BLOCK_LABELS,
    ENVIRONMENT_LABELS,
    HABILITATION_STATUS_LABELS,
    PageNotFound,
    error_map,
    in_transaction,
    parse_block,
    parse_id,
    portal_of,
)
from guichet.portal.requests.views import FORM_CONTEXT, field_label, request_view, summary
from guichet.portal.web import csrf_protected, deps, field, redirect, render

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
# The form's action → its permission, service, label and hint. Which of them a person sees
# is read from the permission table (``staff_actions``); the services check it again.
MANAGEMENT: Final = {
    "suspend": (
        StaffAction.SUSPEND,
        management.suspend_habilitation,
        "Suspendre",
        "Suspension : les appels sont refusés jusqu'au rétablissement.",
    ),
    "resume": (
        StaffAction.RESUME,
        management.resume_habilitation,
        "Rétablir",
        "Rétablissement : les appels sont de nouveau acceptés.",
    ),
    "notice": (
        StaffAction.NOTICE,
        management.give_termination_notice,
        "Résilier avec préavis de deux mois",
        "Les appels continuent pendant le préavis.",
    ),
    "terminate": (
        StaffAction.TERMINATE,
        management.terminate_for_security,
        "Résilier immédiatement (sécurité)",
        "Effet immédiat.",
    ),
}
REASON_TEXT_LIMIT: Final = 5000
# Terminations: the person types the organisation's name to confirm.
TYPED_CONFIRMATION: Final = frozenset({"notice", "terminate"})


def _instructor(user: User) -> None:
    check_staff(user, StaffAction.INSTRUCT)


async def queue(request: Request) -> Response:
    def work(session: Session, user: User, now: dt.datetime) -> list[dict[str, Any]]:
        _instructor(user)
        found = service.list_requests(session, user)
        named = organisations(session, {r.organisation_id for r in found})
        rows = [
            (display_status(r, now), summary(r, now) | named.get(r.organisation_id, {}))
            for r in found
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

    sections = await in_transaction(request, work)
    return await render(request, "instruction/queue.html", sections=sections)


def organisations(session: Session, ids: set[uuid.UUID]) -> dict[uuid.UUID, dict[str, str]]:
    """The filing organisations' names and SIRET, as the instructor reads them."""
    if not ids:
        return {}
    return {
        o.id: {"organisation": o.name, "siret": o.siret}
        for o in session.scalars(select(Organisation).where(Organisation.id.in_(ids)))
    }


def _view(session: Session, user: User, request_id: uuid.UUID, now: dt.datetime) -> dict[str, Any]:
    _instructor(user)
    found = service.get_request(session, user, request_id)
    view = request_view(session, user, found, now)
    view.update(organisations(session, {found.organisation_id}).get(found.organisation_id, {}))
    view["may_decide"] = may_decide(user, found)
    view["decidable"] = found.status.value == "submitted"
    view["federation_client"] = _federation_client(session, found)
    return view


def _federation_client(session: Session, found: HabilitationRequest) -> dict[str, Any] | None:
    """The federation client the request names, as the instructor must see it before
    validating binds it: its name, redirect URIs and owner at the sandbox federation, and
    why validation would refuse it (the same check as validation's)."""
    declared = (form_of(found).technical.federation_client_id or "").strip()
    if not declared:
        return None
    described = describe_client(session, declared)
    refusals = [e.message for e in service.federation_client_errors(session, found)]
    if described is None:
        return {"client_id": declared, "known": False, "refusal": next(iter(refusals), None)}
    if described.internal:
        owner = "guichet lui-même"
    elif described.owner_name is not None:
        owner = f"{described.owner_name} (SIRET {described.owner_siret})"
    else:
        owner = "aucun propriétaire enregistré"
    return {
        "client_id": declared,
        "known": True,
        "name": described.name,
        "redirect_uris": list(described.redirect_uris),
        "owner": owner,
        "disabled": described.disabled,
        "refusal": next(iter(refusals), None),
    }


async def request_page(request: Request) -> Response:
    request_id = request.path_params["request_id"]
    view = await in_transaction(request, lambda s, u, now: _view(s, u, parse_id(request_id), now))
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
    reason = field(form, "reason", REASON_TEXT_LIMIT, multiline=True)
    hp = portal_of(request)
    credentials_link = deps(request).accounts.link("/identifiants")

    def work(session: Session, user: User, now: dt.datetime) -> None:
        _instructor(user)
        found = service.get_request(session, user, request_id)
        if action == "validate":
            service.validate(
                session,
                found,
                user,
                reason,
                now=now,
                master=hp.master,
                mailer=hp.mailer,
                credentials_link=credentials_link,
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
    return redirect(
        request,
        f"/instruction/demandes/{request_id}?decision={action}",
        notice=f"decision_{action}",
    )


async def _comment(request: Request, form: FormData, _: Any) -> Response:
    request_id = parse_id(request.path_params["request_id"])
    block = parse_block(field(form, "block", 32))
    text = field(form, "text", REASON_TEXT_LIMIT, multiline=True)

    def work(session: Session, user: User, now: dt.datetime) -> None:
        _instructor(user)
        found = service.get_request(session, user, request_id)
        service.comment(session, found, user, block, text, now=now)

    try:
        await in_transaction(request, work)
    except BadRequest as exc:
        if exc.field != "text":
            raise
        return await _page_with_errors(
            request,
            request_id,
            [FieldError(f"comment.{block.value}", exc.detail)],
            "Le commentaire n'a pas été enregistré.",
            "",
        )
    return redirect(
        request, f"/instruction/demandes/{request_id}#bloc-{block.value}", notice="comment_added"
    )


# --- habilitations, for every staff role -------------------------------------------------------


def _enum_filter(cls: type[Environment] | type[HabilitationStatus], value: str) -> Any:
    try:
        return cls(value) if value else None
    except ValueError:
        return None


async def habilitations_list(request: Request) -> Response:
    """Every habilitation, filtered by state, environment, organisation (name or SIRET)."""
    params = request.query_params
    status = _enum_filter(HabilitationStatus, params.get("etat", "")[:32])
    environment = _enum_filter(Environment, params.get("environnement", "")[:32])
    organisation = params.get("organisation", "")[:200]

    def work(session: Session, user: User, now: dt.datetime) -> list[dict[str, Any]]:
        found = management.list_habilitations(
            session, user, status=status, environment=environment, organisation=organisation
        )
        return [{**habilitation_row(h), "siret": h.organisation.siret} for h in found]

    rows = await in_transaction(request, work)
    return await render(
        request,
        "staff/habilitations.html",
        rows=rows,
        filters={
            "etat": status.value if status else "",
            "environnement": environment.value if environment else "",
            "organisation": organisation,
        },
        statuses=[(s.value, label) for s, label in HABILITATION_STATUS_LABELS.items()],
        environments=[(e.value, label) for e, label in ENVIRONMENT_LABELS.items()],
    )


def _habilitation_view(
    session: Session, user: User, habilitation_id: uuid.UUID, now: dt.datetime
) -> dict[str, Any]:
    check_staff(user, StaffAction.VIEW)
    hab = session.get(Habilitation, habilitation_id)
    if hab is None:
        raise PageNotFound("Habilitation introuvable.")
    requests = queries.requests_of(session, hab.id)
    allowed = staff_actions(user)
    client = management.habilitation_client(session, hab)
    expired = lifecycle.expired_commitment(session, hab, now)
    states = {
        "suspend": hab.status is HabilitationStatus.ACTIVE,
        # Not offered on an expired attestation: the service would refuse it (409).
        "resume": hab.status is HabilitationStatus.SUSPENDED and expired is None,
        "notice": hab.status is not HabilitationStatus.TERMINATED
        and not lifecycle.notice_given(session, hab),
        "terminate": hab.status is not HabilitationStatus.TERMINATED,
    }
    return {
        **habilitation_row(hab),
        "client_id": client.client_id if client else None,
        "statistics": call_statistics(session, hab.id, now),
        "timeline": habilitation_timeline(session, hab),
        "requests": [summary(r, now) for r in requests],
        "actions": [
            (action, label, hint)
            for action, (permission, _, label, hint) in MANAGEMENT.items()
            if permission in allowed and states[action]
        ],
        "instructs": StaffAction.INSTRUCT in allowed,
        "commitment_expired_at": utc(expired.expires_at) if expired else None,
    }


async def habilitation_page(request: Request) -> Response:
    habilitation_id = request.path_params["habilitation_id"]
    view = await in_transaction(
        request, lambda s, u, now: _habilitation_view(s, u, parse_id(habilitation_id), now)
    )
    return await render(request, "instruction/habilitation.html", form=True, h=view, errors={})


async def _manage(request: Request, form: FormData, _: Any) -> Response:
    habilitation_id = parse_id(request.path_params["habilitation_id"])
    action = field(form, "action", 32)
    reason = field(form, "reason", REASON_TEXT_LIMIT, multiline=True)
    typed_name = field(form, "organisation_confirm", 400)
    hp = portal_of(request)

    def work(session: Session, user: User, now: dt.datetime) -> None:
        check_staff(user, StaffAction.VIEW)
        hab = session.get(Habilitation, habilitation_id)
        if hab is None:
            raise PageNotFound("Habilitation introuvable.")
        if action not in MANAGEMENT:
            raise PageNotFound("Action inconnue.")
        if action in TYPED_CONFIRMATION:
            check_staff(user, MANAGEMENT[action][0])  # a refusal before any confirmation
            check_typed_name(typed_name, hab.organisation.name)
        MANAGEMENT[action][1](session, hab, user, reason, now=now, mailer=hp.mailer)

    try:
        await in_transaction(request, work)
    except (ReasonRequired, NameNotConfirmed) as exc:
        view = await in_transaction(
            request, lambda s, u, now: _habilitation_view(s, u, habilitation_id, now)
        )
        path = "confirm" if isinstance(exc, NameNotConfirmed) else "reason"
        return await render(
            request,
            "instruction/habilitation.html",
            status_code=400,
            form=True,
            h=view,
            errors={f"{path}-{action}": exc.detail},
        )
    return redirect(
        request,
        f"/instruction/habilitations/{habilitation_id}?action={action}",
        notice=f"action_{action}",
    )


decide = csrf_protected(_decide)
comment = csrf_protected(_comment)
manage = csrf_protected(_manage)

ROUTES = [
    Route("/instruction", queue, methods=["GET"]),
    Route("/instruction/demandes/{request_id}", request_page, methods=["GET"]),
    Route("/instruction/demandes/{request_id}/decision", decide, methods=["POST"]),
    Route("/instruction/demandes/{request_id}/commentaires", comment, methods=["POST"]),
    Route("/instruction/habilitations", habilitations_list, methods=["GET"]),
    Route("/instruction/habilitations/{habilitation_id}", habilitation_page, methods=["GET"]),
    Route("/instruction/habilitations/{habilitation_id}/gestion", manage, methods=["POST"]),
]
