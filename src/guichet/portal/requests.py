"""The partner's habilitation pages: my requests, the form block by block, the timeline, the
production step, my habilitations with their last calls, and the one-time credentials page.

Routes are thin (STYLE 3): they parse the form, call ``guichet.habilitation.requests`` in one
transaction, and map its answer or its domain error to a page. The services check who may
act; a page never shows a traceback.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

from sqlalchemy import desc, func, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from guichet.accounts.contacts import ContactService, contact_states
from guichet.accounts.models import User
from guichet.catalog.products import (
    DATA_SCOPE_LABELS,
    IR_DATA_SCOPES,
    PRODUCTS,
    YEAR_FALLBACK_SCOPE,
    YEAR_SCOPES,
)
from guichet.clock import Clock, utc
from guichet.db import transaction
from guichet.errors import GuichetError
from guichet.habilitation import lifecycle
from guichet.habilitation import requests as service
from guichet.habilitation.diff import FieldChange, flatten, from_json
from guichet.habilitation.lifecycle import (
    EDITABLE,
    STATUS_LABELS,
    DisplayStatus,
    RequestNotFound,
    display_status,
    implicit_rejection_at,
    is_member,
)
from guichet.habilitation.models import (
    AccessMode,
    Environment,
    Habilitation,
    HabilitationEvent,
    HabilitationStatus,
)
from guichet.habilitation.request_models import (
    HabilitationRequest,
    RequestDocument,
    RequestStatus,
    SecurityCommitment,
)
from guichet.habilitation.uploads import MAX_BYTES
from guichet.habilitation.validation import (
    CONTACT_ROLES,
    R11494_WORDING,
    TERMS_OF_USE,
    Block,
    FieldError,
    LegalNature,
    blocks_of,
    production_prerequisites,
    validate_block,
)
from guichet.journal.models import JournalRecord
from guichet.logs import event
from guichet.mail import Mailer
from guichet.portal.web import (
    MAX_FORM_BODY,
    TextInvalid,
    csrf_protected,
    current_session,
    deps,
    field,
    redirect,
    render,
)
from guichet.runtime import Runtime
from guichet.secrets import MasterSecret

log = logging.getLogger(__name__)
T = TypeVar("T")

# Enough for the perimeter block: a justification and a label for each data scope.
BLOCK_FORM_FIELDS: Final = 150
LAST_CALLS: Final = 20

BLOCK_LABELS: Final = {
    Block.BASICS: "Informations générales",
    Block.LEGAL: "Cadre juridique",
    Block.PERIMETER: "Périmètre des données",
    Block.RECIPIENTS: "Destinataires des données",
    Block.PERSONAL_DATA: "Données personnelles",
    Block.CONTACTS: "Contacts",
    Block.TECHNICAL: "Données techniques",
    Block.TERMS: "Conditions générales d'utilisation",
    Block.PRODUCTION: "Prérequis de la production",
}
ENVIRONMENT_LABELS: Final = {
    Environment.SANDBOX: "Bac à sable",
    Environment.PRODUCTION: "Production",
}
HABILITATION_STATUS_LABELS: Final = {
    HabilitationStatus.ACTIVE: "Active",
    HabilitationStatus.SUSPENDED: "Suspendue",
    HabilitationStatus.TERMINATED: "Résiliée",
}
STATUS_BADGES: Final = {
    DisplayStatus.DRAFT: "fr-badge--info",
    DisplayStatus.SUBMITTED: "fr-badge--new",
    DisplayStatus.CHANGES_REQUESTED: "fr-badge--warning",
    DisplayStatus.VALIDATED: "fr-badge--success",
    DisplayStatus.REFUSED: "fr-badge--error",
    DisplayStatus.ARCHIVED: "",
    DisplayStatus.IMPLICITLY_REJECTED: "fr-badge--error",
}
EVENT_LABELS: Final = {
    "habilitation:request:created": "Demande créée",
    "habilitation:request:submitted": "Demande soumise",
    "habilitation:request:changes_requested": "Modifications demandées",
    "habilitation:request:validated": "Demande validée",
    "habilitation:request:refused": "Demande refusée",
    "habilitation:request:archived": "Demande archivée",
}
HABILITATION_EVENT_LABELS: Final = {
    "habilitation:validated": "Habilitation délivrée (demande validée)",
    "habilitation:updated": "Habilitation mise à jour (demande de mise à jour validée)",
    "habilitation:suspended": "Suspendue",
    "habilitation:resumed": "Rétablie",
    "habilitation:termination_notified": "Préavis de résiliation de deux mois",
    "habilitation:terminated": "Résiliée",
    "habilitation:secret_rotated": "Secret renouvelé",
    "habilitation:request_data_purged": "Données d'une demande supprimées (six ans après la fin)",
    "habilitation:security_notice": "Avis d'échéance de l'engagement de sécurité envoyé",
}
# Who acted, when it was not a person of the portal.
SYSTEM_ACTORS: Final = {"scheduler": "Le guichet (veille et échéances)"}
# The gateway answers these before counting a call against its quota (chain, parameters)
# or because the quota is spent: they do not use it.
NOT_COUNTED_STATUSES: Final = (400, 401, 403, 405, 429)
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
YEAR_LABELS: Final = {
    "dgfip_annee_n_moins_1": "Revenus de l'année N-1",
    "dgfip_annee_n_moins_2": "Revenus de l'année N-2",
    "dgfip_annee_n_moins_3": "Revenus de l'année N-3",
    YEAR_FALLBACK_SCOPE: "N-2 si N-1 indisponible",
}
DATA_SCOPES: Final = sorted(IR_DATA_SCOPES)
CONTACT_TITLES: Final = {
    "controller": "Responsable de traitement",
    "dpo": "Délégué à la protection des données",
    "technical": "Responsable technique",
}
SECURITY_DOCUMENTS: Final = {
    "homologation": service.DocumentKind.HOMOLOGATION,
    "questionnaire": service.DocumentKind.QUESTIONNAIRE,
}


@dataclass(frozen=True)
class HabilitationPortal:
    """What the habilitation pages need beyond ``PortalDeps``: the database, the clock, the
    master secret (credentials), the mailer (decisions) and where uploads go."""

    session_factory: sessionmaker[Session]
    clock: Clock
    master: MasterSecret
    mailer: Mailer | None
    uploads_dir: Path

    @classmethod
    def from_runtime(cls, runtime: Runtime, mailer: Mailer | None) -> HabilitationPortal:
        return cls(
            runtime.session_factory,
            runtime.clock,
            runtime.master,
            mailer,
            runtime.settings.data_dir / "uploads",
        )


def portal_of(request: Request) -> HabilitationPortal:
    found = request.app.state.habilitations
    assert isinstance(found, HabilitationPortal)
    return found


class SignInRequired(GuichetError):
    status = 401
    code = "sign_in_required"
    title = "Connexion requise"


class PageNotFound(GuichetError):
    status = 404
    code = "page_not_found"
    title = "Page introuvable"


# --- running a page's work ----------------------------------------------------------------


async def signed_in(request: Request) -> uuid.UUID | None:
    session = await current_session(request)
    return session.user_id if session is not None else None


async def in_transaction(request: Request, work: Callable[[Session, User, dt.datetime], T]) -> T:
    """``work`` in one transaction, as the signed-in user (rolled back on any error)."""
    user_id = await signed_in(request)
    if user_id is None:
        raise SignInRequired()
    hp = portal_of(request)

    def run() -> T:
        with transaction(hp.session_factory) as session:
            user = session.get(User, user_id)
            if user is None:
                raise SignInRequired()
            return work(session, user, hp.clock.now())

    return await run_in_threadpool(run)


async def error_page(request: Request, exc: GuichetError) -> Response:
    """A domain error as a readable DSFR page with its status (403, 404, 409…)."""
    if isinstance(exc, SignInRequired):
        return redirect(request, "/connexion")
    event(log, "portal.page_refused", path=request.url.path, code=exc.code, status=exc.status)
    return await render(
        request,
        "requests/error.html",
        status_code=exc.status,
        title=exc.title,
        message=exc.detail,
    )


def parse_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise PageNotFound("Cette page n'existe pas.") from None


def parse_block(value: str) -> Block:
    try:
        return Block(value)
    except ValueError:
        raise PageNotFound("Ce bloc n'existe pas.") from None


def age_days(since: dt.datetime | None, now: dt.datetime) -> int | None:
    return None if since is None else max(0, (now - utc(since)).days)


def error_map(errors: list[FieldError]) -> dict[str, str]:
    """Field path → its messages (several checks may speak about one field)."""
    found: dict[str, str] = {}
    for e in errors:
        found[e.field] = f"{found[e.field]} {e.message}" if e.field in found else e.message
    return found


# --- views (plain data built inside the transaction) ---------------------------------------


def user_names(session: Session, ids: set[uuid.UUID | None]) -> dict[uuid.UUID, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    rows = session.execute(select(User.id, User.display_name).where(User.id.in_(wanted)))
    return {row.id: row.display_name for row in rows}


def summary(request: HabilitationRequest, now: dt.datetime) -> dict[str, Any]:
    shown = display_status(request, now)
    basics = (request.data or {}).get("basics") or {}
    return {
        "id": str(request.id),
        "demarche": basics.get("demarche") or "(démarche sans nom)",
        "api": PRODUCTS[request.api].name if request.api in PRODUCTS else request.api,
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
        {"field": field_label(c.field), "before": shown(c.before), "after": shown(c.after)}
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
    block, _, rest = path.partition(".")
    try:
        label = BLOCK_LABELS[Block(block)]
    except ValueError:
        return path
    return f"{label} › {rest}" if rest else label


def request_view(
    session: Session, user: User, request: HabilitationRequest, now: dt.datetime
) -> dict[str, Any]:
    """Everything the request pages show, both sides."""
    data = dict(request.data or {})
    events = service.timeline(session, user, request)
    notes = service.comments(session, user, request)
    names = user_names(
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
    documents = {
        str(d.id): {"name": d.original_name, "size": d.size, "sha256": d.sha256}
        for d in session.scalars(
            select(RequestDocument).where(RequestDocument.request_id == request.id)
        )
    }
    errors: dict[str, str] = {}
    saved = [b for b in blocks_of(request) if b.value in data or b is Block.TERMS]
    for block in saved:
        if block is Block.TERMS and request.cgu_version is None:
            continue
        errors.update(error_map(validate_block(request, block, now=now)))
    terms = TERMS_OF_USE.get(request.api)
    production_child = session.scalar(
        select(HabilitationRequest.id).where(
            HabilitationRequest.sandbox_request_id == request.id,
            HabilitationRequest.status != RequestStatus.ARCHIVED,
        )
    )
    deadline = implicit_rejection_at(request)
    return {
        **summary(request, now),
        "data": data,
        "flat": {
            b.value: [
                (key, shown(value))
                for key, value in flatten(data.get(b.value) or {}).items()
                if not key.startswith("certificate.") and key != "certificate_pem"
            ]
            for b in blocks_of(request)
        },
        "blocks": [(b.value, BLOCK_LABELS[b]) for b in blocks_of(request)],
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
    "years": [(y, YEAR_LABELS[y]) for y in [*YEAR_SCOPES, YEAR_FALLBACK_SCOPE]],
    "domains": [(d.value, label) for d, label in R11494_WORDING.items()],
    "data_scopes": DATA_SCOPES,
    "contact_roles": [(r, CONTACT_TITLES[r]) for r in CONTACT_ROLES],
}


# --- parsing a block's form ------------------------------------------------------------------


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _number(text: str) -> int | str:
    text = text.strip()
    return int(text) if text.isdigit() and len(text) < 10 else text


def _checked(form: FormData, name: str) -> bool:
    return form.get(name) == "1"


def parse_block_form(block: Block, form: FormData) -> dict[str, Any]:
    """The block's values from its form; the services check them (STYLE 3)."""

    def f(name: str, limit: int = 5000) -> str:
        return field(form, name, limit).strip()

    def text(name: str, limit: int = 5000) -> str:
        """A textarea: several lines allowed."""
        return field(form, name, limit, multiline=True).strip()

    if block is Block.BASICS:
        return {"demarche": f("demarche"), **{k: text(k) for k in ("description", "intended_use")}}
    if block is Block.LEGAL:
        values: dict[str, Any] = {
            k: f(k) for k in ("nature", "reference", "url", "secrecy_derogation", "document_id")
        }
        values["local_authority"] = _checked(form, "local_authority")
        return values
    if block is Block.PERIMETER:
        chosen = [s for s in form.getlist("data_scopes") if s in IR_DATA_SCOPES]
        return {
            "data_scopes": {s: text(f"justification_{s}") for s in chosen},
            "labels": {s: f(f"label_{s}", 400) for s in chosen},
            "access_modes": [str(m) for m in form.getlist("access_modes")][:5],
            "year_scopes": [str(y) for y in form.getlist("year_scopes")][:5],
            "r11494_domain": f("r11494_domain"),
        }
    if block is Block.RECIPIENTS:
        return {"services": _lines(text("services"))[:50]}
    if block is Block.PERSONAL_DATA:
        return {
            "retention_months": _number(f("retention_months", 20)),
            "retention_justification": text("retention_justification"),
        }
    if block is Block.CONTACTS:
        contacts: dict[str, Any] = {}
        for role in CONTACT_ROLES:
            name, email = f(f"{role}_name", 200), f(f"{role}_email", 320)
            if name or email or role != "dpo":
                contacts[role] = {"name": name, "email": email}
        return contacts
    if block is Block.TECHNICAL:
        return {
            "ip_ranges": _lines(text("ip_ranges"))[:50],
            "certificate_pem": text("certificate_pem", 20000),
            "volumetry_per_minute": _number(f("volumetry_per_minute", 20)),
            "volumetry_justification": text("volumetry_justification"),
            "annual_files": _number(f("annual_files", 20)),
            "hourly_peak": _number(f("hourly_peak", 20)),
            "federation_client_id": f("federation_client_id", 200),
            "federation_redirect_uris": _lines(text("federation_redirect_uris"))[:10],
        }
    if block is Block.PRODUCTION:
        return {
            "recette_confirmed": _checked(form, "recette_confirmed"),
            "recette_results": text("recette_results"),
            "formalities_declared": _checked(form, "formalities_declared"),
            "security_kind": f("security_kind", 32),
            "homologation": {
                k: f(f"homologation_{k}", 200)
                for k in (
                    "document_id",
                    "authority",
                    "signatory_name",
                    "signatory_function",
                    "start_date",
                )
            }
            | {"duration_months": _number(f("homologation_duration_months", 20))},
            "questionnaire": {
                "document_id": f("questionnaire_document_id", 200),
                "date": f("questionnaire_date", 20),
            },
        }
    raise PageNotFound("Ce bloc ne se saisit pas.")


def _upload(form: FormData, name: str) -> UploadFile | None:
    value = form.get(name)
    return value if isinstance(value, UploadFile) and value.filename else None


# --- the partner's pages ---------------------------------------------------------------------


async def my_requests(request: Request) -> Response:
    def work(session: Session, user: User, now: dt.datetime) -> dict[str, Any]:
        rows = [summary(r, now) for r in service.list_requests(session, user) if is_member(user, r)]
        organisations = [
            (str(m.organisation_id), m.organisation.name)
            for m in sorted(user.memberships, key=lambda m: m.created_at)
        ]
        return {
            "rows": rows,
            "organisations": list(dict(organisations).items()),
            "deliveries": len(service.pending_deliveries(session, user)),
        }

    try:
        view = await in_transaction(request, work)
    except GuichetError as exc:
        return await error_page(request, exc)
    return await render(request, "requests/list.html", form=True, **view)


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

    try:
        new_id = await in_transaction(request, work)
    except GuichetError as exc:
        return await error_page(request, exc)
    return redirect(request, f"/demandes/{new_id}")


async def request_page(request: Request) -> Response:
    request_id = request.path_params["request_id"]

    def work(session: Session, user: User, now: dt.datetime) -> dict[str, Any]:
        found = service.get_request(session, user, parse_id(request_id))
        view = request_view(session, user, found, now)
        view.update(_request_actions(session, user, found))
        return view

    try:
        view = await in_transaction(request, work)
    except GuichetError as exc:
        return await error_page(request, exc)
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


async def _render_with_errors(
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


async def _save_block(request: Request, form: FormData, _: Any) -> Response:
    request_id = parse_id(request.path_params["request_id"])
    block = parse_block(request.path_params["block"])
    try:
        values = parse_block_form(block, form)
    except TextInvalid as exc:
        errors = [
            FieldError(f"{block.value}.{name}", message) for name, message in exc.errors.items()
        ]
        return await _render_with_errors(
            request, request_id, errors, exc.status, "Le bloc n'a pas été enregistré."
        )
    hp = portal_of(request)
    uploads: list[tuple[tuple[str, ...], service.DocumentKind, str, bytes]] = []
    if block is Block.LEGAL and (doc := _upload(form, "document")):
        uploads.append((("document_id",), service.DocumentKind.LEGAL_TEXT, *(await _read(doc))))
    if block is Block.PRODUCTION:
        for kind, doc_kind in SECURITY_DOCUMENTS.items():
            if doc := _upload(form, f"{kind}_document"):
                uploads.append(((kind, "document_id"), doc_kind, *(await _read(doc))))
    pem_file = _upload(form, "certificate_file") if block is Block.TECHNICAL else None
    if pem_file is not None:
        content = await pem_file.read(64 * 1024)
        values["certificate_pem"] = content.decode("utf-8", "replace").strip()

    def work(session: Session, user: User, now: dt.datetime) -> list[FieldError]:
        found = service.get_request(session, user, request_id)
        for path, kind, name, content in uploads:
            doc = service.attach_document(
                session, found, user, kind, name, content, uploads_dir=hp.uploads_dir, now=now
            )
            holder = values
            for key in path[:-1]:
                holder = holder[key]
            holder[path[-1]] = str(doc.id)
        return service.save_block(session, found, user, block, values, now=now)

    try:
        await in_transaction(request, work)
    except GuichetError as exc:
        if exc.code == "upload_rejected" and uploads:
            path = ".".join((block.value, *uploads[0][0]))
            return await _render_with_errors(
                request,
                request_id,
                [FieldError(path, exc.detail)],
                exc.status,
                "Le document n'a pas été enregistré.",
            )
        return await error_page(request, exc)
    if block is Block.CONTACTS:
        # After the commit: the links must point at rows that exist.
        user_id = await signed_in(request)
        assert user_id is not None
        await run_in_threadpool(
            ContactService(deps(request).accounts).send_for_request, request_id, user_id
        )
    return redirect(request, f"/demandes/{request_id}?enregistre={block.value}#bloc-{block.value}")


async def _read(upload: UploadFile) -> tuple[str, bytes]:
    # One byte more than allowed: the service names the limit.
    return upload.filename or "document.pdf", await upload.read(MAX_BYTES + 1)


async def _accept_terms(request: Request, form: FormData, _: Any) -> Response:
    request_id = parse_id(request.path_params["request_id"])
    version = field(form, "version", 100)
    accepted = _checked(form, "accept")

    def work(session: Session, user: User, now: dt.datetime) -> None:
        found = service.get_request(session, user, request_id)
        if not accepted:
            raise service.RequestInvalid(
                [FieldError("terms.version", "Cochez la case pour accepter les conditions.")]
            )
        service.accept_terms(session, found, user, version, now=now)

    try:
        await in_transaction(request, work)
    except service.RequestInvalid as exc:
        return await _render_with_errors(
            request, request_id, exc.errors, 400, "Les conditions n'ont pas été acceptées."
        )
    except GuichetError as exc:
        return await error_page(request, exc)
    return redirect(request, f"/demandes/{request_id}?enregistre=terms#bloc-terms")


async def _submit(request: Request, _form: FormData, _: Any) -> Response:
    request_id = parse_id(request.path_params["request_id"])

    def work(session: Session, user: User, now: dt.datetime) -> None:
        service.submit(session, service.get_request(session, user, request_id), user, now=now)

    try:
        await in_transaction(request, work)
    except service.RequestInvalid as exc:
        return await _render_with_errors(
            request, request_id, exc.errors, 400, "La demande n'a pas été soumise."
        )
    except GuichetError as exc:
        return await error_page(request, exc)
    return redirect(request, f"/demandes/{request_id}?soumise=1")


async def _resend_contact_link(request: Request, _form: FormData, _: Any) -> Response:
    """A new confirmation link to the controller's or the DPO's address."""
    request_id = parse_id(request.path_params["request_id"])
    user_id = await signed_in(request)
    if user_id is None:
        return redirect(request, "/connexion")
    try:
        await run_in_threadpool(
            ContactService(deps(request).accounts).resend,
            request_id,
            user_id,
            request.path_params["role"],
        )
    except GuichetError as exc:
        return await error_page(request, exc)
    return redirect(request, f"/demandes/{request_id}?renvoye=1#bloc-contacts")


async def _start_production(request: Request, _form: FormData, _: Any) -> Response:
    request_id = parse_id(request.path_params["request_id"])

    def work(session: Session, user: User, now: dt.datetime) -> str:
        sandbox = service.get_request(session, user, request_id)
        return str(service.start_production_request(session, user, sandbox, now=now).id)

    try:
        new_id = await in_transaction(request, work)
    except GuichetError as exc:
        return await error_page(request, exc)
    return redirect(request, f"/demandes/{new_id}")


async def document(request: Request) -> Response:
    """An uploaded PDF, to whoever may read its request."""
    hp = portal_of(request)

    def work(session: Session, user: User, now: dt.datetime) -> tuple[str, bytes]:
        doc, content = service.read_document(
            session, user, parse_id(request.path_params["document_id"]), uploads_dir=hp.uploads_dir
        )
        return doc.original_name, content

    try:
        name, content = await in_transaction(request, work)
    except GuichetError as exc:
        return await error_page(request, exc)
    safe = "".join(ch for ch in name if ch.isalnum() or ch in "._- ") or "document.pdf"
    return Response(
        content,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{safe}"'},
    )


# --- my habilitations and their last calls -------------------------------------------------------


def habilitation_row(hab: Habilitation) -> dict[str, Any]:
    return {
        "id": str(hab.id),
        "demarche": hab.demarche,
        "environment": ENVIRONMENT_LABELS[hab.environment],
        "status": hab.status.value,
        "status_label": HABILITATION_STATUS_LABELS[hab.status],
        "status_reason": hab.status_reason,
        "apis": [PRODUCTS[a].name if a in PRODUCTS else a for a in hab.apis],
        "quotas": [
            (PRODUCTS[a].name if a in PRODUCTS else a, q) for a, q in sorted(hab.quotas.items())
        ],
        "scopes": hab.data_scopes,
        "years": hab.year_scopes,
        # What the partner reads: the catalogue's words, the code beside them.
        "data_labels": [f"{DATA_SCOPE_LABELS.get(s, s)} ({s})" for s in hab.data_scopes]
        + [YEAR_LABELS.get(s, s) for s in hab.year_scopes],
        "valid_from": utc(hab.valid_from),
        "valid_until": utc(hab.valid_until) if hab.valid_until else None,
        "organisation": hab.organisation.name,
    }


def last_calls(session: Session, organisation_ids: set[uuid.UUID]) -> list[dict[str, Any]]:
    """The organisation's latest exchanges from the journal: date, API, outcome — never the
    person (no subject)."""
    if not organisation_ids:
        return []
    rows = session.execute(
        select(
            JournalRecord.at,
            JournalRecord.environment,
            JournalRecord.api,
            JournalRecord.operation,
            JournalRecord.outcome,
            JournalRecord.http_status,
            JournalRecord.habilitation_id,
        )
        .where(JournalRecord.partner_id.in_(organisation_ids))
        .order_by(desc(JournalRecord.seq))
        .limit(LAST_CALLS)
    )
    return [
        {
            "at": utc(r.at),
            "environment": r.environment,
            "api": PRODUCTS[r.api].name if r.api in PRODUCTS else (r.api or "—"),
            "operation": r.operation,
            "outcome": r.outcome,
            "http_status": r.http_status,
        }
        for r in rows
    ]


def call_statistics(
    session: Session, habilitation_id: uuid.UUID, now: dt.datetime, days: int = 7
) -> list[tuple[str, int]]:
    """The habilitation's calls over the last ``days`` days, counted by outcome."""
    rows = session.execute(
        select(JournalRecord.outcome, func.count())
        .where(
            JournalRecord.habilitation_id == habilitation_id,
            JournalRecord.at >= now - dt.timedelta(days=days),
        )
        .group_by(JournalRecord.outcome)
        .order_by(JournalRecord.outcome)
    )
    return [(str(r[0]), int(r[1])) for r in rows]


def _user_id(actor: str) -> uuid.UUID | None:
    """The person behind an event's ``user:<uuid>`` actor, if it is one."""
    if not actor.startswith("user:"):
        return None
    try:
        return uuid.UUID(actor[5:])
    except ValueError:
        return None


def actor_name(actor: str, names: dict[uuid.UUID, str]) -> str:
    """``user:<uuid>`` → the person's name; the scheduler and the command line by role."""
    if (user_id := _user_id(actor)) is not None:
        return names.get(user_id, "Un agent")
    return SYSTEM_ACTORS.get(actor, f"Exploitation ({actor}, ligne de commande)")


def habilitation_timeline(session: Session, hab: Habilitation) -> list[dict[str, Any]]:
    """The habilitation's history, oldest first: its events, and the watch's notice before
    the security commitment expires (recorded on the commitment, not as an event)."""
    events = session.scalars(
        select(HabilitationEvent)
        .where(HabilitationEvent.habilitation_id == hab.id)
        .order_by(HabilitationEvent.at)
    ).all()
    names = user_names(session, {_user_id(e.actor) for e in events})
    rows = [
        {
            "at": utc(e.at),
            "name": e.name,
            "label": HABILITATION_EVENT_LABELS.get(e.name, e.name),
            "who": actor_name(e.actor, names),
            "reason": e.reason,
        }
        for e in events
    ]
    commitment = session.scalar(
        select(SecurityCommitment).where(SecurityCommitment.habilitation_id == hab.id)
    )
    if commitment is not None and commitment.notice_sent_at is not None:
        rows.append(
            {
                "at": utc(commitment.notice_sent_at),
                "name": "habilitation:security_notice",
                "label": HABILITATION_EVENT_LABELS["habilitation:security_notice"],
                "who": SYSTEM_ACTORS["scheduler"],
                "reason": f"Échéance le {utc(commitment.expires_at):%d/%m/%Y}.",
            }
        )
    return sorted(rows, key=lambda row: row["at"])


def minute_use(session: Session, hab: Habilitation, now: dt.datetime) -> list[dict[str, Any]]:
    """Calls of the last minute per API, from the journal, against the quota.

    The gateway's counters live in its own memory (or Redis), out of the portal's reach:
    the journal is the portal's view of them, a moment behind (written just after each call).
    """
    since = now - dt.timedelta(seconds=60)
    counts = dict(
        session.execute(
            select(JournalRecord.api, func.count())
            .where(
                JournalRecord.habilitation_id == hab.id,
                JournalRecord.at > since,
                JournalRecord.http_status.not_in(NOT_COUNTED_STATUSES),
            )
            .group_by(JournalRecord.api)
        ).all()
    )
    rows = []
    for api, limit in sorted(hab.quotas.items()):
        used = int(counts.get(api, 0))
        rows.append(
            {
                "api": PRODUCTS[api].name if api in PRODUCTS else api,
                "used": used,
                "limit": int(limit),
                "percent": min(100, round(100 * used / int(limit))) if int(limit) else 100,
            }
        )
    return rows


def partner_habilitation(
    session: Session, user: User, hab: Habilitation, now: dt.datetime
) -> dict[str, Any]:
    """A habilitation as its organisation's members see it, with what they may do."""
    client = lifecycle.habilitation_client(session, hab)
    pending = lifecycle.open_update_request(session, hab)
    live = hab.status is not HabilitationStatus.TERMINATED
    member = lifecycle.is_party(user, hab)
    return {
        **habilitation_row(hab),
        "client_id": client.client_id if client else None,
        "timeline": habilitation_timeline(session, hab),
        "minute": minute_use(session, hab, now),
        "open_update_id": str(pending.id) if pending else None,
        "can_update": member and live and pending is None,
        "can_notice": member and live and not lifecycle.notice_given(session, hab),
        "can_rotate": live
        and client is not None
        and client.secret_hash is not None
        and lifecycle.is_technical_contact(session, user, hab),
    }


def _my_habilitations_view(session: Session, user: User, now: dt.datetime) -> dict[str, Any]:
    orgs = {m.organisation_id for m in user.memberships}
    habs = (
        session.scalars(
            select(Habilitation)
            .where(Habilitation.organisation_id.in_(orgs))
            .order_by(Habilitation.created_at)
        ).all()
        if orgs
        else []
    )
    return {
        "habilitations": [partner_habilitation(session, user, h, now) for h in habs],
        "calls": last_calls(session, orgs),
    }


async def my_habilitations(request: Request) -> Response:
    try:
        view = await in_transaction(request, _my_habilitations_view)
    except GuichetError as exc:
        return await error_page(request, exc)
    return await render(request, "requests/habilitations.html", form=True, errors={}, **view)


async def _habilitations_with_error(request: Request, path: str, message: str) -> Response:
    """The page again, the error next to the field that caused it."""
    view = await in_transaction(request, _my_habilitations_view)
    return await render(
        request,
        "requests/habilitations.html",
        status_code=400,
        form=True,
        errors={path: message},
        **view,
    )


def _member_habilitation(session: Session, user: User, value: str) -> Habilitation:
    """The habilitation, if ``user`` is a member of its organisation (staff act elsewhere)."""
    hab = lifecycle.get_habilitation(session, user, parse_id(value))
    if not lifecycle.is_party(user, hab):
        raise lifecycle.HabilitationNotFound()
    return hab


async def _start_update(request: Request, _form: FormData, _: Any) -> Response:
    """[SPEC §4] a validated habilitation is updated by a new request on top of it: the last
    validated request's data copied, to amend (e.g. a new homologation attestation)."""

    def work(session: Session, user: User, now: dt.datetime) -> str:
        hab = _member_habilitation(session, user, request.path_params["habilitation_id"])
        pending = lifecycle.open_update_request(session, hab)
        if pending is not None:
            return str(pending.id)
        return str(service.start_update_request(session, user, hab, now=now).id)

    try:
        new_id = await in_transaction(request, work)
    except GuichetError as exc:
        return await error_page(request, exc)
    return redirect(request, f"/demandes/{new_id}")


async def _give_notice(request: Request, form: FormData, _: Any) -> Response:
    """[000 §14] the partner ends the exchange in writing, with reasons, two months ahead."""
    hab_id = request.path_params["habilitation_id"]
    reason = field(form, "reason", 5000, multiline=True)
    confirmed = _checked(form, "confirm")
    hp = portal_of(request)

    def work(session: Session, user: User, now: dt.datetime) -> None:
        hab = _member_habilitation(session, user, hab_id)
        lifecycle.give_termination_notice(session, hab, user, reason, now=now, mailer=hp.mailer)

    if not confirmed:
        return await _habilitations_with_error(
            request, f"notice-{hab_id}-confirm", "Cochez la case pour confirmer la résiliation."
        )
    try:
        await in_transaction(request, work)
    except lifecycle.ReasonRequired as exc:
        return await _habilitations_with_error(request, f"notice-{hab_id}", exc.detail)
    except GuichetError as exc:
        return await error_page(request, exc)
    return redirect(request, f"/habilitations?preavis=1#habilitation-{hab_id}")


async def _rotate_secret(request: Request, form: FormData, _: Any) -> Response:
    """A new client secret for the technical contact, collected once on /identifiants; the
    old one stops working on the next token request."""
    hab_id = request.path_params["habilitation_id"]
    hp = portal_of(request)

    def work(session: Session, user: User, now: dt.datetime) -> None:
        hab = _member_habilitation(session, user, hab_id)
        lifecycle.rotate_client_secret(
            session, hab, user, now=now, master=hp.master, mailer=hp.mailer
        )

    if not _checked(form, "confirm"):
        return await _habilitations_with_error(
            request,
            f"secret-{hab_id}-confirm",
            "Cochez la case : l'ancien secret cessera aussitôt de fonctionner.",
        )
    try:
        await in_transaction(request, work)
    except GuichetError as exc:
        return await error_page(request, exc)
    return redirect(request, "/identifiants?renouvele=1")


async def _archive(request: Request, form: FormData, _: Any) -> Response:
    """A member archives a request the transition table lets go (draft, changes requested,
    refused, validated); the reason, optional, goes to the timeline."""
    request_id = parse_id(request.path_params["request_id"])
    reason = field(form, "reason", 5000, multiline=True)

    def work(session: Session, user: User, now: dt.datetime) -> None:
        found = service.get_request(session, user, request_id)
        if not is_member(user, found):
            raise lifecycle.RequestForbidden("Seuls les membres de l'organisation l'archivent.")
        service.archive(session, found, user, reason or None, now=now)

    try:
        await in_transaction(request, work)
    except GuichetError as exc:
        return await error_page(request, exc)
    return redirect(request, f"/demandes/{request_id}?archivee=1")


# --- the technical contact's credentials ---------------------------------------------------------


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

    try:
        deliveries = await in_transaction(request, work)
    except GuichetError as exc:
        return await error_page(request, exc)
    return await render(request, "requests/credentials.html", form=True, deliveries=deliveries)


async def _collect(request: Request, _form: FormData, _: Any) -> Response:
    """The secret, shown once in this answer (never cached: ``Cache-Control: no-store``)."""
    delivery_id = parse_id(request.path_params["delivery_id"])
    hp = portal_of(request)

    def work(session: Session, user: User, now: dt.datetime) -> service.Credentials:
        return service.collect_credentials(session, user, delivery_id, master=hp.master, now=now)

    try:
        credentials = await in_transaction(request, work)
    except GuichetError as exc:
        return await error_page(request, exc)
    return await render(request, "requests/credentials_shown.html", credentials=credentials)


new_request = csrf_protected(_new_request)
# Two documents at most per block, each at most MAX_BYTES, and the block's fields.
save_block = csrf_protected(
    _save_block,
    max_files=2,
    max_fields=BLOCK_FORM_FIELDS,
    max_body=2 * MAX_BYTES + MAX_FORM_BODY,
)
accept_terms = csrf_protected(_accept_terms)
submit = csrf_protected(_submit)
start_production = csrf_protected(_start_production)
resend_contact_link = csrf_protected(_resend_contact_link)
collect = csrf_protected(_collect)
start_update = csrf_protected(_start_update)
give_notice = csrf_protected(_give_notice)
rotate_secret = csrf_protected(_rotate_secret)
archive = csrf_protected(_archive)

ROUTES = [
    Route("/demandes", my_requests, methods=["GET"]),
    Route("/demandes", new_request, methods=["POST"]),
    Route("/demandes/{request_id}", request_page, methods=["GET"]),
    Route("/demandes/{request_id}/blocs/{block}", save_block, methods=["POST"]),
    Route("/demandes/{request_id}/cgu", accept_terms, methods=["POST"]),
    Route("/demandes/{request_id}/soumettre", submit, methods=["POST"]),
    Route("/demandes/{request_id}/production", start_production, methods=["POST"]),
    Route("/demandes/{request_id}/contacts/{role}/renvoyer", resend_contact_link, methods=["POST"]),
    Route("/documents/{document_id}", document, methods=["GET"]),
    Route("/habilitations", my_habilitations, methods=["GET"]),
    Route("/habilitations/{habilitation_id}/mise-a-jour", start_update, methods=["POST"]),
    Route("/habilitations/{habilitation_id}/resiliation", give_notice, methods=["POST"]),
    Route("/habilitations/{habilitation_id}/secret", rotate_secret, methods=["POST"]),
    Route("/demandes/{request_id}/archiver", archive, methods=["POST"]),
    Route("/identifiants", credentials_page, methods=["GET"]),
    Route("/identifiants/{delivery_id}", collect, methods=["POST"]),
]
