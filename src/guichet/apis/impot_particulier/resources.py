"""API Impôt Particulier: the IR bill, IFI and principal housing-tax resources (by SPI and in
FranceConnect mode) and the LEP eligibility check (by SPI) [provider's OpenAPI; DESIGN
"Interfaces partners already code against"].

Semantics (``docs/catalogue.md``):

- ``factures``: the year's primary IR situation (rang 1), limited to the IR data scopes as
  ``assiettes``, plus ``facture``, the lines of its notice (``[]`` when none was issued);
- ``ifiisf``: the IFI the household declared with the income of ``annrev``; none → 404;
- ``th/…/principale``: ``{"situationsTH": […]}``, every principal-residence assessment of
  year ``annrev`` with its dwelling premises; none → 404;
- ``lep``: ``{"statut": "O" | "N"}``, the RFR of ``annrev``'s latest situation (the
  household on 31 December, R221-33 2°) against the ceiling of the barème year and
  department; no situation, or an RFR not established yet → 404.

The year rules are the ``assiettes``' (``years.py``): ``annrev`` must be granted, and the
fallback year N-2 only when the resource has nothing for N-1.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import Connection, select
from starlette.requests import Request

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
    HabilitationUnknown,
    NotFound,
    YearNotGranted,
)
from guichet.gateway.context import ApiDeps, ApiResponse, CallContext, OperationHandler
from guichet.gateway.policy import HabilitationPolicy
from guichet.records.models import IfiSituation, IrSituation, ThAvis, ThLocal
from guichet.records.spi import parse_spi

# What one resource reads: (connection, store, spi, year) → the full record(s), or None
# when the store has nothing for that person and year.
Reader = Callable[[Connection, str, str, int], Any]


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


def read_ifi(conn: Connection, store: str, spi: str, annrev: int) -> dict[str, Any] | None:
    row = conn.execute(
        select(IfiSituation.record).where(
            IfiSituation.store == store, IfiSituation.spi == spi, IfiSituation.annrev == annrev
        )
    ).first()
    return None if row is None else dict(row.record)


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
    body, released = filter_record(record, granted)
    if FACTURE_FIELD_SCOPES["facture"] in granted:
        body["facture"] = list(facture or [])
        released.add(FACTURE_FIELD_SCOPES["facture"])
    return body, released


def _ifi_body(found: dict[str, Any], granted: frozenset[str]) -> tuple[Any, set[str]]:
    return filter_fields(found, IFI_FIELD_SCOPES, granted)


def _th_body(found: list[dict[str, Any]], granted: frozenset[str]) -> tuple[Any, set[str]]:
    released: set[str] = set()
    items = []
    for assessment in found:
        item, scopes = filter_fields(assessment, TH_FIELD_SCOPES, granted)
        items.append(item)
        released |= scopes
    return {"situationsTH": items}, released


@dataclass(frozen=True, slots=True)
class YearResource:
    """One resource of a person and a revenue year."""

    name: str
    data_scopes: frozenset[str]  # every scope that releases one of its fields
    media_type: str
    read: Reader
    shape: Shape


FACTURES: Final = YearResource(
    "factures",
    frozenset({*IR_FIELD_SCOPES.values(), *FACTURE_FIELD_SCOPES.values()}),
    FACTURE_MEDIA_TYPE,
    read_bill,
    _bill_body,
)
IFI: Final = YearResource(
    "ifi", frozenset(IFI_FIELD_SCOPES.values()), IFI_MEDIA_TYPE, read_ifi, _ifi_body
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

    def parse(self, request: Request) -> SpiYearParams:
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


def read_granted_year(deps: ApiDeps, ctx: CallContext, read: Reader, spi: str, annrev: int) -> Any:
    """``read`` for ``annrev`` in the call's store, after the fallback-year rule: N-2 under
    ``dgfip_annee_n_moins_2_si_indispo_n_moins_1`` only when ``read`` finds nothing in N-1.
    Nothing for ``annrev`` → 404."""
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
        raise NotFound()
    return found


class FcYearOperation:
    """A ``YearResource`` for the citizen of the federation token (``franceconnect.py``)."""

    def __init__(self, deps: ApiDeps, resource: YearResource, gate: FranceConnectGate) -> None:
        self.resource = resource
        self._gate = gate
        self._spi_mode = SpiYearOperation(deps, resource)

    def parse(self, request: Request) -> FcParams:
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


class LepOperation:
    """``/spi/{spi}/lep/departement/{departement}/annrev/{annrev}/bareme/{bareme}``."""

    def __init__(self, deps: ApiDeps) -> None:
        self._deps = deps

    def parse(self, request: Request) -> LepParams:
        path = request.path_params
        spi = parse_spi(path.get("spi"))
        departement = parse_departement(path.get("departement"))
        annrev = parse_annrev(path.get("annrev"))
        return LepParams(spi, departement, annrev, parse_bareme(path.get("bareme"), annrev))

    def authorize(self, ctx: CallContext, params: LepParams) -> None:
        hab = _habilitation(ctx)
        _check_spi_mode(hab, frozenset({LEP_SCOPE}))
        check_year(hab, ctx, params.annrev, "annrev")

    async def fetch(self, ctx: CallContext, params: LepParams) -> ApiResponse:
        ctx.subject_spi = params.spi
        record: Mapping[str, Any] = await asyncio.to_thread(
            read_granted_year, self._deps, ctx, read_latest_situation, params.spi, params.annrev
        )
        rfr, nb_part = record.get("rfr"), record.get("nbPart")
        if rfr is None or nb_part is None:
            raise NotFound(
                f"Le revenu fiscal de référence {params.annrev} n'est pas encore établi."
            )
        eligible = is_eligible(int(rfr), float(nb_part), params.bareme, params.departement)
        ctx.data_scopes_returned = [LEP_SCOPE]
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
