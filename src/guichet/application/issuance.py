"""The request services: drafts saved block by block, submission, the instructors' decisions,
and validation that *is* the issuance (habilitation, gateway policy, OAuth client, the
federation's client, the security commitment's watch, the mails): the habilitation domain
driven together with accounts, oauth, the federation and mail.

Every function takes the acting ``User`` and checks, here in the service layer, that they
may act: members of the request's organisation edit and submit; instructors decide, never on
their own organisation's request; anyone else does not learn that the request exists.

The client secret issued at validation is for the technical contact [000 §4]: it is kept
encrypted (master secret) until that person collects it on the portal, once
(``collect_credentials``); the mail they receive says the credentials are ready and never
carries the secret.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

from cryptography import x509
from sqlalchemy import select
from sqlalchemy.orm import Session

from guichet.accounts.contacts import contact_verified, refresh_contacts
from guichet.accounts.models import User
from guichet.accounts.second_factor import enforce_for_organisation
from guichet.accounts.service import email_key
from guichet.application.permissions import WHO, Party, check_party, is_member, is_staff, may_read
from guichet.application.scheduler import watch_commitment
from guichet.catalog.products import PRODUCTS
from guichet.errors import BadRequest
from guichet.federation.clients import (
    claim_refusal,
    declare_habilitation_client,
    habilitation_scopes,
    register_client,
)
from guichet.federation.models import ClientKind, FederationClient
from guichet.federation.scopes import DATA_SCOPES, IDENTITY_SCOPES, OPENID
from guichet.habilitation import uploads
from guichet.habilitation.blocks import (
    BlockModel,
    CertificateFacts,
    Contacts,
    Technical,
    model_of,
    unset,
)
from guichet.habilitation.diff import FieldChange, as_json, diff, from_json
from guichet.habilitation.errors import (
    ReasonRequired,
    RequestForbidden,
    RequestNotFound,
    TransitionRefused,
)
from guichet.habilitation.lifecycle import (
    ACTION_LABELS,
    EVENT_NAMES,
    REASON_REQUIRED,
    RequestAction,
    next_event_seq,
    next_status,
)
from guichet.habilitation.models import (
    AccessMode,
    Environment,
    Habilitation,
    HabilitationFederationClient,
    HabilitationStatus,
    Organisation,
)
from guichet.habilitation.request_models import (
    EDITABLE,
    CredentialDelivery,
    HabilitationRequest,
    RequestComment,
    RequestDocument,
    RequestEvent,
    RequestStatus,
    RequestVersion,
    SecurityCommitment,
)
from guichet.habilitation.service import (
    HabilitationError,
    HabilitationSpec,
    create_habilitation,
    update_habilitation,
)
from guichet.habilitation.validation import (
    TERMS_OF_USE,
    Block,
    FieldError,
    blocks_of,
    form_of,
    production_prerequisites,
    validate_block,
    validate_for_submission,
)
from guichet.logs import event
from guichet.mail import Mail, Mailer
from guichet.mail.mailer import MailError
from guichet.oauth.clients import SECRET_METHODS, create_client
from guichet.oauth.models import Client
from guichet.pki import certificate_info
from guichet.pki.certificates import load_certificate
from guichet.pki.verify import ChainVerifier
from guichet.secrets import MasterSecret

log = logging.getLogger(__name__)


class DocumentKind(StrEnum):
    LEGAL_TEXT = "legal_text"  # the legal text or the council deliberation
    HOMOLOGATION = "homologation"  # attestation d'homologation de sécurité
    QUESTIONNAIRE = "questionnaire"  # questionnaire de sécurité


# Where each block refers to an uploaded document, and of which kind.
DOCUMENT_FIELDS: Final = {
    ("legal", "document_id"): DocumentKind.LEGAL_TEXT,
    ("production", "homologation", "document_id"): DocumentKind.HOMOLOGATION,
    ("production", "questionnaire", "document_id"): DocumentKind.QUESTIONNAIRE,
}


class RequestInvalid(BadRequest):
    """The request cannot move on: ``errors`` names each field and what it lacks."""

    code = "request_invalid"
    title = "Demande incomplète ou invalide"

    def __init__(self, errors: list[FieldError]) -> None:
        lines = "\n".join(f"- {e.field} : {e.message}" for e in errors)
        super().__init__(f"{self.title} :\n{lines}", field=errors[0].field if errors else None)
        self.errors = errors


@dataclass(frozen=True, slots=True)
class Issuance:
    """What a validation produced. The secrets are not here: see ``collect_credentials``."""

    habilitation_id: uuid.UUID
    client_id: str
    created: bool  # False when the validation updated an existing habilitation
    delivery_id: uuid.UUID | None
    federation_client_id: str | None


@dataclass(frozen=True, slots=True)
class Credentials:
    """Shown once to the technical contact."""

    client_id: str
    client_secret: str | None
    federation_client_id: str | None
    federation_client_secret: str | None


# --- the one transition function ---------------------------------------------------------


def apply_transition(
    session: Session,
    request: HabilitationRequest,
    action: RequestAction,
    *,
    user: User,
    reason: str | None,
    now: dt.datetime,
    diff: Mapping[str, Any] | None = None,
) -> RequestEvent:
    """Check the actor, the table and the reason; move the request; write the event."""
    check_party(user, request, WHO[action])
    target = next_status(request.status, action)
    why = (reason or "").strip() or None
    if action in REASON_REQUIRED and why is None:
        raise ReasonRequired(
            f"Pour {ACTION_LABELS[action]} une demande, écrivez le motif.", field="reason"
        )
    before = request.status
    request.status = target
    request.updated_at = now
    if action is RequestAction.SUBMIT:
        request.submitted_at = now
    if action in (RequestAction.VALIDATE, RequestAction.REFUSE):
        request.decided_at = now
    row = RequestEvent(
        request_id=request.id,
        seq=next_event_seq(session, request),
        at=now,
        actor_id=user.id,
        actor=f"user:{user.id}",
        name=EVENT_NAMES[action],
        from_status=before.value,
        to_status=target.value,
        reason=why,
        diff=dict(diff) if diff else None,
    )
    session.add(row)
    session.flush()
    event(
        log,
        EVENT_NAMES[action],
        request_id=request.id,
        actor_id=user.id,
        from_status=before.value,
        to_status=target.value,
    )
    return row


# --- reading ---------------------------------------------------------------------------


def get_request(session: Session, user: User, request_id: uuid.UUID) -> HabilitationRequest:
    """The request, if ``user`` may read it; otherwise as if it did not exist."""
    request = session.get(HabilitationRequest, request_id)
    if request is None or not may_read(user, request):
        raise RequestNotFound()
    return request


def list_requests(
    session: Session, user: User, *, status: RequestStatus | None = None
) -> list[HabilitationRequest]:
    """Staff see every request; partners, their organisations' requests. Oldest first."""
    query = select(HabilitationRequest).order_by(HabilitationRequest.created_at)
    if status is not None:
        query = query.where(HabilitationRequest.status == status)
    if not is_staff(user):
        orgs = {m.organisation_id for m in user.memberships}
        query = query.where(HabilitationRequest.organisation_id.in_(orgs))
    return list(session.scalars(query))


def timeline(session: Session, user: User, request: HabilitationRequest) -> list[RequestEvent]:
    if not may_read(user, request):
        raise RequestNotFound()
    return list(
        session.scalars(
            select(RequestEvent)
            .where(RequestEvent.request_id == request.id)
            .order_by(RequestEvent.seq)
        )
    )


def _versions(session: Session, request: HabilitationRequest) -> list[RequestVersion]:
    return list(
        session.scalars(
            select(RequestVersion)
            .where(RequestVersion.request_id == request.id)
            .order_by(RequestVersion.number)
        )
    )


def last_resubmission_diff(session: Session, request: HabilitationRequest) -> list[FieldChange]:
    """What the latest submission changed since the one before (the instructor's review)."""
    latest = session.scalars(
        select(RequestEvent)
        .where(
            RequestEvent.request_id == request.id,
            RequestEvent.name == "habilitation:request:submitted",
        )
        .order_by(RequestEvent.seq.desc())
    ).first()
    return from_json(latest.diff) if latest else []


# --- starting a request ----------------------------------------------------------------


def _created_event(
    session: Session, request: HabilitationRequest, user: User, now: dt.datetime, why: str | None
) -> None:
    session.add(
        RequestEvent(
            request_id=request.id,
            seq=next_event_seq(session, request),
            at=now,
            actor_id=user.id,
            actor=f"user:{user.id}",
            name="habilitation:request:created",
            from_status=None,
            to_status=RequestStatus.DRAFT.value,
            reason=why,
            diff=None,
        )
    )
    event(log, "habilitation:request:created", request_id=request.id, actor_id=user.id)


def _new_request(
    session: Session,
    user: User,
    organisation_id: uuid.UUID,
    *,
    api: str,
    environment: Environment,
    data: dict[str, Any],
    now: dt.datetime,
    sandbox_request_id: uuid.UUID | None = None,
    parent_habilitation_id: uuid.UUID | None = None,
    why: str | None = None,
) -> HabilitationRequest:
    if api not in TERMS_OF_USE:
        raise BadRequest(f"Aucun formulaire pour l'API {api!r}.", field="api")
    if not any(m.organisation_id == organisation_id for m in user.memberships):
        raise RequestForbidden("Seuls les membres de l'organisation peuvent déposer sa demande.")
    request = HabilitationRequest(
        id=uuid.uuid4(),
        organisation_id=organisation_id,
        environment=environment,
        api=api,
        status=RequestStatus.DRAFT,
        data=data,
        sandbox_request_id=sandbox_request_id,
        parent_habilitation_id=parent_habilitation_id,
        created_by=user.id,
        created_at=now,
        updated_at=now,
    )
    session.add(request)
    session.flush()
    _created_event(session, request, user, now, why)
    return request


def start_request(
    session: Session,
    user: User,
    organisation_id: uuid.UUID,
    *,
    api: str = "impot_particulier",
    now: dt.datetime,
) -> HabilitationRequest:
    """A new sandbox draft: every démarche starts in the sandbox [SPEC §3]."""
    return _new_request(
        session, user, organisation_id, api=api, environment=Environment.SANDBOX, data={}, now=now
    )


def start_production_request(
    session: Session, user: User, sandbox_request: HabilitationRequest, *, now: dt.datetime
) -> HabilitationRequest:
    """The production step of a validated sandbox request: its data copied, the production
    block to fill, the terms to accept again."""
    check_party(user, sandbox_request, Party.MEMBER)
    if (
        sandbox_request.environment is not Environment.SANDBOX
        or sandbox_request.status is not RequestStatus.VALIDATED
    ):
        raise TransitionRefused("La demande de production suit une demande au bac à sable validée.")
    data = copy.deepcopy(dict(sandbox_request.data or {}))
    data.pop(Block.PRODUCTION.value, None)
    return _new_request(
        session,
        user,
        sandbox_request.organisation_id,
        api=sandbox_request.api,
        environment=Environment.PRODUCTION,
        data=data,
        now=now,
        sandbox_request_id=sandbox_request.id,
    )


def start_update_request(
    session: Session, user: User, habilitation: Habilitation, *, now: dt.datetime
) -> HabilitationRequest:
    """A request on top of a validated habilitation: the last validated request's data
    copied; its validation updates the same habilitation."""
    if habilitation.status is HabilitationStatus.TERMINATED:
        raise TransitionRefused("Une habilitation résiliée ne se modifie plus.")
    base = session.scalars(
        select(HabilitationRequest)
        .where(
            HabilitationRequest.habilitation_id == habilitation.id,
            HabilitationRequest.decided_at.is_not(None),
        )
        .order_by(HabilitationRequest.decided_at.desc())
    ).first()
    if base is None:
        raise TransitionRefused("Cette habilitation n'est issue d'aucune demande.")
    return _new_request(
        session,
        user,
        habilitation.organisation_id,
        api=base.api,
        environment=habilitation.environment,
        data=copy.deepcopy(dict(base.data or {})),
        now=now,
        sandbox_request_id=base.sandbox_request_id,
        parent_habilitation_id=habilitation.id,
    )


# --- editing a draft -------------------------------------------------------------------


def _check_editable(user: User, request: HabilitationRequest) -> None:
    check_party(user, request, Party.MEMBER)
    if request.status not in EDITABLE:
        raise TransitionRefused(
            "La demande n'est modifiable qu'en brouillon ou après une demande de modifications."
        )


def _enrich(
    session: Session,
    request: HabilitationRequest,
    model: BlockModel,
    trust_store: Sequence[x509.Certificate],
    now: dt.datetime,
) -> list[FieldError]:
    """What the server computes on save: contact verification, certificate facts (whether
    it chains to ``trust_store``, when there is one), and the documents' ownership. Returns
    errors for referenced documents that are not this request's."""
    errors: list[FieldError] = []
    if isinstance(model, Contacts):
        for role, contact in model.named():
            address = contact.email
            contact.verified = isinstance(address, str) and contact_verified(
                session, request.organisation_id, role, address
            )
    if isinstance(model, Technical):
        model.unset("certificate")
        pem = model.certificate_pem
        if pem and pem.strip():
            try:
                info = certificate_info(pem)
            except ValueError:
                pass
            else:
                model.certificate = CertificateFacts(
                    thumbprint=info.thumbprint,
                    subject=info.subject,
                    issuer=info.issuer,
                    not_before=info.not_before.isoformat(),
                    not_after=info.not_after.isoformat(),
                    self_signed=info.self_signed,
                    trusted=_chains(pem, info.thumbprint, trust_store, now),
                )
    for path, kind in DOCUMENT_FIELDS.items():
        if path[0] != model.block.value:
            continue
        holder: Any = model
        for key in path[1:-1]:
            holder = getattr(holder, key, None)
        doc_id = getattr(holder, path[-1], None)
        if not doc_id:
            continue
        doc = _document(session, request, doc_id)
        if doc is None or doc.kind != kind:
            unset(holder, path[-1])
            errors.append(FieldError(".".join(path), "Document inconnu : joignez-le à nouveau."))
    return errors


def _chains(
    pem: str, thumbprint: str, trust_store: Sequence[x509.Certificate], now: dt.datetime
) -> bool | None:
    """Whether the certificate chains to the trust store (RFC 5280); None without one."""
    verifier = ChainVerifier(trust_store)
    if not verifier.configured:
        return None
    return verifier.chains(load_certificate(pem), thumbprint, now)


def _document(
    session: Session, request: HabilitationRequest, doc_id: Any
) -> RequestDocument | None:
    try:
        ident = uuid.UUID(str(doc_id))
    except ValueError:
        return None
    doc = session.get(RequestDocument, ident)
    return doc if doc is not None and doc.request_id == request.id else None


def save_block(
    session: Session,
    request: HabilitationRequest,
    user: User,
    block: Block,
    values: Mapping[str, Any] | BlockModel,
    *,
    now: dt.datetime,
    trust_store: Sequence[x509.Certificate] = (),
) -> list[FieldError]:
    """Save one block as it is (drafts may be incomplete, a key the block's model does not
    know is refused); returns its current errors. ``trust_store``: the authorities the
    gateways trust, to tell whether the declared certificate is issued by one."""
    _check_editable(user, request)
    if block is Block.TERMS:
        raise BadRequest("Les conditions d'utilisation s'acceptent, elles ne se saisissent pas.")
    if block not in blocks_of(request):
        raise BadRequest(f"Bloc {block.value!r} absent de ce formulaire.", field=block.value)
    draft = model_of(request.api, block).draft(values)
    problems = _enrich(session, request, draft, trust_store, now)
    data = copy.deepcopy(dict(request.data or {}))
    data[block.value] = draft.stored()
    request.data = data
    request.updated_at = now
    session.flush()
    return problems + validate_block(request, block, now=now)


def accept_terms(
    session: Session, request: HabilitationRequest, user: User, version: str, *, now: dt.datetime
) -> None:
    """Record the acceptance of the API's current terms of use, with its version."""
    _check_editable(user, request)
    terms = TERMS_OF_USE[request.api]
    if version != terms.version:
        raise BadRequest(
            f"Les conditions d'utilisation en vigueur sont la version {terms.version}.",
            field="terms.version",
        )
    request.cgu_version = version
    request.cgu_accepted_at = now
    request.cgu_accepted_by = user.id
    request.updated_at = now
    session.flush()


def attach_document(
    session: Session,
    request: HabilitationRequest,
    user: User,
    kind: DocumentKind,
    filename: str,
    content: bytes,
    *,
    uploads_dir: Path,
    now: dt.datetime,
) -> RequestDocument:
    """Check and store an uploaded PDF; the block then refers to it by ``document.id``."""
    _check_editable(user, request)
    stored = uploads.store(uploads_dir, filename, content)
    doc = RequestDocument(
        id=uuid.uuid4(),
        request_id=request.id,
        kind=kind.value,
        stored_name=stored.stored_name,
        original_name=stored.original_name,
        content_type=stored.content_type,
        size=stored.size,
        sha256=stored.sha256,
        uploaded_by=user.id,
        uploaded_at=now,
    )
    session.add(doc)
    session.flush()
    event(log, "habilitation:request:document_attached", request_id=request.id, kind=kind.value)
    return doc


def read_document(
    session: Session, user: User, document_id: uuid.UUID, *, uploads_dir: Path
) -> tuple[RequestDocument, bytes]:
    doc = session.get(RequestDocument, document_id)
    request = session.get(HabilitationRequest, doc.request_id) if doc else None
    if doc is None or request is None or not may_read(user, request):
        raise RequestNotFound("Document introuvable.")
    return doc, uploads.read(uploads_dir, doc.stored_name, doc.sha256)


# --- the partner's and the instructors' actions ----------------------------------------------


def _refresh_certificate(
    request: HabilitationRequest, trust_store: Sequence[x509.Certificate], now: dt.datetime
) -> None:
    """Whether the declared certificate chains to the trust store, again: the authorities
    trusted may have changed since the technical step was saved."""
    data = dict(request.data or {})
    technical = data.get(Block.TECHNICAL.value)
    if not trust_store or not isinstance(technical, dict):
        return
    facts, pem = technical.get("certificate"), technical.get("certificate_pem")
    if not isinstance(facts, dict) or not isinstance(pem, str):
        return
    try:
        trusted = _chains(pem, str(facts.get("thumbprint", "")), trust_store, now)
    except ValueError:
        return
    data[Block.TECHNICAL.value] = {**technical, "certificate": {**facts, "trusted": trusted}}
    request.data = data


def submit(
    session: Session,
    request: HabilitationRequest,
    user: User,
    *,
    now: dt.datetime,
    trust_store: Sequence[x509.Certificate] = (),
) -> RequestEvent:
    """Check every block server-side; keep the submitted version; record the diff since the
    previous submission. ``trust_store``: the authorities the gateways trust, to check the
    declared certificate again."""
    check_party(user, request, Party.MEMBER)
    next_status(request.status, RequestAction.SUBMIT)
    # A contact may have confirmed their address (or verified their account) since the save.
    refresh_contacts(session, request)
    _refresh_certificate(request, trust_store, now)
    errors = validate_for_submission(request, now=now)
    errors += federation_client_errors(session, request)
    if errors:
        raise RequestInvalid(errors)
    versions = _versions(session, request)
    changes = diff(versions[-1].data, request.data) if versions else []
    session.add(
        RequestVersion(
            request_id=request.id,
            number=len(versions) + 1,
            submitted_at=now,
            submitted_by=user.id,
            data=copy.deepcopy(dict(request.data)),
        )
    )
    return apply_transition(
        session,
        request,
        RequestAction.SUBMIT,
        user=user,
        reason=None,
        now=now,
        diff=as_json(changes) if versions else None,
    )


def request_changes(
    session: Session,
    request: HabilitationRequest,
    user: User,
    reason: str,
    *,
    now: dt.datetime,
    mailer: Mailer | None = None,
) -> RequestEvent:
    row = apply_transition(
        session, request, RequestAction.REQUEST_CHANGES, user=user, reason=reason, now=now
    )
    _notify_applicant(session, request, mailer, "Modifications demandées", reason)
    return row


def refuse(
    session: Session,
    request: HabilitationRequest,
    user: User,
    reason: str,
    *,
    now: dt.datetime,
    mailer: Mailer | None = None,
) -> RequestEvent:
    row = apply_transition(
        session, request, RequestAction.REFUSE, user=user, reason=reason, now=now
    )
    _notify_applicant(session, request, mailer, "Demande refusée", reason)
    return row


def archive(
    session: Session,
    request: HabilitationRequest,
    user: User,
    reason: str | None = None,
    *,
    now: dt.datetime,
) -> RequestEvent:
    return apply_transition(
        session, request, RequestAction.ARCHIVE, user=user, reason=reason, now=now
    )


def comment(
    session: Session,
    request: HabilitationRequest,
    user: User,
    block: Block,
    text: str,
    *,
    now: dt.datetime,
) -> RequestComment:
    """An instructor's remark on one block (shown to the partner next to it)."""
    check_party(user, request, Party.INSTRUCTOR)
    if not text.strip():
        raise BadRequest("Le commentaire est vide.", field="text")
    row = RequestComment(
        request_id=request.id, block=block.value, author_id=user.id, at=now, text=text.strip()
    )
    session.add(row)
    session.flush()
    return row


def comments(session: Session, user: User, request: HabilitationRequest) -> list[RequestComment]:
    if not may_read(user, request):
        raise RequestNotFound()
    return list(
        session.scalars(
            select(RequestComment)
            .where(RequestComment.request_id == request.id)
            .order_by(RequestComment.at, RequestComment.id)
        )
    )


# --- validation is issuance ---------------------------------------------------------------


def spec_of(request: HabilitationRequest, now: dt.datetime) -> HabilitationSpec:
    """The policy a complete request grants."""
    form = form_of(request)
    perimeter, technical = form.perimeter, form.technical
    modes = perimeter.access_modes_chosen()
    apis = [request.api]
    if AccessMode.ETAT_CIVIL.value in modes and "r2p" in PRODUCTS:
        apis.append("r2p")  # état civil → SPI first, two subscriptions [004 §4]
    scopes = perimeter.granted_scopes()
    labels = perimeter.labels
    volumetry = technical.volumetry()
    return HabilitationSpec(
        demarche=form.basics.demarche or "",
        environment=request.environment,
        apis=apis,
        access_modes=modes,
        data_scopes=scopes,
        year_scopes=perimeter.year_scopes_chosen(),
        ip_ranges=list(technical.ip_ranges),
        certificates_pem=[technical.certificate_pem or ""],
        quotas={api: volumetry for api in apis},
        valid_from=now,
        data_labels={s: labels[s] for s in scopes if s in labels},
    )


def _client_scopes(apis: list[str]) -> list[str]:
    return sorted(frozenset().union(*(PRODUCTS[a].resource_scopes for a in apis)))


def federation_client_errors(session: Session, request: HabilitationRequest) -> list[FieldError]:
    """The request's ``technical.federation_client_id``, checked at submission and again at
    validation. A sandbox federation client is bound only by a request of its owner's
    organisation (``federation.clients.claim_refusal``: never guichet's own clients, a
    disabled one, one nobody owns, another organisation's). In production a client id
    unknown to the sandbox federation is the real FranceConnect's: refused when another
    organisation's habilitation already declared it."""
    declared = (form_of(request).technical.federation_client_id or "").strip()
    if not declared:
        return []
    sandbox = request.environment is Environment.SANDBOX
    refusal = claim_refusal(session, declared, request.organisation_id, unknown_refused=sandbox)
    if refusal is None and session.get(FederationClient, declared) is None:
        claimed = session.scalars(
            select(Habilitation.organisation_id)
            .join(HabilitationFederationClient)
            .where(HabilitationFederationClient.client_id == declared)
        ).all()
        if any(org != request.organisation_id for org in claimed):
            refusal = "Ce client_id appartient à un autre fournisseur de service."
    return [FieldError("technical.federation_client_id", refusal)] if refusal else []


def _bind_federation_client(
    session: Session, request: HabilitationRequest, hab: Habilitation, now: dt.datetime
) -> tuple[str | None, str | None]:
    """[003 annexe 3 §3.1] the provider must know the partner's FranceConnect client_id.
    Records it as the habilitation's federation client (the gateway's check reads it from
    its policy snapshot, whichever federation the environment uses) and, for a client of
    the embedded federation owned by the request's organisation, binds it there with the
    habilitation's data and year scopes; or registers one there (sandbox, from the declared
    redirect URIs), owned by that organisation.
    Returns (client_id, new secret or None)."""
    if AccessMode.FRANCECONNECT.value not in hab.access_modes:
        return None, None
    technical = form_of(request).technical
    declared = (technical.federation_client_id or "").strip()
    if declared:
        errors = federation_client_errors(session, request)
        if errors or request.organisation_id != hab.organisation_id:
            raise RequestInvalid(
                errors
                or [
                    FieldError(
                        "technical.federation_client_id",
                        "Ce client_id appartient à un autre fournisseur de service.",
                    )
                ]
            )
        row = session.get(FederationClient, declared)
        if row is None:
            # The real FranceConnect's (production): recorded for the gateway, nothing to
            # bind here.
            declare_habilitation_client(session, hab, declared, now, replace=True)
            return declared, None
        row.habilitation_id = hab.id
        # Without them, a client made by the CLI could request no DGFiP scope at /authorize.
        row.scopes = habilitation_scopes(row, hab)
        declare_habilitation_client(session, hab, declared, now, replace=True)
        return declared, None
    redirects = list(technical.federation_redirect_uris)
    scopes = [OPENID, *IDENTITY_SCOPES, *sorted(set(hab.data_scopes) | set(hab.year_scopes))]
    try:
        registered = register_client(
            session,
            kind=ClientKind.SERVICE_PROVIDER,
            name=hab.demarche,
            now=now,
            redirect_uris=redirects,
            scopes=[s for s in scopes if s in DATA_SCOPES or s == OPENID or s in IDENTITY_SCOPES],
            habilitation_id=hab.id,
        )
    except ValueError as exc:
        raise RequestInvalid(
            [FieldError("technical.federation_redirect_uris", f"URL de retour refusée : {exc}.")]
        ) from None
    declare_habilitation_client(session, hab, registered.client_id, now, replace=True)
    technical.federation_client_id = registered.client_id
    request.data = {**request.data, Block.TECHNICAL.value: technical.stored()}
    return registered.client_id, registered.client_secret


def _record_security_commitment(
    session: Session, request: HabilitationRequest, hab: Habilitation, now: dt.datetime
) -> SecurityCommitment:
    kind, start, expires = form_of(request).production.commitment()
    starts = dt.datetime.combine(start, dt.time(), dt.UTC)
    row = session.scalar(
        select(SecurityCommitment).where(SecurityCommitment.habilitation_id == hab.id)
    )
    if row is None:
        row = SecurityCommitment(habilitation_id=hab.id, suspended_at=None)
        session.add(row)
    if row.expires_at is None or expires != row.expires_at:
        row.notice_sent_at = None
    row.request_id = request.id
    row.kind = kind
    row.starts_at = starts
    row.expires_at = expires
    row.updated_at = now
    session.flush()
    return row


def _technical_contact(session: Session, request: HabilitationRequest) -> User:
    contact = form_of(request).contacts.contact("technical")
    user = session.scalar(select(User).where(User.email_key == email_key(str(contact.email))))
    if user is None or user.email_verified_at is None or not is_member(user, request):
        raise RequestInvalid(
            [
                FieldError(
                    "contacts.technical.email",
                    "Le responsable technique n'a plus de compte vérifié dans l'organisation.",
                )
            ]
        )
    return user


def validate(
    session: Session,
    request: HabilitationRequest,
    user: User,
    reason: str,
    *,
    now: dt.datetime,
    master: MasterSecret,
    mailer: Mailer | None = None,
    credentials_link: str | None = None,
) -> Issuance:
    """Validate and issue: the habilitation (or its update) with its gateway policy, the
    OAuth client, the federation binding, and the credentials waiting for the technical
    contact [000 §4]. The policy is live on the next call (generation bumped). The mail to
    the technical contact carries ``credentials_link``, the portal's absolute address of the
    page where the credentials are collected."""
    check_party(user, request, Party.INSTRUCTOR)
    next_status(request.status, RequestAction.VALIDATE)
    if not reason.strip():
        raise ReasonRequired("Pour valider une demande, écrivez le motif.", field="reason")
    missing = production_prerequisites(request, now=now)
    errors = missing + [e for e in validate_for_submission(request, now=now) if e not in missing]
    # Checked again before anything is written: the client may have changed hands since.
    errors += federation_client_errors(session, request)
    if errors:
        raise RequestInvalid(errors)
    recipient = _technical_contact(session, request)
    organisation = session.get(Organisation, request.organisation_id)
    assert organisation is not None
    spec = spec_of(request, now)
    actor = f"user:{user.id}"
    try:
        if request.parent_habilitation_id is not None:
            hab = session.get(Habilitation, request.parent_habilitation_id)
            if hab is None or hab.status is HabilitationStatus.TERMINATED:
                raise TransitionRefused("L'habilitation à mettre à jour est résiliée.")
            update_habilitation(session, hab, spec, actor=actor, now=now)
            created = False
        else:
            hab = create_habilitation(session, organisation, spec, actor=actor, now=now)
            created = True
    except HabilitationError as exc:
        raise RequestInvalid([FieldError("technical", str(exc))]) from None
    # A FICOBA habilitation (DICP C4): members signed in without a second factor are signed
    # out now, not when their session ends; they sign in again and enrol one.
    enforce_for_organisation(session, organisation.id)
    tls = "self_signed_tls_client_auth" if hab.certificates[0].self_signed else "tls_client_auth"
    methods = [*SECRET_METHODS, tls]
    secret: str | None = None
    client = session.scalars(
        select(Client).where(Client.habilitation_id == hab.id).order_by(Client.created_at)
    ).first()
    if client is None:
        client, secret = create_client(
            session,
            habilitation=hab,
            scopes=_client_scopes(hab.apis),
            auth_methods=methods,
            now=now,
        )
    else:
        client.scopes = _client_scopes(hab.apis)
        client.auth_methods = [m for m in client.auth_methods if m in SECRET_METHODS] + [tls]
    fc_client_id, fc_secret = _bind_federation_client(session, request, hab, now)
    if request.environment is Environment.PRODUCTION:
        commitment = _record_security_commitment(session, request, hab, now)
        try:
            # A new attestation lifts the watch's suspension at once [000 §3.4.1].
            watch_commitment(session, hab, commitment, now, mailer)
        except MailError:
            event(log, "habilitation:mail_failed", level=logging.WARNING, kind="security_watch")
    delivery_id = None
    if secret or fc_secret:
        payload = json.dumps({"client_secret": secret, "federation_client_secret": fc_secret})
        delivery = CredentialDelivery(
            id=uuid.uuid4(),
            request_id=request.id,
            habilitation_id=hab.id,
            client_id=client.client_id,
            recipient_id=recipient.id,
            secret_encrypted=master.encrypt(payload.encode()),
            created_at=now,
            collected_at=None,
        )
        session.add(delivery)
        delivery_id = delivery.id
    request.habilitation_id = hab.id
    apply_transition(session, request, RequestAction.VALIDATE, user=user, reason=reason, now=now)
    event(
        log,
        "habilitation:issued",
        request_id=request.id,
        habilitation_id=hab.id,
        client_id=client.client_id,
        created=created,
    )
    _send(
        mailer,
        Mail(
            to=recipient.email,
            subject=f"Vos accès {_env_label(request)} sont prêts",
            text=(
                "Bonjour,\n\nLa demande d'habilitation « "
                f"{hab.demarche} » a été validée.\n"
                + (
                    "Connectez-vous au portail pour récupérer vos identifiants : le secret "
                    "ne vous sera montré qu'une fois et n'est jamais envoyé par courriel.\n"
                    + (
                        f"Récupérer vos identifiants : {credentials_link}\n"
                        if credentials_link
                        else ""
                    )
                    if delivery_id
                    else "Vos identifiants existants restent valables ; la nouvelle "
                    "habilitation s'applique dès le prochain appel.\n"
                )
                + f"\nIdentifiant technique (client_id) : {client.client_id}\n"
            ),
            kind="habilitation:credentials_ready",
            ref=str(request.id),
        ),
    )
    _notify_applicant(session, request, mailer, "Demande validée", reason)
    return Issuance(hab.id, client.client_id, created, delivery_id, fc_client_id)


def pending_deliveries(session: Session, user: User) -> list[CredentialDelivery]:
    """Credentials waiting for ``user`` to collect them."""
    return list(
        session.scalars(
            select(CredentialDelivery)
            .where(
                CredentialDelivery.recipient_id == user.id,
                CredentialDelivery.collected_at.is_(None),
            )
            .order_by(CredentialDelivery.created_at)
        )
    )


def collect_credentials(
    session: Session,
    user: User,
    delivery_id: uuid.UUID,
    *,
    master: MasterSecret,
    now: dt.datetime,
) -> Credentials:
    """The secrets, to the technical contact only, once: the ciphertext is erased."""
    delivery = session.get(CredentialDelivery, delivery_id)
    if delivery is None or delivery.recipient_id != user.id:
        raise RequestNotFound("Identifiants introuvables.")
    if delivery.secret_encrypted is None:
        raise TransitionRefused(
            "Ces identifiants ont déjà été affichés ; faites renouveler le secret si besoin."
        )
    payload = json.loads(master.decrypt(delivery.secret_encrypted))
    delivery.secret_encrypted = None
    delivery.collected_at = now
    session.flush()
    fc_id = session.scalar(
        select(FederationClient.client_id).where(
            FederationClient.habilitation_id == delivery.habilitation_id
        )
    )
    event(log, "habilitation:credentials_collected", delivery_id=delivery.id)
    return Credentials(
        delivery.client_id,
        payload.get("client_secret"),
        fc_id,
        payload.get("federation_client_secret"),
    )


# --- mails ------------------------------------------------------------------------------


def _env_label(request: HabilitationRequest) -> str:
    return "de production" if request.environment is Environment.PRODUCTION else "au bac à sable"


def _send(mailer: Mailer | None, mail: Mail) -> None:
    """Decisions stand even if a notice fails: the portal shows them anyway."""
    if mailer is None:
        return
    try:
        mailer.send(mail)
    except MailError:
        event(log, "habilitation:mail_failed", level=logging.WARNING, kind=mail.kind, ref=mail.ref)


def _notify_applicant(
    session: Session,
    request: HabilitationRequest,
    mailer: Mailer | None,
    subject: str,
    reason: str,
) -> None:
    author = session.get(User, request.created_by) if request.created_by else None
    if author is None:
        return
    demarche = form_of(request).basics.demarche
    _send(
        mailer,
        Mail(
            to=author.email,
            subject=f"{subject} : {demarche or 'votre demande'}",
            text=(
                f"Bonjour,\n\n{subject} ({_env_label(request)}).\n\nMessage de l'instructeur :\n"
                f"{reason.strip()}\n\nRetrouvez la demande et son historique sur le portail.\n"
            ),
            kind="habilitation:request:decision",
            ref=str(request.id),
        ),
    )
