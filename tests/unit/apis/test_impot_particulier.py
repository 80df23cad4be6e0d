"""API Impôt Particulier by SPI: parse, authorize and fetch of the four IR resources."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from guichet.apis.impot_particulier import build_operations
from guichet.catalog.products import IMPOT_PARTICULIER, IR_MEDIA_TYPE
from guichet.clock import FrozenClock
from guichet.errors import (
    AccessModeNotGranted,
    DataScopeNotGranted,
    NotFound,
    ParameterInvalid,
    SpiInvalid,
    YearNotGranted,
)
from guichet.gateway.context import ApiDeps, ApiResponse, CallContext, OperationHandler
from guichet.habilitation.models import Environment
from guichet.sandbox import personas
from guichet.sandbox.population import seed
from tests.unit.apis.support import context, habilitation, request

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
    assert set(response.body) == {"rfr", "nbPart", "sitPart", "sitParDeclaree", "rev"}
    assert set(response.body["rev"]) == {"div"}
    assert ctx.data_scopes_returned == ["dgfip_nbpart", "dgfip_rev_monde", "dgfip_rfr"]
    assert ctx.subject_spi == personas.FULL_1.spi


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
    ).body
    latest = call(
        ops["ir_derniere_situation_spi"], context(clock.now(), hab), personas.BRIDE.spi, N - 1
    ).body
    assert primary["sitFam"] == "C"
    assert latest["sitFam"] == "M"
    assert [s["sitFam"] for s in every] == ["C", "M"]
    assert every[0] == primary
    assert every[1] == latest
    single = call(
        ops["ir_assiettes_multiple_spi"], context(clock.now(), hab), personas.SINGLE.spi, N - 1
    ).body
    assert len(single) == 1


def test_deuxans(ops: dict[str, OperationHandler], clock: FrozenClock) -> None:
    hab = habilitation(data_scopes={"dgfip_sitfam"})
    op = ops["ir_derniere_situation_deuxans_spi"]
    body = call(op, context(clock.now(), hab), personas.BRIDE.spi).body
    assert [(b["annrev"], b["situation"]["sitFam"]) for b in body] == [(N - 1, "M"), (N - 2, "C")]
    # N-1 missing: only N-2 is left of the two most recent granted years…
    body = call(op, context(clock.now(), hab), personas.NO_N1.spi).body
    assert [b["annrev"] for b in body] == [N - 2]
    # …unless only N-2 and N-3 are granted.
    older = habilitation(
        data_scopes={"dgfip_sitfam"}, year_scopes={"dgfip_annee_n_moins_2", "dgfip_annee_n_moins_3"}
    )
    body = call(op, context(clock.now(), older), personas.NO_N1.spi).body
    assert [b["annrev"] for b in body] == [N - 2, N - 3]
    fallback_only = habilitation(data_scopes={"dgfip_sitfam"}, year_scopes={FALLBACK})
    assert [
        b["annrev"] for b in call(op, context(clock.now(), fallback_only), personas.NO_N1.spi).body
    ] == [N - 2]
    with pytest.raises(NotFound):
        call(op, context(clock.now(), fallback_only), personas.SINGLE.spi)
    with pytest.raises(YearNotGranted):
        call(op, context(clock.now(), habilitation(year_scopes=())), personas.SINGLE.spi)
    with pytest.raises(NotFound):
        call(op, context(clock.now(), hab), personas.NO_TAX.spi)
