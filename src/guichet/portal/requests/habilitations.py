"""My habilitations: their state, history, use of the quota and last calls, and what
the organisation may do with them (update, notice of termination, a new secret).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Awaitable
from typing import Any, Final

from sqlalchemy.orm import Session
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from guichet.accounts.models import User
from guichet.accounts.queries import display_names
from guichet.application import issuance as service
from guichet.application import management, permissions
from guichet.catalog import vocabulary
from guichet.catalog.products import PRODUCTS
from guichet.clock import utc
from guichet.errors import GuichetError
from guichet.habilitation import lifecycle, queries
from guichet.habilitation.errors import HabilitationNotFound, ReasonRequired
from guichet.habilitation.models import Habilitation, HabilitationStatus
from guichet.journal import queries as journal_queries
from guichet.portal.confirmation import NameNotConfirmed, check_typed_name
from guichet.portal.requests.forms import checked
from guichet.portal.requests.pages import (
    ENVIRONMENT_LABELS,
    HABILITATION_EVENT_LABELS,
    HABILITATION_STATUS_LABELS,
    SYSTEM_ACTORS,
    in_transaction,
    in_transaction_or_refusal,
    parse_id,
    portal_of,
)
from guichet.portal.web import csrf_protected, field, redirect, render

LAST_CALLS: Final = 20


# The gateway answers these before counting a call against its quota (chain, parameters)
# or because the quota is spent: they do not use it.
NOT_COUNTED_STATUSES: Final = (400, 401, 403, 405, 429)


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
        # What the partner reads: the catalogue's words (codes in the technical details).
        "data_labels": [vocabulary.scope_name(s) for s in hab.data_scopes]
        + [vocabulary.year_name(s) for s in hab.year_scopes],
        "data_codes": [*hab.data_scopes, *hab.year_scopes],
        "valid_from": utc(hab.valid_from),
        "valid_until": utc(hab.valid_until) if hab.valid_until else None,
        "organisation": hab.organisation.name,
    }


def last_calls(session: Session, organisation_ids: set[uuid.UUID]) -> list[dict[str, Any]]:
    """The organisation's latest exchanges from the journal: date, API, outcome — never the
    person (no subject)."""
    rows = journal_queries.last_records_of(session, organisation_ids, LAST_CALLS)
    return [
        {
            "at": utc(r.at),
            "environment": vocabulary.ENVIRONMENTS.get(r.environment, r.environment),
            "api": PRODUCTS[r.api].name if r.api in PRODUCTS else (r.api or "—"),
            "operation": vocabulary.operation_name(r.operation),
            "outcome": vocabulary.outcome_sentence(r.outcome),
            "operation_code": r.operation,
            "outcome_code": r.outcome,
            "http_status": r.http_status,
        }
        for r in rows
    ]


def call_statistics(
    session: Session, habilitation_id: uuid.UUID, now: dt.datetime, days: int = 7
) -> list[tuple[str, int]]:
    """The habilitation's calls over the last ``days`` days, counted by outcome."""
    return journal_queries.outcome_counts(session, habilitation_id, now - dt.timedelta(days=days))


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
    events = queries.events_of(session, hab.id)
    names = display_names(session, {_user_id(e.actor) for e in events})
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
    commitment = queries.security_commitment_of(session, hab.id)
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
    counts = journal_queries.api_counts(session, hab.id, since, NOT_COUNTED_STATUSES)
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
    client = management.habilitation_client(session, hab)
    pending = lifecycle.open_update_request(session, hab)
    live = hab.status is not HabilitationStatus.TERMINATED
    member = permissions.is_party(user, hab)
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
        and permissions.is_technical_contact(session, user, hab),
    }


def _my_habilitations_view(session: Session, user: User, now: dt.datetime) -> dict[str, Any]:
    orgs = {m.organisation_id for m in user.memberships}
    habs = queries.habilitations_of(session, orgs)
    return {
        "habilitations": [partner_habilitation(session, user, h, now) for h in habs],
        "calls": last_calls(session, orgs),
    }


async def my_habilitations(request: Request) -> Response:
    view = await in_transaction(request, _my_habilitations_view)
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
    hab = management.get_habilitation(session, user, parse_id(value))
    if not permissions.is_party(user, hab):
        raise HabilitationNotFound()
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

    new_id = await in_transaction(request, work)
    return redirect(request, f"/demandes/{new_id}", notice="update_started")


async def _give_notice(request: Request, form: FormData, _: Any) -> Response:
    """[000 §14] the partner ends the exchange in writing, with reasons, two months ahead."""
    hab_id = request.path_params["habilitation_id"]
    reason = field(form, "reason", 5000, multiline=True)
    typed_name = field(form, "organisation_confirm", 400)
    hp = portal_of(request)

    def work(session: Session, user: User, now: dt.datetime) -> None:
        hab = _member_habilitation(session, user, hab_id)
        check_typed_name(typed_name, hab.organisation.name)
        management.give_termination_notice(session, hab, user, reason, now=now, mailer=hp.mailer)

    def refusal(exc: GuichetError) -> Awaitable[Response] | None:
        if isinstance(exc, ReasonRequired):
            return _habilitations_with_error(request, f"notice-{hab_id}", exc.detail)
        if isinstance(exc, NameNotConfirmed):
            return _habilitations_with_error(request, f"notice-{hab_id}-organisation", exc.detail)
        return None

    refused = await in_transaction_or_refusal(request, work, refusal)
    if isinstance(refused, Response):
        return refused
    return redirect(
        request, f"/habilitations?preavis=1#habilitation-{hab_id}", notice="notice_given"
    )


async def _rotate_secret(request: Request, form: FormData, _: Any) -> Response:
    """A new client secret for the technical contact, collected once on /identifiants; the
    old one stops working on the next token request."""
    hab_id = request.path_params["habilitation_id"]
    hp = portal_of(request)

    def work(session: Session, user: User, now: dt.datetime) -> None:
        hab = _member_habilitation(session, user, hab_id)
        management.rotate_client_secret(
            session, hab, user, now=now, master=hp.master, mailer=hp.mailer
        )

    if not checked(form, "confirm"):
        return await _habilitations_with_error(
            request,
            f"secret-{hab_id}-confirm",
            "Cochez la case : l'ancien secret cessera aussitôt de fonctionner.",
        )
    await in_transaction(request, work)
    return redirect(request, "/identifiants?renouvele=1", notice="secret_rotated")


start_update = csrf_protected(_start_update)


give_notice = csrf_protected(_give_notice)


rotate_secret = csrf_protected(_rotate_secret)
