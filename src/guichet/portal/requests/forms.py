"""A block's form, read by the block's model (``guichet.habilitation.blocks``): each field
of the model names its input, and every text goes through the portal's checks
(``portal.web.field``: no control character, no line break on one line)."""

from __future__ import annotations

from typing import Final

from pydantic import BaseModel
from starlette.datastructures import FormData, UploadFile

from guichet.application import issuance as service
from guichet.habilitation.blocks import BlockModel, model_of
from guichet.habilitation.uploads import MAX_BYTES
from guichet.habilitation.validation import Block
from guichet.portal.requests.pages import PageNotFound
from guichet.portal.web import FORBIDDEN_MULTILINE, FORBIDDEN_ONE_LINE, field

# Enough for the perimeter block: a justification and a label for each data scope.
BLOCK_FORM_FIELDS: Final = 150
# The production block's documents: the form's file input → the document's kind.
SECURITY_DOCUMENTS: Final = {
    "homologation": service.DocumentKind.HOMOLOGATION,
    "questionnaire": service.DocumentKind.QUESTIONNAIRE,
}


def checked(form: FormData, name: str) -> bool:
    return form.get(name) == "1"


class PortalForm:
    """A submitted form as the blocks' models read it (``blocks.FormReader``)."""

    def __init__(self, form: FormData) -> None:
        self._form = form

    def text(self, name: str, limit: int, *, multiline: bool) -> str:
        return field(self._form, name, limit, multiline=multiline)

    def checked(self, name: str) -> bool:
        return checked(self._form, name)

    def values(self, name: str) -> list[str]:
        return [str(v) for v in self._form.getlist(name)]


class TypedForm(PortalForm):
    """The form as typed, for showing it again after a refusal: a character the portal
    refuses is left out instead of refusing the whole field (the error names the field)."""

    def text(self, name: str, limit: int, *, multiline: bool) -> str:
        value = self._form.get(name)
        if not isinstance(value, str):
            return ""
        forbidden = FORBIDDEN_MULTILINE if multiline else FORBIDDEN_ONE_LINE
        return forbidden.sub(" " if not multiline else "", value[:limit])


def typed_block_form(block: Block, form: FormData, api: str) -> BlockModel:
    """The block as the partner typed it, never refused: shown again with its errors."""
    return model_of(api, block).from_form(TypedForm(form))


def parse_block_form(block: Block, form: FormData, api: str) -> BlockModel:
    """The block of ``api``'s form, as its model reads it; the services check it (STYLE 3)."""
    if block is Block.TERMS:
        raise PageNotFound("Ce bloc ne se saisit pas.")
    return model_of(api, block).from_form(PortalForm(form))


def put(model: BaseModel, path: tuple[str, ...], value: str) -> None:
    """Set the field at ``path`` (e.g. an uploaded document's id) in a block's model."""
    holder = model
    for key in path[:-1]:
        holder = getattr(holder, key)
    setattr(holder, path[-1], value)


def upload_of(form: FormData, name: str) -> UploadFile | None:
    value = form.get(name)
    return value if isinstance(value, UploadFile) and value.filename else None


async def read_upload(upload: UploadFile) -> tuple[str, bytes]:
    # One byte more than allowed: the service names the limit.
    return upload.filename or "document.pdf", await upload.read(MAX_BYTES + 1)
