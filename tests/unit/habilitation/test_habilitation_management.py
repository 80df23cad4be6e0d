"""Suspension, resumption and termination of a validated habilitation, notified to contacts."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy.orm import Session, sessionmaker

from guichet.application.management import (
    give_termination_notice,
    resume_habilitation,
    suspend_habilitation,
    terminate_for_security,
)
from guichet.clock import FrozenClock
from guichet.db import transaction
from guichet.federation.clients import directory
from guichet.habilitation.errors import HabilitationActionRefused, ReasonRequired, TransitionRefused
from guichet.habilitation.models import Habilitation, HabilitationStatus
from guichet.mail.outbox import Outbox, OutboxMailer
from guichet.oauth.policy import load_snapshot
from guichet.secrets import MasterSecret
from tests.unit.habilitation.support import make_world, new_complete_request, user, validated

CONTACTS = {"maire@ville-a.fr", "technique@ville-a.fr"}


def test_suspend_resume_and_terminate(
    session_factory: sessionmaker[Session],
    cert_pem: str,
    clock: FrozenClock,
    master_secret: MasterSecret,
    mailer: OutboxMailer,
    outbox: Outbox,
) -> None:
    with transaction(session_factory) as s:
        world = make_world(s, clock.now())
        issued = validated(
            s,
            world,
            new_complete_request(s, world, cert_pem, clock.now()),
            clock.now(),
            master_secret,
        )
    with transaction(session_factory) as s:
        hab = s.get(Habilitation, issued.habilitation_id)
        assert hab is not None
        with pytest.raises(HabilitationActionRefused):
            suspend_habilitation(s, hab, user(s, world.applicant), "Test", now=clock.now())
        with pytest.raises(ReasonRequired):
            suspend_habilitation(s, hab, user(s, world.operator), " ", now=clock.now())
        suspend_habilitation(
            s,
            hab,
            user(s, world.operator),
            "Maintenance de sécurité",
            now=clock.now(),
            mailer=mailer,
        )
        with pytest.raises(TransitionRefused):
            suspend_habilitation(s, hab, user(s, world.operator), "Encore", now=clock.now())
    with session_factory() as s:
        assert (
            load_snapshot(s, directory).habilitations[hab.id].status is HabilitationStatus.SUSPENDED
        )
    suspended = [outbox.get(e.id) for e in outbox.list() if "suspendue" in e.subject]
    assert {m.entry.to for m in suspended if m} == CONTACTS
    assert all("Maintenance de sécurité" in m.text for m in suspended if m)
    with transaction(session_factory) as s:
        hab = s.get(Habilitation, issued.habilitation_id)
        assert hab is not None
        resume_habilitation(
            s, hab, user(s, world.instructor), "Fin", now=clock.now(), mailer=mailer
        )
        assert hab.status is HabilitationStatus.ACTIVE
        # Either party may give notice [000 §14]; calls go on for two months.
        give_termination_notice(
            s, hab, user(s, world.applicant), "Fin du service", now=clock.now(), mailer=mailer
        )
        assert hab.status is HabilitationStatus.ACTIVE
        assert hab.valid_until == dt.datetime(2027, 1, 23, 10, 0, tzinfo=dt.UTC)
        with pytest.raises(HabilitationActionRefused):
            give_termination_notice(s, hab, user(s, world.stranger), "x", now=clock.now())
        with pytest.raises(HabilitationActionRefused):
            terminate_for_security(s, hab, user(s, world.applicant), "x", now=clock.now())
        terminate_for_security(
            s, hab, user(s, world.security_officer), "Fuite de clé", now=clock.now(), mailer=mailer
        )
        final: HabilitationStatus = hab.status
        assert final is HabilitationStatus.TERMINATED
        assert hab.valid_until == clock.now()
    assert sum("résiliée" in e.subject for e in outbox.list()) == len(CONTACTS)
