"""API Impôt Particulier: the IR bill, IFI and principal housing-tax resources (by SPI and in
FranceConnect mode) and the LEP eligibility check (by SPI) [provider's OpenAPI; DESIGN
"Interfaces partners already code against"].

Semantics (``docs/catalogue.md``):

- ``factures``: the year's primary IR situation (rang 1) as
  ``SituationsIRAssiettesFacturesJAXBbean``, limited to the IR data scopes as ``assiettes``,
  plus ``facture``, the lines of its notice (``[]`` when none was issued);
- ``ifiisf``: ``{"indicateurIfiIsf": "O" | "N"}``, the IFI the household declared with the
  income of ``annrev``; a household with an IR situation that year but no IFI declaration is
  ``"N"``; no IR situation either → 404;
- ``th/…/principale``: ``{"situationsTH": […]}``, every principal-residence assessment of
  year ``annrev`` with its dwelling premises; none → 404;
- ``lep``: ``{"statut": "O" | "N"}``, the RFR of ``annrev``'s latest situation (the
  household on 31 December, R221-33 2°) against the ceiling of the barème year and
  department; the provider's "no answer" codes otherwise: 204 without a body when the RFR
  is not established yet, 410 ``codeapp`` 4101 when the SPI has no situation that year,
  4102 when the store knows no such SPI; 400 ``codeapp`` 4001 (SPI), 4002 (years), 4007
  (department); any 403 carries ``codeapp`` 4031 (``Operation.forbidden_codeapp``).

Every body is the record projected on the provider's schema (``schemas.py``: a property it
lacks is dropped, a value that does not exist is omitted), then limited to the data scopes.
The year rules are the ``assiettes``' (``years.py``): ``annrev`` must be granted, and the
fallback year N-2 only when the resource has nothing for N-1.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import Connection, exists, select
from starlette.requests import Request

from guichet.apis.context import NO_CONTENT, ApiDeps, ApiResponse, CallContext, OperationHandler
from guichet.apis.impot_particulier.fields import filter_fields, filter_record
from guichet.apis.impot_particulier.franceconnect import (
    FcParams,
    FranceConnectGate,
    check_year,
    federation_token,
    franceconnect_habilitation,
)
from guichet.apis.impot_particulier.lep import is_eligible, parse_bareme, parse_departement
from guichet.apis.impot_particulier.operations import ACCESS_MODES, parse_annrev
from guichet.apis.impot_particulier.schemas import (
    FACTURE_LINE,
    IFI_ISF,
    IR_FACTURES,
    SITUATION_TH,
    SITUATIONS_TH,
    project,
)
from guichet.apis.impot_particulier.years import granted_years
from guichet.catalog.products import (
    FACTURE_FIELD_SCOPES,
    FACTURE_MEDIA_TYPE,
    IFI_FIELD_SCOPES,
    IFI_MEDIA_TYPE,
    IR_FIELD_SCOPES,
    LEP_FIELD_SCOPES,
    LEP_MEDIA_TYPE,
    TH_FIELD_SCOPES,
    TH_MEDIA_TYPE,
)
from guichet.errors import (
    AccessModeNotGranted,
    DataScopeNotGranted,
    GuichetError,
    HabilitationUnknown,
    NoSituationForYear,
    NotFound,
    SpiUnknown,
    YearNotGranted,
    codeapp,
)
from guichet.oauth.policy import HabilitationPolicy
from guichet.records.models import IfiSituation, IrSituation, Person, ThAvis, ThLocal
from guichet.records.spi import parse_spi

# What one resource reads: (connection, store, spi, year) → the full record(s), or None
# when the store has nothing for that person and year.
Reader = Callable[[Connection, str, str, int], Any]

# The provider's application codes [its OpenAPI document, ``Ouverturelep`` and
# ``SituationIfiIsfV1``]; LEP's 4031 (any 403) is the catalogue's
# ``Operation.forbidden_codeapp``, which the gateway sets.
CODEAPP_SPI: Final = 4001  # "mauvais format de spi"
CODEAPP_YEAR: Final = 4002  # "mauvais format d'année (annrev ou bareme)"
CODEAPP_DEPARTEMENT: Final = 4007  # "mauvais format de département"
CODEAPP_NO_SITUATION: Final = 4101  # "La requête avec le spi et l'année ne renvoie aucun résultat"
CODEAPP_SPI_UNKNOWN: Final = 4102  # "Le spi envoyé ne correspond à aucun usager"


# --- store reads ------------------------------------------------------------------------


def read_bill(conn: Connection, store: str, spi: str, annrev: int) -> tuple[Any, Any] | None:
    """(record, facture) of the year's primary situation (rang 1)."""
    row = conn.execute(
        select(IrSituation.record, IrSituation.facture)
        .where(IrSituation.store == store, IrSituation.spi == spi, IrSituation.annrev == annrev)
        .order_by(IrSituation.rang)
        .limit(1)
    ).first()
    return None if row is None else (row.record, row.facture)


def has_ir_situation(conn: Connection, store: str, spi: str, annrev: int) -> bool:
    return bool(
        conn.execute(
            select(
                exists().where(
                    IrSituation.store == store,
                    IrSituation.spi == spi,
                    IrSituation.annrev == annrev,
                )
            )
        ).scalar()
    )


# A household that filed its income but no IFI declaration is not liable.
NOT_LIABLE: Final = {"indicateurIfiIsf": "N"}


def read_ifi(conn: Connection, store: str, spi: str, annrev: int) -> dict[str, Any] | None:
    """The IFI record of ``annrev``; ``NOT_LIABLE`` for a household with an IR situation that
    year but no IFI declaration; None when the store has neither."""
    row = conn.execute(
        select(IfiSituation.record).where(
            IfiSituation.store == store, IfiSituation.spi == spi, IfiSituation.annrev == annrev
        )
    ).first()
    if row is not None:
        return dict(row.record)
    return dict(NOT_LIABLE) if has_ir_situation(conn, store, spi, annrev) else None


def read_th_principal(
    conn: Connection, store: str, spi: str, annee: int
) -> list[dict[str, Any]] | None:
    """Every principal-residence assessment of ``annee``: its heading, ``regimeTax`` "P" and
    its dwelling premises (``affectation`` "H", as OS7), in ``avis`` order."""
    locaux = conn.execute(
        select(ThLocal.avis, ThLocal.nature_local, ThLocal.affectation, ThLocal.invariant)
        .where(
            ThLocal.store == store,
            ThLocal.spi == spi,
            ThLocal.annee == annee,
            ThLocal.principal.is_(True),
        )
        .order_by(ThLocal.avis, ThLocal.invariant)
    ).all()
    if not locaux:
        return None
    headings: dict[str, dict[str, Any]] = dict(
        conn.execute(
            select(ThAvis.avis, ThAvis.record).where(
                ThAvis.store == store, ThAvis.spi == spi, ThAvis.annee == annee
            )
        ).all()
    )
    assessments: dict[str, dict[str, Any]] = {}
    for avis, nature, affectation, invariant in locaux:
        item = assessments.setdefault(
            avis, {**(headings.get(avis) or {}), "regimeTax": "P", "locaux": []}
        )
        if affectation == "H":
            item["locaux"].append(
                {"natureLocal": nature, "affectation": affectation, "invariant": invariant}
            )
    return list(assessments.values())


def read_latest_situation(
    conn: Connection, store: str, spi: str, annrev: int
) -> dict[str, Any] | None:
    """The year's latest situation (highest rang): the household on 31 December."""
    row = conn.execute(
        select(IrSituation.record)
        .where(IrSituation.store == store, IrSituation.spi == spi, IrSituation.annrev == annrev)
        .order_by(IrSituation.rang.desc())
        .limit(1)
    ).first()
    return None if row is None else dict(row.record)


# --- the resources ----------------------------------------------------------------------


Shape = Callable[[Any, frozenset[str]], tuple[Any, set[str]]]


def _bill_body(found: tuple[Any, Any], granted: frozenset[str]) -> tuple[Any, set[str]]:
    record, facture = found
    body, released = filter_record(project(record, IR_FACTURES), granted)
    if FACTURE_FIELD_SCOPES["facture"] in granted:
        body["facture"] = [project(line, FACTURE_LINE) for line in facture or ()]
        released.add(FACTURE_FIELD_SCOPES["facture"])
    return body, released


def _ifi_body(found: dict[str, Any], granted: frozenset[str]) -> tuple[Any, set[str]]:
    return filter_fields(project(found, IFI_ISF), IFI_FIELD_SCOPES, granted)


def _th_body(found: list[dict[str, Any]], granted: frozenset[str]) -> tuple[Any, set[str]]:
    released: set[str] = set()
    items = []
    for assessment in found:
        item, scopes = filter_fields(project(assessment, SITUATION_TH), TH_FIELD_SCOPES, granted)
        items.append(item)
        released |= scopes
    return {SITUATIONS_TH: items}, released


@dataclass(frozen=True, slots=True)
class YearResource:
    """One resource of a person and a revenue year."""

    name: str
    data_scopes: frozenset[str]  # every scope that releases one of its fields
    media_type: str
    read: Reader
    shape: Shape
    # The provider's ``codeapp`` for an SPI in the wrong format, where it documents one.
    spi_codeapp: int | None = None


FACTURES: Final = YearResource(
    "factures",
    frozenset({*IR_FIELD_SCOPES.values(), *FACTURE_FIELD_SCOPES.values()}),
    FACTURE_MEDIA_TYPE,
    read_bill,
    _bill_body,
)
# "400 : codeapp 4001 : Le spi est dans un format incorrect" [provider's OpenAPI, IFI].
IFI: Final = YearResource(
    "ifi",
    frozenset(IFI_FIELD_SCOPES.values()),
    IFI_MEDIA_TYPE,
    read_ifi,
    _ifi_body,
    spi_codeapp=CODEAPP_SPI,
)
TH_PRINCIPALE: Final = YearResource(
    "th_principale",
    frozenset(TH_FIELD_SCOPES.values()),
    TH_MEDIA_TYPE,
    read_th_principal,
    _th_body,
)


@dataclass(frozen=True, slots=True)
class SpiYearParams:
    spi: str
    annrev: int


def _habilitation(ctx: CallContext) -> HabilitationPolicy:
    if ctx.habilitation is None:
        raise HabilitationUnknown()
    return ctx.habilitation


def _check_spi_mode(hab: HabilitationPolicy, wanted: frozenset[str]) -> None:
    if not hab.access_modes & ACCESS_MODES:
        raise AccessModeNotGranted("Le mode d'accès par SPI ou état civil n'est pas habilité.")
    if not hab.data_scopes & wanted:
        raise DataScopeNotGranted()


class SpiYearOperation:
    """A ``YearResource`` by SPI."""

    def __init__(self, deps: ApiDeps, resource: YearResource) -> None:
        self._deps = deps
        self.resource = resource

    def parse(self, request: Request, body: Any = None) -> SpiYearParams:
        if self.resource.spi_codeapp is None:
            spi = parse_spi(request.path_params.get("spi"))
        else:
            with codeapp(self.resource.spi_codeapp):
                spi = parse_spi(request.path_params.get("spi"))
        return SpiYearParams(spi, parse_annrev(request.path_params.get("annrev")))

    def authorize(self, ctx: CallContext, params: SpiYearParams) -> None:
        """Access mode, data scopes of this resource, revenue year [SPEC §5 check 5]."""
        hab = _habilitation(ctx)
        _check_spi_mode(hab, self.resource.data_scopes)
        check_year(hab, ctx, params.annrev, "annrev")

    async def fetch(self, ctx: CallContext, params: SpiYearParams) -> ApiResponse:
        hab = _habilitation(ctx)
        ctx.subject_spi = params.spi
        found = await asyncio.to_thread(
            read_granted_year, self._deps, ctx, self.resource.read, params.spi, params.annrev
        )
        granted = hab.data_scopes & self.resource.data_scopes
        body, released = self.resource.shape(found, granted)
        ctx.data_scopes_returned = sorted(released)
        return ApiResponse(body=body, media_type=self.resource.media_type)


# What the store having nothing becomes: (connection, store, spi, year) → the error to raise.
Missing = Callable[[Connection, str, str, int], GuichetError]


def _not_found(conn: Connection, store: str, spi: str, annrev: int) -> GuichetError:
    return NotFound()


def read_granted_year(
    deps: ApiDeps,
    ctx: CallContext,
    read: Reader,
    spi: str,
    annrev: int,
    missing: Missing = _not_found,
) -> Any:
    """``read`` for ``annrev`` in the call's store, after the fallback-year rule: N-2 under
    ``dgfip_annee_n_moins_2_si_indispo_n_moins_1`` only when ``read`` finds nothing in N-1.
    Nothing for ``annrev`` → ``missing``'s error (by default a 404)."""
    grant = granted_years(_habilitation(ctx).year_scopes, ctx.now)
    store = ctx.environment.value
    with deps.engine.connect() as conn:
        if grant.is_conditional(annrev) and read(conn, store, spi, grant.n_minus_1) is not None:
            raise YearNotGranted(
                f"L'année {annrev} n'est habilitée que si l'année "
                f"{grant.n_minus_1} est indisponible.",
                field="annrev",
            )
        found = read(conn, store, spi, annrev)
        if found is None:
            raise missing(conn, store, spi, annrev)
    return found


class FcYearOperation:
    """A ``YearResource`` for the citizen of the federation token (``franceconnect.py``)."""

    def __init__(self, deps: ApiDeps, resource: YearResource, gate: FranceConnectGate) -> None:
        self.resource = resource
        self._gate = gate
        self._spi_mode = SpiYearOperation(deps, resource)

    def parse(self, request: Request, body: Any = None) -> FcParams:
        return FcParams(federation_token(request), parse_annrev(request.path_params.get("annrev")))

    def authorize(self, ctx: CallContext, params: FcParams) -> None:
        hab = franceconnect_habilitation(ctx)
        if not hab.data_scopes & self.resource.data_scopes:
            raise DataScopeNotGranted()
        check_year(hab, ctx, params.annrev, "annrev")

    async def fetch(self, ctx: CallContext, params: FcParams) -> ApiResponse:
        hab = franceconnect_habilitation(ctx)
        assert params.annrev is not None
        who = await self._gate.identify(
            ctx, params.token, hab.data_scopes & self.resource.data_scopes, params.annrev
        )
        # SPI mode's reading under the habilitation narrowed to the consent, restored
        # afterwards: the journal names the real one.
        ctx.habilitation = who.habilitation
        try:
            return await self._spi_mode.fetch(ctx, SpiYearParams(who.spi, params.annrev))
        finally:
            ctx.habilitation = hab


# --- LEP --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LepParams:
    spi: str
    departement: str
    annrev: int
    bareme: int


LEP_SCOPE: Final = LEP_FIELD_SCOPES["statut"]


def spi_known(conn: Connection, store: str, spi: str) -> bool:
    """Whether the store knows the SPI at all: a person, or an IR situation of any year."""
    person = exists().where(Person.store == store, Person.spi == spi)
    situation = exists().where(IrSituation.store == store, IrSituation.spi == spi)
    return bool(conn.execute(select(person | situation)).scalar())


def _lep_missing(conn: Connection, store: str, spi: str, annrev: int) -> GuichetError:
    """410, as the provider answers when it has nothing to check."""
    if spi_known(conn, store, spi):
        return NoSituationForYear(
            f"Aucune situation à l'impôt sur le revenu {annrev} pour ce numéro fiscal.",
            codeapp=CODEAPP_NO_SITUATION,
        )
    return SpiUnknown("Le numéro fiscal ne correspond à aucun usager.", codeapp=CODEAPP_SPI_UNKNOWN)


class LepOperation:
    """``/spi/{spi}/lep/departement/{departement}/annrev/{annrev}/bareme/{bareme}``."""

    def __init__(self, deps: ApiDeps) -> None:
        self._deps = deps

    def parse(self, request: Request, body: Any = None) -> LepParams:
        path = request.path_params
        with codeapp(CODEAPP_SPI):
            spi = parse_spi(path.get("spi"))
        with codeapp(CODEAPP_DEPARTEMENT):
            departement = parse_departement(path.get("departement"))
        with codeapp(CODEAPP_YEAR):
            annrev = parse_annrev(path.get("annrev"))
            bareme = parse_bareme(path.get("bareme"), annrev)
        return LepParams(spi, departement, annrev, bareme)

    def authorize(self, ctx: CallContext, params: LepParams) -> None:
        hab = _habilitation(ctx)
        _check_spi_mode(hab, frozenset({LEP_SCOPE}))
        check_year(hab, ctx, params.annrev, "annrev")

    async def fetch(self, ctx: CallContext, params: LepParams) -> ApiResponse:
        ctx.subject_spi = params.spi
        record: Mapping[str, Any] = await asyncio.to_thread(
            read_granted_year,
            self._deps,
            ctx,
            read_latest_situation,
            params.spi,
            params.annrev,
            _lep_missing,
        )
        rfr, nb_part = record.get("rfr"), record.get("nbPart")
        if rfr is None or nb_part is None:
            # "204 : Aucune réponse ne peut être apportée": the RFR is not established yet.
            return ApiResponse(body=None, media_type=LEP_MEDIA_TYPE, status=NO_CONTENT)
        eligible = is_eligible(int(rfr), float(nb_part), params.bareme, params.departement)
        ctx.data_scopes_returned = [LEP_SCOPE]
        # ``OuvertureLepJAXBbean``: its one property.
        return ApiResponse(body={"statut": "O" if eligible else "N"}, media_type=LEP_MEDIA_TYPE)


def build_resource_operations(
    deps: ApiDeps, gate: FranceConnectGate
) -> dict[str, OperationHandler]:
    """The handlers, keyed by the catalogue's operation names."""
    resources = {"ir_factures": FACTURES, "ifi_assiettes": IFI, "th_principale": TH_PRINCIPALE}
    handlers: dict[str, OperationHandler] = {"lep_spi": LepOperation(deps)}
    for stem, resource in resources.items():
        handlers[f"{stem}_spi"] = SpiYearOperation(deps, resource)
        handlers[f"{stem}_fc"] = FcYearOperation(deps, resource, gate)
    return handlers


__all__ = ["build_resource_operations"]
