"""Request contacts with a verified address (issue 4 §2): the confirmation link mailed to the
controller and the DPO, its single use and expiry, its scope (one organisation), resending,
and submission refused until every contact is confirmed."""

from __future__ import annotations

import copy
import datetime as dt
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from guichet.accounts.contacts import (
    CONFIRMATION_LIFETIME,
    RESEND_AFTER,
    ContactService,
    ContactStatus,
    contact_states,
)
from guichet.accounts.errors import AccountTokenInvalid, TooSoon
from guichet.accounts.models import ContactConfirmation
from guichet.accounts.service import AccountService
from guichet.application.issuance import RequestInvalid, save_block, start_request, submit
from guichet.clock import FrozenClock
from guichet.db import transaction
from guichet.errors import BadRequest
from guichet.habilitation.errors import RequestNotFound
from guichet.habilitation.request_models import HabilitationRequest, RequestStatus
from guichet.habilitation.validation import Block
from guichet.mail.outbox import Outbox
from guichet.pki import ensure_local_pki, issue_client_certificate
from guichet.secrets import hash_secret
from tests.unit.accounts.conftest import link_token
from tests.unit.habilitation.support import World, complete_data, fill, make_world, user

CONTROLLER = "responsable@ville-a.fr"  # named by the requests here, confirmed nowhere yet
LINK = "/contacts/confirmation"


@pytest.fixture
def world(session_factory: sessionmaker[Session], clock: FrozenClock) -> World:
    with transaction(session_factory) as s:
        return make_world(s, clock.now())


@pytest.fixture
def cert_pem(tmp_path: Path, clock: FrozenClock) -> str:
    pki = ensure_local_pki(tmp_path / "pki", clock.now(), ["127.0.0.1"])
    cert, _key = issue_client_certificate(pki, "qf client", "Ville A", 365, clock.now())
    return cert.decode()


@pytest.fixture
def contacts(service: AccountService) -> ContactService:
    return ContactService(service)


def data_with(cert_pem: str, controller: str) -> dict[str, dict[str, Any]]:
    data = complete_data(cert_pem)
    data["contacts"]["controller"]["email"] = controller
    return data


def new_request(
    session_factory: sessionmaker[Session],
    world: World,
    now: dt.datetime,
    data: dict[str, dict[str, Any]],
    *,
    org: str = "a",
) -> uuid.UUID:
    with transaction(session_factory) as s:
        who = user(s, world.applicant if org == "a" else world.stranger)
        request = start_request(s, who, world.org_a if org == "a" else world.org_b, now=now)
        fill(s, request, who, copy.deepcopy(data), now)
        return request.id


def controller_flag(session_factory: sessionmaker[Session], request_id: uuid.UUID) -> Any:
    with session_factory() as s:
        found = s.get_one(HabilitationRequest, request_id)
        return found.data["contacts"]["controller"]["verified"]


def try_submit(
    session_factory: sessionmaker[Session], world: World, request_id: uuid.UUID, now: dt.datetime
) -> None:
    with transaction(session_factory) as s:
        found = s.get_one(HabilitationRequest, request_id)
        submit(s, found, user(s, world.applicant), now=now)


def test_the_controller_confirms_by_the_mailed_link_then_the_request_may_be_submitted(
    contacts: ContactService,
    world: World,
    cert_pem: str,
    outbox: Outbox,
    session_factory: sessionmaker[Session],
    clock: FrozenClock,
) -> None:
    request_id = new_request(session_factory, world, clock.now(), data_with(cert_pem, CONTROLLER))
    assert controller_flag(session_factory, request_id) is False
    assert contacts.send_for_request(request_id, world.applicant) == 1
    mail = outbox.get(outbox.list()[0].id)
    assert mail is not None
    assert mail.entry.to == CONTROLLER
    assert "responsable de traitement" in mail.text
    assert "Ville A" in mail.text
    # Saving the block again does not mail again while the link is usable.
    assert contacts.send_for_request(request_id, world.applicant) == 0
    with pytest.raises(RequestInvalid) as refused:
        try_submit(session_factory, world, request_id, clock.now())
    assert [e.field for e in refused.value.errors] == ["contacts.controller.email"]

    token = link_token(outbox, LINK)
    with session_factory() as s:  # only the hash is stored
        assert hash_secret(token) in s.scalars(select(ContactConfirmation.token_hash)).all()
    confirmed = contacts.confirm(token)
    assert (confirmed.email, confirmed.organisation_name) == (CONTROLLER, "Ville A")
    # The open request sees it at once, and may be submitted.
    assert controller_flag(session_factory, request_id) is True
    try_submit(session_factory, world, request_id, clock.now())
    with session_factory() as s:
        assert s.get_one(HabilitationRequest, request_id).status is RequestStatus.SUBMITTED


def test_a_link_serves_once(
    contacts: ContactService,
    world: World,
    cert_pem: str,
    outbox: Outbox,
    session_factory: sessionmaker[Session],
    clock: FrozenClock,
) -> None:
    request_id = new_request(session_factory, world, clock.now(), data_with(cert_pem, CONTROLLER))
    contacts.send_for_request(request_id, world.applicant)
    token = link_token(outbox, LINK)
    contacts.confirm(token)
    with pytest.raises(AccountTokenInvalid):
        contacts.confirm(token)


@pytest.mark.parametrize("token", ["", "x", "a" * 500])
def test_unknown_links_are_refused(contacts: ContactService, token: str) -> None:
    with pytest.raises(AccountTokenInvalid):
        contacts.confirm(token)


def test_a_link_expires_and_a_new_one_goes_on_the_next_save(
    contacts: ContactService,
    world: World,
    cert_pem: str,
    outbox: Outbox,
    session_factory: sessionmaker[Session],
    clock: FrozenClock,
) -> None:
    request_id = new_request(session_factory, world, clock.now(), data_with(cert_pem, CONTROLLER))
    contacts.send_for_request(request_id, world.applicant)
    token = link_token(outbox, LINK)
    clock.advance(CONFIRMATION_LIFETIME.total_seconds())
    with pytest.raises(AccountTokenInvalid):
        contacts.confirm(token)
    with session_factory() as s:
        found = s.get_one(HabilitationRequest, request_id)
        state = contact_states(s, found, clock.now())["controller"]
        assert state.status is ContactStatus.UNCONFIRMED
        assert state.may_resend
    assert contacts.send_for_request(request_id, world.applicant) == 1
    contacts.confirm(link_token(outbox, LINK))
    assert controller_flag(session_factory, request_id) is True


def test_a_confirmation_holds_for_its_organisation_only(
    contacts: ContactService,
    world: World,
    cert_pem: str,
    outbox: Outbox,
    session_factory: sessionmaker[Session],
    clock: FrozenClock,
) -> None:
    data = data_with(cert_pem, CONTROLLER)
    of_a = new_request(session_factory, world, clock.now(), data)
    data["contacts"]["technical"]["email"] = "demandeur@societe-b.fr"
    of_b = new_request(session_factory, world, clock.now(), data, org="b")
    # B's member can neither mail A's contacts nor learn that A's request exists.
    with pytest.raises(RequestNotFound):
        contacts.send_for_request(of_a, world.stranger)
    with pytest.raises(RequestNotFound):
        contacts.resend(of_a, world.stranger, "controller")
    contacts.send_for_request(of_a, world.applicant)
    contacts.confirm(link_token(outbox, LINK))
    assert controller_flag(session_factory, of_a) is True
    assert controller_flag(session_factory, of_b) is False
    with session_factory() as s:
        state = contact_states(s, s.get_one(HabilitationRequest, of_b), clock.now())
        assert state["controller"].status is ContactStatus.UNCONFIRMED
    # B asks its own confirmation.
    assert contacts.send_for_request(of_b, world.stranger) == 1


def test_a_verified_member_is_confirmed_without_a_link(
    contacts: ContactService,
    world: World,
    cert_pem: str,
    session_factory: sessionmaker[Session],
    clock: FrozenClock,
) -> None:
    request_id = new_request(
        session_factory, world, clock.now(), data_with(cert_pem, "Demandeur@Ville-A.fr")
    )
    assert controller_flag(session_factory, request_id) is True
    assert contacts.send_for_request(request_id, world.applicant) == 0
    with session_factory() as s:
        found = s.get_one(HabilitationRequest, request_id)
        states = contact_states(s, found, clock.now())
        assert {r: st.status for r, st in states.items()} == {
            "controller": ContactStatus.CONFIRMED,
            "technical": ContactStatus.CONFIRMED,
        }


def test_the_technical_contact_must_be_a_member_and_gets_no_link(
    contacts: ContactService,
    world: World,
    cert_pem: str,
    outbox: Outbox,
    session_factory: sessionmaker[Session],
    clock: FrozenClock,
) -> None:
    data = data_with(cert_pem, "demandeur@ville-a.fr")
    data["contacts"]["technical"]["email"] = "prestataire@ailleurs.fr"
    request_id = new_request(session_factory, world, clock.now(), data)
    assert contacts.send_for_request(request_id, world.applicant) == 0
    assert outbox.list() == []
    with session_factory() as s:
        found = s.get_one(HabilitationRequest, request_id)
        assert contact_states(s, found, clock.now())["technical"].status is (
            ContactStatus.NOT_MEMBER
        )
    with pytest.raises(BadRequest):
        contacts.resend(request_id, world.applicant, "technical")
    with pytest.raises(BadRequest):
        contacts.resend(request_id, world.applicant, "controller")  # already confirmed


def test_resending_waits_a_minute_and_either_link_confirms(
    contacts: ContactService,
    world: World,
    cert_pem: str,
    outbox: Outbox,
    session_factory: sessionmaker[Session],
    clock: FrozenClock,
) -> None:
    request_id = new_request(session_factory, world, clock.now(), data_with(cert_pem, CONTROLLER))
    contacts.send_for_request(request_id, world.applicant)
    first = link_token(outbox, LINK)
    with pytest.raises(TooSoon):
        contacts.resend(request_id, world.applicant, "controller")
    clock.advance(RESEND_AFTER.total_seconds())
    contacts.resend(request_id, world.applicant, "controller")
    assert link_token(outbox, LINK) != first
    contacts.confirm(first)
    assert controller_flag(session_factory, request_id) is True


def test_submission_rechecks_a_dpo_confirmed_after_the_save(
    contacts: ContactService,
    world: World,
    cert_pem: str,
    outbox: Outbox,
    session_factory: sessionmaker[Session],
    clock: FrozenClock,
) -> None:
    data = data_with(cert_pem, "demandeur@ville-a.fr")
    data["contacts"]["dpo"] = {"name": "DPO", "email": "dpo@mutualise.fr"}
    request_id = new_request(session_factory, world, clock.now(), data)
    contacts.send_for_request(request_id, world.applicant)
    with pytest.raises(RequestInvalid) as refused:
        try_submit(session_factory, world, request_id, clock.now())
    assert [e.field for e in refused.value.errors] == ["contacts.dpo.email"]
    token = link_token(outbox, LINK)
    # Confirmed while nobody refreshes the request's data: submission looks again.
    with transaction(session_factory) as s:
        row = s.scalars(
            select(ContactConfirmation).where(ContactConfirmation.email == "dpo@mutualise.fr")
        ).one()
        row.used_at = clock.now()
    try_submit(session_factory, world, request_id, clock.now())
    with pytest.raises(AccountTokenInvalid):
        contacts.confirm(token)


def test_saving_the_block_computes_each_contact(
    world: World, cert_pem: str, session_factory: sessionmaker[Session], clock: FrozenClock
) -> None:
    request_id = new_request(session_factory, world, clock.now(), data_with(cert_pem, CONTROLLER))
    with transaction(session_factory) as s:
        found = s.get_one(HabilitationRequest, request_id)
        values = copy.deepcopy(found.data["contacts"])
        values["controller"]["verified"] = True  # a client cannot claim it
        errors = save_block(
            s, found, user(s, world.applicant), Block.CONTACTS, values, now=clock.now()
        )
        assert [e.field for e in errors] == ["contacts.controller.email"]
        assert found.data["contacts"]["controller"]["verified"] is False
