"""Validation is issuance: habilitation, gateway policy, OAuth client, federation binding,
credentials for the technical contact; updates; the production step and its prerequisites."""

from __future__ import annotations

import copy
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from starlette.testclient import TestClient

from guichet.application.issuance import (
    RequestInvalid,
    accept_terms,
    collect_credentials,
    pending_deliveries,
    save_block,
    start_production_request,
    start_update_request,
    submit,
    validate,
)
from guichet.clock import FrozenClock
from guichet.db import transaction
from guichet.db.models import read_generation
from guichet.federation.clients import declare_habilitation_client, directory, register_client
from guichet.federation.models import ClientKind, FederationClient
from guichet.federation.server import FederationDeps
from guichet.federation_web.app import build_federation_app
from guichet.habilitation.errors import RequestNotFound, TransitionRefused
from guichet.habilitation.models import (
    Environment,
    Habilitation,
    HabilitationFederationClient,
    HabilitationStatus,
    Organisation,
)
from guichet.habilitation.request_models import (
    CredentialDelivery,
    HabilitationRequest,
    RequestStatus,
    SecurityCommitment,
)
from guichet.habilitation.service import HabilitationSpec, create_habilitation
from guichet.habilitation.validation import Block
from guichet.mail.outbox import Outbox, OutboxMailer
from guichet.oauth.models import Client
from guichet.oauth.policy import load_snapshot
from guichet.secrets import MasterSecret, check_secret
from tests.unit.habilitation.support import (
    CGU,
    World,
    complete_data,
    fill,
    make_world,
    new_complete_request,
    production_request,
    user,
    validated,
)

FEDERATION = "http://127.0.0.1:8600"


@pytest.fixture
def world(session_factory: sessionmaker[Session], clock: FrozenClock) -> World:
    with transaction(session_factory) as s:
        return make_world(s, clock.now())


def test_validation_issues_a_working_habilitation_and_client(
    session_factory: sessionmaker[Session],
    world: World,
    cert_pem: str,
    clock: FrozenClock,
    master_secret: MasterSecret,
    mailer: OutboxMailer,
    outbox: Outbox,
) -> None:
    with transaction(session_factory) as s:
        before = read_generation(s)
        request = new_complete_request(s, world, cert_pem, clock.now())
        issued = validated(s, world, request, clock.now(), master_secret, mailer)
        request_id = request.id
    assert issued.created
    assert issued.delivery_id is not None
    with session_factory() as s:
        snapshot = load_snapshot(s, directory)
        assert snapshot.generation > before
        policy = snapshot.habilitations[issued.habilitation_id]
        assert policy.environment is Environment.SANDBOX
        assert policy.status is HabilitationStatus.ACTIVE
        assert policy.demarche == "Quotient familial"
        assert policy.apis == {"impot_particulier"}
        assert policy.access_modes == {"spi"}
        assert policy.data_scopes == {"dgfip_rfr", "dgfip_nbpart"}
        assert policy.year_scopes == {"dgfip_annee_n_moins_1"}
        assert policy.allows_ip("127.0.0.1")
        assert not policy.allows_ip("127.0.0.2")
        assert policy.quotas == {"impot_particulier": 50}  # from the declared volumetry
        assert policy.valid_from == clock.now()
        assert policy.valid_until is None
        stored = s.get(HabilitationRequest, request_id)
        assert stored is not None
        assert list(policy.certificates) == [stored.data["technical"]["certificate"]["thumbprint"]]
        client = snapshot.clients[issued.client_id]
        assert client.habilitation_id == issued.habilitation_id
        assert "RessourceIR" in client.scopes
        assert "RessourceR2P" not in client.scopes
        assert "tls_client_auth" in client.auth_methods
        hab = s.get(Habilitation, issued.habilitation_id)
        assert hab is not None
        assert hab.data_labels == {
            "dgfip_nbpart": "Nombre de parts fiscales",
            "dgfip_rfr": "Revenu fiscal de référence",
        }
        assert stored.status is RequestStatus.VALIDATED
        assert stored.habilitation_id == issued.habilitation_id
    # The technical contact is told by mail, without the secret; the secret waits for them.
    mails = [outbox.get(e.id) for e in outbox.list()]
    ready = [m for m in mails if m and m.entry.subject.startswith("Vos accès")]
    assert len(ready) == 1
    assert ready[0].entry.to == "technique@ville-a.fr"
    with transaction(session_factory) as s:
        applicant, technical = user(s, world.applicant), user(s, world.technical)
        assert pending_deliveries(s, applicant) == []
        with pytest.raises(RequestNotFound):
            collect_credentials(
                s, applicant, issued.delivery_id, master=master_secret, now=clock.now()
            )
        assert [d.id for d in pending_deliveries(s, technical)] == [issued.delivery_id]
        credentials = collect_credentials(
            s, technical, issued.delivery_id, master=master_secret, now=clock.now()
        )
    assert credentials.client_id == issued.client_id
    assert credentials.client_secret
    assert credentials.client_secret not in ready[0].text
    with transaction(session_factory) as s:
        row = s.scalar(select(Client).where(Client.client_id == issued.client_id))
        assert row is not None
        assert row.secret_hash is not None
        assert check_secret(credentials.client_secret, row.secret_hash)
        delivery = s.get(CredentialDelivery, issued.delivery_id)
        assert delivery is not None
        assert delivery.secret_encrypted is None
        with pytest.raises(TransitionRefused):  # shown once
            collect_credentials(
                s,
                user(s, world.technical),
                issued.delivery_id,
                master=master_secret,
                now=clock.now(),
            )


def test_a_new_request_updates_the_same_habilitation(
    session_factory: sessionmaker[Session],
    world: World,
    cert_pem: str,
    clock: FrozenClock,
    master_secret: MasterSecret,
) -> None:
    with transaction(session_factory) as s:
        first = validated(
            s,
            world,
            new_complete_request(s, world, cert_pem, clock.now()),
            clock.now(),
            master_secret,
        )
    with session_factory() as s:
        generation = read_generation(s)
    clock.advance(86400)
    with transaction(session_factory) as s:
        hab = s.get(Habilitation, first.habilitation_id)
        assert hab is not None
        applicant = user(s, world.applicant)
        update = start_update_request(s, applicant, hab, now=clock.now())
        assert update.data["basics"]["demarche"] == "Quotient familial"  # copied
        technical = copy.deepcopy(update.data["technical"])
        technical["ip_ranges"] = ["192.0.2.10/32"]
        perimeter = copy.deepcopy(update.data["perimeter"])
        perimeter["access_modes"] = ["spi", "etat_civil"]  # état civil → R2P too [004 §4]
        save_block(s, update, applicant, Block.TECHNICAL, technical, now=clock.now())
        save_block(s, update, applicant, Block.PERIMETER, perimeter, now=clock.now())
        accept_terms(s, update, applicant, CGU, now=clock.now())
        second = validated(s, world, update, clock.now(), master_secret)
    assert second.habilitation_id == first.habilitation_id
    assert not second.created
    assert second.client_id == first.client_id
    assert second.delivery_id is None
    with session_factory() as s:
        snapshot = load_snapshot(s, directory)
        assert snapshot.generation > generation
        policy = snapshot.habilitations[first.habilitation_id]
        assert policy.allows_ip("192.0.2.10")
        assert not policy.allows_ip("127.0.0.1")
        assert policy.apis == {"impot_particulier", "r2p"}
        assert policy.quotas == {"impot_particulier": 50, "r2p": 50}
        assert "RessourceR2P" in snapshot.clients[first.client_id].scopes
        assert len(snapshot.habilitations) == 1


def test_franceconnect_mode_registers_or_binds_the_federation_client(
    session_factory: sessionmaker[Session],
    world: World,
    cert_pem: str,
    clock: FrozenClock,
    master_secret: MasterSecret,
) -> None:
    data = complete_data(cert_pem)
    data["perimeter"]["access_modes"] = ["franceconnect"]
    data["technical"]["federation_redirect_uris"] = ["https://qf.ville-a.fr/callback"]
    with transaction(session_factory) as s:
        from guichet.application.issuance import start_request

        applicant = user(s, world.applicant)
        request = start_request(s, applicant, world.org_a, now=clock.now())
        fill(s, request, applicant, data, clock.now())
        issued = validated(s, world, request, clock.now(), master_secret)
        assert issued.federation_client_id is not None
    with transaction(session_factory) as s:
        row = s.get(FederationClient, issued.federation_client_id)
        assert row is not None
        assert row.habilitation_id == issued.habilitation_id
        assert "dgfip_rfr" in row.scopes
        assert "openid" in row.scopes
        assert issued.delivery_id is not None
        credentials = collect_credentials(
            s, user(s, world.technical), issued.delivery_id, master=master_secret, now=clock.now()
        )
        assert credentials.federation_client_id == issued.federation_client_id
        assert credentials.federation_client_secret
        # Another organisation cannot claim that federation client.
        # A client organisation B registered for itself (its owner, recorded then).
        existing = register_client(
            s,
            kind=ClientKind.SERVICE_PROVIDER,
            name="B",
            now=clock.now(),
            redirect_uris=["https://b.example/cb"],
            organisation_id=world.org_b,
        )
    other = complete_data(cert_pem)
    other["perimeter"]["access_modes"] = ["franceconnect"]
    other["technical"]["federation_client_id"] = issued.federation_client_id
    with transaction(session_factory) as s:
        from guichet.accounts.models import Membership, PartnerRole

        stranger = user(s, world.stranger)
        s.add(
            Membership(
                user_id=world.technical,
                organisation_id=world.org_b,
                role=PartnerRole.TECHNICAL_CONTACT,
                created_at=clock.now(),
            )
        )
        from guichet.application.issuance import start_request

        request = start_request(s, stranger, world.org_b, now=clock.now())
        fill(s, request, stranger, other, clock.now())
        with pytest.raises(RequestInvalid) as refused:
            submit(s, request, stranger, now=clock.now())
        assert refused.value.errors[0].field == "technical.federation_client_id"
        # An unbound client of the sandbox federation, owned by B, is bound.
        other["technical"]["federation_client_id"] = existing.client_id
        request.status = RequestStatus.DRAFT
        save_block(s, request, stranger, Block.TECHNICAL, other["technical"], now=clock.now())
        submit(s, request, stranger, now=clock.now())
        issued_b = validate(
            s, request, user(s, world.instructor), "OK", now=clock.now(), master=master_secret
        )
        row = s.get(FederationClient, existing.client_id)
        assert row is not None
        assert row.habilitation_id == issued_b.habilitation_id
        # Bound, the CLI-made client carries the habilitation's data and year scopes (it was
        # registered with openid and the identity scopes only)…
        assert {"dgfip_rfr", "dgfip_nbpart", "dgfip_annee_n_moins_1"} <= set(row.scopes)
        assert "openid" in row.scopes
    # …so the sandbox federation lets it ask the citizen for them at /authorize.
    federation = build_federation_app(
        FederationDeps(
            issuer=FEDERATION, session_factory=session_factory, master=master_secret, clock=clock
        )
    )
    query = {
        "response_type": "code",
        "client_id": existing.client_id,
        "redirect_uri": "https://b.example/cb",
        "scope": "openid given_name dgfip_rfr dgfip_nbpart dgfip_annee_n_moins_1",
        "state": "s" * 32,
        "nonce": "n" * 32,
        "acr_values": "eidas1",
    }
    with TestClient(federation, base_url=FEDERATION) as browser:
        answer = browser.get("/authorize", params=query, follow_redirects=False)
        assert answer.status_code == 302, answer.text
        assert answer.headers["location"].startswith(FEDERATION), answer.headers["location"]
        # A scope beyond the habilitation is still refused.
        beyond = browser.get(
            "/authorize",
            params={**query, "scope": "openid dgfip_rfr dgfip_pac dgfip_annee_n_moins_1"},
            follow_redirects=False,
        )
        assert beyond.headers["location"].startswith("https://b.example/cb?")
        assert "error=invalid_scope" in beyond.headers["location"]
    with session_factory() as s:
        policy = load_snapshot(s, directory).habilitations[issued_b.habilitation_id]
        assert existing.client_id in policy.federation_clients


def test_production_follows_a_validated_sandbox_request(
    session_factory: sessionmaker[Session],
    world: World,
    cert_pem: str,
    clock: FrozenClock,
    master_secret: MasterSecret,
    uploads_dir: Path,
) -> None:
    with transaction(session_factory) as s:
        sandbox = new_complete_request(s, world, cert_pem, clock.now())
        applicant = user(s, world.applicant)
        with pytest.raises(TransitionRefused):  # not validated yet
            start_production_request(s, applicant, sandbox, now=clock.now())
        validated(s, world, sandbox, clock.now(), master_secret)
        with pytest.raises(RequestNotFound):
            start_production_request(s, user(s, world.stranger), sandbox, now=clock.now())
        bare = start_production_request(s, applicant, sandbox, now=clock.now())
        assert bare.environment is Environment.PRODUCTION
        assert bare.sandbox_request_id == sandbox.id
        assert bare.data["perimeter"] == sandbox.data["perimeter"]  # copied
        assert bare.cgu_version is None  # accepted again for production
        with pytest.raises(RequestInvalid) as refused:
            submit(s, bare, applicant, now=clock.now())
        fields = {e.field for e in refused.value.errors}
        assert {
            "production.recette_confirmed",
            "production.formalities_declared",
            "production.security_kind",
            "contacts.dpo",
            "legal.secrecy_derogation",
            "terms.version",
        } <= fields
        request = production_request(s, world, sandbox, uploads_dir, clock.now())
        issued = validated(s, world, request, clock.now(), master_secret)
    with session_factory() as s:
        policy = load_snapshot(s, directory).habilitations[issued.habilitation_id]
        assert policy.environment is Environment.PRODUCTION
        commitment = s.scalar(
            select(SecurityCommitment).where(
                SecurityCommitment.habilitation_id == issued.habilitation_id
            )
        )
        assert commitment is not None
        assert commitment.expires_at.isoformat() == "2029-01-01T00:00:00+00:00"
        assert commitment.request_id == request.id


def test_production_cannot_be_validated_once_its_attestation_lapsed(
    session_factory: sessionmaker[Session],
    world: World,
    cert_pem: str,
    clock: FrozenClock,
    master_secret: MasterSecret,
    uploads_dir: Path,
) -> None:
    with transaction(session_factory) as s:
        sandbox = new_complete_request(s, world, cert_pem, clock.now())
        validated(s, world, sandbox, clock.now(), master_secret)
        # Homologated on 2025-12-01 for 12 months: still valid at submission (2026-11-23).
        request = production_request(
            s,
            world,
            sandbox,
            uploads_dir,
            clock.now(),
            start_date="2025-12-01",
            duration_months=12,
        )
        submit(s, request, user(s, world.applicant), now=clock.now())
        request_id = request.id
    clock.advance(14 * 86400)  # 2026-12-07: the attestation expired on 2026-12-01
    with transaction(session_factory) as s:
        again = s.get(HabilitationRequest, request_id)
        assert again is not None
        request = again
        with pytest.raises(RequestInvalid) as refused:
            validate(
                s, request, user(s, world.instructor), "OK", now=clock.now(), master=master_secret
            )
        assert [e.field for e in refused.value.errors] == [
            "production.homologation.duration_months"
        ]
        assert "expirée" in refused.value.detail
        assert request.status is RequestStatus.SUBMITTED
    with session_factory() as s:
        assert not [
            h
            for h in load_snapshot(s, directory).habilitations.values()
            if h.environment is Environment.PRODUCTION
        ]


def test_the_technical_contact_must_still_be_a_verified_member(
    session_factory: sessionmaker[Session],
    world: World,
    cert_pem: str,
    clock: FrozenClock,
    master_secret: MasterSecret,
) -> None:
    with transaction(session_factory) as s:
        request = new_complete_request(s, world, cert_pem, clock.now())
        submit(s, request, user(s, world.applicant), now=clock.now())
        user(s, world.technical).email_verified_at = None
        with pytest.raises(RequestInvalid):
            validate(
                s, request, user(s, world.instructor), "OK", now=clock.now(), master=master_secret
            )
        assert s.scalars(select(Habilitation)).all() == []
    assert uuid.UUID(str(request.id))


def test_a_real_franceconnect_client_id_is_recorded_for_the_gateway(
    session_factory: sessionmaker[Session],
    world: World,
    cert_pem: str,
    clock: FrozenClock,
    master_secret: MasterSecret,
    uploads_dir: Path,
) -> None:
    """In production the declared client_id is the real FranceConnect's: unknown to the
    sandbox federation, it is recorded on the habilitation and reaches the gateway's
    policy; another organisation's client_id is refused."""
    real, taken = "a" * 64, "b" * 64
    with transaction(session_factory) as s:
        data = complete_data(cert_pem)
        data["perimeter"]["access_modes"] = ["franceconnect"]
        data["technical"]["federation_redirect_uris"] = ["https://qf.ville-a.fr/callback"]
        from guichet.application.issuance import start_request

        applicant = user(s, world.applicant)
        sandbox = start_request(s, applicant, world.org_a, now=clock.now())
        fill(s, sandbox, applicant, data, clock.now())
        sandbox_issued = validated(s, world, sandbox, clock.now(), master_secret)
        # Organisation B already declared ``taken`` for one of its habilitations.
        org_b = s.get(Organisation, world.org_b)
        assert org_b is not None
        hab_b = create_habilitation(
            s,
            org_b,
            HabilitationSpec(
                demarche="Autre démarche",
                environment=Environment.PRODUCTION,
                apis=["impot_particulier"],
                access_modes=["franceconnect"],
                data_scopes=["dgfip_rfr"],
                year_scopes=["dgfip_annee_n_moins_1"],
                ip_ranges=["127.0.0.1/32"],
                certificates_pem=[cert_pem],
            ),
            actor="tests",
            now=clock.now(),
        )
        declare_habilitation_client(s, hab_b, taken, clock.now())
        request = production_request(s, world, sandbox, uploads_dir, clock.now())
        technical = copy.deepcopy(request.data["technical"])
        technical["federation_client_id"] = taken
        save_block(s, request, applicant, Block.TECHNICAL, technical, now=clock.now())
        with pytest.raises(RequestInvalid) as refused:
            submit(s, request, applicant, now=clock.now())
        assert refused.value.errors[0].field == "technical.federation_client_id"
        technical["federation_client_id"] = real
        save_block(s, request, applicant, Block.TECHNICAL, technical, now=clock.now())
        submit(s, request, applicant, now=clock.now())
        issued = validate(
            s, request, user(s, world.instructor), "OK", now=clock.now(), master=master_secret
        )
        assert issued.federation_client_id == real
        assert s.get(FederationClient, real) is None  # nothing registered at the sandbox
    with session_factory() as s:
        snapshot = load_snapshot(s, directory)
        production = snapshot.habilitations[issued.habilitation_id]
        assert production.federation_clients == frozenset({real})
        sandbox_policy = snapshot.habilitations[sandbox_issued.habilitation_id]
        assert real not in sandbox_policy.federation_clients
        assert sandbox_issued.federation_client_id in sandbox_policy.federation_clients
        rows = s.scalars(
            select(HabilitationFederationClient).where(
                HabilitationFederationClient.client_id == real
            )
        ).all()
        assert [(r.habilitation_id, r.environment) for r in rows] == [
            (issued.habilitation_id, Environment.PRODUCTION)
        ]
