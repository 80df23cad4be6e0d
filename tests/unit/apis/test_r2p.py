"""API R2P: état civil → SPI, a person's record, search; homonyms and secrecy."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker
from stdnum.fr import nif

from guichet.apis.r2p import build_operations
from guichet.apis.r2p.operations import MAX_ANSWERS
from guichet.catalog.products import R2P
from guichet.clock import FrozenClock
from guichet.db import transaction
from guichet.errors import (
    AccessModeNotGranted,
    NotCommunicable,
    NotFound,
    ParameterInvalid,
    SpiInvalid,
    TooManyAnswers,
)
from guichet.gateway.context import ApiDeps, ApiResponse, CallContext, OperationHandler
from guichet.habilitation.models import Environment
from guichet.records.models import Person
from guichet.sandbox import personas
from guichet.sandbox.population import seed
from tests.unit.apis.support import context, habilitation, request

DUBOIS = {
    "nom": "Dubois",
    "prenom": "Angela",
    "sexe": "F",
    "naisDate": "1962-08-24",
    "naisCodePays": "99100",
    "naisCodeDept": "75",
    "naisCodeCommune": "75107",
}


@pytest.fixture
def ops(session_factory: sessionmaker[Session], clock: FrozenClock) -> dict[str, OperationHandler]:
    seed(session_factory, households=3, reference_year=2026)
    return build_operations(ApiDeps(session_factory=session_factory, clock=clock))


@pytest.fixture
def ctx(clock: FrozenClock) -> CallContext:
    return context(clock.now(), habilitation(access_modes={"etat_civil"}))


@pytest.fixture
def parsers(clock: FrozenClock) -> dict[str, OperationHandler]:
    """Handlers for parse-only tests: parsing never reads the store."""
    return build_operations(ApiDeps(session_factory=sessionmaker(), clock=clock))


def call(
    op: OperationHandler,
    ctx: CallContext,
    query: dict[str, str] | None = None,
    path: dict[str, Any] | None = None,
) -> ApiResponse:
    parsed = op.parse(request(path, query))
    op.authorize(ctx, parsed)
    return asyncio.run(op.fetch(ctx, parsed))


def test_every_catalogue_operation_has_a_handler(ops: dict[str, OperationHandler]) -> None:
    assert set(ops) == {o.name for o in R2P.operations}


def test_etat_civil_to_spi(ops: dict[str, OperationHandler], ctx: CallContext) -> None:
    response = call(
        ops["r2p_personne_spi"], ctx, DUBOIS | {"nom": "DUBÔIS", "prenom": "angela claire"}
    )
    assert response.body == {"identifiant": {"spi": personas.DUBOIS.spi}}
    assert ctx.subject_spi == personas.DUBOIS.spi
    assert ctx.data_scopes_returned == ["r2p_identifiant"]


def test_born_abroad_needs_no_commune(ops: dict[str, OperationHandler], ctx: CallContext) -> None:
    query = {
        "nom": "da silva",
        "prenom": "Pedro",
        "sexe": "M",
        "naisDate": "1980-08-08",
        "naisCodePays": "99139",
    }
    assert (
        call(ops["r2p_personne_spi"], ctx, query).body["identifiant"]["spi"] == personas.ABROAD.spi
    )
    with pytest.raises(ParameterInvalid) as caught:
        ops["r2p_personne_spi"].parse(request(query=query | {"naisCodeCommune": "75107"}))
    assert caught.value.field == "naisCodeCommune"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"nom": ""}, "nom"),
        ({"nom": "Dub0is"}, "nom"),
        ({"prenom": None}, "prenom"),
        ({"sexe": "X"}, "sexe"),
        ({"sexe": None}, "sexe"),
        ({"naisDate": "24/08/1962"}, "naisDate"),
        ({"naisDate": "1962-02-30"}, "naisDate"),
        ({"naisDate": None}, "naisDate"),
        ({"naisCodePays": "100"}, "naisCodePays"),
        ({"naisCodePays": None}, "naisCodePays"),
        ({"naisCodeDept": "7"}, "naisCodeDept"),
        ({"naisCodeCommune": None}, "naisCodeCommune"),
        ({"naisCodeCommune": "7510"}, "naisCodeCommune"),
    ],
)
def test_parameters_are_validated_with_their_name(
    parsers: dict[str, OperationHandler], change: dict[str, str | None], field: str
) -> None:
    query = {k: v for k, v in (DUBOIS | change).items() if v is not None}
    with pytest.raises(ParameterInvalid) as caught:
        parsers["r2p_personne_spi"].parse(request(query=query))
    assert caught.value.field == field


def test_homonyms_are_too_many_answers(ops: dict[str, OperationHandler], ctx: CallContext) -> None:
    query = {
        "nom": "Dupont",
        "prenom": "Jean",
        "sexe": "M",
        "naisDate": "1975-05-05",
        "naisCodePays": "99100",
        "naisCodeCommune": "75111",
    }
    with pytest.raises(TooManyAnswers):
        call(ops["r2p_personne_spi"], ctx, query)
    assert ctx.subject_spi is None
    # The search lists them both.
    found = call(
        ops["r2p_personne_recherche"], ctx, {"nom": "dupont", "naisDate": "1975-05-05"}
    ).body
    assert [p["identifiant"]["spi"] for p in found] == [
        personas.HOMONYM_1.spi,
        personas.HOMONYM_2.spi,
    ]


def _namesakes(session_factory: sessionmaker[Session], first: int, count: int) -> None:
    """Persons ``first``…``first + count - 1`` sharing one birth name and birth date (valid
    SPIs starting with 41, unlike the seeded population's and the personas')."""
    with transaction(session_factory) as session:
        for i in range(first, first + count):
            body = str(4_100_000_000 + i)
            session.add(
                Person(
                    store="sandbox",
                    spi=body + nif.calc_check_digits(body),
                    sexe="F" if i % 2 else "M",
                    nom_naissance="HOMONYME",
                    nom_usage=None,
                    prenoms=f"Camille{'' if i % 3 else ' Marie'}",
                    date_naissance=dt.date(1980, 3, 14),
                    code_pays_naissance="99100",
                    code_dept_naissance="69",
                    code_commune_naissance="69123",
                    lieu_naissance="LYON",
                    adresse={"codeCommune": "69123"},
                    communicable=True,
                )
            )


def test_a_search_past_max_answers_is_too_many_answers(
    ops: dict[str, OperationHandler],
    ctx: CallContext,
    session_factory: sessionmaker[Session],
) -> None:
    search = {"nom": "Homonyme", "naisDate": "1980-03-14"}
    _namesakes(session_factory, 0, MAX_ANSWERS)
    found = call(ops["r2p_personne_recherche"], ctx, search).body
    assert len(found) == MAX_ANSWERS  # exactly the limit is still answered
    _namesakes(session_factory, MAX_ANSWERS, 1)
    fresh = context(ctx.now, habilitation(access_modes={"etat_civil"}))
    with pytest.raises(TooManyAnswers) as caught:
        call(ops["r2p_personne_recherche"], fresh, search)
    assert caught.value.status == 403
    assert caught.value.code == "too_many_answers"
    # Nothing leaves and no one is the subject: no data scope, no pseudonym.
    assert fresh.data_scopes_returned == []
    assert fresh.subject_spi is None
    # Narrower criteria bring it back under the limit.
    narrower = call(ops["r2p_personne_recherche"], fresh, search | {"sexe": "F"}).body
    assert 0 < len(narrower) <= MAX_ANSWERS


def test_not_found_and_not_communicable(ops: dict[str, OperationHandler], ctx: CallContext) -> None:
    with pytest.raises(NotFound):
        call(ops["r2p_personne_spi"], ctx, DUBOIS | {"naisDate": "1962-08-25"})
    secret = {
        "nom": "Mercier",
        "prenom": "Elise",
        "sexe": "F",
        "naisDate": "1968-07-12",
        "naisCodePays": "99100",
        "naisCodeCommune": "75115",
    }
    with pytest.raises(NotCommunicable):
        call(ops["r2p_personne_spi"], ctx, secret)
    with pytest.raises(NotCommunicable):
        call(ops["r2p_personne"], ctx, path={"spi": personas.SECRET.spi})
    with pytest.raises(NotCommunicable):
        call(ops["r2p_personne_recherche"], ctx, {"nom": "Mercier", "naisDate": "1968-07-12"})


def test_personne_by_spi(ops: dict[str, OperationHandler], ctx: CallContext) -> None:
    body = call(ops["r2p_personne"], ctx, path={"spi": personas.DUBOIS.spi}).body
    person = body["personnePhysique"]
    assert person["identifiant"] == {"spi": personas.DUBOIS.spi}
    assert person["etatCivil"] == {
        "sexe": "F",
        "nomNaissance": "DUBOIS",
        "nomUsage": None,
        "prenoms": "Angela Claire Louise",
        "dateNaissance": "1962-08-24",
        "codePaysNaissance": "99100",
        "codeDeptNaissance": "75",
        "codeCommuneNaissance": "75107",
        "lieuNaissance": "PARIS 07",
    }
    assert person["adresse"]["codeCommune"] == "75107"
    assert ctx.data_scopes_returned == ["r2p_adresse", "r2p_etat_civil", "r2p_identifiant"]
    with pytest.raises(SpiInvalid):
        ops["r2p_personne"].parse(request({"spi": "3000000019269"}))
    with pytest.raises(NotFound):
        call(ops["r2p_personne"], ctx, path={"spi": "3000000020269"})


def test_sandbox_persons_never_appear_in_production(
    ops: dict[str, OperationHandler], clock: FrozenClock
) -> None:
    prod = context(
        clock.now(), habilitation(environment=Environment.PRODUCTION), Environment.PRODUCTION
    )
    with pytest.raises(NotFound):
        call(ops["r2p_personne"], prod, path={"spi": personas.DUBOIS.spi})
    with pytest.raises(NotFound):
        call(ops["r2p_personne_spi"], prod, DUBOIS)


def test_search_requires_name_and_birth_date(parsers: dict[str, OperationHandler]) -> None:
    with pytest.raises(ParameterInvalid) as caught:
        parsers["r2p_personne_recherche"].parse(request(query={"nom": "Dubois"}))
    assert caught.value.field == "naisDate"


def test_access_mode(ops: dict[str, OperationHandler], clock: FrozenClock) -> None:
    fc_only = context(clock.now(), habilitation(access_modes={"franceconnect"}))
    with pytest.raises(AccessModeNotGranted):
        call(ops["r2p_personne_spi"], fc_only, DUBOIS)
    spi_mode = context(clock.now(), habilitation(access_modes={"spi"}))
    assert call(ops["r2p_personne_spi"], spi_mode, DUBOIS).body
