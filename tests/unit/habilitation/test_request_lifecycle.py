"""The request's transition table (every pair, allowed or not), permissions, reasons,
the diff on resubmission, comments and the two-month implicit rejection."""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from collections.abc import Callable

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from guichet.application.issuance import (
    archive,
    comment,
    comments,
    get_request,
    last_resubmission_diff,
    list_requests,
    refuse,
    request_changes,
    save_block,
    submit,
    timeline,
    validate,
)
from guichet.clock import FrozenClock
from guichet.db import transaction
from guichet.habilitation.errors import (
    ReasonRequired,
    RequestForbidden,
    RequestNotFound,
    TransitionRefused,
)
from guichet.habilitation.lifecycle import TRANSITIONS, DisplayStatus, RequestAction, display_status
from guichet.habilitation.request_models import HabilitationRequest, RequestEvent, RequestStatus
from guichet.habilitation.validation import Block
from guichet.mail.outbox import Outbox, OutboxMailer
from guichet.secrets import MasterSecret
from tests.unit.habilitation.support import World, make_world, new_complete_request, user


@pytest.fixture
def world(session_factory: sessionmaker[Session], clock: FrozenClock) -> World:
    with transaction(session_factory) as s:
        return make_world(s, clock.now())


def _request(
    factory: sessionmaker[Session], world: World, cert_pem: str, clock: FrozenClock
) -> uuid.UUID:
    with transaction(factory) as s:
        return new_complete_request(s, world, cert_pem, clock.now()).id


def _act(
    s: Session,
    request: HabilitationRequest,
    action: RequestAction,
    world: World,
    now: dt.datetime,
    master: MasterSecret,
    mailer: OutboxMailer,
) -> None:
    applicant, instructor = user(s, world.applicant), user(s, world.instructor)
    if action is RequestAction.SUBMIT:
        submit(s, request, applicant, now=now)
    elif action is RequestAction.REQUEST_CHANGES:
        request_changes(s, request, instructor, "Précisez l'usage.", now=now, mailer=mailer)
    elif action is RequestAction.VALIDATE:
        validate(s, request, instructor, "Conforme.", now=now, master=master, mailer=mailer)
    elif action is RequestAction.REFUSE:
        refuse(s, request, instructor, "Hors champ.", now=now, mailer=mailer)
    else:
        archive(s, request, applicant, "Abandon.", now=now)


@pytest.mark.parametrize(
    ("status", "action"), list(itertools.product(RequestStatus, RequestAction))
)
def test_transition_table(
    session_factory: sessionmaker[Session],
    world: World,
    cert_pem: str,
    clock: FrozenClock,
    master_secret: MasterSecret,
    mailer: OutboxMailer,
    status: RequestStatus,
    action: RequestAction,
) -> None:
    request_id = _request(session_factory, world, cert_pem, clock)
    with transaction(session_factory) as s:
        request = s.get(HabilitationRequest, request_id)
        assert request is not None
        request.status = status
        request.submitted_at = clock.now()
    target = TRANSITIONS.get((status, action))
    with transaction(session_factory) as s:
        request = s.get(HabilitationRequest, request_id)
        assert request is not None
        if target is None:
            with pytest.raises(TransitionRefused):
                _act(s, request, action, world, clock.now(), master_secret, mailer)
            return
        _act(s, request, action, world, clock.now(), master_secret, mailer)
    with session_factory() as s:
        request = s.get(HabilitationRequest, request_id)
        assert request is not None
        assert request.status is target
        last = s.scalars(
            select(RequestEvent)
            .where(RequestEvent.request_id == request_id)
            .order_by(RequestEvent.seq.desc())
        ).all()
        moved = [e for e in last if e.to_status == target.value and e.from_status == status.value]
        assert moved
        assert moved[0].actor.startswith("user:")


@pytest.mark.parametrize(
    ("action", "call"),
    [
        (RequestAction.REQUEST_CHANGES, "request_changes"),
        (RequestAction.REFUSE, "refuse"),
        (RequestAction.VALIDATE, "validate"),
    ],
)
def test_decisions_need_a_reason(
    session_factory: sessionmaker[Session],
    world: World,
    cert_pem: str,
    clock: FrozenClock,
    master_secret: MasterSecret,
    action: RequestAction,
    call: str,
) -> None:
    request_id = _request(session_factory, world, cert_pem, clock)
    with transaction(session_factory) as s:
        request = s.get(HabilitationRequest, request_id)
        assert request is not None
        submit(s, request, user(s, world.applicant), now=clock.now())
    with transaction(session_factory) as s:
        request = s.get(HabilitationRequest, request_id)
        assert request is not None
        instructor = user(s, world.instructor)
        decide: Callable[[], object] = {
            "validate": lambda: validate(
                s, request, instructor, "  ", now=clock.now(), master=master_secret
            ),
            "refuse": lambda: refuse(s, request, instructor, "", now=clock.now()),
            "request_changes": lambda: request_changes(
                s, request, instructor, " ", now=clock.now()
            ),
        }[call]
        with pytest.raises(ReasonRequired):
            decide()
        assert request.status is RequestStatus.SUBMITTED


def test_strangers_neither_read_nor_edit(
    session_factory: sessionmaker[Session], world: World, cert_pem: str, clock: FrozenClock
) -> None:
    request_id = _request(session_factory, world, cert_pem, clock)
    with transaction(session_factory) as s:
        stranger = user(s, world.stranger)
        with pytest.raises(RequestNotFound):
            get_request(s, stranger, request_id)
        assert list_requests(s, stranger) == []
        request = s.get(HabilitationRequest, request_id)
        assert request is not None
        with pytest.raises(RequestNotFound):
            save_block(s, request, stranger, Block.BASICS, {"demarche": "x"}, now=clock.now())
        with pytest.raises(RequestNotFound):
            submit(s, request, stranger, now=clock.now())
        with pytest.raises(RequestNotFound):
            timeline(s, stranger, request)
        # Members and staff see it.
        assert get_request(s, user(s, world.applicant), request_id).id == request_id
        assert [r.id for r in list_requests(s, user(s, world.instructor))] == [request_id]


def test_only_members_edit_and_submit(
    session_factory: sessionmaker[Session], world: World, cert_pem: str, clock: FrozenClock
) -> None:
    request_id = _request(session_factory, world, cert_pem, clock)
    with transaction(session_factory) as s:
        request = s.get(HabilitationRequest, request_id)
        assert request is not None
        instructor = user(s, world.instructor)
        with pytest.raises(RequestForbidden):
            save_block(s, request, instructor, Block.BASICS, {"demarche": "x"}, now=clock.now())
        with pytest.raises(RequestForbidden):
            submit(s, request, instructor, now=clock.now())


def test_an_instructor_cannot_decide_for_their_own_organisation(
    session_factory: sessionmaker[Session],
    world: World,
    cert_pem: str,
    clock: FrozenClock,
    master_secret: MasterSecret,
) -> None:
    request_id = _request(session_factory, world, cert_pem, clock)
    with transaction(session_factory) as s:
        request = s.get(HabilitationRequest, request_id)
        assert request is not None
        submit(s, request, user(s, world.applicant), now=clock.now())
    with transaction(session_factory) as s:
        request = s.get(HabilitationRequest, request_id)
        assert request is not None
        insider, partner = user(s, world.instructor_of_a), user(s, world.applicant)
        for who in (insider, partner, user(s, world.operator)):
            with pytest.raises(RequestForbidden):
                validate(s, request, who, "OK", now=clock.now(), master=master_secret)
            with pytest.raises(RequestForbidden):
                refuse(s, request, who, "Non", now=clock.now())
            with pytest.raises(RequestForbidden):
                request_changes(s, request, who, "Plus", now=clock.now())
            with pytest.raises(RequestForbidden):
                comment(s, request, who, Block.LEGAL, "Texte ?", now=clock.now())
        assert request.status is RequestStatus.SUBMITTED


def test_resubmission_records_the_diff_per_field(
    session_factory: sessionmaker[Session],
    world: World,
    cert_pem: str,
    clock: FrozenClock,
    mailer: OutboxMailer,
    outbox: Outbox,
) -> None:
    request_id = _request(session_factory, world, cert_pem, clock)
    with transaction(session_factory) as s:
        request = s.get(HabilitationRequest, request_id)
        assert request is not None
        first = submit(s, request, user(s, world.applicant), now=clock.now())
        assert first.diff is None  # nothing to compare the first submission with
    clock.advance(3600)
    with transaction(session_factory) as s:
        request = s.get(HabilitationRequest, request_id)
        assert request is not None
        instructor = user(s, world.instructor)
        comment(s, request, instructor, Block.PERIMETER, "Le RFR suffit-il ?", now=clock.now())
        request_changes(
            s, request, instructor, "Retirez le nombre de parts.", now=clock.now(), mailer=mailer
        )
    assert any("Modifications demandées" in e.subject for e in outbox.list())
    clock.advance(3600)
    with transaction(session_factory) as s:
        request = s.get(HabilitationRequest, request_id)
        assert request is not None
        applicant = user(s, world.applicant)
        perimeter = dict(request.data["perimeter"])
        perimeter["data_scopes"] = {"dgfip_rfr": "Le QF se calcule à partir du RFR."}
        perimeter["labels"] = {"dgfip_rfr": "Revenu fiscal de référence"}
        perimeter["year_scopes"] = ["dgfip_annee_n_moins_1", "dgfip_annee_n_moins_2"]
        assert save_block(s, request, applicant, Block.PERIMETER, perimeter, now=clock.now()) == []
        second = submit(s, request, applicant, now=clock.now())
    assert second.diff == {
        "perimeter.data_scopes.dgfip_nbpart": [
            "Le quotient divise le RFR par le nombre de parts.",
            None,
        ],
        "perimeter.data_scopes.dgfip_rfr": [
            "Le quotient familial se calcule à partir du RFR.",
            "Le QF se calcule à partir du RFR.",
        ],
        "perimeter.labels.dgfip_nbpart": ["Nombre de parts fiscales", None],
        "perimeter.year_scopes": [
            ["dgfip_annee_n_moins_1"],
            ["dgfip_annee_n_moins_1", "dgfip_annee_n_moins_2"],
        ],
    }
    with session_factory() as s:
        request = s.get(HabilitationRequest, request_id)
        assert request is not None
        assert {c.field for c in last_resubmission_diff(s, request)} == set(second.diff)
        names = [e.name for e in timeline(s, user(s, world.applicant), request)]
        assert names == [
            "habilitation:request:created",
            "habilitation:request:submitted",
            "habilitation:request:changes_requested",
            "habilitation:request:submitted",
        ]
        events = timeline(s, user(s, world.instructor), request)
        assert events[2].reason == "Retirez le nombre de parts."
        assert events[2].actor_id == world.instructor
        notes = comments(s, user(s, world.applicant), request)
        assert [(c.block, c.text) for c in notes] == [("perimeter", "Le RFR suffit-il ?")]


def test_no_decision_after_two_months_is_an_implicit_rejection(
    session_factory: sessionmaker[Session], world: World, cert_pem: str, clock: FrozenClock
) -> None:
    request_id = _request(session_factory, world, cert_pem, clock)
    with transaction(session_factory) as s:
        request = s.get(HabilitationRequest, request_id)
        assert request is not None
        submit(s, request, user(s, world.applicant), now=clock.now())
    submitted = clock.now()  # 2026-11-23 10:00 → implicit rejection on 2027-01-23 10:00
    with session_factory() as s:
        request = s.get(HabilitationRequest, request_id)
        assert request is not None
        just_before = dt.datetime(2027, 1, 23, 9, 59, 59, tzinfo=dt.UTC)
        assert display_status(request, just_before) is DisplayStatus.SUBMITTED
        on_time = dt.datetime(2027, 1, 23, 10, 0, tzinfo=dt.UTC)
        assert display_status(request, on_time) is DisplayStatus.IMPLICITLY_REJECTED
        assert display_status(request, submitted) is DisplayStatus.SUBMITTED
        request.status = RequestStatus.CHANGES_REQUESTED  # waiting for the partner: no clock
        assert display_status(request, on_time) is DisplayStatus.CHANGES_REQUESTED
