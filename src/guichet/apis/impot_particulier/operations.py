"""API Impôt Particulier by SPI: the IR "assiettes" operations [003 annexe 3 §3–5, 004 CGU §4].

Semantics of the four resources (``docs/catalogue.md``):

- ``assiettes``: the year's primary situation (rang 1);
- ``multiple``: every situation of the year, a list in ``rang`` order;
- ``dernière situation``: the year's latest situation (highest rang);
- ``deuxans``: the latest situation of each of the two most recent granted years (N-2
  standing in for a missing N-1 under the fallback scope), ``[{"annrev", "situation"}]``,
  most recent first; a year without a situation is left out, none at all is a 404.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from starlette.requests import Request

from guichet.apis.impot_particulier.fields import filter_record
from guichet.apis.impot_particulier.years import YearGrant, granted_years
from guichet.catalog.products import IR_FIELD_SCOPES, IR_MEDIA_TYPE
from guichet.errors import (
    AccessModeNotGranted,
    DataScopeNotGranted,
    HabilitationUnknown,
    NotFound,
    ParameterInvalid,
    YearNotGranted,
)
from guichet.gateway.context import ApiDeps, ApiResponse, CallContext, OperationHandler
from guichet.gateway.policy import HabilitationPolicy
from guichet.records import service
from guichet.records.service import Situation, SituationSource
from guichet.records.spi import parse_spi

log = logging.getLogger(__name__)

# Without FranceConnect, the person is designated by SPI or by état civil (then SPI) [004 CGU §4].
ACCESS_MODES = frozenset({"spi", "etat_civil"})
RECORD_SCOPES = frozenset(IR_FIELD_SCOPES.values())
_ANNREV = re.compile(r"^\d{4}$")


class Resource(StrEnum):
    ASSIETTES = "assiettes"
    MULTIPLE = "multiple"
    DERNIERE = "derniere"
    DEUXANS = "deuxans"


@dataclass(frozen=True, slots=True)
class IrParams:
    spi: str
    annrev: int | None  # None for ``deuxans``


def parse_annrev(value: object) -> int:
    if value is None or not _ANNREV.match(str(value)):
        raise ParameterInvalid("L'année de revenus doit compter 4 chiffres.", field="annrev")
    return int(str(value))


def _habilitation(ctx: CallContext) -> HabilitationPolicy:
    if ctx.habilitation is None:
        raise HabilitationUnknown()
    return ctx.habilitation


class IrOperation:
    """One of the four IR "assiettes" resources, by SPI."""

    def __init__(self, deps: ApiDeps, resource: Resource) -> None:
        self._deps = deps
        self.resource = resource

    def parse(self, request: Request) -> IrParams:
        spi = parse_spi(request.path_params.get("spi"))
        if self.resource is Resource.DEUXANS:
            return IrParams(spi, None)
        return IrParams(spi, parse_annrev(request.path_params.get("annrev")))

    def authorize(self, ctx: CallContext, params: IrParams) -> None:
        """Rights on the data for the period [SPEC §5 check 5]: access mode, data scopes, year."""
        hab = _habilitation(ctx)
        if not hab.access_modes & ACCESS_MODES:
            raise AccessModeNotGranted("Le mode d'accès par SPI ou état civil n'est pas habilité.")
        if not hab.data_scopes & RECORD_SCOPES:
            raise DataScopeNotGranted()
        grant = granted_years(hab.year_scopes, ctx.now)
        if params.annrev is None:
            if not grant.years and grant.fallback_year is None:
                raise YearNotGranted("Aucune année de revenus n'est habilitée.")
        elif not grant.allows(params.annrev):
            raise YearNotGranted(
                f"L'année de revenus {params.annrev} n'est pas habilitée.", field="annrev"
            )

    async def fetch(self, ctx: CallContext, params: IrParams) -> ApiResponse:
        hab = _habilitation(ctx)
        ctx.subject_spi = params.spi
        grant = granted_years(hab.year_scopes, ctx.now)
        store = ctx.environment.value
        inline = service.inline_situations(self._deps.engine)
        if inline is not None:
            # SQLite: a point read costs less than the hop to a worker thread and back.
            found = self._read(inline, store, params, grant)
        else:
            found = await asyncio.to_thread(self._read_pooled, store, params, grant)
        released: set[str] = set()

        def limited(situation: Situation) -> dict[str, Any]:
            body, scopes = filter_record(situation.record, hab.data_scopes)
            released.update(scopes)
            return body

        body: Any
        if self.resource is Resource.ASSIETTES:
            body = limited(found[0])
        elif self.resource is Resource.MULTIPLE:
            body = [limited(s) for s in found]
        elif self.resource is Resource.DERNIERE:
            body = limited(found[-1])
        else:
            body = [{"annrev": s.annrev, "situation": limited(s)} for s in found]
        ctx.data_scopes_returned = sorted(released)
        return ApiResponse(body=body, media_type=IR_MEDIA_TYPE)

    def _read_pooled(self, store: str, params: IrParams, grant: YearGrant) -> Sequence[Situation]:
        # A Core connection, not an ORM session: a third of the cost on the hot path.
        with self._deps.engine.connect() as session:
            return self._read(service.CoreSituations(session), store, params, grant)

    def _read(
        self, source: SituationSource, store: str, params: IrParams, grant: YearGrant
    ) -> Sequence[Situation]:
        if params.annrev is None:
            return self._latest_of_two_years(source, store, params.spi, grant)
        if grant.is_conditional(params.annrev) and source.of_year(
            store, params.spi, grant.n_minus_1
        ):
            raise YearNotGranted(
                f"L'année {params.annrev} n'est habilitée que si l'année "
                f"{grant.n_minus_1} est indisponible.",
                field="annrev",
            )
        found = source.of_year(store, params.spi, params.annrev)
        if not found:
            raise NotFound()
        return found

    @staticmethod
    def _latest_of_two_years(
        source: SituationSource, store: str, spi: str, grant: YearGrant
    ) -> list[Situation]:
        held = source.of_person(store, spi)
        by_year: dict[int, Situation] = {}
        for situation in held:  # most recent year first, then rang ascending
            by_year[situation.annrev] = situation
        allowed = set(grant.years)
        if grant.fallback_year is not None and grant.n_minus_1 not in by_year:
            allowed.add(grant.fallback_year)
        years = sorted(allowed, reverse=True)[:2]
        found = [by_year[y] for y in years if y in by_year]
        if not found:
            raise NotFound()
        return found


def build_operations(deps: ApiDeps) -> dict[str, OperationHandler]:
    """The handlers, keyed by the catalogue's operation names."""
    make: Callable[[Resource], OperationHandler] = lambda r: IrOperation(deps, r)  # noqa: E731
    return {
        "ir_assiettes_spi": make(Resource.ASSIETTES),
        "ir_assiettes_multiple_spi": make(Resource.MULTIPLE),
        "ir_derniere_situation_spi": make(Resource.DERNIERE),
        "ir_derniere_situation_deuxans_spi": make(Resource.DEUXANS),
    }
