"""Editing a draft: saving a block (its form read by the block's model, its documents
attached), accepting the terms of use, sending a contact's confirmation link again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable
from typing import Any, Final

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from guichet.accounts.contacts import ContactService
from guichet.accounts.models import User
from guichet.application import issuance as service
from guichet.errors import GuichetError
from guichet.habilitation.uploads import MAX_BYTES
from guichet.habilitation.validation import Block, FieldError
from guichet.portal.requests.forms import (
    BLOCK_FORM_FIELDS,
    SECURITY_DOCUMENTS,
    checked,
    parse_block_form,
    put,
    read_upload,
    typed_block_form,
    upload_of,
)
from guichet.portal.requests.pages import (
    in_threadpool,
    in_transaction_or_refusal,
    parse_block,
    parse_id,
    portal_of,
    signed_in,
)
from guichet.portal.requests.views import render_step, render_with_errors, steps_of
from guichet.portal.web import MAX_FORM_BODY, TextInvalid, csrf_protected, deps, field, redirect

# Where "Précédent", "Suivant" and "Enregistrer le brouillon" lead once the step is saved.
MOVES: Final = {"precedent": -1, "suivant": 1, "rester": 0}


# A form input's name → its field's path in the block (where its error is shown).
_GROUPED: Final = (
    ("justification_", "data_scopes."),
    ("label_", "labels."),
    ("purpose_", "search_types."),
    ("homologation_", "homologation."),
    ("questionnaire_", "questionnaire."),
    *((f"{role}_", f"{role}.") for role in ("controller", "dpo", "technical")),
)


def field_path(block: Block, name: str) -> str:
    """``justification_dgfip_rfr`` → ``perimeter.data_scopes.dgfip_rfr``, and so on."""
    for prefix, group in _GROUPED:
        if name.startswith(prefix):
            return f"{block.value}.{group}{name.removeprefix(prefix)}"
    return f"{block.value}.{name}"


async def _save_block(request: Request, form: FormData, _: Any) -> Response:
    """A step of the request: its block's form, read by the model of the request's API, saved
    with its documents (as a draft: incomplete is fine), then the previous step, the next or
    the summary. A refused text or document shows the step again as it was typed, with the
    error next to its field: nothing typed is lost."""
    request_id = parse_id(request.path_params["request_id"])
    block = parse_block(request.path_params["block"])
    move = MOVES.get(field(form, "aller", 20), 1)
    hp = portal_of(request)
    uploads: list[tuple[tuple[str, ...], service.DocumentKind, str, bytes]] = []
    if block is Block.LEGAL and (doc := upload_of(form, "document")):
        uploads.append(
            (("document_id",), service.DocumentKind.LEGAL_TEXT, *(await read_upload(doc)))
        )
    if block is Block.PRODUCTION:
        for kind, doc_kind in SECURITY_DOCUMENTS.items():
            if doc := upload_of(form, f"{kind}_document"):
                uploads.append(((kind, "document_id"), doc_kind, *(await read_upload(doc))))
    pem_file = upload_of(form, "certificate_file") if block is Block.TECHNICAL else None
    pem = None
    if pem_file is not None:
        pem = (await pem_file.read(64 * 1024)).decode("utf-8", "replace").strip()
    api: list[str] = []

    def work(session: Session, user: User, now: dt.datetime) -> tuple[Block, ...]:
        found = service.get_request(session, user, request_id)
        api.append(found.api)
        values = parse_block_form(block, form, found.api)
        if pem is not None:
            put(values, ("certificate_pem",), pem)
        for path, kind, name, content in uploads:
            doc = service.attach_document(
                session, found, user, kind, name, content, uploads_dir=hp.uploads_dir, now=now
            )
            put(values, path, str(doc.id))
        service.save_block(session, found, user, block, values, now=now, trust_store=hp.trust_store)
        return steps_of(found)

    def refusal(exc: GuichetError) -> Awaitable[Response] | None:
        if not api:
            return None
        typed = typed_block_form(block, form, api[0])
        if isinstance(exc, TextInvalid):
            errors = [
                FieldError(field_path(block, name), message) for name, message in exc.errors.items()
            ]
            return render_step(
                request,
                request_id,
                block,
                values=typed,
                errors=errors,
                status=exc.status,
                alert="L'étape n'a pas été enregistrée.",
            )
        if exc.code == "upload_rejected" and uploads:
            path = ".".join((block.value, *uploads[0][0]))
            return render_step(
                request,
                request_id,
                block,
                values=typed,
                errors=[FieldError(path, exc.detail)],
                status=exc.status,
                alert="Le document n'a pas été enregistré.",
            )
        return None

    refused = await in_transaction_or_refusal(request, work, refusal)
    if isinstance(refused, Response):
        return refused
    if block is Block.CONTACTS:
        # After the commit: the links must point at rows that exist.
        user_id = await signed_in(request)
        assert user_id is not None
        await run_in_threadpool(
            ContactService(deps(request).accounts).send_for_request, request_id, user_id
        )
    number = refused.index(block) + 1 + move
    if number > len(refused):
        return redirect(request, f"/demandes/{request_id}#recapitulatif", notice="step_saved")
    return redirect(request, f"/demandes/{request_id}/etapes/{max(number, 1)}", notice="step_saved")


async def _accept_terms(request: Request, form: FormData, _: Any) -> Response:
    request_id = parse_id(request.path_params["request_id"])
    version = field(form, "version", 100)
    accepted = checked(form, "accept")

    def work(session: Session, user: User, now: dt.datetime) -> None:
        found = service.get_request(session, user, request_id)
        if not accepted:
            raise service.RequestInvalid(
                [FieldError("terms.version", "Cochez la case pour accepter les conditions.")]
            )
        service.accept_terms(session, found, user, version, now=now)

    def refusal(exc: GuichetError) -> Awaitable[Response] | None:
        if not isinstance(exc, service.RequestInvalid):
            return None
        return render_with_errors(
            request, request_id, exc.errors, 400, "Les conditions n'ont pas été acceptées."
        )

    refused = await in_transaction_or_refusal(request, work, refusal)
    if isinstance(refused, Response):
        return refused
    return redirect(request, f"/demandes/{request_id}#conditions", notice="terms_accepted")


async def _resend_contact_link(request: Request, _form: FormData, _: Any) -> Response:
    """A new confirmation link to the controller's or the DPO's address."""
    request_id = parse_id(request.path_params["request_id"])
    user_id = await signed_in(request)
    if user_id is None:
        return redirect(request, "/connexion")
    await in_threadpool(
        request,
        ContactService(deps(request).accounts).resend,
        request_id,
        user_id,
        request.path_params["role"],
    )
    step = 1 + list(Block).index(Block.CONTACTS)
    return redirect(request, f"/demandes/{request_id}/etapes/{step}", notice="contact_link_sent")


# Two documents at most per block, each at most MAX_BYTES, and the block's fields.
save_block = csrf_protected(
    _save_block,
    max_files=2,
    max_fields=BLOCK_FORM_FIELDS,
    max_body=2 * MAX_BYTES + MAX_FORM_BODY,
)


accept_terms = csrf_protected(_accept_terms)


resend_contact_link = csrf_protected(_resend_contact_link)
