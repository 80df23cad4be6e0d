"""API Impôt Particulier by SPI: the IR "assiettes" operations [003 annexe 3 §3–5, 004 CGU §4].

Semantics of the four resources (``docs/catalogue.md``), each answering the provider's
schema and media type for its operation (``schemas.py``, ``catalog.products``):

- ``assiettes``: the year's primary situation (rang 1), one ``SituationsIRAssiettesJAXBbean``;
- ``multiple``: every situation of the year in ``rang`` order,
  ``{"situationsIR": [SituationIRAssietteMultiJAXBbean…]}``;
- ``dernière situation``: the year's latest situation (highest rang), one
  ``SituationsIRAssiettesMillesimeJAXBbean`` with its ``annRevenu``;
- ``deuxans``: one ``SituationsIRAssiettesMillesimeJAXBbean`` too: the latest situation of
  the most recent of the two most recent granted years that has one (N-1, else N-2; N-2
  standing in for a missing N-1 under the fallback scope); none at all is a 404.

Each body is the stored record projected on the schema, then limited to the habilitation's
data scopes (a field not granted is absent); ``annRevenu`` is not a data field, and comes
with every situation of a Millesime answer.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from starlette.requests import Request

from guichet.apis.context import ApiDeps, ApiResponse, CallContext, OperationHandler
from guichet.apis.impot_particulier.fields import filter_record
from guichet.apis.impot_particulier.schemas import (
    ANN_REVENU,
    IR_ASSIETTES,
    IR_MILLESIME,
    IR_MULTI,
    SITUATIONS_IR,
    Schema,
    project,
)
from guichet.apis.impot_particulier.years import YearGrant, granted_years
from guichet.catalog.products import (
    IR_DERNIERE_MEDIA_TYPE,
    IR_FIELD_SCOPES,
    IR_MEDIA_TYPE,
    IR_MULTIPLE_MEDIA_TYPE,
)
from guichet.errors import (
    AccessModeNotGranted,
    DataScopeNotGranted,
    HabilitationUnknown,
    NotFound,
    ParameterInvalid,
    YearNotGranted,
)
from guichet.oauth.policy import HabilitationPolicy
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


MEDIA_TYPES: Final = {
    Resource.ASSIETTES: IR_MEDIA_TYPE,
    Resource.MULTIPLE: IR_MULTIPLE_MEDIA_TYPE,
    Resource.DERNIERE: IR_DERNIERE_MEDIA_TYPE,
    Resource.DEUXANS: IR_DERNIERE_MEDIA_TYPE,
}


def situation_body(
    situation: Situation, schema: Schema, granted: frozenset[str]
) -> tuple[dict[str, Any], set[str]]:
    """(one situation as ``schema`` has it, limited to ``granted``; the scopes that released
    a field). A Millesime situation carries its ``annRevenu`` whatever the scopes."""
    body, released = filter_record(project(situation.record, schema), granted)
    if ANN_REVENU in schema.properties:
        body = {ANN_REVENU: situation.annrev, **body}
    return body, released


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

    def parse(self, request: Request, body: Any = None) -> IrParams:
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
        granted = hab.data_scopes
        released: set[str] = set()

        def limited(situation: Situation, schema: Schema) -> dict[str, Any]:
            body, scopes = situation_body(situation, schema, granted)
            released.update(scopes)
            return body

        body: dict[str, Any]
        if self.resource is Resource.ASSIETTES:
            body = limited(found[0], IR_ASSIETTES)
        elif self.resource is Resource.MULTIPLE:
            body = {SITUATIONS_IR: [limited(s, IR_MULTI) for s in found]}
        else:  # DERNIERE, DEUXANS: ``found`` ends with the one situation to answer
            body = limited(found[-1], IR_MILLESIME)
        ctx.data_scopes_returned = sorted(released)
        return ApiResponse(body=body, media_type=MEDIA_TYPES[self.resource])

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
        """[the latest situation of the most recent of the two most recent granted years
        that has one]; neither has one → 404."""
        held = source.of_person(store, spi)
        by_year: dict[int, Situation] = {}
        for situation in held:  # most recent year first, then rang ascending
            by_year[situation.annrev] = situation
        allowed = set(grant.years)
        if grant.fallback_year is not None and grant.n_minus_1 not in by_year:
            allowed.add(grant.fallback_year)
        for year in sorted(allowed, reverse=True)[:2]:
            if year in by_year:
                return [by_year[year]]
        raise NotFound()


def build_operations(deps: ApiDeps) -> dict[str, OperationHandler]:
    """The handlers, keyed by the catalogue's operation names."""
    make: Callable[[Resource], OperationHandler] = lambda r: IrOperation(deps, r)  # noqa: E731
    return {
        "ir_assiettes_spi": make(Resource.ASSIETTES),
        "ir_assiettes_multiple_spi": make(Resource.MULTIPLE),
        "ir_derniere_situation_spi": make(Resource.DERNIERE),
        "ir_derniere_situation_deuxans_spi": make(Resource.DEUXANS),
    }
