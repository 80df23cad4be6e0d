"""API Impôt Particulier by SPI: parse, authorize and fetch of the four IR resources, each in
the provider's envelope, schema and media type."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from guichet.apis.context import ApiDeps, ApiResponse, CallContext, OperationHandler
from guichet.apis.impot_particulier import build_operations
from guichet.apis.impot_particulier.schemas import IR_ASSIETTES, IR_MILLESIME, IR_MULTI
from guichet.catalog.products import (
    IMPOT_PARTICULIER,
    IR_DERNIERE_MEDIA_TYPE,
    IR_MEDIA_TYPE,
    IR_MULTIPLE_MEDIA_TYPE,
)
from guichet.clock import FrozenClock
from guichet.errors import (
    AccessModeNotGranted,
    DataScopeNotGranted,
    NotFound,
    ParameterInvalid,
    SpiInvalid,
    YearNotGranted,
)
from guichet.habilitation.models import Environment
from guichet.sandbox import personas
from guichet.sandbox.population import seed
from tests.unit.apis.support import assert_conforms, context, habilitation, request

N = 2026
FALLBACK = "dgfip_annee_n_moins_2_si_indispo_n_moins_1"


@pytest.fixture
def ops(session_factory: sessionmaker[Session], clock: FrozenClock) -> dict[str, OperationHandler]:
    seed(session_factory, households=3, reference_year=N)
    return build_operations(ApiDeps(session_factory=session_factory, clock=clock))


@pytest.fixture
def parsers(clock: FrozenClock) -> dict[str, OperationHandler]:
    """Handlers for parse-only tests: parsing never reads the store."""
    return build_operations(ApiDeps(session_factory=sessionmaker(), clock=clock))


def call(
    op: OperationHandler, ctx: CallContext, spi: str, annrev: int | None = None
) -> ApiResponse:
    params: dict[str, Any] = {"spi": spi}
    if annrev is not None:
        params["annrev"] = str(annrev)
    parsed = op.parse(request(params))
    op.authorize(ctx, parsed)
    return asyncio.run(op.fetch(ctx, parsed))


def test_every_catalogue_operation_has_a_handler(ops: dict[str, OperationHandler]) -> None:
    assert set(ops) == {o.name for o in IMPOT_PARTICULIER.operations}


@pytest.mark.parametrize(
    "spi", ["3999999930263", "399999993026", "39999999302620", "abc", "3 999999930262"]
)
def test_invalid_spi_is_a_400_naming_the_field(
    parsers: dict[str, OperationHandler], spi: str
) -> None:
    with pytest.raises(SpiInvalid) as caught:
        parsers["ir_assiettes_spi"].parse(request({"spi": spi, "annrev": "2025"}))
    assert caught.value.field == "spi"


@pytest.mark.parametrize("annrev", ["25", "20255", "abcd", ""])
def test_invalid_annrev_is_a_400(parsers: dict[str, OperationHandler], annrev: str) -> None:
    with pytest.raises(ParameterInvalid) as caught:
        parsers["ir_assiettes_spi"].parse(request({"spi": personas.SINGLE.spi, "annrev": annrev}))
    assert caught.value.field == "annrev"


def test_assiettes_returns_only_the_granted_fields(
    ops: dict[str, OperationHandler], clock: FrozenClock
) -> None:
    ctx = context(
        clock.now(), habilitation(data_scopes={"dgfip_rfr", "dgfip_nbpart", "dgfip_rev_monde"})
    )
    response = call(ops["ir_assiettes_spi"], ctx, personas.FULL_1.spi, N - 1)
    assert response.media_type == IR_MEDIA_TYPE
    # sitPart and sitParDeclaree belong to dgfip_nbpart; sitPart is omitted when none.
    assert {"rfr", "nbPart", "sitParDeclaree", "rev"} <= set(response.body)
    assert set(response.body) <= {"rfr", "nbPart", "sitPart", "sitParDeclaree", "rev"}
    assert set(response.body["rev"]) == {"div"}
    assert_conforms(response.body, IR_ASSIETTES)
    assert ctx.data_scopes_returned == ["dgfip_nbpart", "dgfip_rev_monde", "dgfip_rfr"]
    assert ctx.subject_spi == personas.FULL_1.spi


def test_assiettes_is_the_providers_schema_not_the_stored_record(
    ops: dict[str, OperationHandler], clock: FrozenClock
) -> None:
    """The declarants' SPIs and the situation's period are Multi-only properties: granted,
    they still stay out of ``SituationsIRAssiettesJAXBbean``; no ``annRevenu`` either."""
    hab = habilitation(data_scopes={"dgfip_decl", "dgfip_sitfam", "dgfip_inddeficit"})
    body = call(
        ops["ir_assiettes_spi"], context(clock.now(), hab), personas.COUPLE_1.spi, N - 1
    ).body
    assert_conforms(body, IR_ASSIETTES)
    assert body["nmNaiDec1"] == "BERNARD"
    assert body["sitFam"] == "M"
    assert body["indDeficit"] in ("0", "1")  # the provider's string
    assert not {"spiDec1", "spiDec2", "dateDebutPeriode", "typeAvis", "annRevenu"} & set(body)


def test_both_declarants_find_the_same_household(
    ops: dict[str, OperationHandler], clock: FrozenClock
) -> None:
    scopes = {"dgfip_rfr", "dgfip_decl"}
    one = call(
        ops["ir_assiettes_spi"],
        context(clock.now(), habilitation(data_scopes=scopes)),
        personas.COUPLE_1.spi,
        N - 1,
    )
    two = call(
        ops["ir_assiettes_spi"],
        context(clock.now(), habilitation(data_scopes=scopes)),
        personas.COUPLE_2.spi,
        N - 1,
    )
    assert one.body == two.body
    assert one.body["nmNaiDec1"] == "BERNARD"
    assert one.body["nmNaiDec2"] == "PETIT"


def test_the_production_store_is_empty(
    ops: dict[str, OperationHandler], clock: FrozenClock
) -> None:
    ctx = context(
        clock.now(), habilitation(environment=Environment.PRODUCTION), Environment.PRODUCTION
    )
    with pytest.raises(NotFound):
        call(ops["ir_assiettes_spi"], ctx, personas.SINGLE.spi, N - 1)
    assert ctx.subject_spi == personas.SINGLE.spi  # the refusal is journaled about this person


@pytest.mark.parametrize("spi", [personas.NO_TAX.spi, "3000000020269"])
def test_no_record_is_a_404(ops: dict[str, OperationHandler], clock: FrozenClock, spi: str) -> None:
    with pytest.raises(NotFound):
        call(ops["ir_assiettes_spi"], context(clock.now(), habilitation()), spi, N - 1)


def test_no_declaration_for_the_year_is_a_404(
    ops: dict[str, OperationHandler], clock: FrozenClock
) -> None:
    with pytest.raises(NotFound):
        call(
            ops["ir_assiettes_spi"], context(clock.now(), habilitation()), personas.NO_N1.spi, N - 1
        )
    body = call(
        ops["ir_assiettes_spi"], context(clock.now(), habilitation()), personas.NO_N1.spi, N - 2
    ).body
    assert body["rfr"] > 0


def test_years_are_relative_to_the_injected_clock(
    ops: dict[str, OperationHandler], clock: FrozenClock
) -> None:
    only_n1 = habilitation(year_scopes={"dgfip_annee_n_moins_1"})
    call(ops["ir_assiettes_spi"], context(clock.now(), only_n1), personas.SINGLE.spi, N - 1)
    for year in (N - 2, N - 3, N, N - 4):
        with pytest.raises(YearNotGranted):
            call(ops["ir_assiettes_spi"], context(clock.now(), only_n1), personas.SINGLE.spi, year)
    # A year later, the same habilitation grants the next year only.
    later = dt.datetime(N + 1, 3, 1, tzinfo=dt.UTC)
    with pytest.raises(YearNotGranted):
        call(ops["ir_assiettes_spi"], context(later, only_n1), personas.SINGLE.spi, N - 1)
    # New Year's Eve, 23:30 UTC, is already next year in Paris.
    new_year = dt.datetime(N, 12, 31, 23, 30, tzinfo=dt.UTC)
    with pytest.raises(YearNotGranted):
        call(ops["ir_assiettes_spi"], context(new_year, only_n1), personas.SINGLE.spi, N - 1)


def test_fallback_year_only_when_n_minus_1_is_missing(
    ops: dict[str, OperationHandler], clock: FrozenClock
) -> None:
    fallback = habilitation(year_scopes={"dgfip_annee_n_moins_1", FALLBACK})
    body = call(
        ops["ir_assiettes_spi"], context(clock.now(), fallback), personas.NO_N1.spi, N - 2
    ).body
    assert body["rfr"] > 0
    with pytest.raises(YearNotGranted):
        call(ops["ir_assiettes_spi"], context(clock.now(), fallback), personas.SINGLE.spi, N - 2)
    with pytest.raises(YearNotGranted):
        call(ops["ir_assiettes_spi"], context(clock.now(), fallback), personas.NO_N1.spi, N - 3)


def test_access_mode_and_data_scopes_are_required(
    ops: dict[str, OperationHandler], clock: FrozenClock
) -> None:
    with pytest.raises(AccessModeNotGranted):
        call(
            ops["ir_assiettes_spi"],
            context(clock.now(), habilitation(access_modes={"franceconnect"})),
            personas.SINGLE.spi,
            N - 1,
        )
    call(
        ops["ir_assiettes_spi"],
        context(clock.now(), habilitation(access_modes={"etat_civil"})),
        personas.SINGLE.spi,
        N - 1,
    )
    with pytest.raises(DataScopeNotGranted):
        call(
            ops["ir_assiettes_spi"],
            context(clock.now(), habilitation(data_scopes={"dgfip_locaux_th"})),
            personas.SINGLE.spi,
            N - 1,
        )


def test_several_situations_in_one_year(
    ops: dict[str, OperationHandler], clock: FrozenClock
) -> None:
    hab = habilitation(data_scopes={"dgfip_sitfam", "dgfip_nbpart"})
    primary = call(
        ops["ir_assiettes_spi"], context(clock.now(), hab), personas.BRIDE.spi, N - 1
    ).body
    every = call(
        ops["ir_assiettes_multiple_spi"], context(clock.now(), hab), personas.BRIDE.spi, N - 1
    )
    latest = call(
        ops["ir_derniere_situation_spi"], context(clock.now(), hab), personas.BRIDE.spi, N - 1
    )
    assert primary["sitFam"] == "C"
    assert latest.body["sitFam"] == "M"
    # The provider's envelope, in rang order, each item a SituationIRAssietteMultiJAXBbean.
    assert every.media_type == IR_MULTIPLE_MEDIA_TYPE
    assert list(every.body) == ["situationsIR"]
    situations = every.body["situationsIR"]
    assert [s["sitFam"] for s in situations] == ["C", "M"]
    for situation in situations:
        assert_conforms(situation, IR_MULTI)
    # Her own situation until the wedding, the couple's from it to 31 December.
    assert situations[0]["dateDebutPeriode"] == f"{N - 1}-01-01"
    assert situations[1]["dateFinPeriode"] == f"{N - 1}-12-31"
    assert situations[0]["dateFinPeriode"] < situations[1]["dateDebutPeriode"]
    multi_only = {"dateDebutPeriode", "dateFinPeriode", "typeAvis"}
    assert {k: v for k, v in situations[0].items() if k not in multi_only} == primary
    # The latest situation as SituationsIRAssiettesMillesimeJAXBbean: its year, no period.
    assert latest.media_type == IR_DERNIERE_MEDIA_TYPE
    assert_conforms(latest.body, IR_MILLESIME)
    assert latest.body["annRevenu"] == N - 1
    assert {k: v for k, v in situations[1].items() if k not in multi_only} == {
        k: v for k, v in latest.body.items() if k != "annRevenu"
    }
    single = call(
        ops["ir_assiettes_multiple_spi"], context(clock.now(), hab), personas.SINGLE.spi, N - 1
    ).body
    assert len(single["situationsIR"]) == 1


def test_multiple_carries_the_declarants_spis_under_dgfip_decl(
    ops: dict[str, OperationHandler], clock: FrozenClock
) -> None:
    op = ops["ir_assiettes_multiple_spi"]
    decl = context(clock.now(), habilitation(data_scopes={"dgfip_decl"}))
    [couple] = call(op, decl, personas.COUPLE_2.spi, N - 1).body["situationsIR"]
    assert (couple["spiDec1"], couple["spiDec2"]) == (personas.COUPLE_1.spi, personas.COUPLE_2.spi)
    [single] = call(op, decl, personas.SINGLE.spi, N - 1).body["situationsIR"]
    assert single["spiDec1"] == personas.SINGLE.spi
    assert "spiDec2" not in single  # omitted, not null
    assert "nmNaiDec2" not in single
    rfr_only = context(clock.now(), habilitation(data_scopes={"dgfip_rfr"}))
    [couple] = call(op, rfr_only, personas.COUPLE_1.spi, N - 1).body["situationsIR"]
    assert set(couple) == {"rfr"}
    assert rfr_only.data_scopes_returned == ["dgfip_rfr"]


def test_deuxans_is_one_situation(ops: dict[str, OperationHandler], clock: FrozenClock) -> None:
    """The latest situation of the most recent of the two most recent granted years that
    has one, as one SituationsIRAssiettesMillesimeJAXBbean."""
    hab = habilitation(data_scopes={"dgfip_sitfam"})
    op = ops["ir_derniere_situation_deuxans_spi"]

    def year_and_sitfam(ctx: CallContext, spi: str) -> tuple[int, str]:
        response = call(op, ctx, spi)
        assert response.media_type == IR_DERNIERE_MEDIA_TYPE
        assert_conforms(response.body, IR_MILLESIME)
        return response.body["annRevenu"], response.body["sitFam"]

    # N-1, the couple's situation (rang 2) after the wedding.
    assert year_and_sitfam(context(clock.now(), hab), personas.BRIDE.spi) == (N - 1, "M")
    # N-1 missing: N-2, the most recent of the two most recent granted years…
    assert year_and_sitfam(context(clock.now(), hab), personas.NO_N1.spi)[0] == N - 2
    # …and so when only N-2 and N-3 are granted.
    older = habilitation(
        data_scopes={"dgfip_sitfam"}, year_scopes={"dgfip_annee_n_moins_2", "dgfip_annee_n_moins_3"}
    )
    assert year_and_sitfam(context(clock.now(), older), personas.BRIDE.spi) == (N - 2, "C")
    fallback_only = habilitation(data_scopes={"dgfip_sitfam"}, year_scopes={FALLBACK})
    assert year_and_sitfam(context(clock.now(), fallback_only), personas.NO_N1.spi)[0] == N - 2
    with pytest.raises(NotFound):
        call(op, context(clock.now(), fallback_only), personas.SINGLE.spi)
    with pytest.raises(YearNotGranted):
        call(op, context(clock.now(), habilitation(year_scopes=())), personas.SINGLE.spi)
    with pytest.raises(NotFound):
        call(op, context(clock.now(), hab), personas.NO_TAX.spi)
    # annRevenu is not a data field: it comes with the situation whatever the scopes.
    rfr_only = context(clock.now(), habilitation(data_scopes={"dgfip_rfr"}))
    body = call(op, rfr_only, personas.SINGLE.spi).body
    assert set(body) == {"annRevenu", "rfr"}
    assert rfr_only.data_scopes_returned == ["dgfip_rfr"]


def test_every_operation_answers_its_catalogued_media_type(
    ops: dict[str, OperationHandler], clock: FrozenClock
) -> None:
    for operation in IMPOT_PARTICULIER.operations:
        if operation.access_mode != "spi" or operation.name == "lep_spi":
            continue
        hab = habilitation(data_scopes={"dgfip_rfr", "dgfip_ifi", "dgfip_locaux_th"})
        annrev = None if "deuxans" in operation.name else N - 1
        response = call(ops[operation.name], context(clock.now(), hab), personas.FULL_1.spi, annrev)
        assert response.media_type == operation.media_type, operation.name
