"""API Impôt Particulier in FranceConnect mode and the OS1–OS9 contract: parse, authorize and
fetch, with tokens from the real sandbox federation (in process) and the seeded population."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections.abc import Iterable
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker
from starlette.requests import Request

from guichet.apis.context import ApiDeps, ApiResponse, CallContext, OperationHandler
from guichet.apis.impot_particulier import build_operations
from guichet.apis.impot_particulier.franceconnect import (
    FederationClientNotHabilitated,
    FederationScopeNotGranted,
)
from guichet.apis.impot_particulier.os_contract import OS4_DECLARANTS, os7_body, os_body
from guichet.catalog.products import (
    IMPOT_PARTICULIER,
    IR_DERNIERE_MEDIA_TYPE,
    IR_FIELD_SCOPES,
    IR_MEDIA_TYPE,
    IR_MULTIPLE_MEDIA_TYPE,
    OFFERS_OF_SERVICE,
)
from guichet.errors import (
    AccessModeNotGranted,
    DataScopeNotGranted,
    NotFound,
    ParameterInvalid,
    UpstreamUnavailable,
    YearNotGranted,
)
from guichet.federation.checktoken import FederationTokenInvalid, FederationTokenMissing
from guichet.federation.clients import directory
from guichet.federation.pivot import IdentityPivot, persons_of_pivot
from guichet.federation.scopes import DATA_SCOPES as FEDERATION_DATA_SCOPES
from guichet.habilitation.models import Environment
from guichet.oauth.policy import HabilitationPolicy, load_snapshot
from guichet.records import service
from guichet.sandbox import personas
from tests.unit.apis.support import context, habilitation
from tests.unit.federation.test_checktoken import (
    DATA,
    IDENTITY,
    Federation,
    federation,
    make_habilitation,
)

__all__ = ["federation"]  # the fixture, shared with the gateway's tests

N = 2026  # the clock fixture's year


def fc_request(token: str | None, **path_params: Any) -> Request:
    headers = [] if token is None else [(b"x-franceconnect-oauth", token.encode())]
    return Request(
        {
            "type": "http",
            "method": "GET",
            "path": "/",
            "headers": headers,
            "query_string": b"",
            "path_params": {k: str(v) for k, v in path_params.items()},
        }
    )


class Setup:
    """A partner habilitation (FranceConnect mode) with its federation client, and the ops."""

    def __init__(
        self,
        fed: Federation,
        *,
        data_scopes: Iterable[str] = ("dgfip_rfr", "dgfip_nbpart"),
        access_modes: Iterable[str] = ("franceconnect",),
        sp_scopes: str = f"{IDENTITY} {DATA}",
    ) -> None:
        self.fed = fed
        hab_id = make_habilitation(
            fed.session_factory, fed.clock.now(), data_scopes=tuple(data_scopes)
        )
        self.sp = fed.service_provider(hab_id, scopes=sp_scopes)
        with fed.session_factory() as session:  # the gateway's view: its policy snapshot
            bound = load_snapshot(session, directory).habilitations[hab_id].federation_clients
        self.hab: HabilitationPolicy = dataclasses.replace(
            habilitation(access_modes=access_modes, data_scopes=data_scopes),
            id=hab_id,
            federation_clients=bound,
        )
        deps = ApiDeps(session_factory=fed.session_factory, clock=fed.clock)
        self.ops = build_operations(deps, federation={Environment.SANDBOX: fed.check()})

    def ctx(self, environment: Environment = Environment.SANDBOX) -> CallContext:
        return context(self.fed.clock.now(), self.hab, environment)

    def token(self, spi: str = personas.DUBOIS.spi, scope: str = f"{IDENTITY} {DATA}") -> str:
        return asyncio.run(self.fed.citizen_token(self.sp, spi, scope))

    def call(
        self, name: str, token: str | None, ctx: CallContext | None = None, **path: Any
    ) -> ApiResponse:
        op: OperationHandler = self.ops[name]
        ctx = ctx or self.ctx()
        params = op.parse(fc_request(token, **path))
        op.authorize(ctx, params)
        self.last_ctx = ctx
        return asyncio.run(op.fetch(ctx, params))


@pytest.fixture
def setup(federation: Federation) -> Setup:
    return Setup(federation)


def test_every_catalogue_operation_has_a_handler(setup: Setup) -> None:
    assert set(setup.ops) == {o.name for o in IMPOT_PARTICULIER.operations}


# --- served -----------------------------------------------------------------------------


def test_the_citizen_of_the_token_gets_the_granted_fields(setup: Setup) -> None:
    result = setup.call("ir_assiettes_fc", setup.token(), annrev=N - 1)
    assert result.media_type == IR_MEDIA_TYPE
    assert {"rfr", "nbPart"} <= set(result.body)
    assert {IR_FIELD_SCOPES[f] for f in result.body} == {"dgfip_rfr", "dgfip_nbpart"}
    # The journal gets the same as in SPI mode: whom (its pseudonym), and what left.
    assert setup.last_ctx.subject_spi == personas.DUBOIS.spi
    assert setup.last_ctx.data_scopes_returned == ["dgfip_nbpart", "dgfip_rfr"]
    with setup.fed.session_factory() as session:
        held = service.situations_of_year(session, "sandbox", personas.DUBOIS.spi, N - 1)
    assert result.body["rfr"] == held[0].record["rfr"]


def test_the_other_resources_answer_as_in_spi_mode(setup: Setup) -> None:
    token = setup.token()
    multiple = setup.call("ir_assiettes_multiple_fc", token, annrev=N - 1)
    assert multiple.media_type == IR_MULTIPLE_MEDIA_TYPE
    situations = multiple.body["situationsIR"]
    assert {IR_FIELD_SCOPES[f] for f in situations[0]} == {"dgfip_rfr", "dgfip_nbpart"}
    derniere = setup.call("ir_derniere_situation_fc", token, annrev=N - 1)
    assert derniere.media_type == IR_DERNIERE_MEDIA_TYPE
    assert derniere.body == {"annRevenu": N - 1, **situations[-1]}
    # deuxans: only the years the citizen consented to (N-1), not all the habilitation's.
    deuxans = setup.call("ir_derniere_situation_deuxans_fc", token)
    assert deuxans.media_type == IR_DERNIERE_MEDIA_TYPE
    assert deuxans.body == derniere.body


def test_the_franceconnect_twins_answer_exactly_as_in_spi_mode(federation: Federation) -> None:
    """Same person, same scopes, same year: the same body and media type in both modes."""
    scopes = (
        "dgfip_rfr",
        "dgfip_nbpart",
        "dgfip_sitfam",
        "dgfip_decl",
        "dgfip_pac",
        "dgfip_aft",
        "dgfip_rns",
        "dgfip_ir_facture",
        "dgfip_ifi",
        "dgfip_locaux_th",
        "dgfip_adresse_th",
        "dgfip_redevables_th",
    )
    years = "dgfip_annee_n_moins_1 dgfip_annee_n_moins_2"
    consent = f"{IDENTITY} {' '.join(scopes)} {years}"
    both = Setup(
        federation, data_scopes=scopes, access_modes=("franceconnect", "spi"), sp_scopes=consent
    )
    token = both.token(personas.FULL_1.spi, consent)
    twins = [
        o.name.removesuffix("_fc") for o in IMPOT_PARTICULIER.operations if o.name.endswith("_fc")
    ]
    assert len(twins) == 7
    for stem in twins:
        path: dict[str, Any] = {} if stem.endswith("deuxans") else {"annrev": N - 1}
        fc = both.call(f"{stem}_fc", token, **path)
        fc_scopes = both.last_ctx.data_scopes_returned
        spi = both.call(f"{stem}_spi", None, spi=personas.FULL_1.spi, **path)
        assert fc.body == spi.body, stem
        assert fc.media_type == spi.media_type, stem
        assert fc_scopes == both.last_ctx.data_scopes_returned, stem


def test_a_scope_the_federation_cannot_carry_is_neither_required_nor_served(
    federation: Federation,
) -> None:
    """dgfip_montantimpot is in the catalogue, not in the federation's scopes: no citizen can
    consent to it, so a habilitation granting it (with SPI mode too) is served in this mode
    without it, instead of a 403 on every call."""
    assert "dgfip_montantimpot" not in FEDERATION_DATA_SCOPES
    mixed = Setup(
        federation,
        access_modes=("franceconnect", "spi"),
        data_scopes=("dgfip_rfr", "dgfip_nbpart", "dgfip_montantimpot"),
    )
    result = mixed.call("ir_assiettes_fc", mixed.token(), annrev=N - 1)
    assert {IR_FIELD_SCOPES[f] for f in result.body} == {"dgfip_rfr", "dgfip_nbpart"}
    assert mixed.last_ctx.data_scopes_returned == ["dgfip_nbpart", "dgfip_rfr"]
    # Nothing the federation can carry: refused before the federation is asked.
    uncarried = Setup(
        federation, access_modes=("franceconnect", "spi"), data_scopes=("dgfip_montantimpot",)
    )
    with pytest.raises(DataScopeNotGranted):
        uncarried.call("ir_assiettes_fc", "not-checked", annrev=N - 1)


# --- refused ----------------------------------------------------------------------------


def test_no_header_is_a_401_before_anything_is_read(setup: Setup) -> None:
    with pytest.raises(FederationTokenMissing) as caught:
        setup.ops["ir_assiettes_fc"].parse(fc_request(None, annrev=N - 1))
    assert caught.value.status == 401
    with pytest.raises(ParameterInvalid):
        setup.ops["os1_rfr"].parse(fc_request("t", annee="25"))


def test_the_access_mode_must_be_granted(federation: Federation) -> None:
    spi_only = Setup(federation, access_modes=("spi",))
    with pytest.raises(AccessModeNotGranted):
        spi_only.call("ir_assiettes_fc", "any-token", annrev=N - 1)


def test_an_expired_token_is_a_401(setup: Setup) -> None:
    token = setup.token()
    setup.fed.clock.advance(61)
    with pytest.raises(FederationTokenInvalid):
        setup.call("ir_assiettes_fc", token, annrev=N - 1)


def test_a_token_of_another_habilitations_client_is_refused(federation: Federation) -> None:
    mine = Setup(federation)
    theirs = Setup(federation)
    with pytest.raises(FederationClientNotHabilitated) as caught:
        mine.call("ir_assiettes_fc", theirs.token(), annrev=N - 1)
    assert caught.value.status == 403
    # A client bound to no habilitation at all is no better.
    loose = federation.service_provider(None)
    token = asyncio.run(federation.citizen_token(loose))
    with pytest.raises(FederationClientNotHabilitated):
        mine.call("ir_assiettes_fc", token, annrev=N - 1)


def test_too_few_consented_scopes_are_refused(setup: Setup) -> None:
    rfr_only = setup.token(scope=f"{IDENTITY} dgfip_rfr dgfip_annee_n_moins_1")
    with pytest.raises(FederationScopeNotGranted, match="dgfip_nbpart") as caught:
        setup.call("ir_assiettes_fc", rfr_only, annrev=N - 1)
    assert caught.value.status == 403
    assert caught.value.code == "federation_scope_not_granted"
    # The habilitation grants N-2; the citizen consented to N-1 only.
    with pytest.raises(FederationScopeNotGranted, match=str(N - 2)):
        setup.call("ir_assiettes_fc", setup.token(), annrev=N - 2)
    no_year = setup.token(scope=f"{IDENTITY} dgfip_rfr dgfip_nbpart")
    with pytest.raises(FederationScopeNotGranted):
        setup.call("ir_derniere_situation_deuxans_fc", no_year)


def test_the_habilitations_years_still_apply(setup: Setup) -> None:
    with pytest.raises(YearNotGranted):
        setup.call("ir_assiettes_fc", "not-checked", annrev=N - 4)


def test_a_pivot_matching_two_persons_is_a_404(setup: Setup) -> None:
    token = setup.token(spi=personas.HOMONYM_1.spi)
    with pytest.raises(NotFound):
        setup.call("ir_assiettes_fc", token, annrev=N - 1)
    assert setup.last_ctx.subject_spi is None


def test_a_citizen_without_a_situation_that_year_is_a_404(setup: Setup) -> None:
    token = setup.token(spi=personas.NO_N1.spi)
    with pytest.raises(NotFound):
        setup.call("ir_assiettes_fc", token, annrev=N - 1)
    assert setup.last_ctx.subject_spi == personas.NO_N1.spi


def test_production_does_not_trust_the_sandbox_federation(setup: Setup) -> None:
    prod = dataclasses.replace(setup.hab, environment=Environment.PRODUCTION)
    ctx = context(setup.fed.clock.now(), prod, Environment.PRODUCTION)
    with pytest.raises(UpstreamUnavailable):
        setup.call("ir_assiettes_fc", setup.token(), ctx=ctx, annrev=N - 1)


# --- the identity pivot -----------------------------------------------------------------


def _pivot(**values: Any) -> IdentityPivot:
    base: dict[str, Any] = {
        "given_name": "Angela Claire Louise",
        "family_name": "DUBOIS",
        "birthdate": dt.date(1962, 8, 24),
        "gender": "female",
        "birthplace": "75107",
        "birthcountry": "99100",
    }
    base.update(values)
    return IdentityPivot(**base)


def test_the_pivot_is_matched_in_the_providers_form(
    federation: Federation, session_factory: sessionmaker[Session]
) -> None:
    with session_factory().connection() as conn:
        match = lambda **v: persons_of_pivot(conn, "sandbox", _pivot(**v))  # noqa: E731
        assert match() == [personas.DUBOIS.spi]
        assert match(family_name="Dubois", given_name="angéla") == [personas.DUBOIS.spi]
        assert match(given_name="Claire") == []  # the first first-name
        assert match(birthplace="75108") == []
        assert match(gender="male") == []
        assert match(birthdate=dt.date(1962, 8, 25)) == []
        assert match(birthcountry="99139") == []
        assert persons_of_pivot(conn, "production", _pivot()) == []


# --- the OS contract --------------------------------------------------------------------


@pytest.fixture
def os_setup(federation: Federation) -> Setup:
    every = (
        "dgfip_rfr dgfip_nbpart dgfip_aft dgfip_rns dgfip_sitfam dgfip_pac dgfip_decl "
        "dgfip_pariso dgfip_pensalper dgfip_inddeficit dgfip_locaux_th dgfip_rbg dgfip_rev_monde"
    )
    return Setup(
        federation,
        data_scopes=every.split(),
        sp_scopes=f"{IDENTITY} {every} dgfip_annee_n_moins_1",
    )


def test_os1_to_os9_answer_in_the_conventions_shape(os_setup: Setup) -> None:
    every = " ".join(sorted(os_setup.hab.data_scopes))
    token = os_setup.token(
        spi=personas.FULL_1.spi, scope=f"{IDENTITY} {every} dgfip_annee_n_moins_1"
    )
    body = {n: os_setup.call(name, token, annee=N - 1).body for n, name in _OS.items() if n != 7}
    assert set(body[1]) == {"rfr", "nbPart"}
    assert set(body[2]) == {"aft", "aftDetail"}
    assert set(body[2]["aftDetail"]) == {"complementAdresse", "voie", "codePostal", "commune"}
    assert set(body[3]) == {"rev"}
    assert set(body[3]["rev"]) <= {
        "rcm",
        "pv",
        "fonc",
        "pro",
        "alpha",
        "tspr",
    }
    assert all(body[3]["rev"].values())  # empty categories are omitted
    assert set(body[4]) == {
        "sitFam", "pac", "nmNaiDec1", "nmUsaDec1", "prnmDec1",
        "nmNaiDec2", "nmUsaDec2", "prnmDec2", "sitParIso",
    }  # fmt: skip
    assert (body[4]["nmNaiDec1"], body[4]["nmUsaDec2"]) == ("GARNIER", "GARNIER")
    assert body[4]["nmUsaDec1"] is None  # "ou « null »": he has no usage name
    assert set(body[4]["pac"]) == {
        "nbPac",
        "nbPacF",
        "nbPacH",
        "nbPacR",
        "nbPacJ",
        "nbPacN",
        "nbPacP",
    }
    assert set(body[5]) == {"pensAlPer"}
    assert isinstance(body[5]["pensAlPer"], int)
    assert body[6]["indDeficit"] in (0, 1)
    assert type(body[6]["indDeficit"]) is int  # the convention's integer, not the string
    assert type(body[1]["rfr"]) is int
    assert set(body[8]) == {"revenuBrutGlobal"}
    assert set(body[9]) == {"rev"}
    assert set(body[9]["rev"]) <= {"div"}
    assert os_setup.last_ctx.subject_spi == personas.FULL_1.spi
    assert os_setup.last_ctx.data_scopes_returned == ["dgfip_rev_monde"]
    # OS7: the GARNIERs' principal residence, its dwelling premises only (not the
    # dependency, not the secondary residence).
    seven = os_setup.call("os7_locaux_th", token, annee=N - 1).body
    assert seven["regimeTax"] == "P"
    assert [(lo["natureLocal"], lo["affectation"]) for lo in seven["locaux"]] == [("MA", "H")]


_OS = {o.number: o.operation for o in OFFERS_OF_SERVICE}


def test_an_os_not_habilitated_is_a_403(setup: Setup) -> None:
    with pytest.raises(DataScopeNotGranted):
        setup.call("os2_aft", "not-checked", annee=N - 1)


def test_os_shapes_follow_the_null_and_omission_rules() -> None:
    """``null`` only where the convention says "ou null"; 0 for a count or an amount it does
    not allow to be null; any other missing value omitted."""
    every = frozenset(s for o in OFFERS_OF_SERVICE for s in o.data_scopes)
    assert os_body(1, {}, every) == {"rfr": None}  # nbPart: "Nombre décimal", never null
    assert os_body(1, {"rfr": 1}, frozenset({"dgfip_rfr"})) == {"rfr": 1}
    assert os_body(1, {"rfr": 1, "nbPart": 1.5}, every) == {"rfr": 1, "nbPart": 1.5}
    record = {
        "aft": "5 RUE CINQ 75005 PARIS",
        "aftDetail": {"voie": "5 RUE CINQ", "getcodePostal": "75005 PARIS", "getcommune": "PARIS"},
    }
    assert os_body(2, record, every) == {
        "aft": "5 RUE CINQ 75005 PARIS",
        "aftDetail": {"voie": "5 RUE CINQ", "codePostal": "75005 PARIS", "commune": "PARIS"},
    }
    assert os_body(2, {}, every) == {}
    rcm, chges, div = (
        [{"code": "2DC", "valeur": "10"}],
        [{"code": "6DE", "valeur": "1"}],
        [{"code": "8TK", "valeur": "5"}],
    )
    rev = {"rev": {"tspr": [], "rcm": rcm, "chges": chges, "div": div}}
    assert os_body(3, rev, every) == {"rev": {"rcm": [{"code": "2DC", "valeur": "10"}]}}
    assert os_body(3, {}, every) == {"rev": {}}
    assert os_body(9, rev, every) == {"rev": {"div": [{"code": "8TK", "valeur": "5"}]}}
    assert os_body(9, {"rev": {"rcm": []}}, every) == {"rev": {}}
    four = os_body(
        4, {"sitFam": "M", "pac": {"nbPac": 2, "nbPacF": 2, "nbPacG": 1}, "nmNaiDec1": "X"}, every
    )
    assert four["pac"] == {"nbPac": 2, "nbPacF": 2} | dict.fromkeys(
        ("nbPacH", "nbPacR", "nbPacJ", "nbPacN", "nbPacP"), 0
    )
    assert four["nmNaiDec1"] == "X"
    assert four["nmNaiDec2"] is None
    assert four["sitParIso"] is None
    assert os_body(4, {"sitFam": "M"}, frozenset({"dgfip_pac"})) == {
        "pac": dict.fromkeys(four["pac"], 0)
    }
    assert os_body(5, {}, every) == {"pensAlPer": 0}
    assert os_body(6, {"indDeficit": "1"}, every) == {"indDeficit": 1}
    assert os_body(6, {"indDeficit": "0"}, every) == {"indDeficit": 0}
    assert os_body(6, {}, every) == {"indDeficit": 0}
    assert os_body(8, {}, every) == {"revenuBrutGlobal": None}
    assert os_body(8, {"revenuBrutGlobal": 5}, frozenset()) == {}
    nullable = {"rfr", "sitFam", "sitParIso", "revenuBrutGlobal", *OS4_DECLARANTS}
    for number in (1, 2, 3, 4, 5, 6, 8, 9):
        body = os_body(number, {}, every)
        assert {k for k, v in body.items() if v is None} <= nullable, number


def test_os7_needs_exactly_one_principal_residence() -> None:
    principal = {
        "regimeTax": "P",
        "locaux": [
            {"natureLocal": "AP", "affectation": "H", "invariant": "0751234567"},
            {"natureLocal": "DE", "affectation": "D", "invariant": "0751234568"},
        ],
    }
    assert os7_body([principal, {"regimeTax": "S", "locaux": []}]) == {
        "regimeTax": "P",
        "locaux": [{"natureLocal": "AP", "affectation": "H", "invariant": "0751234567"}],
    }
    with pytest.raises(NotFound):
        os7_body([principal, principal])
    with pytest.raises(NotFound):
        os7_body([{"regimeTax": "S", "locaux": []}])


# --- OS7: housing-tax premises, from the sandbox store ---------------------------------


@pytest.fixture
def th_setup(federation: Federation) -> Setup:
    return Setup(
        federation,
        data_scopes=("dgfip_locaux_th",),
        sp_scopes=f"{IDENTITY} dgfip_locaux_th dgfip_annee_n_moins_1 dgfip_annee_n_moins_2",
    )


TH_SCOPE = f"{IDENTITY} dgfip_locaux_th dgfip_annee_n_moins_1 dgfip_annee_n_moins_2"


def test_os7_gives_the_principal_residence_of_the_citizen(th_setup: Setup) -> None:
    token = th_setup.token(personas.DUBOIS.spi, TH_SCOPE)
    result = th_setup.call("os7_locaux_th", token, annee=N - 1)
    assert result.media_type == "application/json"
    invariant = result.body["locaux"][0]["invariant"]
    assert result.body == {
        "regimeTax": "P",
        "locaux": [{"natureLocal": "AP", "affectation": "H", "invariant": invariant}],
    }
    assert len(invariant) == 10
    assert invariant.startswith("107")  # Paris 7e, her commune
    # From the store, for that person and year: the same premises, the dependency left out.
    with th_setup.fed.session_factory() as session:
        held = service.th_assessments(session, "sandbox", personas.DUBOIS.spi, N - 1)
    assert next(lo["invariant"] for a in held for lo in a["locaux"]) == invariant
    assert {lo["affectation"] for a in held for lo in a["locaux"]} == {"H", "D"}
    # Journaled like the others: whom, and what left.
    assert th_setup.last_ctx.subject_spi == personas.DUBOIS.spi
    assert th_setup.last_ctx.data_scopes_returned == ["dgfip_locaux_th"]
    assert th_setup.call("os7_locaux_th", token, annee=N - 2).body == result.body


def test_os7_with_two_principal_residences_or_none_is_a_404(th_setup: Setup) -> None:
    """SPEC §7.1: "several or no principal residence → 404"."""
    token = th_setup.token(personas.BRIDE.spi, TH_SCOPE)
    with pytest.raises(NotFound):  # N-1: her flat and the couple's house
        th_setup.call("os7_locaux_th", token, annee=N - 1)
    assert th_setup.last_ctx.subject_spi == personas.BRIDE.spi
    assert not th_setup.last_ctx.data_scopes_returned
    before = th_setup.call("os7_locaux_th", token, annee=N - 2).body  # N-2: her flat only
    assert before["regimeTax"] == "P"
    assert len(before["locaux"]) == 1
    # Chloé BLANC has no housing-tax assessment at all.
    token = th_setup.token(personas.NO_TAX.spi, TH_SCOPE)
    with pytest.raises(NotFound):
        th_setup.call("os7_locaux_th", token, annee=N - 1)


def test_os7_needs_the_citizens_consent_to_the_premises(th_setup: Setup) -> None:
    token = th_setup.token(
        personas.DUBOIS.spi, f"{IDENTITY} dgfip_annee_n_moins_1 dgfip_annee_n_moins_2"
    )
    with pytest.raises(FederationScopeNotGranted):
        th_setup.call("os7_locaux_th", token, annee=N - 1)
