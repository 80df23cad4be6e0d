"""Who may do what to a habilitation (the staff permission table, the parties), the refusal
to resume production on an expired attestation, and the rotation of the client secret."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from guichet.accounts.models import ProviderRole
from guichet.accounts.service import create_user, grant_provider_role
from guichet.application.issuance import collect_credentials
from guichet.application.management import (
    get_habilitation,
    give_termination_notice,
    list_habilitations,
    resume_habilitation,
    rotate_client_secret,
    suspend_habilitation,
    terminate_for_security,
)
from guichet.application.permissions import STAFF_PERMISSIONS, ConsoleActor, StaffAction
from guichet.application.scheduler import watch_commitment
from guichet.clock import FrozenClock
from guichet.db import transaction
from guichet.habilitation.errors import (
    HabilitationActionRefused,
    HabilitationNotFound,
    SecurityCommitmentExpired,
    TransitionRefused,
)
from guichet.habilitation.models import (
    Environment,
    Habilitation,
    HabilitationEvent,
    HabilitationStatus,
)
from guichet.habilitation.request_models import CredentialDelivery
from guichet.mail.outbox import Outbox, OutboxMailer
from guichet.oauth.models import Client
from guichet.secrets import MasterSecret, check_secret
from tests.unit.habilitation.support import (
    World,
    make_world,
    new_complete_request,
    production_request,
    user,
    validated,
)

Service = Callable[..., Any]
ACTIONS: dict[StaffAction, Service] = {
    StaffAction.SUSPEND: suspend_habilitation,
    StaffAction.RESUME: resume_habilitation,
    StaffAction.NOTICE: give_termination_notice,
    StaffAction.TERMINATE: terminate_for_security,
}
# What the services must allow, written out here rather than read from the table: a change
# of the table that nobody meant shows up as a failing test.
EXPECTED: dict[StaffAction, set[ProviderRole]] = {
    StaffAction.SUSPEND: {
        ProviderRole.INSTRUCTOR,
        ProviderRole.OPERATOR,
        ProviderRole.SECURITY_OFFICER,
        ProviderRole.ADMINISTRATOR,
    },
    StaffAction.RESUME: {
        ProviderRole.INSTRUCTOR,
        ProviderRole.OPERATOR,
        ProviderRole.ADMINISTRATOR,
    },
    StaffAction.NOTICE: {ProviderRole.INSTRUCTOR, ProviderRole.ADMINISTRATOR},
    StaffAction.TERMINATE: {ProviderRole.SECURITY_OFFICER},
}


def _issue(
    factory: sessionmaker[Session], cert_pem: str, clock: FrozenClock, master: MasterSecret
) -> tuple[World, uuid.UUID, dict[ProviderRole, uuid.UUID]]:
    with transaction(factory) as s:
        world = make_world(s, clock.now())
        admin = create_user(s, "admin@dgfip.test", "Admin", clock.now(), verified=True)
        grant_provider_role(s, admin, ProviderRole.ADMINISTRATOR, clock.now())
        issued = validated(
            s, world, new_complete_request(s, world, cert_pem, clock.now()), clock.now(), master
        )
        staff = {
            ProviderRole.INSTRUCTOR: world.instructor,
            ProviderRole.OPERATOR: world.operator,
            ProviderRole.SECURITY_OFFICER: world.security_officer,
            ProviderRole.ADMINISTRATOR: admin.id,
        }
        return world, issued.habilitation_id, staff


def test_the_staff_permission_table_through_the_services(
    session_factory: sessionmaker[Session],
    cert_pem: str,
    clock: FrozenClock,
    master_secret: MasterSecret,
) -> None:
    world, hab_id, staff = _issue(session_factory, cert_pem, clock, master_secret)
    for action, service in ACTIONS.items():
        assert set(STAFF_PERMISSIONS[action]) == EXPECTED[action]
        for role, who in staff.items():
            with session_factory() as s:
                hab = s.get(Habilitation, hab_id)
                assert hab is not None
                if action is StaffAction.RESUME:
                    suspend_habilitation(s, hab, ConsoleActor(), "Préalable", now=clock.now())
                if role in EXPECTED[action]:
                    service(s, hab, user(s, who), "Motif", now=clock.now())
                else:
                    with pytest.raises(HabilitationActionRefused, match="Votre rôle ne permet"):
                        service(s, hab, user(s, who), "Motif", now=clock.now())
                s.rollback()
    # Partners never act as staff, whatever their partner role.
    with session_factory() as s:
        hab = s.get(Habilitation, hab_id)
        assert hab is not None
        for who in (world.applicant, world.technical, world.stranger):
            for action in (StaffAction.SUSPEND, StaffAction.RESUME, StaffAction.TERMINATE):
                with pytest.raises(HabilitationActionRefused, match="Réservé aux agents"):
                    ACTIONS[action](s, hab, user(s, who), "Motif", now=clock.now())
        with pytest.raises(HabilitationActionRefused):
            give_termination_notice(s, hab, user(s, world.stranger), "Motif", now=clock.now())
        assert hab.status is HabilitationStatus.ACTIVE
        assert hab.valid_until is None


def test_who_sees_which_habilitation(
    session_factory: sessionmaker[Session],
    cert_pem: str,
    clock: FrozenClock,
    master_secret: MasterSecret,
) -> None:
    world, hab_id, staff = _issue(session_factory, cert_pem, clock, master_secret)
    with session_factory() as s:
        assert get_habilitation(s, user(s, world.applicant), hab_id).id == hab_id
        for who in staff.values():
            assert get_habilitation(s, user(s, who), hab_id).id == hab_id
        with pytest.raises(HabilitationNotFound):
            get_habilitation(s, user(s, world.stranger), hab_id)
        with pytest.raises(HabilitationNotFound):
            get_habilitation(s, user(s, world.applicant), uuid.uuid4())
        with pytest.raises(HabilitationActionRefused):
            list_habilitations(s, user(s, world.applicant))
        officer = user(s, world.security_officer)
        assert [h.id for h in list_habilitations(s, officer)] == [hab_id]
        assert [h.id for h in list_habilitations(s, officer, organisation="ville a")] == [hab_id]
        assert [h.id for h in list_habilitations(s, officer, organisation="21000000610001")] == [
            hab_id
        ]
        assert list_habilitations(s, officer, organisation="Société B") == []
        assert list_habilitations(s, officer, environment=Environment.PRODUCTION) == []
        assert list_habilitations(s, officer, status=HabilitationStatus.SUSPENDED) == []


def test_notice_by_a_member_once_and_the_console_may_do_everything(
    session_factory: sessionmaker[Session],
    cert_pem: str,
    clock: FrozenClock,
    master_secret: MasterSecret,
    mailer: OutboxMailer,
    outbox: Outbox,
) -> None:
    world, hab_id, _ = _issue(session_factory, cert_pem, clock, master_secret)
    with transaction(session_factory) as s:
        hab = s.get(Habilitation, hab_id)
        assert hab is not None
        give_termination_notice(
            s, hab, user(s, world.applicant), "Fin du service", now=clock.now(), mailer=mailer
        )
        with pytest.raises(TransitionRefused, match="préavis de résiliation court déjà"):
            give_termination_notice(s, hab, user(s, world.instructor), "Encore", now=clock.now())
        console = ConsoleActor("exploitant-cli")
        suspend_habilitation(s, hab, console, "Incident", now=clock.now(), mailer=mailer)
        resume_habilitation(s, hab, console, "Clos", now=clock.now(), mailer=mailer)
        terminate_for_security(s, hab, console, "Fuite", now=clock.now(), mailer=mailer)
        assert hab.status is HabilitationStatus.TERMINATED
        actors = s.scalars(
            select(HabilitationEvent.actor).where(HabilitationEvent.habilitation_id == hab_id)
        ).all()
        assert actors.count("exploitant-cli") == 3
    assert any(e.subject.startswith("Habilitation du bac à sable rétablie") for e in outbox.list())


def test_a_production_habilitation_is_not_resumed_by_hand_on_an_expired_attestation(
    session_factory: sessionmaker[Session],
    cert_pem: str,
    clock: FrozenClock,
    master_secret: MasterSecret,
    tmp_path: Path,
    mailer: OutboxMailer,
) -> None:
    from guichet.habilitation.request_models import SecurityCommitment

    with transaction(session_factory) as s:
        world = make_world(s, clock.now())
        sandbox = new_complete_request(s, world, cert_pem, clock.now())
        validated(s, world, sandbox, clock.now(), master_secret)
        # The attestation runs from 2026-01-01 for 36 months: it expires on 2029-01-01.
        request = production_request(s, world, sandbox, tmp_path / "uploads", clock.now())
        hab_id = validated(s, world, request, clock.now(), master_secret).habilitation_id
    before = dt.datetime(2028, 12, 31, 23, 59, 59, tzinfo=dt.UTC)
    expiry = dt.datetime(2029, 1, 1, tzinfo=dt.UTC)
    with session_factory() as s:
        hab = s.get(Habilitation, hab_id)
        assert hab is not None
        instructor = user(s, world.instructor)
        # Before the expiry, a manual suspension is lifted by hand as usual.
        suspend_habilitation(s, hab, instructor, "Maintenance", now=before)
        resume_habilitation(s, hab, instructor, "Fin de maintenance", now=before)
        assert hab.status is HabilitationStatus.ACTIVE
        s.rollback()
    with transaction(session_factory) as s:
        hab = s.get(Habilitation, hab_id)
        commitment = s.scalar(
            select(SecurityCommitment).where(SecurityCommitment.habilitation_id == hab_id)
        )
        assert hab is not None
        assert commitment is not None
        assert watch_commitment(s, hab, commitment, expiry, mailer) == "suspended"
    with transaction(session_factory) as s:
        hab = s.get(Habilitation, hab_id)
        assert hab is not None
        for who in (user(s, world.instructor), user(s, world.operator), ConsoleActor()):
            with pytest.raises(SecurityCommitmentExpired, match="a expiré le 01/01/2029"):
                resume_habilitation(s, hab, who, "Je rétablis", now=expiry)
        assert hab.status is HabilitationStatus.SUSPENDED
    assert SecurityCommitmentExpired.code == "security_commitment_expired"
    # Once a new commitment runs, a suspension made by hand can again be lifted by hand.
    with transaction(session_factory) as s:
        commitment = s.scalar(
            select(SecurityCommitment).where(SecurityCommitment.habilitation_id == hab_id)
        )
        assert commitment is not None
        commitment.expires_at = expiry + dt.timedelta(days=365 * 3)
        hab = s.get(Habilitation, hab_id)
        assert hab is not None
        resume_habilitation(s, hab, user(s, world.instructor), "Nouvelle attestation", now=expiry)
        assert hab.status is HabilitationStatus.ACTIVE


def _secret_hash(factory: sessionmaker[Session], client_id: str) -> str | None:
    with factory() as s:
        client = s.scalar(select(Client).where(Client.client_id == client_id))
        assert client is not None
        return client.secret_hash


def test_the_technical_contact_renews_the_secret_and_collects_it_once(
    session_factory: sessionmaker[Session],
    cert_pem: str,
    clock: FrozenClock,
    master_secret: MasterSecret,
    mailer: OutboxMailer,
    outbox: Outbox,
) -> None:
    world, hab_id, _ = _issue(session_factory, cert_pem, clock, master_secret)
    with transaction(session_factory) as s:
        first = s.scalar(select(CredentialDelivery))
        assert first is not None
        first_id, client_id = first.id, first.client_id
    with transaction(session_factory) as s:
        hab = s.get(Habilitation, hab_id)
        assert hab is not None
        for who in (world.applicant, world.instructor, world.security_officer):
            with pytest.raises(HabilitationActionRefused):
                rotate_client_secret(s, hab, user(s, who), now=clock.now(), master=master_secret)
        with pytest.raises(HabilitationActionRefused):
            rotate_client_secret(
                s, hab, user(s, world.stranger), now=clock.now(), master=master_secret
            )
    with transaction(session_factory) as s:
        hab = s.get(Habilitation, hab_id)
        assert hab is not None
        rotation = rotate_client_secret(
            s, hab, user(s, world.technical), now=clock.now(), master=master_secret, mailer=mailer
        )
        assert rotation.client_id == client_id
        assert rotation.secret is None
        assert rotation.delivery_id is not None
    with transaction(session_factory) as s:
        technical = user(s, world.technical)
        # The first, uncollected delivery carried the old secret: it is gone from the list.
        with pytest.raises(TransitionRefused):
            collect_credentials(s, technical, first_id, master=master_secret, now=clock.now())
        shown = collect_credentials(
            s, technical, rotation.delivery_id, master=master_secret, now=clock.now()
        )
        assert shown.client_secret is not None
    stored = _secret_hash(session_factory, client_id)
    assert stored is not None
    assert check_secret(shown.client_secret, stored)
    with transaction(session_factory) as s:
        with pytest.raises(TransitionRefused):
            collect_credentials(
                s,
                user(s, world.technical),
                rotation.delivery_id,
                master=master_secret,
                now=clock.now(),
            )
        events = s.scalars(
            select(HabilitationEvent.name).where(HabilitationEvent.habilitation_id == hab_id)
        ).all()
        assert "habilitation:secret_rotated" in events
    assert any(e.subject.startswith("Secret renouvelé") for e in outbox.list())
    # An operator (the console, or the operator role) gets the secret itself; the old stops.
    with transaction(session_factory) as s:
        hab = s.get(Habilitation, hab_id)
        assert hab is not None
        by_operator = rotate_client_secret(
            s, hab, user(s, world.operator), now=clock.now(), master=master_secret
        )
        assert by_operator.delivery_id is None
        assert by_operator.secret is not None
    stored = _secret_hash(session_factory, client_id)
    assert stored is not None
    assert check_secret(by_operator.secret, stored)
    assert not check_secret(shown.client_secret, stored)
    with transaction(session_factory) as s:
        hab = s.get(Habilitation, hab_id)
        assert hab is not None
        terminate_for_security(s, hab, ConsoleActor(), "Fin", now=clock.now())
        with pytest.raises(TransitionRefused, match="résiliée"):
            rotate_client_secret(s, hab, ConsoleActor(), now=clock.now(), master=master_secret)
