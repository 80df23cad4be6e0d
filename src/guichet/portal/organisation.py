"""The organisation pages: "Mon organisation" (members and their roles, invitations), the invitee's
page behind the mailed link, and the page a request contact lands on to confirm an address.

Routes parse the form, call ``OrganisationService`` or ``ContactService`` and map the answer
to a page (STYLE 3); the services decide who may do what.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from guichet.accounts.contacts import ContactService
from guichet.accounts.errors import (
    AccountTokenInvalid,
    FormInvalid,
    InvitationInvalid,
    OrganisationNotFound,
)
from guichet.accounts.models import PARTNER_ROLE_LABELS
from guichet.accounts.organisations import OrganisationService
from guichet.accounts.service import PASSWORD_METHOD
from guichet.accounts.sessions import SessionData
from guichet.errors import GuichetError
from guichet.portal import second_factor
from guichet.portal.throttle import hashing
from guichet.portal.web import (
    csrf_protected,
    current_session,
    deps,
    field,
    redirect,
    render,
    use_session,
)

ROLES = list(PARTNER_ROLE_LABELS.items())
INVITE_LABELS = {"email": "Adresse électronique", "role": "Rôle"}
NOTICES = {
    "invitee": "L'invitation est partie : elle est valable sept jours.",
    "annulee": "L'invitation est annulée : son lien ne fonctionne plus.",
    "bienvenue": "Bienvenue : vous avez rejoint l'organisation.",
    "retire": "Le rôle est retiré.",
}


def organisations(request: Request) -> OrganisationService:
    return OrganisationService(deps(request).accounts)


def contacts(request: Request) -> ContactService:
    return ContactService(deps(request).accounts)


async def _page(
    request: Request,
    status_code: int = 200,
    *,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    alert: str | None = None,
) -> Response:
    session = await current_session(request)
    if session is None or session.user_id is None:
        return redirect(request, "/connexion")
    views = await run_in_threadpool(organisations(request).organisations_of, session.user_id)
    return await render(
        request,
        "organisation/members.html",
        status_code=status_code,
        form=True,
        organisations=views,
        roles=ROLES,
        errors=errors or {},
        values=values or {},
        labels=INVITE_LABELS,
        notice=NOTICES.get(request.query_params.get("fait", "")),
        alert=alert,
    )


async def my_organisation(request: Request) -> Response:
    return await _page(request)


async def _act(
    request: Request,
    action: Callable[[], object],
    done: str,
    values: dict[str, str] | None = None,
) -> Response:
    """``action`` in a thread, then to ``done``; a refusal is shown on the members page, and
    the invitation form's errors next to their fields (with the ``values`` typed)."""
    try:
        await run_in_threadpool(action)
    except GuichetError as exc:
        if values is not None and isinstance(exc, FormInvalid):
            return await _page(request, 400, errors=exc.errors, values=values)
        return await _page(request, exc.status, alert=exc.detail)
    return redirect(request, done)


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


@csrf_protected
async def invite(request: Request, form: FormData, session: SessionData) -> Response:
    if session.user_id is None:
        return redirect(request, "/connexion")
    values = {
        "organisation_id": field(form, "organisation_id", 64),
        "email": field(form, "email", 400).strip(),
        "role": field(form, "role", 64),
    }
    organisation_id = _uuid(values["organisation_id"])
    user_id = session.user_id

    def invite() -> None:
        if organisation_id is None:
            raise FormInvalid({"email": "Choisissez une organisation dont vous êtes membre."})
        organisations(request).invite(user_id, organisation_id, values["email"], values["role"])

    return await _act(request, invite, "/mon-organisation?fait=invitee", values)


@csrf_protected
async def cancel(request: Request, _: FormData, session: SessionData) -> Response:
    if session.user_id is None:
        return redirect(request, "/connexion")
    invitation_id = _uuid(request.path_params["invitation_id"])
    user_id = session.user_id

    def cancel() -> None:
        if invitation_id is None:
            raise InvitationInvalid("Invitation introuvable.")
        organisations(request).cancel(user_id, invitation_id)

    return await _act(request, cancel, "/mon-organisation?fait=annulee")


@csrf_protected
async def remove_role(request: Request, form: FormData, session: SessionData) -> Response:
    if session.user_id is None:
        return redirect(request, "/connexion")
    organisation_id = _uuid(field(form, "organisation_id", 64))
    user_id = _uuid(field(form, "user_id", 64))
    by = session.user_id

    def remove() -> None:
        if organisation_id is None or user_id is None:
            raise OrganisationNotFound("Membre introuvable.")
        role = field(form, "role", 64)
        organisations(request).remove_role(by, organisation_id, user_id, role)

    return await _act(request, remove, "/mon-organisation?fait=retire")


# The invitee -------------------------------------------------------------------------------


async def _invitation_page(
    request: Request,
    token: str,
    status_code: int = 200,
    errors: dict[str, str] | None = None,
    display_name: str = "",
) -> Response:
    try:
        found = await run_in_threadpool(organisations(request).invitation, token)
    except InvitationInvalid as exc:
        return await render(
            request, "organisation/invitation.html", status_code=400, invalid=exc.detail
        )
    session = await current_session(request)
    return await render(
        request,
        "organisation/invitation.html",
        status_code=status_code,
        form=True,
        invalid=None,
        invitation=found,
        token=token,
        signed_in=session is not None and session.user_id is not None,
        errors=errors or {},
        display_name=display_name,
    )


async def invitation(request: Request) -> Response:
    return await _invitation_page(request, request.query_params.get("token", "")[:200])


@csrf_protected
async def join_with_new_account(request: Request, form: FormData, session: SessionData) -> Response:
    """Creates the account (address verified by the link) and signs it in."""
    token = field(form, "token", 200)
    display_name = field(form, "display_name", 400)
    d = deps(request)
    try:
        user_id = await hashing(
            request,
            organisations(request).accept_with_new_account,
            token,
            display_name,
            field(form, "password"),
        )
    except FormInvalid as exc:
        return await _invitation_page(request, token, 400, exc.errors, display_name)
    except InvitationInvalid:
        return await _invitation_page(request, token)
    # Joining an organisation holding a FICOBA habilitation: a second factor is enrolled
    # before anything else (issue 14, C4).
    if second := await second_factor.after_password(request, session, user_id):
        return redirect(request, second)
    # A new session id and CSRF token once signed in (no session fixation).
    new = await run_in_threadpool(d.sessions.sign_in, session, user_id, PASSWORD_METHOD)
    use_session(request, new)
    return redirect(request, "/mon-organisation?fait=bienvenue")


@csrf_protected
async def join_as_signed_in(request: Request, form: FormData, session: SessionData) -> Response:
    token = field(form, "token", 200)
    if session.user_id is None:
        return await _invitation_page(request, token)
    try:
        await run_in_threadpool(organisations(request).accept_as, token, session.user_id)
    except InvitationInvalid:
        return await _invitation_page(request, token)
    except GuichetError as exc:
        return await render(
            request, "organisation/invitation.html", status_code=exc.status, invalid=exc.detail
        )
    return redirect(request, "/mon-organisation?fait=bienvenue")


# A request contact confirms an address -----------------------------------------------------


async def confirm_contact(request: Request) -> Response:
    token = request.query_params.get("token", "")[:200]
    try:
        confirmed = await run_in_threadpool(contacts(request).confirm, token)
    except AccountTokenInvalid as exc:
        return await render(
            request, "organisation/contact_confirmed.html", status_code=400, invalid=exc.detail
        )
    return await render(
        request, "organisation/contact_confirmed.html", invalid=None, confirmed=confirmed
    )


ROUTES = [
    Route("/mon-organisation", my_organisation, methods=["GET"]),
    Route("/mon-organisation/invitations", invite, methods=["POST"]),
    Route("/mon-organisation/invitations/{invitation_id}/annuler", cancel, methods=["POST"]),
    Route("/mon-organisation/membres/retirer", remove_role, methods=["POST"]),
    Route("/invitation", invitation, methods=["GET"]),
    Route("/invitation", join_with_new_account, methods=["POST"]),
    Route("/invitation/accepter", join_as_signed_in, methods=["POST"]),
    Route("/contacts/confirmation", confirm_contact, methods=["GET"]),
]
