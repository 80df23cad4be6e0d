"""``tick`` under the injected clock: homologation notice at −3 months, suspension at expiry,
resumption after a new attestation, end of notice periods, the six-year purge; idempotent."""

from __future__ import annotations

import copy
import datetime as dt
import json
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from guichet.application.issuance import (
    DocumentKind,
    accept_terms,
    attach_document,
    save_block,
    start_update_request,
)
from guichet.application.management import give_termination_notice, terminate_for_security
from guichet.application.scheduler import tick
from guichet.clock import Clock, FrozenClock
from guichet.commands.operations import app
from guichet.db import make_engine, transaction
from guichet.federation.clients import directory
from guichet.federation.consent import months_before, record_consent
from guichet.federation.models import ConsentRecord
from guichet.habilitation.models import Habilitation, HabilitationEvent, HabilitationStatus
from guichet.habilitation.request_models import HabilitationRequest, RequestDocument
from guichet.habilitation.validation import Block
from guichet.mail.outbox import Outbox, OutboxMailer
from guichet.oauth.policy import load_snapshot
from guichet.pki import LocalPki, ensure_local_pki, issue_client_certificate
from guichet.runtime import open_runtime
from guichet.schema import metadata
from guichet.secrets import MasterSecret
from guichet.settings import Settings, use_settings
from tests.unit.habilitation.support import (
    CGU,
    PDF,
    World,
    make_world,
    new_complete_request,
    production_request,
    user,
    validated,
)


@dataclass
class Rt:
    """What ``tick`` reads of a runtime."""

    settings: Settings
    session_factory: sessionmaker[Session]
    clock: Clock


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


@pytest.fixture
def pki(tmp_path: Path, clock: FrozenClock) -> LocalPki:
    return ensure_local_pki(tmp_path / "pki", clock.now(), ["127.0.0.1"])


@pytest.fixture
def cert_pem(pki: LocalPki, clock: FrozenClock) -> str:
    cert, _key = issue_client_certificate(pki, "qf client", "Ville A", 1500, clock.now())
    return cert.decode()


@pytest.fixture
def outbox(tmp_path: Path) -> Outbox:
    return Outbox(tmp_path / "outbox")


@pytest.fixture
def mailer(outbox: Outbox, clock: FrozenClock) -> OutboxMailer:
    return OutboxMailer(outbox.directory, "guichet <ne-pas-repondre@guichet.example>", clock)


@pytest.fixture
def rt(session_factory: sessionmaker[Session], clock: FrozenClock, tmp_path: Path) -> Rt:
    return Rt(Settings(data_dir=tmp_path / "var"), session_factory, clock)


@pytest.fixture
def world(session_factory: sessionmaker[Session], clock: FrozenClock) -> World:
    with transaction(session_factory) as s:
        return make_world(s, clock.now())


def _production(
    rt: Rt, world: World, cert_pem: str, clock: FrozenClock, master: MasterSecret
) -> tuple[str, str]:
    """A validated sandbox and production pair; the attestation runs 2026-01-01 → 2029-01-01."""
    uploads_dir = rt.settings.data_dir / "uploads"
    with transaction(rt.session_factory) as s:
        sandbox = new_complete_request(s, world, cert_pem, clock.now())
        validated(s, world, sandbox, clock.now(), master)
        request = production_request(s, world, sandbox, uploads_dir, clock.now())
        issued = validated(s, world, request, clock.now(), master)
        return str(issued.habilitation_id), str(request.id)


def _status(rt: Rt, hab_id: str) -> HabilitationStatus:
    with rt.session_factory() as s:
        policy = next(
            h for h in load_snapshot(s, directory).habilitations.values() if str(h.id) == hab_id
        )
        return policy.status


def test_homologation_watch(
    rt: Rt,
    world: World,
    cert_pem: str,
    clock: FrozenClock,
    master_secret: MasterSecret,
    mailer: OutboxMailer,
    outbox: Outbox,
) -> None:
    hab_id, _ = _production(rt, world, cert_pem, clock, master_secret)
    assert tick(rt, at("2028-09-30T23:59:59"), mailer=mailer).idle
    report = tick(rt, at("2028-10-01T00:00:00"), mailer=mailer)  # three months before expiry
    assert report.notices == [hab_id]
    notices = [e for e in outbox.list() if e.subject.startswith("Renouvelez")]
    assert {e.to for e in notices} == {"maire@ville-a.fr", "technique@ville-a.fr", "dpo@ville-a.fr"}
    assert "01/01/2029" in notices[0].subject
    assert tick(rt, at("2028-12-31T23:59:59"), mailer=mailer).idle  # nothing twice
    assert _status(rt, hab_id) is HabilitationStatus.ACTIVE
    sent = len(outbox.list())
    report = tick(rt, at("2029-01-01T00:00:00"), mailer=mailer)  # expiry
    assert report.suspended == [hab_id]
    assert _status(rt, hab_id) is HabilitationStatus.SUSPENDED
    assert len(outbox.list()) == sent + 3
    assert tick(rt, at("2029-01-02T00:00:00"), mailer=mailer).idle
    # A new attestation, validated through an update request, lifts the suspension.
    clock.set(at("2029-01-05T09:00:00"))
    uploads_dir = rt.settings.data_dir / "uploads"
    with transaction(rt.session_factory) as s:
        hab = s.get(Habilitation, uuid.UUID(hab_id))
        assert hab is not None
        applicant = user(s, world.applicant)
        update = start_update_request(s, applicant, hab, now=clock.now())
        doc = attach_document(
            s,
            update,
            applicant,
            DocumentKind.HOMOLOGATION,
            "nouvelle.pdf",
            PDF,
            uploads_dir=uploads_dir,
            now=clock.now(),
        )
        production = copy.deepcopy(update.data["production"])
        production["homologation"].update(
            document_id=str(doc.id), start_date="2028-12-15", duration_months=60
        )
        save_block(s, update, applicant, Block.PRODUCTION, production, now=clock.now())
        accept_terms(s, update, applicant, CGU, now=clock.now())
        validated(s, world, update, clock.now(), master_secret, mailer)
    assert _status(rt, hab_id) is HabilitationStatus.ACTIVE
    assert any(e.subject.startswith("Échanges rétablis") for e in outbox.list())
    assert tick(rt, clock.now(), mailer=mailer).idle
    # The next notice is due three months before the new expiry (2033-12-15).
    assert tick(rt, at("2033-09-14T23:00:00"), mailer=mailer).idle
    assert tick(rt, at("2033-09-15T00:00:00"), mailer=mailer).notices == [hab_id]


def test_termination_takes_effect_after_two_months(
    rt: Rt,
    world: World,
    cert_pem: str,
    clock: FrozenClock,
    master_secret: MasterSecret,
    mailer: OutboxMailer,
    outbox: Outbox,
) -> None:
    with transaction(rt.session_factory) as s:
        issued = validated(
            s,
            world,
            new_complete_request(s, world, cert_pem, clock.now()),
            clock.now(),
            master_secret,
        )
        hab = s.get(Habilitation, issued.habilitation_id)
        assert hab is not None
        give_termination_notice(s, hab, user(s, world.applicant), "Fin", now=clock.now())
    hab_id = str(issued.habilitation_id)
    assert tick(rt, at("2027-01-23T09:59:59"), mailer=mailer).idle
    assert _status(rt, hab_id) is HabilitationStatus.ACTIVE  # calls keep working
    assert tick(rt, at("2027-01-23T10:00:00"), mailer=mailer).terminated == [hab_id]
    assert _status(rt, hab_id) is HabilitationStatus.TERMINATED
    assert sum(e.subject.startswith("Habilitation résiliée") for e in outbox.list()) == 2
    assert tick(rt, at("2027-01-24T00:00:00"), mailer=mailer).idle


def test_request_data_is_purged_six_years_after_the_end(
    rt: Rt,
    world: World,
    cert_pem: str,
    clock: FrozenClock,
    master_secret: MasterSecret,
    mailer: OutboxMailer,
) -> None:
    _, production_id = _production(rt, world, cert_pem, clock, master_secret)
    uploads_dir = rt.settings.data_dir / "uploads"
    assert len(list(uploads_dir.iterdir())) == 1
    clock.set(at("2027-03-01T12:00:00"))
    with transaction(rt.session_factory) as s:
        for hab in s.scalars(select(Habilitation)):
            terminate_for_security(s, hab, user(s, world.security_officer), "Fin", now=clock.now())
        kept = len(s.scalars(select(HabilitationRequest)).all())
    assert kept == 2
    assert tick(rt, at("2033-03-01T11:59:59"), mailer=mailer).purged_requests == []
    report = tick(rt, at("2033-03-01T12:00:00"), mailer=mailer)
    assert len(report.purged_requests) == kept
    assert production_id in report.purged_requests
    with rt.session_factory() as s:
        assert s.scalars(select(HabilitationRequest)).all() == []
        assert s.scalars(select(RequestDocument)).all() == []
        assert len(s.scalars(select(Habilitation)).all()) == 2  # the provider's record stays
        purged = s.scalars(
            select(HabilitationEvent).where(
                HabilitationEvent.name == "habilitation:request_data_purged"
            )
        ).all()
        assert len(purged) == 2
    assert list(uploads_dir.iterdir()) == []
    assert tick(rt, at("2033-03-02T00:00:00"), mailer=mailer).idle


def test_a_request_that_never_gave_a_habilitation_is_purged_after_six_years_idle(
    rt: Rt, world: World, cert_pem: str, clock: FrozenClock, mailer: OutboxMailer
) -> None:
    with transaction(rt.session_factory) as s:
        new_complete_request(s, world, cert_pem, clock.now())
    assert tick(rt, at("2032-11-23T09:59:59"), mailer=mailer).idle
    assert len(tick(rt, at("2032-11-23T10:00:00"), mailer=mailer).purged_requests) == 1


def test_the_cli_runs_tick_twice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("GUICHET_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("GUICHET_DATABASE_URL", url)
    use_settings(Settings())
    try:
        open_runtime().close()  # the migrations…
        engine = make_engine(url)
        metadata.create_all(engine)  # …and tables a newer migration will bring
        engine.dispose()
        runner = CliRunner()
        for _ in range(2):
            result = runner.invoke(app, ["tick", "--json"])
            assert result.exit_code == 0, result.output
            # stdout only: the report; logs go to stderr, which a logging handler left by
            # another test in this worker may fill with its own complaints.
            report = json.loads(result.stdout)
            assert report["notices"] == []
            assert report["failures"] == []
        assert "Préavis échus" in runner.invoke(app, ["tick"]).output
    finally:
        use_settings(None)


def _consent(rt: Rt, at_: dt.datetime, subject: str) -> None:
    with transaction(rt.session_factory) as s:
        record_consent(
            s,
            subject=subject,
            client_id="c" * 64,
            habilitation_id=None,
            scopes=["openid", "dgfip_rfr"],
            accepted=True,
            at=at_,
        )


def _consent_subjects(rt: Rt) -> list[str]:
    with rt.session_factory() as s:
        return sorted(s.scalars(select(ConsentRecord.subject)))


def test_tick_purges_consents_past_36_months(
    rt: Rt, clock: FrozenClock, mailer: OutboxMailer
) -> None:
    # [003 art. 4] thirty-six months, to the minute, under the injected clock.
    now = clock.now()
    _consent(rt, months_before(now, 36) + dt.timedelta(minutes=1), "kept")
    _consent(rt, months_before(now, 36) - dt.timedelta(minutes=1), "gone")
    report = tick(rt, now, mailer=mailer)
    assert report.purged_consents == 1
    assert not report.idle
    assert report.as_dict()["purged_consents"] == 1
    assert _consent_subjects(rt) == ["kept"]
    assert tick(rt, now, mailer=mailer).idle  # nothing left to purge: idempotent
    clock.advance(120)
    assert tick(rt, clock.now(), mailer=mailer).purged_consents == 1
    assert _consent_subjects(rt) == []
