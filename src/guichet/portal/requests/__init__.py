"""The partner's habilitation pages: my requests, the form block by block, the timeline, the
production step, my habilitations with their last calls, and the one-time credentials page.

Routes are thin (STYLE 3): they parse the form (the blocks' models read it:
``guichet.habilitation.blocks``), call ``guichet.application.issuance`` in one transaction,
and map its answer to a page; a domain error becomes a readable page
(``guichet.portal.errors``). One module per section:

- ``pages``: what every page shares (the transaction, ids from the path, labels);
- ``views``: a request as its pages show it;
- ``forms``: a block's form read by the block's model;
- ``listing``: my requests, a new one, a request's page, its documents;
- ``steps``: one step of the request (a block per page, « Étape n sur N »);
- ``editing``: saving a step and moving on, accepting the terms, a contact's link again;
- ``submission``: submitting, the production step, archiving;
- ``habilitations``: my habilitations and their last calls, update, notice, new secret;
- ``credentials``: the technical contact's secrets, shown once.
"""

from __future__ import annotations

from starlette.routing import Route

from guichet.portal.requests.credentials import collect, credentials_page
from guichet.portal.requests.editing import accept_terms, resend_contact_link, save_block
from guichet.portal.requests.habilitations import (
    give_notice,
    my_habilitations,
    rotate_secret,
    start_update,
)
from guichet.portal.requests.listing import document, my_requests, new_request, request_page
from guichet.portal.requests.pages import HabilitationPortal
from guichet.portal.requests.steps import step_page
from guichet.portal.requests.submission import archive, start_production, submit

__all__ = ["ROUTES", "HabilitationPortal"]

ROUTES = [
    Route("/demandes", my_requests, methods=["GET"]),
    Route("/demandes", new_request, methods=["POST"]),
    Route("/demandes/{request_id}", request_page, methods=["GET"]),
    Route("/demandes/{request_id}/etapes/{number}", step_page, methods=["GET"]),
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
