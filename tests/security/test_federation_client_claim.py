"""Issue 11, point 2: a partner claiming a federation client that is not theirs.

A partner's update request named the ``client_id`` of a client guichet registered for itself
(the portal's "who read my data", the data provider) or another organisation's, and the
instructor's validation bound it: the official citizen sign-in then asked consent to
transmit tax data to that partner. Each such request is now refused at submission and, if
it got that far, again at validation, on its field ``technical.federation_client_id``, and
the refused validation changes nothing. The instructor sees the client's name, redirect
URIs and owner before validating.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from markupsafe import escape
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette
from starlette.testclient import TestClient

from guichet.accounts.models import User
from guichet.application.issuance import (
    Issuance,
    RequestInvalid,
    accept_terms,
    save_block,
    start_request,
    start_update_request,
    submit,
    validate,
)
from guichet.clock import FrozenClock
from guichet.db import transaction
from guichet.demo import ensure_federation_data_provider, ensure_portal_federation_client
from guichet.federation.clients import directory, register_client
from guichet.federation.models import ClientKind, FederationClient
from guichet.habilitation.models import Habilitation, HabilitationFederationClient, Organisation
from guichet.habilitation.request_models import HabilitationRequest, RequestStatus
from guichet.habilitation.validation import Block
from guichet.runtime import Runtime
from guichet.secrets import MasterSecret
from guichet.settings import Settings
from tests.security.conftest import PEOPLE, sign_in

# The request workflow's certificate (its fixtures, shared).
from tests.unit.habilitation.conftest import cert_pem, pki  # noqa: F401
from tests.unit.habilitation.support import CGU, SIRET_A, SIRET_B, complete_data, fill
from tests.unit.portal.conftest import csrf_of

FIELD = "technical.federation_client_id"
TARGETS = ("portal", "data_provider", "other_organisation", "ownerless", "disabled")


@dataclass(frozen=True)
class Scene:
    habilitation_id: uuid.UUID  # Ville A's sandbox FranceConnect habilitation
    own_client: str  # its federation client, registered at its validation
    targets: dict[str, str]  # what A tries to claim → client id


def _person(session: Session, who: str) -> User:
    found = session.scalar(select(User).where(User.email == PEOPLE[who]))
    assert found is not None
    return found


def _org(session: Session, siret: str) -> uuid.UUID:
    found = session.scalar(select(Organisation.id).where(Organisation.siret == siret))
    assert found is not None
    return found


@pytest.fixture
def scene(
    peopled_portal: Starlette,
    engine: Engine,
    session_factory: sessionmaker[Session],
    clock: FrozenClock,
    master_secret: MasterSecret,
    cert_pem: str,  # noqa: F811
    tmp_path: Path,
) -> Scene:
    """Ville A holds a sandbox habilitation in FranceConnect mode; guichet registered its
    own clients as ``guichet init`` does; Société B owns a client of its own."""
    # guichet's own clients, registered by the real start-up code (loopback portal URL).
    runtime = Runtime(
        Settings(data_dir=tmp_path / "init", smtp_url=None),
        engine,
        session_factory,
        master_secret,
        clock,
    )
    portal_file = ensure_portal_federation_client(runtime)
    assert portal_file is not None
    provider_file = ensure_federation_data_provider(runtime)
    portal_id = json.loads(portal_file.read_text())["client_id"]
    provider_id = json.loads(provider_file.read_text())["client_id"]
    data = complete_data(cert_pem)
    data["perimeter"]["access_modes"] = ["franceconnect"]
    data["technical"]["federation_redirect_uris"] = ["https://qf.ville-a.fr/retour"]
    with transaction(session_factory) as s:
        applicant = _person(s, "partner")
        request = start_request(s, applicant, _org(s, SIRET_A), now=clock.now())
        fill(s, request, applicant, data, clock.now())
        issued = _validated(s, request, clock.now(), master_secret)
        assert issued.federation_client_id is not None
        redirect = ["https://b.example/retour"]
        sp = ClientKind.SERVICE_PROVIDER
        theirs = register_client(
            s,
            kind=sp,
            name="Société B — son service",
            now=clock.now(),
            redirect_uris=redirect,
            organisation_id=_org(s, SIRET_B),
        )
        ownerless = register_client(
            s, kind=sp, name="Sans propriétaire", now=clock.now(), redirect_uris=redirect
        )
        disabled = register_client(
            s,
            kind=sp,
            name="Ville A — ancien service",
            now=clock.now(),
            redirect_uris=redirect,
            organisation_id=_org(s, SIRET_A),
        )
        disabled.client.disabled = True
    return Scene(
        issued.habilitation_id,
        issued.federation_client_id,
        {
            "portal": portal_id,
            "data_provider": provider_id,
            "other_organisation": theirs.client_id,
            "ownerless": ownerless.client_id,
            "disabled": disabled.client_id,
        },
    )


def _validated(
    s: Session, request: HabilitationRequest, now: dt.datetime, master: MasterSecret
) -> Issuance:
    """Submitted by the partner, validated by the instructor."""
    submit(s, request, _person(s, "partner"), now=now)
    return validate(s, request, _person(s, "instructor"), "Conforme.", now=now, master=master)


def _update_request(
    s: Session, scene: Scene, client_id: str, now: dt.datetime
) -> HabilitationRequest:
    """Ville A's update request of its habilitation, naming ``client_id``, saved as the
    partner's form saves it."""
    hab = s.get(Habilitation, scene.habilitation_id)
    assert hab is not None
    partner = _person(s, "partner")
    request = start_update_request(s, partner, hab, now=now)
    technical = copy.deepcopy(request.data["technical"])
    technical["federation_client_id"] = client_id
    save_block(s, request, partner, Block.TECHNICAL, technical, now=now)
    accept_terms(s, request, partner, CGU, now=now)
    return request


def _untouched(s: Session, scene: Scene, target: str) -> None:
    """The claimed client is as it was: not bound to A's habilitation, not declared for it,
    and never a client the gateway accepts for it."""
    row = s.get(FederationClient, scene.targets[target])
    assert row is not None
    assert row.habilitation_id != scene.habilitation_id
    declared = s.scalars(
        select(HabilitationFederationClient.client_id).where(
            HabilitationFederationClient.habilitation_id == scene.habilitation_id
        )
    ).all()
    assert declared == [scene.own_client]
    assert scene.targets[target] not in directory(s).bound.get(scene.habilitation_id, frozenset())


@pytest.mark.parametrize("target", TARGETS)
def test_claiming_a_client_is_refused_at_submission(
    scene: Scene, session_factory: sessionmaker[Session], clock: FrozenClock, target: str
) -> None:
    with transaction(session_factory) as s:
        request = _update_request(s, scene, scene.targets[target], clock.now())
        with pytest.raises(RequestInvalid) as refused:
            submit(s, request, _person(s, "partner"), now=clock.now())
        assert [e.field for e in refused.value.errors] == [FIELD]
        assert request.status is RequestStatus.DRAFT
    with session_factory() as s:
        _untouched(s, scene, target)


@pytest.mark.parametrize("target", TARGETS)
def test_claiming_a_client_is_refused_at_validation(
    scene: Scene,
    peopled_portal: Starlette,
    session_factory: sessionmaker[Session],
    clock: FrozenClock,
    master_secret: MasterSecret,
    target: str,
) -> None:
    """A request submitted with A's own client whose client id then names another's (as a
    request submitted before the check would): the instructor's validation is refused on
    the field, in French, and its transaction writes nothing."""
    with transaction(session_factory) as s:
        request = _update_request(s, scene, scene.own_client, clock.now())
        submit(s, request, _person(s, "partner"), now=clock.now())
        data = copy.deepcopy(dict(request.data))
        data["technical"]["federation_client_id"] = scene.targets[target]
        request.data = data
        request_id = request.id
    # The service refuses…
    with session_factory() as s:
        found = s.get(HabilitationRequest, request_id)
        assert found is not None
        with pytest.raises(RequestInvalid) as refused:
            validate(
                s, found, _person(s, "instructor"), "OK", now=clock.now(), master=master_secret
            )
        assert [e.field for e in refused.value.errors] == [FIELD]
        message = refused.value.errors[0].message
        s.rollback()
    # …and so does the instructor's page, before anything is written.
    with TestClient(peopled_portal, follow_redirects=False) as instructor:
        sign_in(instructor, "instructor")
        page = instructor.get(f"/instruction/demandes/{request_id}")
        assert page.status_code == 200
        assert "client-federation-refus" in page.text
        answer = instructor.post(
            f"/instruction/demandes/{request_id}/decision",
            data={
                "action": "validate",
                "reason": "Conforme.",
                "csrf_token": csrf_of(instructor, "/instruction"),
            },
        )
    assert answer.status_code == 400, answer.text
    assert str(escape(message)) in answer.text  # the field's error, in French
    with session_factory() as s:
        found = s.get(HabilitationRequest, request_id)
        assert found is not None
        assert found.status is RequestStatus.SUBMITTED
        assert found.decided_at is None
        _untouched(s, scene, target)


def test_the_owner_binds_its_own_client(
    scene: Scene,
    session_factory: sessionmaker[Session],
    clock: FrozenClock,
    master_secret: MasterSecret,
) -> None:
    """What stays allowed: Ville A binds a client it owns (registered with its SIRET)."""
    with transaction(session_factory) as s:
        mine = register_client(
            s,
            kind=ClientKind.SERVICE_PROVIDER,
            name="Ville A — nouveau service",
            now=clock.now(),
            redirect_uris=["https://qf.ville-a.fr/nouveau"],
            organisation_id=_org(s, SIRET_A),
        )
        request = _update_request(s, scene, mine.client_id, clock.now())
        issued = _validated(s, request, clock.now(), master_secret)
        assert issued.federation_client_id == mine.client_id
    with session_factory() as s:
        row = s.get(FederationClient, mine.client_id)
        assert row is not None
        assert row.habilitation_id == scene.habilitation_id


def test_the_instructor_sees_the_client_before_validating(
    scene: Scene,
    peopled_portal: Starlette,
    session_factory: sessionmaker[Session],
    clock: FrozenClock,
) -> None:
    with transaction(session_factory) as s:
        request = _update_request(s, scene, scene.own_client, clock.now())
        submit(s, request, _person(s, "partner"), now=clock.now())
        request_id = request.id
    with TestClient(peopled_portal, follow_redirects=False) as instructor:
        sign_in(instructor, "instructor")
        page = instructor.get(f"/instruction/demandes/{request_id}")
    assert page.status_code == 200
    assert 'id="client-federation"' in page.text
    assert scene.own_client in page.text
    assert "Quotient familial" in page.text  # the client's name (the démarche's)
    assert "https://qf.ville-a.fr/retour" in page.text  # its redirect URI
    assert f"Ville A (SIRET {SIRET_A})" in page.text  # its owner
    assert "client-federation-refus" not in page.text


def test_guichet_own_clients_are_never_accepted_by_the_gateway(
    scene: Scene, session_factory: sessionmaker[Session], clock: FrozenClock
) -> None:
    """Even declared for a habilitation by some older path, guichet's own clients are in
    the policy snapshot's refused set."""
    with session_factory() as s:
        refused = directory(s).refused
    assert scene.targets["portal"] in refused
    assert scene.targets["data_provider"] in refused
    assert scene.own_client not in refused
