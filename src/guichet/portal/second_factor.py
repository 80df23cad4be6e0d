"""The second factor's pages (DICP C4, issue 14): asked after the password, enrolled at the
first sign-in of whoever must have one, managed on "Mon compte".

After a right password, a person who has a second factor, or must have one, gets a *pending*
session (``SessionStore.await_second_factor``): it names them but signs nobody in, so every
other page treats them as a visitor. ``/connexion/second-facteur`` asks the factor (a
security key through WebAuthn, a TOTP code, or a recovery code); someone who must have one
and has none is sent to ``/second-facteur/ajout`` instead, where they register a key or
scan a TOTP QR code, and only then are signed in. The same page adds a factor from
"Mon compte" (``/mon-compte/second-facteur``), which also removes one (never the last of an
account that must have one) and renews the recovery codes.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import segno
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from guichet.accounts.errors import FormInvalid, LastSecondFactor, SecondFactorInvalid
from guichet.accounts.models import PROVIDER_ROLE_LABELS, ProviderRole
from guichet.accounts.second_factor import Enrolled, SecondFactors
from guichet.accounts.sessions import SessionData
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

VERIFY = "/connexion/second-facteur"
ADD = "/second-facteur/ajout"
MANAGE = "/mon-compte/second-facteur"
# A key's answer (clientDataJSON, authenticatorData, signature, attestation) stays far below.
MAX_CREDENTIAL = 16 * 1024


@dataclass(frozen=True)
class Actor:
    """Who is at the second-factor pages: ``pending`` between the password and the factor."""

    user_id: uuid.UUID
    pending: bool
    session: SessionData


def factors(request: Request) -> SecondFactors:
    found = request.app.state.second_factors
    assert isinstance(found, SecondFactors)
    return found


async def actor(request: Request) -> Actor | None:
    session = await current_session(request)
    if session is None:
        return None
    if session.user_id is not None:
        return Actor(session.user_id, False, session)
    if session.pending_user_id is not None:
        return Actor(session.pending_user_id, True, session)
    return None


async def after_password(
    request: Request, session: SessionData, user_id: uuid.UUID, return_to: str | None = None
) -> str | None:
    """Called once the password is right: where to send the person for the second factor
    (their session then pending, ``return_to`` — a local path the caller checked — kept for
    after), or None when they need none (they are signed in by the caller)."""
    status = await run_in_threadpool(factors(request).status, user_id)
    if not status.enrolled and not status.required:
        return None
    pending = await run_in_threadpool(
        deps(request).sessions.await_second_factor, session, user_id, "password", return_to
    )
    use_session(request, pending)
    return VERIFY if status.enrolled else ADD


async def _signed_in(request: Request, who: Actor, method: str) -> None:
    """The pending session replaced by a signed-in one (new id, new CSRF token)."""
    base = who.session.auth_method or "password"
    new = await run_in_threadpool(
        deps(request).sessions.sign_in, who.session, who.user_id, f"{base}+{method}"[:64]
    )
    use_session(request, new)


async def home_of(request: Request, user_id: uuid.UUID) -> str:
    """Where a person lands once signed in: an instructor on the queue, anyone else on their
    account page (which shows their next step)."""
    account = await run_in_threadpool(deps(request).accounts.account, user_id)
    if account is not None and PROVIDER_ROLE_LABELS[ProviderRole.INSTRUCTOR] in (
        account.provider_roles
    ):
        return "/instruction"
    return "/mon-compte"


def _to_sign_in(request: Request) -> Response:
    return redirect(request, "/connexion")


# Asking the factor -------------------------------------------------------------------------


async def verify_page(request: Request) -> Response:
    who = await actor(request)
    if who is None or not who.pending:
        return _to_sign_in(request) if who is None else redirect(request, MANAGE)
    return await _verify_page(request, who, None)


async def _verify_page(
    request: Request, who: Actor, error: str | None, status_code: int = 200
) -> Response:
    sf = factors(request)
    status = await run_in_threadpool(sf.status, who.user_id)
    if not status.enrolled:
        return redirect(request, ADD)
    options = None
    if status.has_key:
        found = await run_in_threadpool(sf.authentication_options, who.user_id)
        if found is not None:
            options, challenge = found
            await run_in_threadpool(
                deps(request).sessions.set_challenge, who.session.token, challenge
            )
    return await render(
        request,
        "accounts/second_factor.html",
        status_code=status_code,
        form=True,
        status=status,
        key_options=options,
        error=error,
    )


def _verifying(kind: str) -> Callable[[Request], Awaitable[Response]]:
    """A POST answering the factor: throttled, then the domain check, then signed in."""

    @csrf_protected
    async def handler(request: Request, form: FormData, _: SessionData) -> Response:
        who = await actor(request)
        if who is None or not who.pending:
            return _to_sign_in(request)
        await throttle(request).check(request, Action.SECOND_FACTOR, str(who.user_id))
        sf = factors(request)
        try:
            if kind == "code":
                method = await run_in_threadpool(
                    sf.verify_totp, who.user_id, field(form, "code", 20)
                )
            elif kind == "cle":
                challenge = await run_in_threadpool(
                    deps(request).sessions.take_challenge, who.session.token
                )
                credential = field(form, "credential", MAX_CREDENTIAL)
                method = await run_in_threadpool(sf.verify_key, who.user_id, credential, challenge)
            else:
                method = await hashing(
                    request, sf.verify_recovery_code, who.user_id, field(form, "recovery", 40)
                )
        except SecondFactorInvalid as exc:
            if not await _still_pending(request, who):
                # Locked: the pending session is gone, the password comes first again.
                use_session(request, None)
                return await render(
                    request,
                    "error.html",
                    status_code=exc.status,
                    title="Connexion interrompue",
                    message=exc.detail,
                )
            return await _verify_page(request, who, exc.detail, status_code=exc.status)
        await _signed_in(request, who, method)
        return redirect(request, who.session.return_to or await home_of(request, who.user_id))

    handler.__name__ = f"verify_{kind}"
    return handler


async def _still_pending(request: Request, who: Actor) -> bool:
    """The pending session survives a refusal unless the account got locked."""
    live = await run_in_threadpool(deps(request).sessions.load, who.session.token)
    return live is not None and live.pending_user_id == who.user_id


# Adding a factor ---------------------------------------------------------------------------


def qr_svg(uri: str) -> Markup:
    """The otpauth URI as an inline SVG QR code (segno), with its text alternative."""
    out = io.BytesIO()
    segno.make(uri, error="m").save(
        out,
        kind="svg",
        scale=5,
        border=2,
        xmldecl=False,
        svgns=True,
        title="QR code à scanner avec votre application d'authentification",
        svgclass="guichet-qr",
    )
    svg = out.getvalue().decode().replace("<title>", '<title id="qr-titre">', 1)
    svg = svg.replace("<svg ", '<svg role="img" aria-labelledby="qr-titre" ', 1)
    return Markup(svg)  # noqa: S704 (segno's SVG of a URI we made: base32 and our address)


async def add_page(request: Request) -> Response:
    who = await actor(request)
    if who is None:
        return _to_sign_in(request)
    return await _add_page(request, who, None)


async def _add_page(
    request: Request, who: Actor, error: str | None, status_code: int = 200
) -> Response:
    sf = factors(request)
    status = await run_in_threadpool(sf.status, who.user_id)
    if who.pending and status.enrolled:
        # Someone with a factor gives it before anything else, adding one included.
        return redirect(request, VERIFY)
    enrolment = await run_in_threadpool(sf.totp_enrolment, who.user_id)
    options, challenge = await run_in_threadpool(sf.registration_options, who.user_id)
    await run_in_threadpool(deps(request).sessions.set_challenge, who.session.token, challenge)
    return await render(
        request,
        "accounts/second_factor_add.html",
        status_code=status_code,
        form=True,
        pending=who.pending,
        status=status,
        enrolment=enrolment,
        qr=qr_svg(enrolment.uri),
        key_options=options,
        error=error,
    )


def _adding(kind: str) -> Callable[[Request], Awaitable[Response]]:
    """A POST adding a factor: at sign-in (pending) it signs the person in; from "Mon
    compte" it leads back there. The first factor's recovery codes are shown once."""

    @csrf_protected
    async def handler(request: Request, form: FormData, _: SessionData) -> Response:
        who = await actor(request)
        if who is None:
            return _to_sign_in(request)
        sf = factors(request)
        if who.pending and (await run_in_threadpool(sf.status, who.user_id)).enrolled:
            return redirect(request, VERIFY)
        await throttle(request).check(request, Action.SECOND_FACTOR, str(who.user_id))
        label = field(form, "key-label" if kind == "cle" else "label", 100)
        try:
            enrolled: Enrolled
            if kind == "code":
                enrolled = await hashing(
                    request, sf.confirm_totp, who.user_id, field(form, "code", 20), label
                )
            else:
                challenge = await run_in_threadpool(
                    deps(request).sessions.take_challenge, who.session.token
                )
                credential = field(form, "credential", MAX_CREDENTIAL)
                enrolled = await hashing(
                    request, sf.register_key, who.user_id, credential, challenge, label
                )
        except SecondFactorInvalid as exc:
            return await _add_page(request, who, exc.detail, status_code=exc.status)
        if who.pending:
            await _signed_in(request, who, enrolled.method)
        if who.pending:
            next_url = who.session.return_to or await home_of(request, who.user_id)
        else:
            next_url = MANAGE
        if enrolled.recovery_codes:
            return await render(
                request,
                "accounts/recovery_codes.html",
                codes=enrolled.recovery_codes,
                next_url=next_url,
            )
        return redirect(request, next_url, notice="second_factor_added")

    handler.__name__ = f"add_{kind}"
    return handler


# Managing them ------------------------------------------------------------------------------


async def manage_page(request: Request) -> Response:
    session = await current_session(request)
    if session is None or session.user_id is None:
        return redirect(request, VERIFY if session and session.pending_user_id else "/connexion")
    return await _manage_page(request, session.user_id, None)


async def _manage_page(
    request: Request, user_id: uuid.UUID, error: str | None, status_code: int = 200
) -> Response:
    status = await run_in_threadpool(factors(request).status, user_id)
    return await render(
        request,
        "accounts/second_factors.html",
        status_code=status_code,
        form=True,
        status=status,
        error=error,
    )


@csrf_protected
async def remove(request: Request, form: FormData, session: SessionData) -> Response:
    if session.user_id is None:
        return _to_sign_in(request)
    try:
        factor_id = uuid.UUID(field(form, "factor", 40))
    except ValueError:
        return await _manage_page(request, session.user_id, "Second facteur inconnu.", 400)
    try:
        await run_in_threadpool(factors(request).remove, session.user_id, factor_id)
    except (LastSecondFactor, FormInvalid) as exc:
        return await _manage_page(request, session.user_id, exc.detail, exc.status)
    return redirect(request, MANAGE, notice="second_factor_removed")


@csrf_protected
async def renew_recovery_codes(request: Request, _: FormData, session: SessionData) -> Response:
    if session.user_id is None:
        return _to_sign_in(request)
    sf = factors(request)
    if not (await run_in_threadpool(sf.status, session.user_id)).enrolled:
        return redirect(request, MANAGE)
    codes = await hashing(request, sf.new_recovery_codes, session.user_id)
    return await render(request, "accounts/recovery_codes.html", codes=codes, next_url=MANAGE)


ROUTES = [
    Route(VERIFY, verify_page, methods=["GET"]),
    Route(VERIFY + "/code", _verifying("code"), methods=["POST"]),
    Route(VERIFY + "/cle", _verifying("cle"), methods=["POST"]),
    Route(VERIFY + "/secours", _verifying("secours"), methods=["POST"]),
    Route(ADD, add_page, methods=["GET"]),
    Route(ADD + "/code", _adding("code"), methods=["POST"]),
    Route(ADD + "/cle", _adding("cle"), methods=["POST"]),
    Route(MANAGE, manage_page, methods=["GET"]),
    Route(MANAGE + "/retrait", remove, methods=["POST"]),
    Route(MANAGE + "/codes-de-secours", renew_recovery_codes, methods=["POST"]),
]
