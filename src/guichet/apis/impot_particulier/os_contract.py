"""The convention's FranceConnect contract, ``GET /impotparticulier/os{X}/{ANNEE}`` for the
offers of service OS1–OS9 [003 annexe 3 §3, §5; SPEC §7.1], as a compatibility surface over
the same data and the same checks as the FranceConnect-mode resources.

How the tokens travel: the convention puts the federation token in ``Authorization``
[003 annexe 3 §3.3], but in guichet every call first passes the gateway's chain (mutual TLS
and the partner's certificate-bound gateway token, SPEC §5), which owns ``Authorization``.
So, as for the ``/1.0`` FranceConnect-mode resources: the gateway token in
``Authorization: Bearer …``, the citizen's federation token in ``X-FranceConnect-OAuth``.

Each OS reads the year's primary situation (rang 1) of the designated person, limited to
the habilitation's data scopes of that OS (and to what the citizen consented), and answers
in the convention's shape: field names as its JSON examples (``nmNaiDecl``…), ``null``
where the convention says "ou null", empty OS3/OS9 categories omitted (``{"rev": {}}``).
OS7 reads the person's housing-tax premises of ``{ANNEE}`` instead (``th_local``).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

from starlette.requests import Request

from guichet.apis.impot_particulier.franceconnect import (
    FcParams,
    FranceConnectGate,
    check_year,
    federation_token,
    fetch_as,
    franceconnect_habilitation,
)
from guichet.apis.impot_particulier.operations import IrOperation, IrParams, Resource
from guichet.catalog.products import OFFERS_OF_SERVICE, OfferOfService
from guichet.errors import DataScopeNotGranted, NotFound, ParameterInvalid
from guichet.gateway.context import ApiDeps, ApiResponse, CallContext
from guichet.records.service import th_assessments

MEDIA_TYPE: Final = "application/json"
_ANNEE: Final = re.compile(r"^\d{4}$")
# OS3 [003 annexe 3 §5.3]: these categories, in this order; the others are not part of it.
OS3_CATEGORIES: Final = ("rcm", "pv", "fonc", "pro", "alpha", "tspr")
# OS4 [003 annexe 3 §5.4]: ``pac`` members (G and I are not part of it).
OS4_PAC: Final = ("nbPac", "nbPacF", "nbPacH", "nbPacR", "nbPacJ", "nbPacN", "nbPacP")
# OS4 declarant fields: the convention's JSON names → the IR record's.
OS4_DECLARANTS: Final = (
    ("nmNaiDecl", "nmNaiDec1"),
    ("nmUsaDecl", "nmUsaDec1"),
    ("prnmDecl", "prnmDec1"),
    ("nmNaiDecl2", "nmNaiDec2"),
    ("nmUsaDecl2", "nmUsaDec2"),
    ("prnmDecl2", "prnmDec2"),
)


def parse_annee(value: object) -> int:
    """``{ANNEE}``: "Le paramètre ANNEE est attendu sur 4 chiffres" [003 annexe 3 §3.2]."""
    if value is None or not _ANNEE.match(str(value)):
        raise ParameterInvalid("L'année doit compter 4 chiffres.", field="annee")
    return int(str(value))


def os_body(number: int, record: Mapping[str, Any], granted: frozenset[str]) -> dict[str, Any]:
    """The response of OS ``number`` (1–6, 8, 9) from an IR record, limited to ``granted``.

    ``record`` is already filtered to the granted data scopes; a member whose scope is not
    granted is absent, a granted member the record lacks is ``null`` (or the convention's
    neutral value where it allows no null: 0 for OS5/OS6 and for a ``pac`` count).
    """
    body: dict[str, Any] = {}
    if number == 1:
        if "dgfip_rfr" in granted:
            body["rfr"] = record.get("rfr")
        if "dgfip_nbpart" in granted:
            body["nbPart"] = record.get("nbPart")
    elif number == 2 and "dgfip_aft" in granted:
        detail = record.get("aftDetail") or {}
        body["aft"] = record.get("aft")
        body["aftDetail"] = {
            "complementAdresse": detail.get("complementAdresse"),
            "voie": detail.get("voie"),
            "codePostal": detail.get("getcodePostal"),
            "commune": detail.get("getcommune"),
        }
    elif number == 3 and "dgfip_rns" in granted:
        rev = record.get("rev") or {}
        body["rev"] = {c: rev[c] for c in OS3_CATEGORIES if rev.get(c)}
    elif number == 4:
        if "dgfip_sitfam" in granted:
            body["sitFam"] = record.get("sitFam")
        if "dgfip_pac" in granted:
            pac = record.get("pac") or {}
            body["pac"] = {name: pac.get(name) or 0 for name in OS4_PAC}
        if "dgfip_decl" in granted:
            for name, source in OS4_DECLARANTS:
                body[name] = record.get(source)
        if "dgfip_pariso" in granted:
            body["sitParIso"] = record.get("sitParIso")
    elif number == 5 and "dgfip_pensalper" in granted:
        body["pensAlPer"] = record.get("pensAlPer") or 0
    elif number == 6 and "dgfip_inddeficit" in granted:
        body["indDeficit"] = record.get("indDeficit") or 0
    elif number == 8 and "dgfip_rbg" in granted:
        body["revenuBrutGlobal"] = record.get("revenuBrutGlobal")
    elif number == 9 and "dgfip_rev_monde" in granted:
        div = (record.get("rev") or {}).get("div")
        body["rev"] = {"div": div} if div else {}
    return body


def os7_body(assessments: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """OS7 [003 annexe 3 §5.7]: the one principal housing-tax assessment (``regimeTax`` "P")
    with its premises of ``affectation`` "H"; "Si l'usager possède plusieurs TH principales,
    aucune donnée ne sera restituée … 404. Si l'usager ne possède pas de TH principale, une
    erreur 404"."""
    principal = [a for a in assessments if a.get("regimeTax") == "P"]
    if len(principal) != 1:
        raise NotFound()
    locaux = [
        {
            "natureLocal": local.get("natureLocal"),
            "affectation": "H",
            "invariant": local.get("invariant"),
        }
        for local in principal[0].get("locaux") or ()
        if local.get("affectation") == "H"
    ]
    return {"regimeTax": "P", "locaux": locaux}


class OsOperation:
    """``GET /impotparticulier/os{X}/{ANNEE}`` for one offer of service."""

    def __init__(self, deps: ApiDeps, offer: OfferOfService, gate: FranceConnectGate) -> None:
        self.offer = offer
        self._deps = deps
        self._gate = gate
        self._spi_mode = IrOperation(deps, Resource.ASSIETTES)

    def parse(self, request: Request) -> FcParams:
        return FcParams(federation_token(request), parse_annee(request.path_params.get("annee")))

    def authorize(self, ctx: CallContext, params: FcParams) -> None:
        """ "Contrôles visant à limiter l'accès aux seules OS autorisées à ce fournisseur de
        service et dans les conditions précisées dans la convention (scopes, année de
        restitution)" [003 annexe 3 §3.4]."""
        hab = franceconnect_habilitation(ctx)
        if not hab.data_scopes & frozenset(self.offer.data_scopes):
            raise DataScopeNotGranted(f"L'OS{self.offer.number} n'est pas habilitée.")
        check_year(hab, ctx, params.annrev, "annee")

    async def fetch(self, ctx: CallContext, params: FcParams) -> ApiResponse:
        hab = franceconnect_habilitation(ctx)
        wanted = hab.data_scopes & frozenset(self.offer.data_scopes)
        who = await self._gate.identify(ctx, params.token, wanted, params.annrev)
        assert params.annrev is not None
        if self.offer.number == 7:
            ctx.subject_spi = who.spi
            body = os7_body(await asyncio.to_thread(self._th, ctx, who.spi, params.annrev))
            ctx.data_scopes_returned = sorted(wanted & who.habilitation.data_scopes)
            return ApiResponse(body=body, media_type=MEDIA_TYPE)
        found = await fetch_as(ctx, who, self._spi_mode, IrParams(who.spi, params.annrev))
        granted = who.habilitation.data_scopes & wanted
        body = os_body(self.offer.number, found.body, granted)
        ctx.data_scopes_returned = sorted(granted)
        return ApiResponse(body=body, media_type=MEDIA_TYPE)

    def _th(self, ctx: CallContext, spi: str, annee: int) -> list[dict[str, Any]]:
        with self._deps.engine.connect() as conn:
            return th_assessments(conn, ctx.environment.value, spi, annee)


def build_os_operations(deps: ApiDeps, gate: FranceConnectGate) -> dict[str, OsOperation]:
    """The OS1–OS9 handlers, keyed by the catalogue's operation names."""
    return {o.operation: OsOperation(deps, o, gate) for o in OFFERS_OF_SERVICE}
