"""The administrators' "Agents" page (issue 12): the provider's staff accounts, their roles
and state, and for each the actions that end or give back its access — disable, enable,
remove (``guichet.accounts.staff``; the command line has the same: ``guichet user
disable|enable|remove``). An administrator never locks themselves out, nor removes the last
active administrator.

The same page resets the second factors (DICP C4, issue 14) of a person who lost them all:
a staff account from its row, a partner member's account by its address — provider
administrators only, after checking who asks (docs/security.md, "Second factor"). Every
factor and recovery code goes, the person's sessions end, they are told by mail and enrol a
new factor at their next sign-in (``guichet user reset-second-factor`` does the same)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Final

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from guichet.accounts import mails, staff
from guichet.accounts.errors import FormInvalid
from guichet.accounts.models import PROVIDER_ROLE_LABELS, SecondFactor, User
from guichet.accounts.second_factor import reset_second_factors
from guichet.application.permissions import StaffAction, check_staff
from guichet.mail import Mail
from guichet.portal.requests.forms import checked
from guichet.portal.requests.pages import PageNotFound, in_transaction, parse_id
from guichet.portal.web import csrf_protected, deps, field, redirect, render

CHANGES: Final = {
    "disable": ("Désactiver", staff.disable),
    "enable": ("Réactiver", staff.enable),
    "remove": ("Retirer", None),
}


AGENTS: Final = "/instruction/agents"
# The reset by address (a partner member's account, or any account).
RESET_BY_ADDRESS: Final = AGENTS + "/second-facteur"


def _factor_counts(session: Session) -> dict[uuid.UUID, int]:
    """Confirmed second factors per account."""
    rows = session.execute(
        select(SecondFactor.user_id, func.count())
        .where(SecondFactor.confirmed_at.is_not(None))
        .group_by(SecondFactor.user_id)
    )
    return {user_id: int(count) for user_id, count in rows}


def _rows(session: Session, user: User) -> list[dict[str, Any]]:
    check_staff(user, StaffAction.MANAGE_ACCOUNTS)
    counts = _factor_counts(session)
    rows = []
    for account in staff.staff_accounts(session):
        offered = ["enable", "remove"] if account.disabled_at else ["disable", "remove"]
        rows.append(
            {
                "id": str(account.id),
                "email": account.email,
                "name": account.display_name,
                "roles": [PROVIDER_ROLE_LABELS[r] for r in account.roles],
                "disabled_at": account.disabled_at,
                "last_sign_in_at": account.last_sign_in_at,
                "self": account.id == user.id,
                "second_factors": counts.get(account.id, 0),
                "actions": [(a, CHANGES[a][0]) for a in offered],
            }
        )
    return rows


async def agents(request: Request) -> Response:
    return await _agents_page(request)


async def _agents_page(
    request: Request, errors: dict[str, str] | None = None, email: str = ""
) -> Response:
    """The page; with ``errors`` (keyed by field path) the reset's modal opens again."""
    rows = await in_transaction(request, lambda s, u, _now: _rows(s, u))
    return await render(
        request,
        "staff/agents.html",
        status_code=400 if errors else 200,
        form=True,
        rows=rows,
        errors=errors or {},
        reset_email=email,
    )


async def _change(request: Request, form: FormData, _: Any) -> Response:
    user_id = parse_id(request.path_params["user_id"])
    change = field(form, "action", 16)
    if change not in CHANGES:
        raise PageNotFound("Action inconnue.")

    def work(session: Session, actor: User, now: dt.datetime) -> None:
        check_staff(actor, StaffAction.MANAGE_ACCOUNTS)
        target = session.get(User, user_id)
        if target is None or not target.provider_roles:
            raise PageNotFound("Compte d'agent introuvable.")
        staff.check_change(session, actor.id, target, change)
        label = f"user:{actor.id}"
        if change == "remove":
            staff.remove(session, target, now, label)
        else:
            CHANGES[change][1](session, target, now, label)  # type: ignore[misc]

    await in_transaction(request, work)
    return redirect(request, "/instruction/agents", notice=f"staff_{change}")


change = csrf_protected(_change)


def _reset(
    session: Session, actor: User, target: User | None, now: dt.datetime, sign_in: str
) -> Mail:
    """Resets ``target``'s second factors as ``actor``; the mail to send once committed
    (``sign_in``: the sign-in page's address)."""
    check_staff(actor, StaffAction.MANAGE_ACCOUNTS)
    if target is None:
        raise PageNotFound("Compte introuvable.")
    if target.id == actor.id:
        raise staff.StaffChangeRefused(
            "Vous ne pouvez pas réinitialiser votre propre second facteur : gérez-le depuis "
            "« Mon compte », ou demandez-le à un autre administrateur."
        )
    reset_second_factors(session, target.id, actor=f"user:{actor.id}")
    target.updated_at = now
    return mails.second_factors_reset(target, sign_in)


async def _reset_staff(request: Request, form: FormData, _: Any) -> Response:
    """A staff account's second factors, from its row (the modal's box must be checked)."""
    user_id = parse_id(request.path_params["user_id"])
    sign_in = deps(request).accounts.link("/connexion")
    if not checked(form, "confirm"):
        return await _agents_page(
            request,
            {f"reset-{user_id}-confirm": "Cochez la case pour confirmer la réinitialisation."},
        )

    def work(session: Session, actor: User, now: dt.datetime) -> Mail:
        target = session.get(User, user_id)
        if target is not None and not target.provider_roles:
            target = None  # a partner's account is reset by its address
        return _reset(session, actor, target, now, sign_in)

    await _send(request, await in_transaction(request, work))
    return redirect(request, AGENTS, notice="second_factors_reset")


async def _reset_by_address(request: Request, form: FormData, _: Any) -> Response:
    """Any account's second factors by its address: a partner member's, typically."""
    email = field(form, "email", 320).strip()
    sign_in = deps(request).accounts.link("/connexion")
    if not email:
        return await _agents_page(request, {"reset-email": "Indiquez l'adresse du compte."}, email)
    if not checked(form, "confirm"):
        return await _agents_page(
            request,
            {"reset-confirm": "Cochez la case pour confirmer la réinitialisation."},
            email,
        )

    def work(session: Session, actor: User, now: dt.datetime) -> Mail | str:
        check_staff(actor, StaffAction.MANAGE_ACCOUNTS)
        try:
            target = staff.find_user(session, email)
        except FormInvalid as exc:
            return exc.errors["email"]
        return _reset(session, actor, target, now, sign_in)

    done = await in_transaction(request, work)
    if isinstance(done, str):
        return await _agents_page(request, {"reset-email": done}, email)
    await _send(request, done)
    return redirect(request, AGENTS, notice="second_factors_reset")


async def _send(request: Request, mail: Mail) -> None:
    """The person is told, after the commit (a failure is logged, the reset stands)."""
    await run_in_threadpool(deps(request).accounts.deliver, [mail])


reset_staff = csrf_protected(_reset_staff)
reset_by_address = csrf_protected(_reset_by_address)

ROUTES = [
    Route(AGENTS, agents, methods=["GET"]),
    Route(RESET_BY_ADDRESS, reset_by_address, methods=["POST"]),
    Route(AGENTS + "/{user_id}", change, methods=["POST"]),
    Route(AGENTS + "/{user_id}/second-facteur", reset_staff, methods=["POST"]),
]
