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
in the convention's shape [003 annexe 3 §5]: OS2's ``aftDetail`` with ``codePostal`` and
``commune``, OS4's declarants as its table names them (``nmNaiDec1``…), OS6's
``indDeficit`` an integer 0 or 1; ``null`` only where the convention says "ou null" (``rfr``,
``sitFam``, the declarants' names, ``sitParIso``, ``revenuBrutGlobal``), a count or an amount
it does not allow to be null is 0 when the record has none, and any other value that does
not exist is omitted; empty OS3/OS9 categories are omitted (``{"rev": {}}``).
OS7 reads the person's housing-tax premises of ``{ANNEE}`` instead (``th_local``).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

from starlette.requests import Request

from guichet.apis.context import ApiDeps, ApiResponse, CallContext
from guichet.apis.impot_particulier.franceconnect import (
    FcParams,
    FranceConnectGate,
    check_year,
    federation_token,
    fetch_as,
    franceconnect_habilitation,
)
from guichet.apis.impot_particulier.operations import IrOperation, IrParams, Resource
from guichet.apis.impot_particulier.schemas import LOC_TH, project
from guichet.catalog.products import OFFERS_OF_SERVICE, OS_MEDIA_TYPE, OfferOfService
from guichet.errors import DataScopeNotGranted, NotFound, ParameterInvalid
from guichet.records.service import th_assessments

MEDIA_TYPE: Final = OS_MEDIA_TYPE
_ANNEE: Final = re.compile(r"^\d{4}$")
# OS3 [003 annexe 3 §5.3]: these categories, in this order; the others are not part of it.
OS3_CATEGORIES: Final = ("rcm", "pv", "fonc", "pro", "alpha", "tspr")
# OS4 [003 annexe 3 §5.4]: ``pac`` members (G and I are not part of it).
OS4_PAC: Final = ("nbPac", "nbPacF", "nbPacH", "nbPacR", "nbPacJ", "nbPacN", "nbPacP")
# OS4 declarant fields, as the convention's table names them (and the IR record), each
# "Chaîne de caractère (60 max) ou « null »".
OS4_DECLARANTS: Final = ("nmNaiDec1", "nmUsaDec1", "prnmDec1", "nmNaiDec2", "nmUsaDec2", "prnmDec2")
# OS2 ``aftDetail``: the convention's names → the IR record's (``AftJAXBbean``).
OS2_AFT_DETAIL: Final = (
    ("complementAdresse", "complementAdresse"),
    ("voie", "voie"),
    ("codePostal", "getcodePostal"),
    ("commune", "getcommune"),
)


def parse_annee(value: object) -> int:
    """``{ANNEE}``: "Le paramètre ANNEE est attendu sur 4 chiffres" [003 annexe 3 §3.2]."""
    if value is None or not _ANNEE.match(str(value)):
        raise ParameterInvalid("L'année doit compter 4 chiffres.", field="annee")
    return int(str(value))


def os_body(number: int, record: Mapping[str, Any], granted: frozenset[str]) -> dict[str, Any]:
    """The response of OS ``number`` (1–6, 8, 9) from an IR record, limited to ``granted``.

    ``record`` is already filtered to the granted data scopes; a member whose scope is not
    granted is absent. A granted member the record lacks is ``null`` where the convention
    allows it, 0 for a ``pac`` count and for OS5/OS6 (which allow no null), else omitted.
    """
    body: dict[str, Any] = {}
    if number == 1:
        if "dgfip_rfr" in granted:
            body["rfr"] = record.get("rfr")
        if "dgfip_nbpart" in granted and record.get("nbPart") is not None:
            body["nbPart"] = record["nbPart"]
    elif number == 2 and "dgfip_aft" in granted:
        if record.get("aft") is not None:
            body["aft"] = record["aft"]
        detail = record.get("aftDetail")
        if detail:
            body["aftDetail"] = {
                name: detail[source]
                for name, source in OS2_AFT_DETAIL
                if detail.get(source) is not None
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
            for name in OS4_DECLARANTS:
                body[name] = record.get(name)
        if "dgfip_pariso" in granted:
            body["sitParIso"] = record.get("sitParIso")
    elif number == 5 and "dgfip_pensalper" in granted:
        body["pensAlPer"] = record.get("pensAlPer") or 0
    elif number == 6 and "dgfip_inddeficit" in granted:
        # "Nombre entier de valeur 1 ou 0"; the record has the provider's string "0"/"1".
        body["indDeficit"] = 1 if str(record.get("indDeficit") or "0") == "1" else 0
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
        project(local, LOC_TH)  # a value that does not exist is omitted, never null
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

    def parse(self, request: Request, body: Any = None) -> FcParams:
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
