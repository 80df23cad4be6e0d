"""Organisation members: who belongs with which role, invitations by mail, joining.

Self sign-up creates an organisation and never joins an existing one (its members see its
requests, habilitations and calls). A second person joins by invitation: a member who may
invite (the applicant or the legal representative, ``INVITER_ROLES``; any member while the
organisation has neither) or an operator
(``guichet user member add``) names an address and a role; the mail carries a single-use,
expiring link (its SHA-256 only is stored). Following it proves the mailbox: the invitee
creates an account with that address already verified, or signs in to the account that has
it, and gets the role.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass
from typing import Final

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload
from stdnum.fr import siret as stdnum_siret

from guichet.accounts import mails
from guichet.accounts.contacts import refresh_organisation_requests
from guichet.accounts.errors import (
    FormInvalid,
    InvitationForAnotherAccount,
    InvitationInvalid,
    LastInviter,
    MayNotInvite,
    OrganisationNotFound,
)
from guichet.accounts.models import (
    PARTNER_ROLE_LABELS,
    Membership,
    OrganisationInvitation,
    PartnerRole,
    User,
)
from guichet.accounts.passwords import password_problem
from guichet.accounts.second_factor import enforce_for_user
from guichet.accounts.service import AccountService, check_email, create_user, email_key
from guichet.accounts.tokens import find_live, spend, token_columns
from guichet.clock import utc
from guichet.db import transaction
from guichet.habilitation.models import Organisation
from guichet.logs import event
from guichet.mail import Mail

log = logging.getLogger(__name__)

INVITATION_LIFETIME: Final = dt.timedelta(days=7)
# Who speaks for the organisation: the person who filed for it and its legal representative.
# The technical contact and the DPO are named by them, not the other way round.
INVITER_ROLES: Final = frozenset({PartnerRole.APPLICANT, PartnerRole.LEGAL_REPRESENTATIVE})
# Pending invitations per organisation: enough for any team, too few to spam with.
MAX_PENDING: Final = 20
INVITATION_PATH: Final = "/invitation"
HAS_ACCOUNT: Final = "Cette adresse a déjà un compte : connectez-vous pour accepter l'invitation."


@dataclass(frozen=True)
class MemberView:
    user_id: uuid.UUID
    display_name: str
    email: str
    roles: list[str]  # their labels
    since: dt.datetime
    grants: list[tuple[str, str]]  # (role, label), for the "retirer" buttons


@dataclass(frozen=True)
class InvitationView:
    id: uuid.UUID
    email: str
    role: str
    invited_by: str
    created_at: dt.datetime
    expires_at: dt.datetime
    expired: bool


@dataclass(frozen=True)
class OrganisationView:
    """What "Mon organisation" shows for one organisation."""

    id: uuid.UUID
    name: str
    siret: str
    my_roles: list[str]
    may_invite: bool
    members: list[MemberView]
    invitations: list[InvitationView]


@dataclass(frozen=True)
class InvitationPage:
    """What the invitee sees before accepting (the token holder owns the mailbox)."""

    organisation_name: str
    role: str
    email: str
    has_account: bool


@dataclass(frozen=True)
class Invited:
    invitation_id: uuid.UUID
    link: str


def _role(value: str) -> PartnerRole:
    try:
        return PartnerRole(value)
    except ValueError:
        raise FormInvalid({"role": "Choisissez un rôle de la liste."}) from None


def _roles_in(session: Session, user_id: uuid.UUID, organisation_id: uuid.UUID) -> set[PartnerRole]:
    return set(
        session.scalars(
            select(Membership.role).where(
                Membership.user_id == user_id, Membership.organisation_id == organisation_id
            )
        )
    )


def _may_invite(session: Session, roles: set[PartnerRole], organisation_id: uuid.UUID) -> bool:
    """The applicant and the legal representative invite; an organisation that has neither
    (its founder signed up as, say, its technical contact) lets every member invite, or
    nobody could ever join it."""
    if roles & INVITER_ROLES:
        return True
    if not roles:
        return False
    inviter = session.scalar(
        select(Membership.id)
        .where(
            Membership.organisation_id == organisation_id,
            Membership.role.in_(INVITER_ROLES),
        )
        .limit(1)
    )
    return inviter is None


def _check_inviter(session: Session, actor_id: uuid.UUID, organisation_id: uuid.UUID) -> User:
    """A member who may invite; a non-member learns nothing about the organisation."""
    roles = _roles_in(session, actor_id, organisation_id)
    if not roles:
        raise OrganisationNotFound()
    if not _may_invite(session, roles, organisation_id):
        raise MayNotInvite()
    return session.get_one(User, actor_id)


def _live_invitation(session: Session, token: str, now: dt.datetime) -> OrganisationInvitation:
    found = find_live(
        session, OrganisationInvitation, token, now, OrganisationInvitation.cancelled_at.is_(None)
    )
    if found is None:
        raise InvitationInvalid()
    return found


class OrganisationService:
    """Members and invitations, over the account service's database, clock and mailer."""

    def __init__(self, accounts: AccountService) -> None:
        self.accounts = accounts

    # Reading ------------------------------------------------------------------------------

    def organisations_of(self, user_id: uuid.UUID) -> list[OrganisationView]:
        now = self.accounts.clock.now()
        with self.accounts.session_factory() as session:
            mine = session.scalars(
                select(Membership)
                .where(Membership.user_id == user_id)
                .options(selectinload(Membership.organisation))
                .order_by(Membership.created_at)
            ).all()
            views: list[OrganisationView] = []
            for org_id in dict.fromkeys(m.organisation_id for m in mine):
                organisation = next(m.organisation for m in mine if m.organisation_id == org_id)
                roles = {m.role for m in mine if m.organisation_id == org_id}
                may_invite = _may_invite(session, roles, org_id)
                views.append(
                    OrganisationView(
                        id=org_id,
                        name=organisation.name,
                        siret=organisation.siret,
                        my_roles=[PARTNER_ROLE_LABELS[r] for r in PartnerRole if r in roles],
                        may_invite=may_invite,
                        members=self._members(session, org_id),
                        invitations=self._pending(session, org_id, now),
                    )
                )
            return views

    def _members(self, session: Session, organisation_id: uuid.UUID) -> list[MemberView]:
        rows = session.execute(
            select(Membership, User)
            .join(User, User.id == Membership.user_id)
            .where(Membership.organisation_id == organisation_id)
            .order_by(Membership.created_at)
        ).all()
        people: dict[uuid.UUID, MemberView] = {}
        for membership, user in rows:
            if user.id not in people:
                people[user.id] = MemberView(
                    user.id, user.display_name, user.email, [], utc(membership.created_at), []
                )
            label = PARTNER_ROLE_LABELS[membership.role]
            people[user.id].roles.append(label)
            people[user.id].grants.append((membership.role.value, label))
        return list(people.values())

    def _pending(
        self, session: Session, organisation_id: uuid.UUID, now: dt.datetime
    ) -> list[InvitationView]:
        rows = session.execute(
            select(OrganisationInvitation, User.display_name)
            .outerjoin(User, User.id == OrganisationInvitation.invited_by)
            .where(
                OrganisationInvitation.organisation_id == organisation_id,
                OrganisationInvitation.used_at.is_(None),
                OrganisationInvitation.cancelled_at.is_(None),
            )
            .order_by(OrganisationInvitation.created_at)
        ).all()
        return [
            InvitationView(
                id=inv.id,
                email=inv.email,
                role=PARTNER_ROLE_LABELS[inv.role],
                invited_by=inviter or "Le fournisseur de données",
                created_at=utc(inv.created_at),
                expires_at=utc(inv.expires_at),
                expired=utc(inv.expires_at) <= now,
            )
            for inv, inviter in rows
        ]

    # Inviting -----------------------------------------------------------------------------

    def invite(
        self, actor_id: uuid.UUID, organisation_id: uuid.UUID, email: str, role: str
    ) -> Invited:
        """A member who may invite asks ``email`` to join with ``role``."""
        with transaction(self.accounts.session_factory) as session:
            inviter = _check_inviter(session, actor_id, organisation_id)
            organisation = session.get_one(Organisation, organisation_id)
            invited, mail = self._invite(session, organisation, email, role, inviter)
        self.accounts.deliver([mail])
        return invited

    def invite_by_siret(self, siret: str, email: str, role: str) -> Invited:
        """An operator's invitation (command line): no inviting member is needed."""
        compact = stdnum_siret.compact(siret)
        with transaction(self.accounts.session_factory) as session:
            organisation = session.scalar(select(Organisation).where(Organisation.siret == compact))
            if organisation is None:
                raise FormInvalid({"siret": "Aucune organisation inscrite avec ce SIRET."})
            invited, mail = self._invite(session, organisation, email, role, None)
        self.accounts.deliver([mail])
        return invited

    def _invite(
        self,
        session: Session,
        organisation: Organisation,
        email: str,
        role_value: str,
        inviter: User | None,
    ) -> tuple[Invited, Mail]:
        errors: dict[str, str] = {}
        address = check_email(email) if len(email) <= 320 else None
        if address is None:
            errors["email"] = "Saisissez une adresse électronique valide."
        try:
            role = _role(role_value)
        except FormInvalid as exc:
            errors.update(exc.errors)
        if errors:
            raise FormInvalid(errors)
        assert address is not None
        now = self.accounts.clock.now()
        key = email_key(address)
        existing = session.scalar(select(User.id).where(User.email_key == key))
        if existing is not None and role in _roles_in(session, existing, organisation.id):
            raise FormInvalid(
                {"email": "Cette personne est déjà membre de l'organisation avec ce rôle."}
            )
        pending = session.scalars(
            select(OrganisationInvitation).where(
                OrganisationInvitation.organisation_id == organisation.id,
                OrganisationInvitation.used_at.is_(None),
                OrganisationInvitation.cancelled_at.is_(None),
                OrganisationInvitation.expires_at > now,
            )
        ).all()
        # Inviting the same address to the same role again replaces the earlier link.
        for earlier in pending:
            if earlier.email_key == key and earlier.role is role:
                earlier.cancelled_at = now
        if sum(1 for p in pending if p.cancelled_at is None) >= MAX_PENDING:
            raise FormInvalid(
                {"email": f"Plus de {MAX_PENDING} invitations en attente : annulez-en d'abord."}
            )
        secret, columns = token_columns(now, INVITATION_LIFETIME)
        invitation = OrganisationInvitation(
            organisation_id=organisation.id,
            email=address,
            email_key=key,
            role=role,
            invited_by=inviter.id if inviter else None,
            **columns,
        )
        session.add(invitation)
        session.flush()
        link = self.accounts.link(INVITATION_PATH, token=secret)
        mail = mails.invitation(
            address,
            organisation.name,
            PARTNER_ROLE_LABELS[role],
            inviter.display_name if inviter else None,
            link,
            utc(invitation.expires_at),
            str(invitation.id),
        )
        event(
            log,
            "accounts.invitation_sent",
            organisation=organisation.id,
            invitation=invitation.id,
            role=role.value,
            by=inviter.id if inviter else "operator",
        )
        return Invited(invitation.id, link), mail

    def cancel(self, actor_id: uuid.UUID, invitation_id: uuid.UUID) -> None:
        now = self.accounts.clock.now()
        with transaction(self.accounts.session_factory) as session:
            invitation = session.get(OrganisationInvitation, invitation_id)
            if invitation is None:
                raise OrganisationNotFound("Invitation introuvable.")
            _check_inviter(session, actor_id, invitation.organisation_id)
            if invitation.used_at is not None or invitation.cancelled_at is not None:
                raise InvitationInvalid("Cette invitation a déjà été acceptée ou annulée.")
            invitation.cancelled_at = now
            event(log, "accounts.invitation_cancelled", invitation=invitation.id, by=actor_id)

    def remove_role(
        self, actor_id: uuid.UUID, organisation_id: uuid.UUID, user_id: uuid.UUID, role: str
    ) -> None:
        """An inviter takes a role away from a member (a member may also give up their own);
        the organisation always keeps someone who may invite. A member left without any role
        is no longer a member."""
        try:
            taken = PartnerRole(role)
        except ValueError:
            raise OrganisationNotFound("Membre introuvable.") from None
        with transaction(self.accounts.session_factory) as session:
            mine = _roles_in(session, actor_id, organisation_id)
            if not mine:
                raise OrganisationNotFound()
            if actor_id != user_id and not _may_invite(session, mine, organisation_id):
                raise MayNotInvite()
            membership = session.scalar(
                select(Membership).where(
                    Membership.user_id == user_id,
                    Membership.organisation_id == organisation_id,
                    Membership.role == taken,
                )
            )
            if membership is None:
                raise OrganisationNotFound("Membre introuvable.")
            if taken in INVITER_ROLES:
                others = session.scalar(
                    select(Membership.id)
                    .where(
                        Membership.organisation_id == organisation_id,
                        Membership.role.in_(INVITER_ROLES),
                        Membership.id != membership.id,
                    )
                    .limit(1)
                )
                if others is None:
                    raise LastInviter()
            session.delete(membership)
            session.flush()
            # A draft naming this person as a contact sees it (a technical contact must be
            # a member).
            refresh_organisation_requests(session, organisation_id)
            event(
                log,
                "accounts.member_role_removed",
                organisation=organisation_id,
                user=user_id,
                role=taken.value,
                by=actor_id,
            )

    # Accepting ----------------------------------------------------------------------------

    def invitation(self, token: str) -> InvitationPage:
        """What the link shows; ``InvitationInvalid`` when it can no longer be used."""
        with self.accounts.session_factory() as session:
            found = _live_invitation(session, token, self.accounts.clock.now())
            has_account = session.scalar(select(User.id).where(User.email_key == found.email_key))
            return InvitationPage(
                organisation_name=found.organisation.name,
                role=PARTNER_ROLE_LABELS[found.role],
                email=found.email,
                has_account=has_account is not None,
            )

    def accept_with_new_account(self, token: str, display_name: str, password: str) -> uuid.UUID:
        """Creates the invitee's account, its address verified by the link, with the role.

        The form is checked before the link is spent, so a refused password keeps it usable.
        """
        now = self.accounts.clock.now()
        try:
            with transaction(self.accounts.session_factory) as session:
                invitation = _live_invitation(session, token, now)
                errors: dict[str, str] = {}
                if not display_name.strip() or len(display_name.strip()) > 200:
                    errors["display_name"] = "Indiquez vos prénom et nom (200 caractères au plus)."
                if problem := password_problem(password, invitation.email):
                    errors["password"] = problem
                if errors:
                    raise FormInvalid(errors)
                if session.scalar(select(User.id).where(User.email_key == invitation.email_key)):
                    raise FormInvalid({"password": HAS_ACCOUNT})
                user = create_user(
                    session,
                    invitation.email,
                    display_name,
                    now,
                    password_hash=self.accounts.passwords.hash(password),
                    verified=True,
                )
                self._join(session, invitation, user, now)
                return user.id
        except IntegrityError:
            # The address got an account in the meantime: the link is still usable.
            raise FormInvalid({"password": HAS_ACCOUNT}) from None

    def accept_as(self, token: str, user_id: uuid.UUID) -> uuid.UUID:
        """The signed-in account takes the invitation sent to its own address; returns the
        organisation."""
        now = self.accounts.clock.now()
        with transaction(self.accounts.session_factory) as session:
            invitation = _live_invitation(session, token, now)
            user = session.get_one(User, user_id)
            if user.email_key != invitation.email_key:
                raise InvitationForAnotherAccount()
            if user.email_verified_at is None:
                user.email_verified_at = now
                user.updated_at = now
            self._join(session, invitation, user, now)
            return invitation.organisation_id

    def _join(
        self, session: Session, invitation: OrganisationInvitation, user: User, now: dt.datetime
    ) -> None:
        spend(session, invitation, now)
        invitation.accepted_by = user.id
        if invitation.role not in _roles_in(session, user.id, invitation.organisation_id):
            session.add(
                Membership(
                    user_id=user.id,
                    organisation_id=invitation.organisation_id,
                    role=invitation.role,
                    created_at=now,
                )
            )
        session.flush()
        # Joining an organisation holding a FICOBA habilitation (DICP C4): a session opened
        # without a second factor ends; the person signs in again and enrols one.
        enforce_for_user(session, user.id)
        # A contact of a draft may be this person: their status changes now.
        refresh_organisation_requests(session, invitation.organisation_id)
        event(
            log,
            "accounts.invitation_accepted",
            invitation=invitation.id,
            user=user.id,
            organisation=invitation.organisation_id,
            role=invitation.role.value,
        )
