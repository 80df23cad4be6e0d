"""What "Mon compte" shows each role after signing in: the partner's next step on each of
their organisations' requests, the instructor's queue, and (from the account view) the
technical contact's credentials to collect."""

from __future__ import annotations

import datetime as dt
from typing import Any, Final

from sqlalchemy.orm import Session

from guichet.accounts.models import User
from guichet.application import issuance as service
from guichet.application.permissions import is_instructor
from guichet.habilitation.lifecycle import DisplayStatus, display_status
from guichet.portal.instruction import organisations
from guichet.portal.requests.views import summary

# A request's status → the partner's next step, as a sentence.
NEXT_STEPS: Final = {
    DisplayStatus.DRAFT: "Complétez votre demande, puis soumettez-la",
    DisplayStatus.CHANGES_REQUESTED: "Modifications demandées : complétez votre demande",
    DisplayStatus.SUBMITTED: "En attente d'instruction",
}
QUEUE_PREVIEW: Final = 5


def role_home(session: Session, user: User, now: dt.datetime) -> dict[str, Any]:
    """The sections of the home for ``user``'s roles (empty ones are not shown)."""
    home: dict[str, Any] = {"next_steps": [], "queue": None}
    orgs = {m.organisation_id for m in user.memberships}
    if orgs:
        for found in service.list_requests(session, user):
            shown = display_status(found, now)
            if found.organisation_id in orgs and shown in NEXT_STEPS:
                home["next_steps"].append({**summary(found, now), "step": NEXT_STEPS[shown]})
    if is_instructor(user):
        waiting = [
            r
            for r in service.list_requests(session, user)
            if display_status(r, now) is DisplayStatus.SUBMITTED
        ]
        named = organisations(session, {r.organisation_id for r in waiting})
        rows = sorted(
            (summary(r, now) | named.get(r.organisation_id, {}) for r in waiting),
            key=lambda row: row["age"] or 0,
            reverse=True,
        )
        home["queue"] = {"count": len(rows), "rows": rows[:QUEUE_PREVIEW]}
    return home
