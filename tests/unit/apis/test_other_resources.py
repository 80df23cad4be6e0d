"""API Impôt Particulier by SPI: the IR bill, IFI, principal housing tax and LEP resources
(parse, authorize and fetch, against the seeded sandbox population)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from guichet.apis.context import ApiDeps, ApiResponse, CallContext, OperationHandler
from guichet.apis.impot_particulier import build_operations
from guichet.apis.impot_particulier.lep import CEILINGS, Ceiling, Zone, ceiling, is_eligible
from guichet.apis.impot_particulier.schemas import FACTURE_LINE, IR_FACTURES, SITUATION_TH
from guichet.catalog.products import (
    FACTURE_MEDIA_TYPE,
    IFI_MEDIA_TYPE,
    LEP_MEDIA_TYPE,
    TH_MEDIA_TYPE,
)
from guichet.clock import FrozenClock
from guichet.errors import (
    AccessModeNotGranted,
    BadRequest,
    DataScopeNotGranted,
    NoSituationForYear,
    NotFound,
    ParameterInvalid,
    SpiInvalid,
    SpiUnknown,
    YearNotGranted,
)
from guichet.habilitation.models import Environment
from guichet.records.importer import import_impot_particulier
from guichet.sandbox import personas
from guichet.sandbox.population import seed
from tests.unit.apis.support import assert_conforms, context, habilitation, request

N = 2026
FALLBACK = "dgfip_annee_n_moins_2_si_indispo_n_moins_1"
LEP = "dgfip_eligibilite_lep"
UNKNOWN_SPI = "3000000020269"  # a valid SPI the sandbox does not hold


@pytest.fixture
def ops(session_factory: sessionmaker[Session], clock: FrozenClock) -> dict[str, OperationHandler]:
    seed(session_factory, households=3, reference_year=N)
    return build_operations(ApiDeps(session_factory=session_factory, clock=clock))


@pytest.fixture
def parsers(clock: FrozenClock) -> dict[str, OperationHandler]:
    return build_operations(ApiDeps(session_factory=sessionmaker(), clock=clock))


def ctx_with(clock: FrozenClock, *scopes: str, **kw: Any) -> CallContext:
    return context(clock.now(), habilitation(data_scopes=scopes, **kw))


def call(op: OperationHandler, ctx: CallContext, **path: Any) -> ApiResponse:
    parsed = op.parse(request({k: str(v) for k, v in path.items()}))
    op.authorize(ctx, parsed)
    return asyncio.run(op.fetch(ctx, parsed))


# --- factures ---------------------------------------------------------------------------


def test_the_bill_is_the_primary_situation_plus_its_notice(
    ops: dict[str, OperationHandler], clock: FrozenClock
) -> None:
    ctx = ctx_with(clock, "dgfip_rfr", "dgfip_ir_facture")
    result = call(ops["ir_factures_spi"], ctx, spi=personas.COUPLE_1.spi, annrev=N - 1)
    assert result.media_type == FACTURE_MEDIA_TYPE
    assert set(result.body) == {"rfr", "facture"}
    lines = {line["codeLigne"]: line for line in result.body["facture"]}
    assert [line["numLigne"] for line in result.body["facture"]] == [1, 2, 3, 4, 5]
    tax, withheld = int(lines["IMPNET"]["colonne1"]), int(lines["PAS"]["colonne1"])
    # The N-1 balance of the BERNARDs is unpaid: all of it remains due.
    assert int(lines["SOLDE"]["colonne1"]) == tax - withheld > 0
    assert lines["SOLDE"]["colonne2"] == f"{N}-07-31"  # date de mise en recouvrement
    assert lines["SOLDE"]["colonne3"] == f"{N}-09-15"  # date limite de paiement
    assert lines["PAYE"]["colonne1"] == "0"
    assert lines["RESTE"]["colonne1"] == lines["SOLDE"]["colonne1"]
    assert_conforms(result.body, IR_FACTURES)
    assert set(lines["SOLDE"]) <= set(FACTURE_LINE.properties)
    assert ctx.subject_spi == personas.COUPLE_1.spi
    assert ctx.data_scopes_returned == ["dgfip_ir_facture", "dgfip_rfr"]
    # The spouse's SPI finds the same notice; N-2 was paid.
    spouse = call(ops["ir_factures_spi"], ctx, spi=personas.COUPLE_2.spi, annrev=N - 1)
    assert spouse.body == result.body
    earlier = call(ops["ir_factures_spi"], ctx, spi=personas.COUPLE_1.spi, annrev=N - 2)
    assert {line["codeLigne"]: line["colonne1"] for line in earlier.body["facture"]}["RESTE"] == "0"


def test_a_refund_shows_as_a_sum_to_give_back(
    ops: dict[str, OperationHandler], clock: FrozenClock
) -> None:
    ctx = ctx_with(clock, "dgfip_ir_facture")
    body = call(ops["ir_factures_spi"], ctx, spi=personas.DUBOIS.spi, annrev=N - 1).body
    assert set(body) == {"facture"}
    codes = [line["codeLigne"] for line in body["facture"]]
    assert codes == ["IMPNET", "PAS", "RESTIT"]


def test_without_the_bill_scope_the_notice_is_absent(
    ops: dict[str, OperationHandler], clock: FrozenClock
) -> None:
    ctx = ctx_with(clock, "dgfip_rfr", "dgfip_nbpart", "dgfip_decl", "dgfip_sitfam")
    body = call(ops["ir_factures_spi"], ctx, spi=personas.SINGLE.spi, annrev=N - 1).body
    # IR_FIELD_SCOPES, within SituationsIRAssiettesFacturesJAXBbean: no SPI, no period.
    assert {"rfr", "nbPart", "sitParDeclaree", "sitFam", "nmNaiDec1"} <= set(body)
    assert not {"facture", "spiDec1", "dateDebutPeriode", "typeAvis", "annRevenu"} & set(body)
    assert_conforms(body, IR_FACTURES)
    assert ctx.data_scopes_returned == ["dgfip_decl", "dgfip_nbpart", "dgfip_rfr", "dgfip_sitfam"]


def test_a_bill_needs_a_situation(ops: dict[str, OperationHandler], clock: FrozenClock) -> None:
    ctx = ctx_with(clock, "dgfip_ir_facture")
    with pytest.raises(NotFound):
        call(ops["ir_factures_spi"], ctx, spi=personas.NO_N1.spi, annrev=N - 1)
    with pytest.raises(NotFound):
        call(ops["ir_factures_spi"], ctx, spi=personas.NO_TAX.spi, annrev=N - 1)


# --- IFI --------------------------------------------------------------------------------


def test_an_ifi_liable_household(ops: dict[str, OperationHandler], clock: FrozenClock) -> None:
    ctx = ctx_with(clock, "dgfip_ifi", "dgfip_rfr")
    result = call(ops["ifi_assiettes_spi"], ctx, spi=personas.FULL_2.spi, annrev=N - 1)
    assert result.media_type == IFI_MEDIA_TYPE
    assert result.body == {"indicateurIfiIsf": "O"}  # the provider's schema: nothing more
    assert ctx.data_scopes_returned == ["dgfip_ifi"]
    body = call(ops["ifi_assiettes_spi"], ctx, spi=personas.FULL_1.spi, annrev=N - 2)
    assert body.body == {"indicateurIfiIsf": "O"}


def test_a_household_without_an_ifi_declaration_is_not_liable(
    ops: dict[str, OperationHandler], clock: FrozenClock
) -> None:
    """An IR situation that year but no IFI declaration: "N"; no IR situation either: 404."""
    ctx = ctx_with(clock, "dgfip_ifi")
    body = call(ops["ifi_assiettes_spi"], ctx, spi=personas.SINGLE.spi, annrev=N - 1).body
    assert body == {"indicateurIfiIsf": "N"}
    assert ctx.data_scopes_returned == ["dgfip_ifi"]
    for spi, annrev in ((personas.NO_TAX.spi, N - 1), (personas.NO_N1.spi, N - 1)):
        ctx = ctx_with(clock, "dgfip_ifi")
        with pytest.raises(NotFound):
            call(ops["ifi_assiettes_spi"], ctx, spi=spi, annrev=annrev)
        assert ctx.subject_spi == spi  # journaled about them all the same
        assert not ctx.data_scopes_returned
    assert call(ops["ifi_assiettes_spi"], ctx, spi=personas.NO_N1.spi, annrev=N - 2).body == {
        "indicateurIfiIsf": "N"
    }


def test_ifi_spi_in_the_wrong_format_carries_codeapp_4001(
    parsers: dict[str, OperationHandler],
) -> None:
    with pytest.raises(SpiInvalid) as caught:
        parsers["ifi_assiettes_spi"].parse(request({"spi": "3000000014264", "annrev": "2025"}))
    assert caught.value.codeapp == 4001
    assert caught.value.field == "spi"
    with pytest.raises(SpiInvalid) as other:  # the provider documents none for the others
        parsers["ir_factures_spi"].parse(request({"spi": "3000000014264", "annrev": "2025"}))
    assert other.value.codeapp is None


def test_ifi_needs_an_ifi_scope(ops: dict[str, OperationHandler], clock: FrozenClock) -> None:
    ctx = ctx_with(clock, "dgfip_rfr", "dgfip_locaux_th")
    with pytest.raises(DataScopeNotGranted):
        call(ops["ifi_assiettes_spi"], ctx, spi=personas.FULL_1.spi, annrev=N - 1)


# --- TH principale ----------------------------------------------------------------------


def test_the_principal_residence_with_its_address_and_payers(
    ops: dict[str, OperationHandler], clock: FrozenClock
) -> None:
    ctx = ctx_with(clock, "dgfip_locaux_th", "dgfip_adresse_th", "dgfip_redevables_th")
    result = call(ops["th_principale_spi"], ctx, spi=personas.FULL_1.spi, annrev=N - 1)
    assert result.media_type == TH_MEDIA_TYPE
    [situation] = result.body["situationsTH"]  # the secondary residence is left out
    assert situation["regimeTax"] == "P"
    assert situation["natureImp"] == "TH"
    assert [lo["affectation"] for lo in situation["locaux"]] == ["H"]  # not the dependency
    assert situation["libelleVoie"] == "QUAI DES BATELIERS"
    assert (situation["numVoie"], situation["libelleCommune"]) == ("2", "STRASBOURG")
    assert (situation["codeDsf"], situation["codeCommune"]) == ("670", "482")
    assert situation["libelleEdition1"] == "M GARNIER LOUIS HENRI"
    assert situation["libelleEdition2"] == "MME GARNIER MARIE"
    assert ctx.data_scopes_returned == [
        "dgfip_adresse_th",
        "dgfip_locaux_th",
        "dgfip_redevables_th",
    ]
    assert_conforms(situation, SITUATION_TH)


def test_th_fields_follow_the_scopes(ops: dict[str, OperationHandler], clock: FrozenClock) -> None:
    ctx = ctx_with(clock, "dgfip_adresse_th")
    body = call(ops["th_principale_spi"], ctx, spi=personas.DUBOIS.spi, annrev=N - 1).body
    [situation] = body["situationsTH"]
    address = {
        "codeDsf",
        "codeCommune",
        "codeAft",
        "numVoie",
        "btq",
        "libelleVoie",
        "libelleCommune",
    }
    # Every value that exists; ``btq`` (bis, ter…) is omitted when the number has none.
    assert address - {"btq"} <= set(situation) <= address
    assert None not in situation.values()
    assert ctx.data_scopes_returned == ["dgfip_adresse_th"]


def test_two_principal_residences_are_both_listed_none_is_a_404(
    ops: dict[str, OperationHandler], clock: FrozenClock
) -> None:
    ctx = ctx_with(clock, "dgfip_locaux_th", "dgfip_adresse_th")
    body = call(ops["th_principale_spi"], ctx, spi=personas.BRIDE.spi, annrev=N - 1).body
    # Her flat in Marseille and, from her wedding, the couple's house in Nice.
    communes = {s["libelleCommune"] for s in body["situationsTH"]}
    assert communes == {"MARSEILLE 01", "NICE"}
    with pytest.raises(NotFound):
        call(ops["th_principale_spi"], ctx, spi=personas.NO_TAX.spi, annrev=N - 1)


# --- years, modes, scopes (the same rules for the three) --------------------------------


@pytest.mark.parametrize(
    ("name", "scope"),
    [
        ("ir_factures_spi", "dgfip_ir_facture"),
        ("ifi_assiettes_spi", "dgfip_ifi"),
        ("th_principale_spi", "dgfip_locaux_th"),
    ],
)
def test_years_modes_and_scopes_are_checked(
    ops: dict[str, OperationHandler], clock: FrozenClock, name: str, scope: str
) -> None:
    spi = personas.FULL_1.spi
    n1_only = ctx_with(clock, scope, year_scopes=("dgfip_annee_n_moins_1",))
    for year in (N, N - 2, N - 4):
        with pytest.raises(YearNotGranted):
            call(ops[name], n1_only, spi=spi, annrev=year)
    assert call(ops[name], n1_only, spi=spi, annrev=N - 1).body
    fc_only = ctx_with(clock, scope, access_modes=("franceconnect",))
    with pytest.raises(AccessModeNotGranted):
        call(ops[name], fc_only, spi=spi, annrev=N - 1)
    with pytest.raises(DataScopeNotGranted):
        call(ops[name], ctx_with(clock, LEP), spi=spi, annrev=N - 1)
    with pytest.raises(SpiInvalid):
        ops[name].parse(request({"spi": "3000000014264", "annrev": str(N - 1)}))
    with pytest.raises(ParameterInvalid):
        ops[name].parse(request({"spi": spi, "annrev": "25"}))
    production = context(clock.now(), habilitation(data_scopes=(scope,)), Environment.PRODUCTION)
    with pytest.raises(NotFound):  # sandbox data never appears in production
        call(ops[name], production, spi=spi, annrev=N - 1)


def test_the_fallback_year_only_when_n_minus_1_is_missing(
    ops: dict[str, OperationHandler], clock: FrozenClock
) -> None:
    ctx = ctx_with(clock, "dgfip_ir_facture", year_scopes=(FALLBACK,))
    # Hugo FOURNIER has no N-1 situation: his N-2 bill is granted.
    assert call(ops["ir_factures_spi"], ctx, spi=personas.NO_N1.spi, annrev=N - 2).body
    with pytest.raises(YearNotGranted):  # Lucie MARTIN has one
        call(ops["ir_factures_spi"], ctx, spi=personas.SINGLE.spi, annrev=N - 2)
    ifi = ctx_with(clock, "dgfip_ifi", year_scopes=(FALLBACK,))
    with pytest.raises(YearNotGranted):  # the GARNIERs declared IFI in N-1
        call(ops["ifi_assiettes_spi"], ifi, spi=personas.FULL_1.spi, annrev=N - 2)
    with pytest.raises(YearNotGranted):  # Lucie MARTIN's N-1 answer is "N": an answer
        call(ops["ifi_assiettes_spi"], ifi, spi=personas.SINGLE.spi, annrev=N - 2)
    assert call(ops["ifi_assiettes_spi"], ifi, spi=personas.NO_N1.spi, annrev=N - 2).body


# --- LEP --------------------------------------------------------------------------------


def lep(
    ops: dict[str, OperationHandler],
    ctx: CallContext,
    spi: str,
    departement: str = "75",
    annrev: int = N - 1,
    bareme: int = N,
) -> ApiResponse:
    return call(ops["lep_spi"], ctx, spi=spi, departement=departement, annrev=annrev, bareme=bareme)


def test_lep_eligibility_of_the_personas(
    ops: dict[str, OperationHandler], clock: FrozenClock
) -> None:
    ctx = ctx_with(clock, LEP)
    result = lep(ops, ctx, personas.SHARED_23255.spi)  # a widow's pensions
    assert result.media_type == LEP_MEDIA_TYPE
    assert result.body == {"statut": "O"}
    assert ctx.data_scopes_returned == [LEP]
    assert ctx.subject_spi == personas.SHARED_23255.spi
    assert lep(ops, ctx, personas.FAMILY.spi).body == {"statut": "O"}  # 2.75 parts
    assert lep(ops, ctx, personas.SINGLE.spi).body == {"statut": "N"}  # RFR 27 900, one part
    # The same RFR is under Guyane's higher ceiling.
    assert lep(ops, ctx, personas.SINGLE.spi, departement="973").body == {"statut": "O"}
    assert lep(ops, ctx, personas.SINGLE.spi, departement="971").body == {"statut": "N"}


def test_lep_without_an_established_rfr_is_a_204(
    ops: dict[str, OperationHandler], clock: FrozenClock
) -> None:
    """ "204 : Aucune réponse ne peut être apportée": her N-1 declaration is not processed
    yet. Served without content, journaled about her, no data scope returned."""
    ctx = ctx_with(clock, LEP)
    result = lep(ops, ctx, personas.PENDING.spi)
    assert result.status == 204
    assert result.body is None
    assert ctx.subject_spi == personas.PENDING.spi
    assert ctx.data_scopes_returned == []
    assert lep(ops, ctx, personas.PENDING.spi, annrev=N - 2).body == {"statut": "N"}


def test_lep_without_a_situation_is_a_410_with_the_providers_codeapp(
    ops: dict[str, OperationHandler], clock: FrozenClock
) -> None:
    ctx = ctx_with(clock, LEP)
    # 4101: the SPI is known, but has no situation that year.
    for spi in (personas.NO_TAX.spi, personas.NO_N1.spi):
        with pytest.raises(NoSituationForYear) as known:
            lep(ops, ctx, spi)
        assert (known.value.status, known.value.codeapp) == (410, 4101)
    # 4102: the store knows no such SPI.
    with pytest.raises(SpiUnknown) as unknown:
        lep(ops, ctx, UNKNOWN_SPI)
    assert (unknown.value.status, unknown.value.codeapp) == (410, 4102)
    assert ctx.subject_spi == UNKNOWN_SPI
    assert not ctx.data_scopes_returned


def test_lep_uses_the_household_on_31_december(
    ops: dict[str, OperationHandler], clock: FrozenClock
) -> None:
    """Julie ROUX married in N-1: the couple's situation (rang 2), two parts, decides."""
    ctx = ctx_with(clock, LEP)
    assert lep(ops, ctx, personas.BRIDE.spi).body == {"statut": "O"}


def test_lep_rights(ops: dict[str, OperationHandler], clock: FrozenClock) -> None:
    with pytest.raises(DataScopeNotGranted):
        lep(ops, ctx_with(clock, "dgfip_rfr"), personas.SINGLE.spi)
    with pytest.raises(AccessModeNotGranted):
        lep(ops, ctx_with(clock, LEP, access_modes=("franceconnect",)), personas.SINGLE.spi)
    n1_only = ctx_with(clock, LEP, year_scopes=("dgfip_annee_n_moins_1",))
    with pytest.raises(YearNotGranted):
        lep(ops, n1_only, personas.SINGLE.spi, annrev=N - 2)


@pytest.mark.parametrize(
    ("path", "field", "codeapp"),
    [
        ({"departement": "20"}, "departement", 4007),
        ({"departement": "975"}, "departement", 4007),
        ({"departement": "7"}, "departement", 4007),
        ({"bareme": "26"}, "bareme", 4002),
        ({"bareme": str(N - 1)}, "annrev", 4002),  # the barème must follow the revenue year
        ({"bareme": str(N + 2)}, "annrev", 4002),
        ({"annrev": "abcd"}, "annrev", 4002),
        ({"spi": "3999999930263"}, "spi", 4001),
        ({"spi": "abc", "departement": "7"}, "spi", 4001),  # the first fault found
    ],
)
def test_lep_bad_parameters_are_400s_with_the_providers_codeapp(
    parsers: dict[str, OperationHandler], path: dict[str, str], field: str, codeapp: int
) -> None:
    params = {
        "spi": personas.SINGLE.spi,
        "departement": "2A",
        "annrev": str(N - 1),
        "bareme": str(N),
        **path,
    }
    with pytest.raises(BadRequest) as caught:
        parsers["lep_spi"].parse(request(params))
    assert caught.value.field == field
    assert caught.value.codeapp == codeapp


def test_lep_ceilings() -> None:
    """R221-33: 1417 I amounts × 1.8; a quarter part counts half a half part."""
    metro = CEILINGS[2025][Zone.METROPOLE]
    assert metro.for_parts(1.0) == 22_823
    assert metro.for_parts(2.0) == 22_823 + 2 * 6_095
    assert metro.for_parts(1.25) == 22_823 + 3_048  # rounded up
    overseas = Ceiling(27_009, 6_450, 6_095)
    assert overseas.for_parts(1.5) == 27_009 + 6_450
    assert overseas.for_parts(2.5) == 27_009 + 6_450 + 2 * 6_095
    # A year without figures takes the nearest earlier ones, else the nearest later.
    assert ceiling(2030, Zone.METROPOLE) == CEILINGS[2026][Zone.METROPOLE]
    assert ceiling(2026, Zone.MAYOTTE) == CEILINGS[2025][Zone.MAYOTTE]
    assert ceiling(2020, Zone.GUYANE) == CEILINGS[2025][Zone.GUYANE]
    assert is_eligible(22_823, 1.0, 2025, "69")
    assert not is_eligible(22_824, 1.0, 2025, "69")
    assert is_eligible(42_000, 1.0, 2025, "976")


def test_the_clock_decides_the_years(ops: dict[str, OperationHandler]) -> None:
    """In January N+1, N-1 is no longer granted with dgfip_annee_n_moins_1."""
    later = FrozenClock(dt.datetime(N + 1, 1, 2, tzinfo=dt.UTC))
    ctx = context(
        later.now(), habilitation(data_scopes=(LEP,), year_scopes=("dgfip_annee_n_moins_1",))
    )
    with pytest.raises(YearNotGranted):
        lep(ops, ctx, personas.SINGLE.spi, annrev=N - 1, bareme=N)


def test_production_answers_from_the_imported_extract_only(
    ops: dict[str, OperationHandler],
    clock: FrozenClock,
    tmp_path: Path,
    session_factory: sessionmaker[Session],
) -> None:
    """The production gateway reads the production store: what ``guichet data import``
    loaded, never the sandbox's personas."""
    spi = personas.SHARED_30262.spi
    lines = [
        {
            "spi": spi,
            "annrev": N - 1,
            "foyer": "P-1",
            "record": {"rfr": 18_000, "nbPart": 1.0},
            "facture": [{"numLigne": 1, "codeLigne": "RESTE", "libelleLigne": "Reste à payer"}],
        },
        {
            "ressource": "ifi",
            "spi": spi,
            "annrev": N - 1,
            "foyer": "P-1",
            "record": {"indicateurIfiIsf": "N"},
        },
        {
            "ressource": "th",
            "spi": spi,
            "annee": N - 1,
            "avis": "P1",
            "regimeTax": "P",
            "entete": {"libelleCommune": "PARIS 18"},
            "locaux": [{"natureLocal": "AP", "affectation": "H", "invariant": "1180000001"}],
        },
    ]
    path = tmp_path / "extract.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines), encoding="utf-8")
    import_impot_particulier(session_factory, path)
    scopes = ("dgfip_ir_facture", "dgfip_ifi", "dgfip_locaux_th", "dgfip_adresse_th", LEP)
    prod = context(clock.now(), habilitation(data_scopes=scopes), Environment.PRODUCTION)
    bill = call(ops["ir_factures_spi"], prod, spi=spi, annrev=N - 1).body
    assert bill == {"facture": [lines[0]["facture"][0]]}
    assert call(ops["ifi_assiettes_spi"], prod, spi=spi, annrev=N - 1).body == {
        "indicateurIfiIsf": "N"
    }
    th = call(ops["th_principale_spi"], prod, spi=spi, annrev=N - 1).body
    assert th == {
        "situationsTH": [
            {
                "libelleCommune": "PARIS 18",
                "regimeTax": "P",
                "locaux": [{"natureLocal": "AP", "affectation": "H", "invariant": "1180000001"}],
            }
        ]
    }
    assert lep(ops, prod, spi, departement="75").body == {"statut": "O"}
    with pytest.raises(NotFound):  # a sandbox persona is unknown there
        call(ops["ifi_assiettes_spi"], prod, spi=personas.FULL_1.spi, annrev=N - 1)
    with pytest.raises(SpiUnknown):
        lep(ops, prod, personas.FULL_1.spi)
