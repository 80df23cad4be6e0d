"""API FICOBA's habilitation form (issue 14): its perimeter (legal basis, the purpose of each
search type, volumes, agents) through the same request, instruction and issuance as Impôt
Particulier, and the C4 rule: a client certificate issued by a trusted authority, never
self-signed, refused at submission and at validation with a French message."""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from sqlalchemy.orm import Session, sessionmaker

from guichet.application.issuance import (
    RequestInvalid,
    save_block,
    start_production_request,
    submit,
    validate,
)
from guichet.catalog import vocabulary
from guichet.catalog.products import PRODUCTS
from guichet.clock import FrozenClock
from guichet.db import transaction
from guichet.habilitation.blocks import (
    FICOBA_SEARCH_SCOPES,
    PERIMETERS,
    Block,
    FicobaPerimeter,
    model_of,
)
from guichet.habilitation.models import Environment, Habilitation, Organisation
from guichet.habilitation.service import HabilitationError, HabilitationSpec, create_habilitation
from guichet.habilitation.validation import production_prerequisites, validate_for_submission
from guichet.pki import (
    LocalPki,
    ensure_local_pki,
    issue_client_certificate,
    self_signed_certificate,
)
from guichet.secrets import MasterSecret
from tests.unit.habilitation.support import (
    World,
    ficoba_data,
    make_world,
    new_complete_request,
    new_ficoba_request,
    production_block,
    user,
)
from tests.unit.habilitation.test_blocks import FakeForm


@pytest.fixture
def world(session_factory: sessionmaker[Session], clock: FrozenClock) -> World:
    with transaction(session_factory) as s:
        return make_world(s, clock.now())


@pytest.fixture
def trust(pki: LocalPki) -> list[x509.Certificate]:
    """The gateways' trust store: the local authority that issued ``cert_pem``."""
    return x509.load_pem_x509_certificates(pki.ca_cert_pem)


def certificate_errors(errors: list[object]) -> list[str]:
    return [e.message for e in errors if getattr(e, "field", "") == "technical.certificate_pem"]  # type: ignore[attr-defined]


def test_the_search_types_are_the_catalogue_s_and_grant_its_data_scopes() -> None:
    assert PERIMETERS["ficoba"] is FicobaPerimeter
    assert model_of("ficoba", Block.PERIMETER) is FicobaPerimeter
    assert set(FICOBA_SEARCH_SCOPES) == set(vocabulary.FICOBA_SEARCH_TYPES)
    assert len(FICOBA_SEARCH_SCOPES) == 11  # [002 §4]
    # One data scope per search type: the convention habilitates per type.
    assert len(set(FICOBA_SEARCH_SCOPES.values())) == 11
    assert set(FICOBA_SEARCH_SCOPES.values()) == PRODUCTS["ficoba"].data_scopes
    assert FICOBA_SEARCH_SCOPES["verification_iban_personne_physique"] == (
        "ficoba_recherche_verification_iban_personne_physique"
    )


def test_the_perimeter_reads_each_search_type_with_its_purpose() -> None:
    form = FakeForm(
        {
            "search_types": ["compte", "multi_detention_siret", "inconnu"],
            "purpose_compte": "Retrouver le titulaire d'un compte.",
            "purpose_multi_detention_siret": "",
            "purpose_personne_morale": "non cochée : ignorée",
            "secrecy_derogation": "Article L. 135 ZC du LPF",
            "annual_searches": "1000",
            "daily_peak": "2000",
            "agents_count": "zéro",
            "agents_description": "",
        }
    )
    perimeter = FicobaPerimeter.from_form(form)
    assert perimeter.search_types == {
        "compte": "Retrouver le titulaire d'un compte.",
        "multi_detention_siret": "",
    }
    assert perimeter.granted_scopes() == [
        "ficoba_recherche_compte",
        "ficoba_recherche_multi_detention_siret",
    ]
    assert perimeter.draft(perimeter.stored()).stored() == perimeter.stored()


def test_a_complete_ficoba_request_is_submitted_and_issued(
    session_factory: sessionmaker[Session],
    world: World,
    cert_pem: str,
    trust: list[x509.Certificate],
    clock: FrozenClock,
    master_secret: MasterSecret,
) -> None:
    with transaction(session_factory) as s:
        request = new_ficoba_request(s, world, cert_pem, clock.now(), trust)
        assert request.data["technical"]["certificate"]["trusted"] is True
        assert validate_for_submission(request, now=clock.now()) == []
        submit(s, request, user(s, world.applicant), now=clock.now())
        issued = validate(
            s,
            request,
            user(s, world.instructor),
            "Conforme.",
            now=clock.now(),
            master=master_secret,
        )
        hab = s.get(Habilitation, issued.habilitation_id)
        assert hab is not None
        assert hab.apis == ["ficoba"]
        # Exactly the two search types asked for, not the others of their groups.
        assert hab.data_scopes == [
            "ficoba_recherche_personne_physique",
            "ficoba_recherche_verification_iban_personne_physique",
        ]
        assert hab.year_scopes == []
        assert hab.access_modes == []
        assert hab.quotas == {"ficoba": 20}


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        (lambda p: p.update(search_types={}), "perimeter.search_types", "au moins"),
        (
            lambda p: p["search_types"].update(compte=" "),
            "perimeter.search_types.compte",
            "Finalité",
        ),
        (lambda p: p.pop("secrecy_derogation"), "perimeter.secrecy_derogation", "obligatoire"),
        (lambda p: p.update(annual_searches="beaucoup"), "perimeter.annual_searches", "nombre"),
        (lambda p: p.update(daily_peak=20000), "perimeter.daily_peak", "pas plus"),
        (lambda p: p.update(agents_count=0), "perimeter.agents_count", "positif"),
        (lambda p: p.pop("agents_description"), "perimeter.agents_description", "obligatoire"),
    ],
)
def test_each_missing_piece_of_the_perimeter_is_named(
    session_factory: sessionmaker[Session],
    world: World,
    cert_pem: str,
    trust: list[x509.Certificate],
    clock: FrozenClock,
    change: object,
    field: str,
    words: str,
) -> None:
    with transaction(session_factory) as s:
        request = new_ficoba_request(s, world, cert_pem, clock.now(), trust)
        perimeter = copy.deepcopy(ficoba_data(cert_pem)["perimeter"])
        change(perimeter)  # type: ignore[operator]
        save_block(
            s, request, user(s, world.applicant), Block.PERIMETER, perimeter, now=clock.now()
        )
        errors = validate_for_submission(request, now=clock.now())
    assert [e.field for e in errors] == [field]
    assert words in errors[0].message


def test_a_self_signed_certificate_is_refused_at_submission(
    session_factory: sessionmaker[Session],
    world: World,
    trust: list[x509.Certificate],
    clock: FrozenClock,
) -> None:
    own, _key = self_signed_certificate("ficoba client", 365, clock.now())
    with transaction(session_factory) as s:
        request = new_ficoba_request(s, world, own.decode(), clock.now(), trust)
        with pytest.raises(RequestInvalid) as refused:
            submit(s, request, user(s, world.applicant), now=clock.now())
    [message] = certificate_errors(refused.value.errors)  # type: ignore[arg-type]
    assert "autosigné n'est pas accepté pour l'API FICOBA" in message


def test_a_certificate_from_an_authority_the_guichet_does_not_trust_is_refused(
    session_factory: sessionmaker[Session],
    world: World,
    trust: list[x509.Certificate],
    clock: FrozenClock,
    tmp_path: Path,
) -> None:
    elsewhere = ensure_local_pki(tmp_path / "autre-ac", clock.now(), ["127.0.0.1"])
    foreign, _key = issue_client_certificate(elsewhere, "client", "Ville A", 365, clock.now())
    with transaction(session_factory) as s:
        request = new_ficoba_request(s, world, foreign.decode(), clock.now(), trust)
        assert request.data["technical"]["certificate"]["trusted"] is False
        [message] = certificate_errors(validate_for_submission(request, now=clock.now()))
    assert "autorité de certification reconnue par le guichet" in message


def test_without_a_trust_store_no_ficoba_certificate_is_accepted(
    session_factory: sessionmaker[Session], world: World, cert_pem: str, clock: FrozenClock
) -> None:
    with transaction(session_factory) as s:
        request = new_ficoba_request(s, world, cert_pem, clock.now())
        assert request.data["technical"]["certificate"]["trusted"] is None
        assert certificate_errors(validate_for_submission(request, now=clock.now()))


def test_impot_particulier_keeps_its_sandbox_rule_for_self_signed_certificates(
    session_factory: sessionmaker[Session], world: World, clock: FrozenClock
) -> None:
    """Only FICOBA (C4) refuses a self-signed certificate at the sandbox."""
    own, _key = self_signed_certificate("qf", 365, clock.now())
    with transaction(session_factory) as s:
        request = new_complete_request(s, world, own.decode(), clock.now())
        assert certificate_errors(validate_for_submission(request, now=clock.now())) == []


def test_a_ficoba_habilitation_is_never_granted_with_a_self_signed_certificate(
    session_factory: sessionmaker[Session], world: World, clock: FrozenClock
) -> None:
    own, _key = self_signed_certificate("ficoba client", 365, clock.now())
    now: dt.datetime = clock.now()
    spec = HabilitationSpec(
        demarche="Recouvrement",
        environment=Environment.SANDBOX,
        apis=["ficoba"],
        access_modes=[],
        data_scopes=["ficoba_recherche_compte"],
        year_scopes=[],
        ip_ranges=["127.0.0.1/32"],
        certificates_pem=[own.decode()],
    )
    with transaction(session_factory) as s:
        org = s.get(Organisation, world.org_a)
        assert org is not None
        with pytest.raises(HabilitationError, match="autosigné"):
            create_habilitation(s, org, spec, actor="test", now=now)


@pytest.mark.parametrize(
    "shared", ["ficoba_comptes", "ficoba_verification_iban", "ficoba_multi_detention"]
)
def test_the_shared_scopes_of_old_are_no_longer_granted(
    session_factory: sessionmaker[Session],
    world: World,
    cert_pem: str,
    clock: FrozenClock,
    shared: str,
) -> None:
    """Each stood for several search types; a habilitation now grants them one by one."""
    spec = HabilitationSpec(
        demarche="Recouvrement",
        environment=Environment.SANDBOX,
        apis=["ficoba"],
        access_modes=[],
        data_scopes=[shared],
        year_scopes=[],
        ip_ranges=["127.0.0.1/32"],
        certificates_pem=[cert_pem],
    )
    with transaction(session_factory) as s:
        org = s.get(Organisation, world.org_a)
        assert org is not None
        with pytest.raises(HabilitationError, match="inconnu"):
            create_habilitation(s, org, spec, actor="test", now=clock.now())


def test_the_certificate_is_checked_again_at_submission(
    session_factory: sessionmaker[Session],
    world: World,
    cert_pem: str,
    trust: list[x509.Certificate],
    clock: FrozenClock,
    tmp_path: Path,
) -> None:
    """The authorities trusted changed since the step was saved: submission sees it."""
    elsewhere = ensure_local_pki(tmp_path / "autre-ac", clock.now(), ["127.0.0.1"])
    other_trust = x509.load_pem_x509_certificates(elsewhere.ca_cert_pem)
    with transaction(session_factory) as s:
        request = new_ficoba_request(s, world, cert_pem, clock.now(), trust)
        with pytest.raises(RequestInvalid) as refused:
            submit(s, request, user(s, world.applicant), now=clock.now(), trust_store=other_trust)
    [message] = certificate_errors(refused.value.errors)  # type: ignore[arg-type]
    assert "reconnue par le guichet" in message


def test_the_production_step_does_not_ask_the_derogation_twice(
    session_factory: sessionmaker[Session],
    world: World,
    cert_pem: str,
    trust: list[x509.Certificate],
    clock: FrozenClock,
    master_secret: MasterSecret,
    uploads_dir: Path,
) -> None:
    """FICOBA's perimeter names the derogation: the legal block does not ask for it again."""
    with transaction(session_factory) as s:
        sandbox = new_ficoba_request(s, world, cert_pem, clock.now(), trust)
        submit(s, sandbox, user(s, world.applicant), now=clock.now())
        validate(
            s,
            sandbox,
            user(s, world.instructor),
            "Conforme.",
            now=clock.now(),
            master=master_secret,
        )
        applicant = user(s, world.applicant)
        production = start_production_request(s, applicant, sandbox, now=clock.now())
        block = production_block(s, production, applicant, uploads_dir, clock.now())
        save_block(s, production, applicant, Block.PRODUCTION, block, now=clock.now())
        fields = [e.field for e in production_prerequisites(production, now=clock.now())]
    assert fields == ["contacts.dpo"]
