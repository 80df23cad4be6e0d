"""Whether a request's contacts have a verified address, and the links that confirm one.

Issue 4 §2 asks for each contact of a request (controller, DPO, technical contact) with a
verified email. A member of the request's organisation whose account address is verified
counts as confirmed. The technical contact must be such a member: they collect the
credentials on the portal [000 §4]. The controller and the DPO need no account: when the
contacts block names an address that is not confirmed, the platform mails it a single-use,
expiring link (``ContactConfirmation``, its SHA-256 only stored); following it confirms the
address for every request of that organisation, never for another organisation.

The request keeps each contact's state in its data (``contacts.<role>.verified``), so that
the block checks stay free of database reads; it is recomputed on save, at submission, and
for the organisation's open requests when an address gets confirmed.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from guichet.accounts import mails
from guichet.accounts.errors import AccountTokenInvalid, TooSoon
from guichet.accounts.models import ContactConfirmation, Membership, User
from guichet.accounts.service import AccountService, email_key
from guichet.accounts.tokens import find_live, spend, token_columns
from guichet.clock import utc
from guichet.db import transaction
from guichet.errors import BadRequest
from guichet.habilitation.blocks import (
    CONTACT_LABELS,
    CONTACT_ROLES,
    Block,
    Contacts,
    valid_email,
)
from guichet.habilitation.errors import RequestNotFound
from guichet.habilitation.models import Organisation
from guichet.habilitation.request_models import EDITABLE, HabilitationRequest
from guichet.logs import event
from guichet.mail import Mail

log = logging.getLogger(__name__)

# The technical contact is not here: a link proves a mailbox, not a portal account.
CONFIRMED_BY_LINK: Final = ("controller", "dpo")
CONFIRMATION_LIFETIME: Final = dt.timedelta(days=7)
RESEND_AFTER: Final = dt.timedelta(minutes=1)
CONFIRMATION_PATH: Final = "/contacts/confirmation"


class ContactStatus(StrEnum):
    CONFIRMED = "confirmed"
    PENDING = "pending"  # a link was sent and can still be used
    UNCONFIRMED = "unconfirmed"  # no usable link (none sent, or expired)
    NOT_MEMBER = "not_member"  # technical contact without a verified account here


@dataclass(frozen=True)
class ContactState:
    role: str
    email: str
    status: ContactStatus
    sent_at: dt.datetime | None
    may_resend: bool


@dataclass(frozen=True)
class ConfirmedContact:
    organisation_name: str
    email: str


def verified_member(session: Session, organisation_id: uuid.UUID, key: str) -> bool:
    found = session.scalar(
        select(User.id)
        .join(Membership, Membership.user_id == User.id)
        .where(
            User.email_key == key,
            User.email_verified_at.is_not(None),
            Membership.organisation_id == organisation_id,
        )
        .limit(1)
    )
    return found is not None


def confirmed_address(session: Session, organisation_id: uuid.UUID, key: str) -> bool:
    found = session.scalar(
        select(ContactConfirmation.id)
        .where(
            ContactConfirmation.organisation_id == organisation_id,
            ContactConfirmation.email_key == key,
            ContactConfirmation.used_at.is_not(None),
        )
        .limit(1)
    )
    return found is not None


def contact_verified(session: Session, organisation_id: uuid.UUID, role: str, address: str) -> bool:
    """Whether the contact ``role`` of a request of this organisation may be ``address``."""
    if not address or not valid_email(address):
        return False
    key = email_key(address)
    if verified_member(session, organisation_id, key):
        return True
    return role in CONFIRMED_BY_LINK and confirmed_address(session, organisation_id, key)


def refresh_contacts(session: Session, request: HabilitationRequest) -> None:
    """Recomputes ``contacts.<role>.verified`` of an editable request (a submitted one keeps
    what was submitted)."""
    if request.status not in EDITABLE:
        return
    data = dict(request.data or {})
    stored = data.get(Block.CONTACTS.value)
    if not isinstance(stored, dict):
        return
    contacts = Contacts.read(stored)
    for role, contact in contacts.named():
        address = contact.email
        contact.verified = isinstance(address, str) and contact_verified(
            session, request.organisation_id, role, address
        )
    fresh = contacts.stored()
    if fresh != stored:
        # A new dict, so that the JSON column sees the change.
        request.data = {**data, Block.CONTACTS.value: fresh}
        session.flush()


def refresh_organisation_requests(session: Session, organisation_id: uuid.UUID) -> None:
    for request in session.scalars(
        select(HabilitationRequest).where(
            HabilitationRequest.organisation_id == organisation_id,
            HabilitationRequest.status.in_(EDITABLE),
        )
    ):
        refresh_contacts(session, request)


def _latest_link(
    session: Session, organisation_id: uuid.UUID, key: str
) -> ContactConfirmation | None:
    return session.scalar(
        select(ContactConfirmation)
        .where(
            ContactConfirmation.organisation_id == organisation_id,
            ContactConfirmation.email_key == key,
            ContactConfirmation.used_at.is_(None),
        )
        .order_by(ContactConfirmation.created_at.desc())
        .limit(1)
    )


def contact_states(
    session: Session, request: HabilitationRequest, now: dt.datetime
) -> dict[str, ContactState]:
    """Each named contact's state, computed now (what the request page shows)."""
    contacts = Contacts.read((request.data or {}).get(Block.CONTACTS.value))
    states: dict[str, ContactState] = {}
    for role in CONTACT_ROLES:
        address = contacts.contact(role).email
        if not isinstance(address, str) or not valid_email(address):
            continue
        latest = _latest_link(session, request.organisation_id, email_key(address))
        sent_at = utc(latest.created_at) if latest else None
        if contact_verified(session, request.organisation_id, role, address):
            status = ContactStatus.CONFIRMED
        elif role not in CONFIRMED_BY_LINK:
            status = ContactStatus.NOT_MEMBER
        elif latest is not None and utc(latest.expires_at) > now:
            status = ContactStatus.PENDING
        else:
            status = ContactStatus.UNCONFIRMED
        states[role] = ContactState(
            role=role,
            email=address,
            status=status,
            sent_at=sent_at,
            may_resend=status in {ContactStatus.PENDING, ContactStatus.UNCONFIRMED}
            and (sent_at is None or now - sent_at >= RESEND_AFTER),
        )
    return states


def issue_link(
    session: Session,
    organisation_id: uuid.UUID,
    role: str,
    address: str,
    requested_by: uuid.UUID | None,
    now: dt.datetime,
) -> tuple[str, ContactConfirmation]:
    """A new confirmation link for ``address`` in this organisation: the secret (for the
    mail) and its row (which holds only the hash)."""
    secret, columns = token_columns(now, CONFIRMATION_LIFETIME)
    row = ContactConfirmation(
        organisation_id=organisation_id,
        email=address,
        email_key=email_key(address),
        contact_role=role,
        requested_by=requested_by,
        **columns,
    )
    session.add(row)
    session.flush()
    event(
        log,
        "accounts.contact_confirmation_sent",
        organisation=organisation_id,
        confirmation=row.id,
        role=role,
    )
    return secret, row


def confirm_link(session: Session, secret: str, now: dt.datetime) -> ContactConfirmation:
    """The contact followed the link: the address is confirmed for its organisation, and the
    organisation's open requests see it. Unknown, used or expired: ``AccountTokenInvalid``."""
    row = find_live(session, ContactConfirmation, secret, now)
    if row is None:
        raise AccountTokenInvalid()
    spend(session, row, now)
    refresh_organisation_requests(session, row.organisation_id)
    event(log, "accounts.contact_confirmed", confirmation=row.id, role=row.contact_role)
    return row


class ContactService:
    """Confirmation links for request contacts, over the account service's database, clock
    and mailer."""

    def __init__(self, accounts: AccountService) -> None:
        self.accounts = accounts

    def _request_of_member(
        self, session: Session, request_id: uuid.UUID, user_id: uuid.UUID
    ) -> HabilitationRequest:
        request = session.get(HabilitationRequest, request_id)
        if request is None or not session.scalar(
            select(Membership.id)
            .where(
                Membership.user_id == user_id,
                Membership.organisation_id == request.organisation_id,
            )
            .limit(1)
        ):
            raise RequestNotFound("Demande introuvable.")
        return request

    def _link_mail(
        self,
        session: Session,
        organisation: Organisation,
        role: str,
        address: str,
        requested_by: uuid.UUID,
        now: dt.datetime,
    ) -> Mail:
        secret, row = issue_link(session, organisation.id, role, address, requested_by, now)
        return mails.contact_confirmation(
            address,
            organisation.name,
            CONTACT_LABELS[role],
            self.accounts.link(CONFIRMATION_PATH, token=secret),
            utc(row.expires_at),
            str(row.id),
        )

    def send_for_request(self, request_id: uuid.UUID, user_id: uuid.UUID) -> int:
        """After the contacts block was saved: a link to each controller or DPO address that
        is neither confirmed nor waiting on a usable link. Returns how many were sent."""
        now = self.accounts.clock.now()
        outgoing: list[Mail] = []
        with transaction(self.accounts.session_factory) as session:
            request = self._request_of_member(session, request_id, user_id)
            organisation = session.get_one(Organisation, request.organisation_id)
            contacts = Contacts.read((request.data or {}).get(Block.CONTACTS.value))
            asked: set[str] = set()
            for role in CONFIRMED_BY_LINK:
                address = contacts.contact(role).email
                if not isinstance(address, str) or not valid_email(address):
                    continue
                key = email_key(address)
                if key in asked or contact_verified(session, organisation.id, role, address):
                    continue
                latest = _latest_link(session, organisation.id, key)
                if latest is not None and utc(latest.expires_at) > now:
                    continue
                asked.add(key)
                outgoing.append(self._link_mail(session, organisation, role, address, user_id, now))
        self.accounts.deliver(outgoing)
        return len(outgoing)

    def resend(self, request_id: uuid.UUID, user_id: uuid.UUID, role: str) -> None:
        """A new link to the ``role`` contact (the previous ones stay usable until they
        expire); refused a minute after the last one."""
        now = self.accounts.clock.now()
        with transaction(self.accounts.session_factory) as session:
            request = self._request_of_member(session, request_id, user_id)
            state = contact_states(session, request, now).get(role)
            if role not in CONFIRMED_BY_LINK or state is None:
                raise BadRequest("Ce contact ne se confirme pas par courriel.", field="contacts")
            if state.status is ContactStatus.CONFIRMED:
                raise BadRequest("Cette adresse est déjà confirmée.", field=f"contacts.{role}")
            if not state.may_resend:
                raise TooSoon()
            organisation = session.get_one(Organisation, request.organisation_id)
            mail = self._link_mail(session, organisation, role, state.email, user_id, now)
        self.accounts.deliver([mail])

    def confirm(self, token: str) -> ConfirmedContact:
        """The contact followed the link: the address is confirmed for the organisation."""
        now = self.accounts.clock.now()
        with transaction(self.accounts.session_factory) as session:
            row = confirm_link(session, token, now)
            return ConfirmedContact(row.organisation.name, row.email)
