"""The account pages: sign-up, email verification, sign-in and out, password reset, my account;
the organisation pages (``guichet.portal.organisation``) are mounted with them.

Routes parse the form, call ``AccountService`` and map its answer to a page (STYLE 3).
"""

from __future__ import annotations

import re

from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from guichet.accounts.errors import AccountTokenInvalid, EmailNotVerified, FormInvalid, SignInFailed
from guichet.accounts.models import PARTNER_ROLE_LABELS
from guichet.accounts.service import SignUpForm
from guichet.accounts.sessions import SessionData
from guichet.portal import organisation, second_factor
from guichet.portal.home import role_home
from guichet.portal.requests.pages import in_transaction
from guichet.portal.throttle import Action, hashing, throttle
from guichet.portal.web import (
    csrf_protected,
    current_session,
    deps,
    field,
    redirect,
    render,
    use_session,
)

SIGN_UP_FIELDS = ("email", "display_name", "siret", "organisation_name", "role")
ROLES = list(PARTNER_ROLE_LABELS.items())
# Where sign-in may lead back to: a path of this site (an invitation link), never another
# site ("//host", "/\\host" or a scheme would make the portal an open redirect).
LOCAL_PATH = re.compile(r"/(?![/\\])[A-Za-z0-9/_.~%?=&-]{0,400}")


def local_path(value: str) -> str | None:
    return value if LOCAL_PATH.fullmatch(value) else None


async def sign_up_page(request: Request) -> Response:
    return await render(
        request, "accounts/sign_up.html", form=True, values={}, errors={}, roles=ROLES
    )


@csrf_protected
async def sign_up(request: Request, form: FormData, _: SessionData) -> Response:
    # Shown back as typed when the form is refused (escaped by the template).
    values = {
        name: str(v)[:400] if isinstance(v := form.get(name), str) else ""
        for name in SIGN_UP_FIELDS
    }
    try:
        values = {name: field(form, name, 400) for name in SIGN_UP_FIELDS}
        data = SignUpForm(password=field(form, "password", 1000), **values)
        await hashing(request, deps(request).accounts.sign_up, data)
    except FormInvalid as exc:
        return await render(
            request,
            "accounts/sign_up.html",
            form=True,
            status_code=400,
            values=values,
            errors=exc.errors,
            roles=ROLES,
        )
    return redirect(request, "/inscription/envoyee")


async def sign_up_sent(request: Request) -> Response:
    return await render(request, "accounts/sign_up_sent.html")


async def verify_email(request: Request) -> Response:
    token = request.query_params.get("token", "")
    try:
        await run_in_threadpool(deps(request).accounts.verify_email, token)
    except AccountTokenInvalid as exc:
        return await render(
            request, "accounts/verified.html", status_code=400, ok=False, message=exc.detail
        )
    return await render(request, "accounts/verified.html", ok=True)


async def sign_in_page(request: Request) -> Response:
    session = await current_session(request)
    if session is not None and session.pending_user_id is not None:
        # The password was right: the second factor comes next, nothing else.
        return redirect(request, second_factor.VERIFY)
    notice = "reset" if request.query_params.get("reinitialise") else None
    return await render(
        request,
        "accounts/sign_in.html",
        form=True,
        email=request.query_params.get("email", "")[:320],
        error=None,
        notice=notice,
        suite=local_path(request.query_params.get("suite", "")),
    )


@csrf_protected
async def sign_in(request: Request, form: FormData, session: SessionData) -> Response:
    email = field(form, "email", 320)
    suite = local_path(field(form, "suite", 500))
    d = deps(request)
    await throttle(request).check(request, Action.SIGN_IN, email)
    try:
        signed_in = await hashing(request, d.accounts.sign_in, email, field(form, "password"))
    except (SignInFailed, EmailNotVerified) as exc:
        return await render(
            request,
            "accounts/sign_in.html",
            form=True,
            status_code=exc.status,
            email=email,
            error=exc.detail,
            notice=None,
            suite=suite,
        )
    # Staff and members of a FICOBA organisation give a second factor first (issue 14, C4):
    # until then their session is pending, signed in nowhere.
    if second := await second_factor.after_password(request, session, signed_in.user_id, suite):
        return redirect(request, second)
    # A new session id and CSRF token once signed in (no session fixation).
    new = await run_in_threadpool(d.sessions.sign_in, session, signed_in.user_id, signed_in.method)
    use_session(request, new)
    return redirect(request, suite or await second_factor.home_of(request, signed_in.user_id))


@csrf_protected
async def sign_out(request: Request, _: FormData, session: SessionData) -> Response:
    await run_in_threadpool(deps(request).sessions.destroy, session.token)
    use_session(request, None)
    return redirect(request, "/", notice="signed_out")


async def forgot_page(request: Request) -> Response:
    return await render(request, "accounts/forgot.html", form=True, sent=False, email="", errors={})


@csrf_protected
async def forgot(request: Request, form: FormData, _: SessionData) -> Response:
    email = field(form, "email", 320)
    if not email.strip():
        errors = {"email": "Saisissez l'adresse électronique de votre compte."}
        return await render(
            request,
            "accounts/forgot.html",
            status_code=400,
            form=True,
            sent=False,
            email="",
            errors=errors,
        )
    await throttle(request).check(request, Action.PASSWORD_RESET, email)
    # The answer leaves before the lookup and the mail: its timing says nothing about
    # whether the address has an account.
    response = await render(request, "accounts/forgot.html", sent=True, email="", errors={})
    response.background = BackgroundTask(deps(request).accounts.request_password_reset, email)
    return response


async def reset_page(request: Request) -> Response:
    token = request.query_params.get("token", "")
    usable = await run_in_threadpool(deps(request).accounts.check_reset_token, token)
    return await render(
        request,
        "accounts/reset.html",
        form=True,
        token=token,
        usable=usable,
        errors={},
        message=None,
    )


@csrf_protected
async def reset(request: Request, form: FormData, _: SessionData) -> Response:
    token = field(form, "token", 200)
    await throttle(request).check(request, Action.PASSWORD_RESET, None)
    try:
        await hashing(
            request, deps(request).accounts.reset_password, token, field(form, "password")
        )
    except FormInvalid as exc:
        return await render(
            request,
            "accounts/reset.html",
            form=True,
            status_code=400,
            token=token,
            usable=True,
            errors=exc.errors,
            message=None,
        )
    except AccountTokenInvalid as exc:
        return await render(
            request,
            "accounts/reset.html",
            form=True,
            status_code=400,
            token="",
            usable=False,
            errors={},
            message=exc.detail,
        )
    return redirect(request, "/connexion?reinitialise=1")


async def my_account(request: Request) -> Response:
    session = await current_session(request)
    if session is None or session.user_id is None:
        return redirect(request, "/connexion")
    home = await in_transaction(request, role_home)
    return await render(request, "accounts/my_account.html", home=home)


ROUTES = [
    Route("/inscription", sign_up_page, methods=["GET"]),
    Route("/inscription", sign_up, methods=["POST"]),
    Route("/inscription/envoyee", sign_up_sent, methods=["GET"]),
    Route("/verification-email", verify_email, methods=["GET"]),
    Route("/connexion", sign_in_page, methods=["GET"]),
    Route("/connexion", sign_in, methods=["POST"]),
    Route("/deconnexion", sign_out, methods=["POST"]),
    Route("/mot-de-passe/oubli", forgot_page, methods=["GET"]),
    Route("/mot-de-passe/oubli", forgot, methods=["POST"]),
    Route("/mot-de-passe/nouveau", reset_page, methods=["GET"]),
    Route("/mot-de-passe/nouveau", reset, methods=["POST"]),
    Route("/mon-compte", my_account, methods=["GET"]),
    *organisation.ROUTES,
    *second_factor.ROUTES,
]
