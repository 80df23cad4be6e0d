"""Editing a draft: saving a block (its form read by the block's model, its documents
attached), accepting the terms of use, sending a contact's confirmation link again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable
from typing import Any

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
from guichet.portal.requests.views import render_with_errors
from guichet.portal.web import MAX_FORM_BODY, TextInvalid, csrf_protected, deps, field, redirect


async def _save_block(request: Request, form: FormData, _: Any) -> Response:
    """The block's form, read by the model of the request's API, saved with its documents;
    a refused text or document shows the request again with the error next to its field."""
    request_id = parse_id(request.path_params["request_id"])
    block = parse_block(request.path_params["block"])
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

    def work(session: Session, user: User, now: dt.datetime) -> list[FieldError]:
        found = service.get_request(session, user, request_id)
        values = parse_block_form(block, form, found.api)
        if pem is not None:
            put(values, ("certificate_pem",), pem)
        for path, kind, name, content in uploads:
            doc = service.attach_document(
                session, found, user, kind, name, content, uploads_dir=hp.uploads_dir, now=now
            )
            put(values, path, str(doc.id))
        return service.save_block(session, found, user, block, values, now=now)

    def refusal(exc: GuichetError) -> Awaitable[Response] | None:
        if isinstance(exc, TextInvalid):
            errors = [
                FieldError(f"{block.value}.{name}", message) for name, message in exc.errors.items()
            ]
            return render_with_errors(
                request, request_id, errors, exc.status, "Le bloc n'a pas été enregistré."
            )
        if exc.code == "upload_rejected" and uploads:
            path = ".".join((block.value, *uploads[0][0]))
            return render_with_errors(
                request,
                request_id,
                [FieldError(path, exc.detail)],
                exc.status,
                "Le document n'a pas été enregistré.",
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
    return redirect(
        request,
        f"/demandes/{request_id}?enregistre={block.value}#bloc-{block.value}",
        notice="block_saved",
    )


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
    return redirect(
        request, f"/demandes/{request_id}?enregistre=terms#bloc-terms", notice="terms_accepted"
    )


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
    return redirect(
        request, f"/demandes/{request_id}?renvoye=1#bloc-contacts", notice="contact_link_sent"
    )


# Two documents at most per block, each at most MAX_BYTES, and the block's fields.
save_block = csrf_protected(
    _save_block,
    max_files=2,
    max_fields=BLOCK_FORM_FIELDS,
    max_body=2 * MAX_BYTES + MAX_FORM_BODY,
)


accept_terms = csrf_protected(_accept_terms)


resend_contact_link = csrf_protected(_resend_contact_link)
