"""Who may do what: the parties to a habilitation request (members of its organisation,
instructors of another one) and the one table of the provider's staff permissions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from sqlalchemy.orm import Session

from guichet.accounts.models import ProviderRole, User
from guichet.accounts.service import email_key
from guichet.habilitation.errors import HabilitationActionRefused, RequestForbidden, RequestNotFound
from guichet.habilitation.lifecycle import RequestAction, contact_email, last_decided_request
from guichet.habilitation.models import Habilitation
from guichet.habilitation.request_models import HabilitationRequest

# --- who is who on a request ------------------------------------------------------------


class Party(StrEnum):
    MEMBER = "member"  # a member of the request's organisation
    INSTRUCTOR = "instructor"  # an instructor of another organisation than the request's
    EITHER = "either"


WHO: Final[Mapping[RequestAction, Party]] = {
    RequestAction.SUBMIT: Party.MEMBER,
    RequestAction.REQUEST_CHANGES: Party.INSTRUCTOR,
    RequestAction.VALIDATE: Party.INSTRUCTOR,
    RequestAction.REFUSE: Party.INSTRUCTOR,
    RequestAction.ARCHIVE: Party.EITHER,
}


def is_member(user: User, request: HabilitationRequest) -> bool:
    return any(m.organisation_id == request.organisation_id for m in user.memberships)


def is_instructor(user: User) -> bool:
    return any(g.role is ProviderRole.INSTRUCTOR for g in user.provider_roles)


def is_staff(user: User) -> bool:
    return bool(user.provider_roles)


def may_read(user: User, request: HabilitationRequest) -> bool:
    return is_member(user, request) or is_staff(user)


def may_decide(user: User, request: HabilitationRequest) -> bool:
    """An instructor, never on a request of an organisation they belong to."""
    return is_instructor(user) and not is_member(user, request)


def check_party(user: User, request: HabilitationRequest, party: Party) -> None:
    if not may_read(user, request):
        raise RequestNotFound()
    if party is Party.MEMBER and not is_member(user, request):
        raise RequestForbidden("Seuls les membres de l'organisation demandeuse peuvent agir ici.")
    if party is Party.INSTRUCTOR and not may_decide(user, request):
        raise RequestForbidden(
            "Seul un instructeur étranger à l'organisation demandeuse peut décider."
        )
    if party is Party.EITHER and not (is_member(user, request) or may_decide(user, request)):
        raise RequestForbidden()


# --- the staff ----------------------------------------------------------------------------


class StaffAction(StrEnum):
    """What the provider's staff do on the portal; each is allowed to the roles of
    ``STAFF_PERMISSIONS`` and checked once, by ``check_staff``."""

    VIEW = "view"  # the list of every habilitation and a habilitation's page
    INSTRUCT = "instruct"  # the request queue, comments and decisions
    SUSPEND = "suspend"
    RESUME = "resume"
    NOTICE = "notice"  # termination with two months' notice [000 §14]
    TERMINATE = "terminate"  # immediate termination for security [000 §14]
    ROTATE_SECRET = "rotate_secret"  # noqa: S105 - an action's name, not a secret
    MANAGE_ACCOUNTS = "manage_accounts"  # disable, enable, remove staff accounts (issue 12)


_ALL_STAFF: Final = frozenset(ProviderRole)

# The one table of who among the staff does what (SPEC §2 roles). Instructors instruct and
# manage what they validated; operators run the service (suspend, resume); the security
# officer stops an exchange at once or suspends it; the administrator manages accounts and
# may suspend or resume, never terminate for security: that is the security officer's call.
STAFF_PERMISSIONS: Final[Mapping[StaffAction, frozenset[ProviderRole]]] = {
    StaffAction.VIEW: _ALL_STAFF,
    StaffAction.INSTRUCT: frozenset({ProviderRole.INSTRUCTOR}),
    StaffAction.SUSPEND: frozenset(
        {
            ProviderRole.INSTRUCTOR,
            ProviderRole.OPERATOR,
            ProviderRole.SECURITY_OFFICER,
            ProviderRole.ADMINISTRATOR,
        }
    ),
    StaffAction.RESUME: frozenset(
        {ProviderRole.INSTRUCTOR, ProviderRole.OPERATOR, ProviderRole.ADMINISTRATOR}
    ),
    StaffAction.NOTICE: frozenset({ProviderRole.INSTRUCTOR, ProviderRole.ADMINISTRATOR}),
    StaffAction.TERMINATE: frozenset({ProviderRole.SECURITY_OFFICER}),
    StaffAction.ROTATE_SECRET: frozenset({ProviderRole.OPERATOR}),
    StaffAction.MANAGE_ACCOUNTS: frozenset({ProviderRole.ADMINISTRATOR}),
}

STAFF_ACTION_LABELS: Final = {
    StaffAction.VIEW: "consulter les habilitations",
    StaffAction.INSTRUCT: "instruire les demandes",
    StaffAction.SUSPEND: "suspendre une habilitation",
    StaffAction.RESUME: "rétablir une habilitation",
    StaffAction.NOTICE: "résilier une habilitation avec préavis",
    StaffAction.TERMINATE: "résilier immédiatement une habilitation",
    StaffAction.ROTATE_SECRET: "renouveler un secret",
    StaffAction.MANAGE_ACCOUNTS: "gérer les comptes des agents",
}


@dataclass(frozen=True)
class ConsoleActor:
    """Whoever runs the ``guichet`` command: they hold the database and the master secret,
    so every staff action is theirs; ``name`` is what the history records."""

    name: str = "operator"


Actor = User | ConsoleActor


def actor_label(actor: Actor) -> str:
    return actor.name if isinstance(actor, ConsoleActor) else f"user:{actor.id}"


def staff_roles(actor: Actor) -> frozenset[ProviderRole]:
    if isinstance(actor, ConsoleActor):
        return _ALL_STAFF
    return frozenset(g.role for g in actor.provider_roles)


def may(actor: Actor, action: StaffAction) -> bool:
    return bool(staff_roles(actor) & STAFF_PERMISSIONS[action])


def check_staff(actor: Actor, action: StaffAction) -> None:
    if not may(actor, action):
        raise HabilitationActionRefused(
            f"Votre rôle ne permet pas de {STAFF_ACTION_LABELS[action]}."
            if staff_roles(actor)
            else "Réservé aux agents du fournisseur de données."
        )


def staff_actions(actor: Actor) -> frozenset[StaffAction]:
    """What the pages offer this person (the routes check again through the services)."""
    return frozenset(a for a in StaffAction if may(actor, a))


def is_party(actor: Actor, hab: Habilitation) -> bool:
    """A member of the habilitation's organisation."""
    return isinstance(actor, User) and any(
        m.organisation_id == hab.organisation_id for m in actor.memberships
    )


def is_technical_contact(session: Session, user: User, hab: Habilitation) -> bool:
    """[000 §4] the credentials are the technical contact's: the verified member of the
    organisation whose address the last validated request names as such."""
    email = contact_email(last_decided_request(session, hab), "technical")
    return (
        email is not None
        and user.email_verified_at is not None
        and user.email_key == email_key(email)
        and is_party(user, hab)
    )
