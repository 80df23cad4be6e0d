"""A request as its pages show it (both sides): summary, saved blocks in words, timeline,
comments, errors, and the request page rendered again with a refused form's errors.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Any, Final

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response

from guichet.accounts.contacts import contact_states
from guichet.accounts.models import User
from guichet.accounts.queries import display_names
from guichet.application import issuance as service
from guichet.application.permissions import is_member
from guichet.catalog import vocabulary
from guichet.catalog.products import IR_DATA_SCOPES, PRODUCTS, YEAR_FALLBACK_SCOPE, YEAR_SCOPES
from guichet.clock import utc
from guichet.habilitation import queries
from guichet.habilitation.blocks import TRUSTED_CERTIFICATE_APIS, Basics, BlockModel
from guichet.habilitation.diff import FieldChange, flatten, from_json
from guichet.habilitation.lifecycle import STATUS_LABELS, display_status, implicit_rejection_at
from guichet.habilitation.models import AccessMode, Environment
from guichet.habilitation.request_models import (
    EDITABLE,
    HabilitationRequest,
    RequestStatus,
)
from guichet.habilitation.validation import (
    CONTACT_ROLES,
    R11494_WORDING,
    TERMS_OF_USE,
    Block,
    FieldError,
    LegalNature,
    blocks_of,
    form_of,
    production_prerequisites,
    validate_block,
)
from guichet.portal.requests.pages import (
    BLOCK_LABELS,
    ENVIRONMENT_LABELS,
    EVENT_LABELS,
    STATUS_BADGES,
    PageNotFound,
    age_days,
    error_map,
    in_transaction,
)
from guichet.portal.web import render

LEGAL_NATURE_LABELS: Final = {
    LegalNature.LAW: "Loi",
    LegalNature.DECREE: "Décret",
    LegalNature.ORDER: "Arrêté",
    LegalNature.COUNCIL_DELIBERATION: "Délibération du conseil (collectivité)",
    LegalNature.OTHER: "Autre",
}


ACCESS_MODE_LABELS: Final = {
    AccessMode.FRANCECONNECT: "FranceConnect",
    AccessMode.SPI: "Numéro fiscal (SPI)",
    AccessMode.ETAT_CIVIL: "État civil (via l'API R2P)",
}


YEAR_LABELS: Final = vocabulary.YEAR_NAMES


DATA_SCOPES: Final = sorted(IR_DATA_SCOPES)


# The perimeter's data scopes by theme, as the partner chooses them.
DATA_THEMES: Final = vocabulary.themes_of(IR_DATA_SCOPES)


# Values that are codes in a request's data, in words (with the catalogue's own).
VALUE_WORDS: Final = {"perimeter.r11494_domain": {d.value: w for d, w in R11494_WORDING.items()}}


CONTACT_TITLES: Final = {
    "controller": "Responsable de traitement",
    "dpo": "Délégué à la protection des données",
    "technical": "Responsable technique",
}


def summary(request: HabilitationRequest, now: dt.datetime) -> dict[str, Any]:
    shown = display_status(request, now)
    basics = Basics.read((request.data or {}).get(Block.BASICS.value))
    return {
        "id": str(request.id),
        "demarche": basics.demarche or "(démarche sans nom)",
        "api": PRODUCTS[request.api].name if request.api in PRODUCTS else request.api,
        "api_key": request.api,
        "environment": ENVIRONMENT_LABELS[request.environment],
        "status": shown.value,
        "status_label": STATUS_LABELS[shown],
        "badge": STATUS_BADGES[shown],
        "age": age_days(request.submitted_at or request.created_at, now),
        "created_at": utc(request.created_at),
        "submitted_at": utc(request.submitted_at) if request.submitted_at else None,
        "updated_at": utc(request.updated_at),
    }


def change_rows(changes: list[FieldChange]) -> list[dict[str, Any]]:
    return [
        {
            "field": field_label(c.field),
            "before": shown(vocabulary.field_value(c.field, c.before, VALUE_WORDS)),
            "after": shown(vocabulary.field_value(c.field, c.after, VALUE_WORDS)),
        }
        for c in changes
    ]


def shown(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "oui" if value else "non"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    text = str(value)
    return text if len(text) <= 300 else text[:300] + "…"


def field_label(path: str) -> str:
    """A field's path in words ("Contacts — Adresse électronique du responsable…")."""
    return vocabulary.field_name(path)


def readonly_rows(
    block: str, values: dict[str, Any], documents: Mapping[str, str] | None = None
) -> list[tuple[str, str]]:
    """A saved block as the reader sees it: each field's name and value in words (a joined
    document by its file's name, from ``documents``: id → name)."""
    rows = []
    for key, value in flatten(values).items():
        if key.startswith("certificate.") or key == "certificate_pem":
            continue
        path = f"{block}.{key}"
        name = vocabulary.field_name(path).partition(" — ")[2] or vocabulary.field_name(path)
        if key.endswith("document_id") and documents and str(value) in documents:
            value = documents[str(value)]
        rows.append((name, shown(vocabulary.field_value(path, value, VALUE_WORDS))))
    return rows


# A step's state on the stepper's side menu and the summary.
STEP_STATES: Final = {
    "complete": ("Complète", "fr-badge--success"),
    "incomplete": ("À compléter", "fr-badge--warning"),
    "empty": ("Non commencée", "fr-badge--info"),
}


def steps_of(request: HabilitationRequest) -> tuple[Block, ...]:
    """The request's steps, one block each (the terms are accepted on the summary, before
    submission): seven in the sandbox, eight in production."""
    return tuple(b for b in blocks_of(request) if b is not Block.TERMS)


def step_rows(
    request: HabilitationRequest, errors: Mapping[Block, list[FieldError]]
) -> list[dict[str, Any]]:
    """Each step: its number, block, label, state and the errors that keep it incomplete."""
    rows = []
    for number, block in enumerate(steps_of(request), 1):
        found = errors.get(block)
        state = "empty" if found is None else "incomplete" if found else "complete"
        label, badge = STEP_STATES[state]
        rows.append(
            {
                "number": number,
                "block": block.value,
                "label": BLOCK_LABELS[block],
                "state": state,
                "state_label": label,
                "badge": badge,
                "errors": [(field_label(e.field), e.message, e.field) for e in found or []],
            }
        )
    return rows


def next_step(view: Mapping[str, Any]) -> int:
    """The first step not complete (the summary's, past the last: ``len + 1``)."""
    for row in view["steps"]:
        if row["state"] != "complete":
            return int(row["number"])
    return len(view["steps"]) + 1


def request_view(
    session: Session, user: User, request: HabilitationRequest, now: dt.datetime
) -> dict[str, Any]:
    """Everything the request pages show, both sides."""
    form = form_of(request)
    events = service.timeline(session, user, request)
    notes = service.comments(session, user, request)
    names = display_names(
        session,
        {e.actor_id for e in events} | {c.author_id for c in notes} | {request.cgu_accepted_by},
    )
    timeline = [
        {
            "at": utc(e.at),
            "label": EVENT_LABELS.get(e.name, e.name),
            "who": names.get(e.actor_id, "Le guichet") if e.actor_id else "Le guichet",
            "reason": e.reason,
            "changes": change_rows(from_json(e.diff)),
        }
        for e in events
    ]
    by_block: dict[str, list[dict[str, Any]]] = {}
    for c in notes:
        by_block.setdefault(c.block, []).append(
            {"at": utc(c.at), "who": names.get(c.author_id, "Instruction"), "text": c.text}
        )
    found_documents = queries.documents_of(session, request.id)
    documents = {
        str(d.id): {"name": d.original_name, "size": d.size, "sha256": d.sha256}
        for d in found_documents
    }
    document_names = {str(d.id): d.original_name for d in found_documents}
    errors: dict[str, str] = {}
    by_step: dict[Block, list[FieldError]] = {}
    saved = [b for b in blocks_of(request) if b.value in (request.data or {}) or b is Block.TERMS]
    for block in saved:
        if block is Block.TERMS and request.cgu_version is None:
            continue
        by_step[block] = validate_block(request, block, now=now)
        errors.update(error_map(by_step[block]))
    terms = TERMS_OF_USE.get(request.api)
    production_child = queries.production_request_of(session, request.id)
    deadline = implicit_rejection_at(request)
    return {
        **summary(request, now),
        # The blocks' models (``guichet.habilitation.blocks``), as the templates read them.
        "form": form,
        "flat": {
            b.value: readonly_rows(
                b.value,
                form.block(b).stored() if b is not Block.TERMS else {},
                document_names,
            )
            for b in blocks_of(request)
        },
        "blocks": [(b.value, BLOCK_LABELS[b]) for b in blocks_of(request)],
        "steps": step_rows(request, by_step),
        "step_numbers": {b.value: n for n, b in enumerate(steps_of(request), 1)},
        "editable": request.status in EDITABLE and is_member(user, request),
        "member": is_member(user, request),
        "production": request.environment is Environment.PRODUCTION,
        "terms": terms,
        "cgu_version": request.cgu_version,
        "cgu_accepted_at": utc(request.cgu_accepted_at) if request.cgu_accepted_at else None,
        "cgu_accepted_by": names.get(request.cgu_accepted_by) if request.cgu_accepted_by else None,
        "timeline": timeline,
        "comments": by_block,
        "documents": documents,
        "errors": errors,
        "prerequisites": [
            (field_label(e.field), e.message) for e in production_prerequisites(request, now=now)
        ],
        "last_diff": change_rows(service.last_resubmission_diff(session, request)),
        "can_go_production": (
            request.environment is Environment.SANDBOX
            and request.status is RequestStatus.VALIDATED
            and is_member(user, request)
            and production_child is None
        ),
        "production_request_id": str(production_child) if production_child else None,
        "sandbox_request_id": str(request.sandbox_request_id)
        if request.sandbox_request_id
        else None,
        "habilitation_id": str(request.habilitation_id) if request.habilitation_id else None,
        "implicit_rejection_at": deadline,
        "contact_status": contact_states(session, request, now),
    }


FORM_CONTEXT: Final[dict[str, Any]] = {
    "legal_natures": [(n.value, label) for n, label in LEGAL_NATURE_LABELS.items()],
    "access_modes": [(m.value, label) for m, label in ACCESS_MODE_LABELS.items()],
    "years": [*YEAR_SCOPES, YEAR_FALLBACK_SCOPE],
    "domains": [(d.value, label) for d, label in R11494_WORDING.items()],
    "data_scopes": DATA_SCOPES,
    "data_themes": DATA_THEMES,
    "provider_fields": vocabulary.PROVIDER_FIELDS,
    "contact_roles": [(r, CONTACT_TITLES[r]) for r in CONTACT_ROLES],
    "search_types": [
        (kind, label[0].upper() + label[1:])
        for kind, label in vocabulary.FICOBA_SEARCH_TYPES.items()
    ],
    "trusted_certificate_apis": TRUSTED_CERTIFICATE_APIS,
}


async def render_step(
    request: Request,
    request_id: uuid.UUID,
    block: Block,
    *,
    values: BlockModel | None = None,
    errors: list[FieldError] | None = None,
    verify: bool = False,
    status: int = 200,
    alert: str | None = None,
) -> Response:
    """One step of the request: its block's form, "Étape n sur N", the steps' states. The
    block's values are those saved, or ``values`` as typed (a refused save loses nothing);
    its errors are shown when asked (``verify``, from the summary) or given (``errors``)."""

    def work(session: Session, user: User, now: dt.datetime) -> dict[str, Any]:
        return request_view(session, user, service.get_request(session, user, request_id), now)

    view = await in_transaction(request, work)
    blocks = [row["block"] for row in view["steps"]]
    if block.value not in blocks:
        raise PageNotFound("Cette étape n'existe pas.")
    number = blocks.index(block.value) + 1
    step = view["steps"][number - 1]
    if errors is not None:
        shown_errors = error_map(errors)
    elif verify:
        shown_errors = {path: message for _, message, path in step["errors"]}
    else:
        shown_errors = {}
    return await render(
        request,
        "requests/step.html",
        status_code=status,
        form=True,
        r=view,
        step=step,
        total=len(view["steps"]),
        previous=view["steps"][number - 2] if number > 1 else None,
        following=view["steps"][number] if number < len(view["steps"]) else None,
        values=values if values is not None else view["form"].block(block),
        e=shown_errors,
        alert=alert,
        alert_errors=[(field_label(e.field), e.message, e.field) for e in errors or []],
        **FORM_CONTEXT,
    )


async def render_with_errors(
    request: Request, request_id: uuid.UUID, errors: list[FieldError], status: int, alert: str
) -> Response:
    def work(session: Session, user: User, now: dt.datetime) -> dict[str, Any]:
        return request_view(session, user, service.get_request(session, user, request_id), now)

    view = await in_transaction(request, work)
    view["errors"] = {**view["errors"], **error_map(errors)}
    return await render(
        request,
        "requests/request.html",
        status_code=status,
        form=True,
        r=view,
        alert=alert,
        alert_errors=[(field_label(e.field), e.message, e.field) for e in errors],
        **FORM_CONTEXT,
    )
