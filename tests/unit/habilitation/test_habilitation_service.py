"""Habilitations: the specification's checks, the transition table, events, generation bumps."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from guichet.clock import FrozenClock
from guichet.db import transaction
from guichet.db.models import read_generation
from guichet.habilitation.models import (
    Environment,
    Habilitation,
    HabilitationEvent,
    HabilitationStatus,
)
from guichet.habilitation.service import (
    TRANSITIONS,
    Action,
    HabilitationError,
    HabilitationSpec,
    create_habilitation,
    find_habilitation,
    get_or_create_organisation,
    transition,
)
from guichet.pki import ensure_local_pki, issue_client_certificate

SIRET = "21000000610001"


@pytest.fixture
def cert_pem(tmp_path: Path, clock: FrozenClock) -> str:
    pki = ensure_local_pki(tmp_path / "pki", clock.now(), ["127.0.0.1"])
    cert, _key = issue_client_certificate(pki, "client", "Commune", 30, clock.now())
    return cert.decode()


def spec(cert_pem: str, **changes: object) -> HabilitationSpec:
    values: dict[str, object] = {
        "demarche": "Quotient familial",
        "environment": Environment.SANDBOX,
        "apis": ["impot_particulier"],
        "access_modes": ["spi"],
        "data_scopes": ["dgfip_rfr", "dgfip_nbpart"],
        "year_scopes": ["dgfip_annee_n_moins_1"],
        "ip_ranges": ["127.0.0.1/32"],
        "certificates_pem": [cert_pem],
    }
    values.update(changes)
    return HabilitationSpec(**values)  # type: ignore[arg-type]


def make(factory: sessionmaker[Session], clock: FrozenClock, cert_pem: str) -> uuid.UUID:
    with transaction(factory) as session:
        org = get_or_create_organisation(session, SIRET, "Commune", clock.now())
        return create_habilitation(session, org, spec(cert_pem), actor="test", now=clock.now()).id


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"demarche": "  "}, "démarche"),
        ({"apis": ["ficoba_unknown"]}, "API inconnue"),
        ({"apis": []}, "API inconnue"),
        ({"access_modes": ["pigeon"]}, "Mode d'accès inconnu"),
        ({"data_scopes": ["dgfip_everything"]}, "Périmètre de données inconnu"),
        ({"year_scopes": ["dgfip_annee_n_moins_9"]}, "Année de revenus inconnue"),
        ({"ip_ranges": []}, "adresse IP"),
        ({"ip_ranges": ["300.1.1.1"]}, "CIDR invalide"),
        ({"certificates_pem": []}, "certificat"),
        ({"certificates_pem": ["not a certificate"]}, "Certificat illisible"),
        ({"quotas": {"impot_particulier": 0}}, "Quota invalide"),
        ({"quotas": {"r2p": 10}}, "Quota invalide"),
    ],
)
def test_a_bad_specification_is_refused_and_writes_nothing(
    session_factory: sessionmaker[Session],
    clock: FrozenClock,
    cert_pem: str,
    changes: dict[str, object],
    message: str,
) -> None:
    bad = spec(cert_pem, **changes)
    with transaction(session_factory) as session:
        org = get_or_create_organisation(session, SIRET, "Commune", clock.now())
    with pytest.raises(HabilitationError, match=message), transaction(session_factory) as session:
        create_habilitation(session, org, bad, actor="t", now=clock.now())
    with session_factory() as session:
        assert session.scalars(select(Habilitation)).all() == []


def test_an_invalid_siret_is_refused(
    session_factory: sessionmaker[Session], clock: FrozenClock
) -> None:
    with pytest.raises(HabilitationError, match="SIRET"), session_factory() as session:
        get_or_create_organisation(session, "21000000610002", "Commune", clock.now())


def test_creation_records_the_policy_an_event_and_bumps_the_generation(
    session_factory: sessionmaker[Session], clock: FrozenClock, cert_pem: str
) -> None:
    with session_factory() as session:
        before = read_generation(session)
    hab_id = make(session_factory, clock, cert_pem)
    with session_factory() as session:
        hab = session.get(Habilitation, hab_id)
        assert hab is not None
        assert hab.status is HabilitationStatus.ACTIVE
        assert hab.quotas == {"impot_particulier": 120}  # the catalogue's default
        assert len(hab.certificates) == 1
        assert [e.name for e in hab.events] == ["habilitation:validated"]
        assert read_generation(session) > before


@pytest.mark.parametrize("status", list(HabilitationStatus))
@pytest.mark.parametrize("action", list(Action))
def test_the_transition_table_is_the_only_way(
    session_factory: sessionmaker[Session],
    clock: FrozenClock,
    cert_pem: str,
    status: HabilitationStatus,
    action: Action,
) -> None:
    hab_id = make(session_factory, clock, cert_pem)
    with transaction(session_factory) as session:
        hab = session.get(Habilitation, hab_id)
        assert hab is not None
        hab.status = status
    target = TRANSITIONS.get((status, action))
    with transaction(session_factory) as session:
        hab = session.get(Habilitation, hab_id)
        assert hab is not None
        if target is None:
            with pytest.raises(HabilitationError, match="Impossible"):
                transition(session, hab, action, reason="motif", actor="rssi", now=clock.now())
            return
        clock.advance(60)
        transition(session, hab, action, reason="  incident  ", actor="rssi", now=clock.now())
    with session_factory() as session:
        hab = session.get(Habilitation, hab_id)
        assert hab is not None
        assert hab.status is target
        assert hab.status_reason == "incident"
        last = session.scalars(
            select(HabilitationEvent).order_by(HabilitationEvent.at.desc()).limit(1)
        ).one()
        assert (last.actor, last.reason, last.at) == ("rssi", "incident", clock.now())


def test_a_transition_needs_a_reason(
    session_factory: sessionmaker[Session], clock: FrozenClock, cert_pem: str
) -> None:
    hab_id = make(session_factory, clock, cert_pem)
    with transaction(session_factory) as session:
        hab = session.get(Habilitation, hab_id)
        assert hab is not None
        with pytest.raises(HabilitationError, match="motif"):
            transition(session, hab, Action.SUSPEND, reason=" ", actor="rssi", now=clock.now())


def test_find_by_id_or_unambiguous_prefix(
    session_factory: sessionmaker[Session], clock: FrozenClock, cert_pem: str
) -> None:
    hab_id = make(session_factory, clock, cert_pem)
    with session_factory() as session:
        assert find_habilitation(session, str(hab_id)).id == hab_id
        assert find_habilitation(session, str(hab_id)[:8].upper()).id == hab_id
        with pytest.raises(HabilitationError, match="Aucune"):
            find_habilitation(session, str(uuid.uuid4()))
        with pytest.raises(HabilitationError, match="Aucune"):
            find_habilitation(session, "abc")


def test_dates_must_be_ordered(cert_pem: str) -> None:
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    with pytest.raises(HabilitationError, match="date de fin"):
        spec(cert_pem, valid_from=now, valid_until=now).validate()
