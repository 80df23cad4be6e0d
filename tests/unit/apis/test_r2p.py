"""API R2P: the provider's query formats and filters, its answers, homonyms and secrecy."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker
from stdnum.fr import nif

from guichet.apis import load_openapi
from guichet.apis.context import ApiDeps, ApiResponse, CallContext, OperationHandler
from guichet.apis.r2p import build_operations
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
from guichet.habilitation.models import Environment
from guichet.records.geography import adresse_reponse, street_code
from guichet.records.models import Person
from guichet.sandbox import personas
from guichet.sandbox.household import Address, Declarant
from guichet.sandbox.population import seed
from tests.unit.apis.support import context, habilitation, request

DUBOIS = {
    "nom": "Dubois",
    "prenom": "Angela",
    "sexe": "2",
    "naisDate": "24/08/1962",
    "naisCodePays": "99100",
    "naisCodeDept": "75",
    "naisCodeCommune": "107",
}
DUPONT = {"nom": "Dupont", "prenom": "Jean", "naisDate": "05/05/1975"}
SECRET = {"nom": "Mercier", "prenom": "Elise", "naisDate": "12/07/1968"}
ABROAD = {"nom": "da silva", "prenom": "Pedro"}


def _spi(n: int) -> str:
    """Valid SPIs starting with 31, unlike the seeded population's and the personas'."""
    body = str(3_100_000_000 + n)
    return body + nif.calc_check_digits(body)


# Persons born and living where no persona is: Corsica, a DOM, a TOM, a repetition index.
AJACCIO = Declarant(_spi(1), "F", "Santoni", "Maria", dt.date(1970, 2, 3), "2A004")
REUNION = Declarant(_spi(2), "M", "Payet", "Jean Marc", dt.date(1981, 10, 9), "97411")
PAPEETE = Declarant(_spi(3), "F", "Teriitehau", "Moana", dt.date(1990, 6, 30), "98735")
MAYOTTE = _spi(4)
ELSEWHERE = (
    (AJACCIO, Address("5 bis cours Napoléon", "2A004")),
    (REUNION, Address("14 rue de Paris", "97411")),
    (PAPEETE, Address("3 avenue Pouvanaa", "98735")),
)


@pytest.fixture
def ops(session_factory: sessionmaker[Session], clock: FrozenClock) -> dict[str, OperationHandler]:
    seed(session_factory, households=3, reference_year=2026)
    with transaction(session_factory) as session:
        for declarant, address in ELSEWHERE:
            session.add(Person(**declarant.person_row("sandbox", address)))
        session.add(
            Person(  # born in Mayotte (COG 97611), a commune the sandbox never draws
                store="sandbox",
                spi=MAYOTTE,
                sexe="M",
                nom_naissance="SAID",
                nom_usage=None,
                prenoms="Ali",
                date_naissance=dt.date(1999, 1, 1),
                code_pays_naissance="99100",
                code_dept_naissance="976",
                code_commune_naissance="97611",
                lieu_naissance="MAMOUDZOU",
                adresse=adresse_reponse(
                    voie="1 rue du Commerce", commune="97611", commune_name="Mamoudzou"
                ),
                communicable=True,
            )
        )
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


def spi_of(ops: dict[str, OperationHandler], ctx: CallContext, query: dict[str, str]) -> str:
    body = call(ops["r2p_personne_spi"], ctx, query).body
    assert body.keys() == {"identifiant"}
    spi: str = body["identifiant"]["spi"]
    return spi


def found(ops: dict[str, OperationHandler], ctx: CallContext, query: dict[str, str]) -> str:
    """The SPI of the one person ``/personne`` answers."""
    body = call(ops["r2p_personne_recherche"], ctx, query).body
    assert body.keys() == {"personnePhysique"}
    spi: str = body["personnePhysique"]["identifiant"]["spi"]
    return spi


# ------------------------------------------------------------------- the document's schemas


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        node: Any = document
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def conforms(document: dict[str, Any], value: Any, schema: dict[str, Any], at: str = "") -> None:
    """``value`` against guichet's published schema (objects of strings, as R2P's are)."""
    schema = _resolve(document, schema)
    if schema.get("type") == "object":
        assert isinstance(value, dict), at
        assert set(schema.get("required", ())) <= value.keys(), at
        if schema.get("additionalProperties") is False:
            assert value.keys() <= schema["properties"].keys(), (at, value.keys())
        for key, item in value.items():
            conforms(document, item, schema["properties"][key], f"{at}.{key}")
        return
    assert schema["type"] == "string", at
    assert isinstance(value, str), (at, value)  # never null, never a number
    if "pattern" in schema:
        assert re.search(schema["pattern"], value), (at, value)
    if "enum" in schema:
        assert value in schema["enum"], (at, value)


def schema(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return load_openapi("r2p", "https://127.0.0.1:8443")


# ------------------------------------------------------------------------------- the tests


def test_every_catalogue_operation_has_a_handler(ops: dict[str, OperationHandler]) -> None:
    assert set(ops) == {o.name for o in R2P.operations}


def test_the_document_names_the_providers_operations(document: dict[str, Any]) -> None:
    operations = {
        op["operationId"]: (path, op["x-guichet-operation"])
        for path, item in document["paths"].items()
        for op in item.values()
    }
    assert operations == {
        "RechercheParCriteres": ("/personne", "r2p_personne_recherche"),
        "RechercheParEtatCivil": ("/personne/spi", "r2p_personne_spi"),
        "RechercheParSPI": ("/personne/{spi}", "r2p_personne"),
    }
    assert {o.name: o.path for o in R2P.operations} == {
        name: path for path, name in operations.values()
    }


def test_etat_civil_to_spi(ops: dict[str, OperationHandler], ctx: CallContext) -> None:
    response = call(
        ops["r2p_personne_spi"], ctx, DUBOIS | {"nom": " DUBÔIS ", "prenom": "angela claire"}
    )
    assert response.body == {"identifiant": {"spi": personas.DUBOIS.spi}}
    assert response.media_type == "application/json"
    assert ctx.subject_spi == personas.DUBOIS.spi
    assert ctx.data_scopes_returned == ["r2p_identifiant"]


@pytest.mark.parametrize("nais_date", ["24/08/1962", "08/1962", "1962"])
@pytest.mark.parametrize("operation", ["r2p_personne_spi", "r2p_personne_recherche"])
def test_each_birth_date_form(
    ops: dict[str, OperationHandler], ctx: CallContext, operation: str, nais_date: str
) -> None:
    """A day, a month or a year of birth: each a range the birth date falls in."""
    query = {"nom": "Dubois", "prenom": "Angela", "naisDate": nais_date}
    body = call(ops[operation], ctx, query).body
    assert personas.DUBOIS.spi in str(body)


@pytest.mark.parametrize("nais_date", ["25/08/1962", "09/1962", "1963"])
def test_a_birth_date_range_that_misses_is_not_found(
    ops: dict[str, OperationHandler], ctx: CallContext, nais_date: str
) -> None:
    with pytest.raises(NotFound):
        call(
            ops["r2p_personne_spi"],
            ctx,
            {"nom": "Dubois", "prenom": "Angela", "naisDate": nais_date},
        )


def test_sexe_is_1_or_2(ops: dict[str, OperationHandler], ctx: CallContext) -> None:
    assert spi_of(ops, ctx, {"nom": "Dubois", "prenom": "Angela", "sexe": "2"}) == (
        personas.DUBOIS.spi
    )
    assert spi_of(ops, ctx, ABROAD | {"sexe": "1"}) == personas.ABROAD.spi
    with pytest.raises(NotFound):
        call(ops["r2p_personne_spi"], ctx, {"nom": "Dubois", "prenom": "Angela", "sexe": "1"})


@pytest.mark.parametrize(
    ("dept", "commune", "who"),
    [
        ("75", "107", personas.DUBOIS.spi),
        ("075", "107", personas.DUBOIS.spi),
        ("75", None, personas.DUBOIS.spi),
        (None, "107", personas.DUBOIS.spi),  # the last three characters of the COG
        ("2A", "004", AJACCIO.spi),
        ("02A", "004", AJACCIO.spi),
        ("2a", None, AJACCIO.spi),
        ("974", "411", REUNION.spi),
        ("974", "11", REUNION.spi),
        ("976", "611", MAYOTTE),
        ("976", None, MAYOTTE),
        ("987", "35", PAPEETE.spi),  # a TOM: its commune on two characters
        ("987", "735", PAPEETE.spi),
    ],
)
def test_each_department_and_commune_form(
    ops: dict[str, OperationHandler],
    ctx: CallContext,
    dept: str | None,
    commune: str | None,
    who: str,
) -> None:
    names = {
        personas.DUBOIS.spi: ("Dubois", "Angela"),
        AJACCIO.spi: ("Santoni", "Maria"),
        REUNION.spi: ("Payet", "Jean"),
        MAYOTTE: ("Said", "Ali"),
        PAPEETE.spi: ("Teriitehau", "Moana"),
    }
    nom, prenom = names[who]
    query = {"nom": nom, "prenom": prenom}
    if dept is not None:
        query["naisCodeDept"] = dept
    if commune is not None:
        query["naisCodeCommune"] = commune
    assert spi_of(ops, ctx, query) == who
    assert found(ops, ctx, query) == who


@pytest.mark.parametrize(
    "change",
    [
        {"naisCodeDept": "69"},
        {"naisCodeCommune": "115"},
        {"naisCodeDept": "974", "naisCodeCommune": "107"},
        {"naisCodePays": "99139"},
        {"naisCodeDept": "99"},
    ],
)
def test_birth_criteria_the_data_cannot_satisfy_are_not_found(
    ops: dict[str, OperationHandler], ctx: CallContext, change: dict[str, str]
) -> None:
    with pytest.raises(NotFound):
        call(ops["r2p_personne_spi"], ctx, DUBOIS | change)


def test_born_abroad(ops: dict[str, OperationHandler], ctx: CallContext) -> None:
    """Pedro DA SILVA, born in Portugal: no department nor commune; INSEE's department 99
    (the IR record's ``dptNaissDec``) designates a birth abroad, its commune the country."""
    for extra in (
        {"naisCodePays": "99139"},
        {"naisCodePays": "99139", "naisDate": "08/08/1980"},
        {"naisCodeDept": "99"},
        {"naisCodeDept": "099", "naisCodeCommune": "139"},
    ):
        assert spi_of(ops, ctx, ABROAD | extra) == personas.ABROAD.spi, extra
    for extra in (
        {"naisCodePays": "99100"},
        {"naisCodeDept": "75"},
        {"naisCodeDept": "99", "naisCodeCommune": "127"},
        {"naisCodeDept": "99", "naisCodeCommune": "139", "naisCodePays": "99127"},
    ):
        with pytest.raises(NotFound):
            call(ops["r2p_personne_spi"], ctx, ABROAD | extra)
    person = call(ops["r2p_personne"], ctx, path={"spi": personas.ABROAD.spi}).body
    etat_civil = person["personnePhysique"]["etatCivil"]
    assert etat_civil["cdPaysNaissance"] == "99139"
    assert not {"cdDeptNaissance", "cdTOMNaissance", "cdCommuneNaissance"} & etat_civil.keys()


@pytest.mark.parametrize(
    ("filters", "who"),
    [
        ({"adrNumVoie": "12"}, personas.HOMONYM_1.spi),
        ({"adrNumVoie": "012"}, personas.HOMONYM_1.spi),
        ({"adrNumVoie": "40"}, personas.HOMONYM_2.spi),
        ({"adrLibelleTypeVoie": "RUE"}, personas.HOMONYM_1.spi),
        ({"adrLibelleTypeVoie": "bd"}, personas.HOMONYM_2.spi),
        (
            {"adrCodeDept": "75", "adrCodeCommune": "111", "adrLibelleVoie": "Oberkampf"},
            personas.HOMONYM_1.spi,
        ),
        (
            {"adrCodeDept": "075", "adrCodeCommune": "111", "adrLibelleVoie": "voltaire"},
            personas.HOMONYM_2.spi,
        ),
        (
            {
                "adrCodePays": "99100",
                "adrCodeDept": "75",
                "adrCodeCommune": "111",
                "adrLibelleTypeVoie": "BD",
                "adrLibelleVoie": "VOLTAIRE",
                "adrNumVoie": "40",
            },
            personas.HOMONYM_2.spi,
        ),
    ],
)
def test_each_address_filter_narrows(
    ops: dict[str, OperationHandler], ctx: CallContext, filters: dict[str, str], who: str
) -> None:
    """The two Jean DUPONT share an état civil: the address tells them apart."""
    with pytest.raises(TooManyAnswers):
        call(ops["r2p_personne_recherche"], ctx, DUPONT)
    assert found(ops, ctx, DUPONT | filters) == who
    assert ctx.subject_spi == who
    assert ctx.data_scopes_returned == ["r2p_adresse", "r2p_etat_civil", "r2p_identifiant"]


def test_address_filters_on_the_other_places(
    ops: dict[str, OperationHandler], ctx: CallContext
) -> None:
    santoni = {"nom": "Santoni", "prenom": "Maria"}
    assert found(ops, ctx, santoni | {"adrIndiceRepetition": "B"}) == AJACCIO.spi
    assert found(ops, ctx, santoni | {"adrIndiceRepetition": "b"}) == AJACCIO.spi
    assert found(ops, ctx, santoni | {"adrCodeDept": "2A", "adrCodeCommune": "004"}) == (
        AJACCIO.spi
    )
    assert found(ops, ctx, santoni | {"adrLibelleTypeVoie": "CRS"}) == AJACCIO.spi
    moana = {"nom": "Teriitehau", "prenom": "Moana"}
    assert found(ops, ctx, moana | {"adrCodeTom": "987"}) == PAPEETE.spi
    assert found(ops, ctx, moana | {"adrCodeDept": "987"}) == PAPEETE.spi
    assert found(ops, ctx, {"nom": "Payet", "prenom": "Jean", "adrCodeDept": "974"}) == (
        REUNION.spi
    )


@pytest.mark.parametrize(
    "filters",
    [
        {"adrCodePays": "99139"},
        {"adrCodeDept": "69"},
        {"adrCodeTom": "975"},
        {"adrCodeDept": "75", "adrCodeCommune": "107"},
        {"adrCodeDept": "75", "adrCodeCommune": "111", "adrLibelleVoie": "Lecourbe"},
        {"adrLibelleTypeVoie": "AV"},
        {"adrNumVoie": "13"},
        {"adrIndiceRepetition": "B"},
    ],
)
def test_an_address_filter_the_data_cannot_satisfy_is_not_found(
    ops: dict[str, OperationHandler], ctx: CallContext, filters: dict[str, str]
) -> None:
    with pytest.raises(NotFound):
        call(ops["r2p_personne_recherche"], ctx, DUPONT | filters)
    assert ctx.subject_spi is None


@pytest.mark.parametrize(
    ("filters", "field"),
    [
        ({"adrCodeCommune": "111"}, "adrCodeCommune"),
        ({"adrCodeTom": "987", "adrCodeCommune": "735"}, "adrCodeCommune"),
        ({"adrLibelleVoie": "Oberkampf"}, "adrLibelleVoie"),
        ({"adrCodeDept": "75", "adrLibelleVoie": "Oberkampf"}, "adrLibelleVoie"),
    ],
)
def test_the_providers_address_rules(
    parsers: dict[str, OperationHandler], filters: dict[str, str], field: str
) -> None:
    """A commune only with a department, a street name only with both."""
    with pytest.raises(ParameterInvalid) as caught:
        parsers["r2p_personne_recherche"].parse(request(query=DUPONT | filters))
    assert caught.value.field == field
    assert caught.value.status == 400


@pytest.mark.parametrize("operation", ["r2p_personne_spi", "r2p_personne_recherche"])
def test_a_criterion_besides_nom_and_prenom_is_required(
    parsers: dict[str, OperationHandler], operation: str
) -> None:
    with pytest.raises(ParameterInvalid) as caught:
        parsers[operation].parse(request(query={"nom": "Dubois", "prenom": "Angela"}))
    assert caught.value.field is None
    assert "au moins un critère" in caught.value.detail
    # Unknown parameters are ignored: they are no criterion either.
    with pytest.raises(ParameterInvalid):
        parsers[operation].parse(
            request(query={"nom": "Dubois", "prenom": "Angela", "naisdate": "1962"})
        )


def test_an_address_filter_is_a_criterion_of_the_search(
    ops: dict[str, OperationHandler], ctx: CallContext
) -> None:
    query = {"nom": "Dubois", "prenom": "Angela", "adrCodeDept": "75"}
    assert found(ops, ctx, query) == personas.DUBOIS.spi
    # /personne/spi has no address filter: ignored there, like any unknown parameter.
    with pytest.raises(ParameterInvalid):
        ops["r2p_personne_spi"].parse(request(query=query))


def test_unknown_parameters_are_ignored(ops: dict[str, OperationHandler], ctx: CallContext) -> None:
    assert spi_of(ops, ctx, DUBOIS | {"naisLieu": "Paris", "sexe": "2", "x": ""}) == (
        personas.DUBOIS.spi
    )


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"nom": ""}, "nom"),
        ({"nom": "   "}, "nom"),
        ({"nom": None}, "nom"),
        ({"nom": "Dub0is"}, "nom"),
        ({"nom": "A" * 101}, "nom"),
        ({"prenom": None}, "prenom"),
        ({"prenom": "Angela " + "M" * 21}, "prenom"),  # 20 characters per first name
        ({"prenom": "Angela_Claire"}, "prenom"),
        ({"sexe": "M"}, "sexe"),
        ({"sexe": "F"}, "sexe"),
        ({"sexe": "3"}, "sexe"),
        ({"sexe": ""}, "sexe"),
        ({"sexe": " 2"}, "sexe"),
        ({"naisDate": "1962-08-24"}, "naisDate"),
        ({"naisDate": "31/02/1962"}, "naisDate"),
        ({"naisDate": "13/1962"}, "naisDate"),
        ({"naisDate": "00/1962"}, "naisDate"),
        ({"naisDate": "0000"}, "naisDate"),
        ({"naisDate": "24/08/62"}, "naisDate"),
        ({"naisDate": "24/8/1962"}, "naisDate"),
        ({"naisDate": "1962\n"}, "naisDate"),
        ({"naisDate": ""}, "naisDate"),
        ({"naisCodePays": "100"}, "naisCodePays"),
        ({"naisCodePays": "FR"}, "naisCodePays"),
        ({"naisCodePays": "99100 "}, "naisCodePays"),
        ({"naisCodeDept": "7"}, "naisCodeDept"),
        ({"naisCodeDept": "0750"}, "naisCodeDept"),
        ({"naisCodeDept": "97"}, "naisCodeDept"),
        ({"naisCodeDept": "2C"}, "naisCodeDept"),
        ({"naisCodeDept": "96"}, "naisCodeDept"),
        ({"naisCodeCommune": "75107"}, "naisCodeCommune"),  # the COG: 3 characters only
        ({"naisCodeCommune": "7510"}, "naisCodeCommune"),
        ({"naisCodeCommune": "1"}, "naisCodeCommune"),
        ({"naisCodeCommune": "07"}, "naisCodeCommune"),  # 2 only with a TOM
        ({"naisCodeCommune": "1A7"}, "naisCodeCommune"),
    ],
)
def test_parameters_are_validated_with_their_name(
    parsers: dict[str, OperationHandler], change: dict[str, str | None], field: str
) -> None:
    query = {k: v for k, v in (DUBOIS | change).items() if v is not None}
    for operation in ("r2p_personne_spi", "r2p_personne_recherche"):
        with pytest.raises(ParameterInvalid) as caught:
            parsers[operation].parse(request(query=query))
        assert caught.value.field == field, operation


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"adrCodePays": "FR"}, "adrCodePays"),
        ({"adrCodeDept": "1"}, "adrCodeDept"),
        ({"adrCodeDept": ""}, "adrCodeDept"),
        ({"adrCodeTom": "974"}, "adrCodeTom"),
        ({"adrCodeDept": "75", "adrCodeCommune": "07"}, "adrCodeCommune"),
        ({"adrLibelleTypeVoie": "AVENUE"}, "adrLibelleTypeVoie"),
        ({"adrLibelleTypeVoie": ""}, "adrLibelleTypeVoie"),
        ({"adrLibelleTypeVoie": "R.1"}, "adrLibelleTypeVoie"),
        (
            {"adrCodeDept": "75", "adrCodeCommune": "111", "adrLibelleVoie": "X" * 27},
            "adrLibelleVoie",
        ),
        ({"adrNumVoie": "12B"}, "adrNumVoie"),
        ({"adrNumVoie": "123456"}, "adrNumVoie"),
        ({"adrIndiceRepetition": "BIS"}, "adrIndiceRepetition"),
        ({"adrIndiceRepetition": "1"}, "adrIndiceRepetition"),
    ],
)
def test_address_filters_are_validated_with_their_name(
    parsers: dict[str, OperationHandler], change: dict[str, str], field: str
) -> None:
    with pytest.raises(ParameterInvalid) as caught:
        parsers["r2p_personne_recherche"].parse(request(query=DUPONT | change))
    assert caught.value.field == field


def test_homonyms_are_too_many_answers(ops: dict[str, OperationHandler], ctx: CallContext) -> None:
    query = {
        "nom": "Dupont",
        "prenom": "Jean",
        "sexe": "1",
        "naisDate": "05/05/1975",
        "naisCodePays": "99100",
        "naisCodeDept": "75",
        "naisCodeCommune": "111",
    }
    for operation in ("r2p_personne_spi", "r2p_personne_recherche"):
        with pytest.raises(TooManyAnswers) as caught:
            call(ops[operation], ctx, query)
        assert caught.value.status == 403
        assert caught.value.code == "too_many_answers"
        # Nothing leaves and no one is the subject: no data scope, no pseudonym.
        assert ctx.subject_spi is None
        assert ctx.data_scopes_returned == []


def test_not_found_and_not_communicable(ops: dict[str, OperationHandler], ctx: CallContext) -> None:
    """Élise MERCIER's record never leaves, whichever way she is found."""
    with pytest.raises(NotFound):
        call(ops["r2p_personne_spi"], ctx, DUBOIS | {"naisDate": "25/08/1962"})
    secret = SECRET | {"sexe": "2", "naisCodePays": "99100", "naisCodeDept": "075"}
    for operation in ("r2p_personne_spi", "r2p_personne_recherche"):
        fresh = context(ctx.now, habilitation(access_modes={"etat_civil"}))
        with pytest.raises(NotCommunicable) as caught:
            call(ops[operation], fresh, secret)
        assert (caught.value.status, caught.value.code) == (403, "not_communicable")
        assert fresh.subject_spi == personas.SECRET.spi
        assert fresh.data_scopes_returned == []
    with pytest.raises(NotCommunicable):
        call(ops["r2p_personne"], ctx, path={"spi": personas.SECRET.spi})


def test_personne_by_spi_answers_the_providers_shape(
    ops: dict[str, OperationHandler], ctx: CallContext
) -> None:
    response = call(ops["r2p_personne"], ctx, path={"spi": personas.DUBOIS.spi})
    assert response.media_type == "application/json"
    assert response.body == {
        "personnePhysique": {
            "identifiant": {"spi": personas.DUBOIS.spi},
            "etatCivil": {
                "cdSexe": "2",
                "lbNomNaissance": "DUBOIS",
                "lbPrenomNaissance": "ANGELA CLAIRE LOUISE",
                "lbPrenomUsage": "ANGELA",
                "anneeNaissance": "1962",
                "moisNaissance": "08",
                "jourNaissance": "24",
                "cdPaysNaissance": "99100",
                "cdDeptNaissance": "75",
                "cdCommuneNaissance": "107",
            },
            "adresse": {
                "cdPays": "99100",
                "lbPays": "FRANCE",
                "cdDepartement": "75",
                "lbDepartement": "PARIS",
                "cdCommune": "107",
                "lbCommune": "PARIS 07",
                "cdVoie": street_code("75107", "AV DE SEGUR"),
                "lbVoie": "AV DE SEGUR",
                "numeroVoie": "20",
            },
        }
    }
    assert re.fullmatch(r"[0-9]{4}", response.body["personnePhysique"]["adresse"]["cdVoie"])
    assert ctx.data_scopes_returned == ["r2p_adresse", "r2p_etat_civil", "r2p_identifiant"]
    assert ctx.subject_spi == personas.DUBOIS.spi
    with pytest.raises(SpiInvalid):
        ops["r2p_personne"].parse(request({"spi": "3000000019269"}))
    with pytest.raises(NotFound):
        call(ops["r2p_personne"], ctx, path={"spi": "3000000020269"})


def test_the_search_answers_the_same_person(
    ops: dict[str, OperationHandler], ctx: CallContext
) -> None:
    by_spi = call(ops["r2p_personne"], ctx, path={"spi": personas.DUBOIS.spi}).body
    assert call(ops["r2p_personne_recherche"], ctx, DUBOIS).body == by_spi


def test_usage_name_and_overseas_places(ops: dict[str, OperationHandler], ctx: CallContext) -> None:
    def person(spi: str) -> dict[str, Any]:
        body = call(ops["r2p_personne"], ctx, path={"spi": spi}).body
        person: dict[str, Any] = body["personnePhysique"]
        return person

    camille = person(personas.COUPLE_2.spi)["etatCivil"]
    assert (camille["lbNomNaissance"], camille["lbNomUsage"]) == ("PETIT", "BERNARD")
    assert camille["cdSexe"] == "2"
    assert "lbNomUsage" not in person(personas.DUBOIS.spi)["etatCivil"]
    maria = person(AJACCIO.spi)
    assert (maria["etatCivil"]["cdDeptNaissance"], maria["etatCivil"]["cdCommuneNaissance"]) == (
        "2A",
        "004",
    )
    assert maria["adresse"] | {"cdVoie": "-"} == {
        "cdPays": "99100",
        "lbPays": "FRANCE",
        "cdDepartement": "2A",
        "lbDepartement": "CORSE-DU-SUD",
        "cdCommune": "004",
        "lbCommune": "AJACCIO",
        "cdVoie": "-",
        "lbVoie": "CRS NAPOLEON",
        "numeroVoie": "5",
        "indiceDeRepetition": "B",
    }
    jean_marc = person(REUNION.spi)
    assert jean_marc["etatCivil"]["cdDeptNaissance"] == "974"
    assert jean_marc["etatCivil"]["cdCommuneNaissance"] == "411"
    assert jean_marc["etatCivil"]["lbPrenomUsage"] == "JEAN"
    assert jean_marc["adresse"]["lbDepartement"] == "LA REUNION"
    moana = person(PAPEETE.spi)
    assert moana["etatCivil"]["cdTOMNaissance"] == "987"
    assert moana["etatCivil"]["cdCommuneNaissance"] == "735"
    assert "cdDeptNaissance" not in moana["etatCivil"]
    assert (moana["adresse"]["cdTOM"], moana["adresse"]["lbTOM"]) == ("987", "POLYNESIE FRANCAISE")
    assert not {"cdDepartement", "lbDepartement"} & moana["adresse"].keys()


def test_every_persona_answers_the_published_schemas(
    ops: dict[str, OperationHandler], ctx: CallContext, document: dict[str, Any]
) -> None:
    """Every value a string, none null, only the provider's property names."""
    for persona in personas.PERSONAS:
        if persona.spi == personas.SECRET.spi:
            continue
        body = call(ops["r2p_personne"], ctx, path={"spi": persona.spi}).body
        conforms(document, body, schema("PersonneReponseEnveloppe"), persona.key)
        etat_civil = body["personnePhysique"]["etatCivil"]
        query = {
            "nom": etat_civil["lbNomNaissance"],
            "prenom": etat_civil["lbPrenomUsage"],
            "naisDate": "/".join(
                etat_civil[k] for k in ("jourNaissance", "moisNaissance", "anneeNaissance")
            ),
            "sexe": etat_civil["cdSexe"],
        }
        if persona.spi in (personas.HOMONYM_1.spi, personas.HOMONYM_2.spi):
            query["adrNumVoie"] = body["personnePhysique"]["adresse"]["numeroVoie"]
        else:
            spi = call(ops["r2p_personne_spi"], ctx, query).body
            conforms(document, spi, schema("IdentifiantEnveloppe"), persona.key)
            assert spi == {"identifiant": {"spi": persona.spi}}
        assert call(ops["r2p_personne_recherche"], ctx, query).body == body, persona.key


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


def test_access_mode(ops: dict[str, OperationHandler], clock: FrozenClock) -> None:
    fc_only = context(clock.now(), habilitation(access_modes={"franceconnect"}))
    with pytest.raises(AccessModeNotGranted):
        call(ops["r2p_personne_spi"], fc_only, DUBOIS)
    spi_mode = context(clock.now(), habilitation(access_modes={"spi"}))
    assert call(ops["r2p_personne_spi"], spi_mode, DUBOIS).body


def test_a_first_name_of_twenty_characters_is_accepted(
    parsers: dict[str, OperationHandler],
) -> None:
    query = DUBOIS | {"prenom": "Angela " + "M" * 20 + "  Louise"}
    assert parsers["r2p_personne_spi"].parse(request(query=query))
