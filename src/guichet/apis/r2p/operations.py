"""API R2P: état civil → SPI, the first of the two calls of the état-civil mode [004 CGU §4].

``/personne/spi`` answers the one person matching an état civil (several → 403 too many
answers), ``/personne/{spi}`` a person's record, ``/personne`` a search by criteria
(at most ``MAX_ANSWERS`` persons). A record marked not communicable never leaves (403).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import QueryParams
from starlette.requests import Request

from guichet.errors import (
    AccessModeNotGranted,
    HabilitationUnknown,
    NotCommunicable,
    NotFound,
    ParameterInvalid,
    TooManyAnswers,
)
from guichet.gateway.context import ApiDeps, ApiResponse, CallContext, OperationHandler
from guichet.records import service
from guichet.records.models import Person
from guichet.records.spi import parse_spi
from guichet.sandbox.geography import FRANCE

MEDIA_TYPE = "application/json"
ACCESS_MODES = frozenset({"spi", "etat_civil"})
MAX_ANSWERS = 10
# What each operation releases, recorded in the journal as "data scopes returned".
RELEASED_SPI = ["r2p_identifiant"]
RELEASED_PERSON = ["r2p_adresse", "r2p_etat_civil", "r2p_identifiant"]

_NAME = re.compile(r"^[^\W\d_]+(?:[ '’\-][^\W\d_]+)*$")
_PAYS = re.compile(r"^99\d{3}$")
_DEPT = re.compile(r"^(?:\d{2}|2[AB]|97\d)$")
_COMMUNE = re.compile(r"^(?:\d{5}|2[AB]\d{3})$")


@dataclass(frozen=True, slots=True)
class EtatCivil:
    nom: str
    date_naissance: dt.date
    prenom: str | None = None
    sexe: str | None = None
    code_pays: str | None = None
    code_dept: str | None = None
    code_commune: str | None = None


@dataclass(frozen=True, slots=True)
class SpiParams:
    spi: str


def _text(query: QueryParams, name: str, *, required: bool) -> str | None:
    value = query.get(name)
    if value is None or not value.strip():
        if required:
            raise ParameterInvalid(f"Le paramètre {name} est obligatoire.", field=name)
        return None
    return value.strip()


def _name(query: QueryParams, name: str, *, required: bool) -> str | None:
    value = _text(query, name, required=required)
    if value is not None and (len(value) > 100 or not _NAME.match(value)):
        raise ParameterInvalid(
            f"{name} : lettres, espaces, tirets et apostrophes seulement.", field=name
        )
    return value


def _coded(query: QueryParams, name: str, pattern: re.Pattern[str], what: str) -> str | None:
    value = _text(query, name, required=False)
    if value is not None and not pattern.match(value.upper()):
        raise ParameterInvalid(f"{name} : {what}.", field=name)
    return value.upper() if value is not None else None


def parse_etat_civil(query: QueryParams, *, complete: bool) -> EtatCivil:
    """``complete``: every criterion of an identification (``/personne/spi``) is required."""
    nom = _name(query, "nom", required=True)
    prenom = _name(query, "prenom", required=complete)
    sexe = _text(query, "sexe", required=complete)
    if sexe is not None and sexe not in ("M", "F"):
        raise ParameterInvalid("sexe : M ou F.", field="sexe")
    raw_date = _text(query, "naisDate", required=True)
    try:
        assert raw_date is not None
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw_date):
            raise ValueError(raw_date)
        naissance = dt.date.fromisoformat(raw_date)
    except ValueError:
        raise ParameterInvalid("naisDate : une date AAAA-MM-JJ.", field="naisDate") from None
    pays = _coded(query, "naisCodePays", _PAYS, "code pays COG sur 5 chiffres (99100 = France)")
    if complete and pays is None:
        raise ParameterInvalid("Le paramètre naisCodePays est obligatoire.", field="naisCodePays")
    dept = _coded(query, "naisCodeDept", _DEPT, "code département (2 ou 3 caractères)")
    commune = _coded(query, "naisCodeCommune", _COMMUNE, "code commune COG sur 5 caractères")
    if pays is not None and pays != FRANCE and (dept or commune):
        field = "naisCodeDept" if dept else "naisCodeCommune"
        raise ParameterInvalid("Né(e) à l'étranger : ni département ni commune.", field=field)
    if complete and pays == FRANCE and commune is None:
        raise ParameterInvalid(
            "naisCodeCommune est obligatoire pour une personne née en France.",
            field="naisCodeCommune",
        )
    assert nom is not None
    return EtatCivil(nom, naissance, prenom, sexe, pays, dept, commune)


def personne_physique(person: Person) -> dict[str, Any]:
    return {
        "identifiant": {"spi": person.spi},
        "etatCivil": {
            "sexe": person.sexe,
            "nomNaissance": person.nom_naissance,
            "nomUsage": person.nom_usage,
            "prenoms": person.prenoms,
            "dateNaissance": person.date_naissance.isoformat(),
            "codePaysNaissance": person.code_pays_naissance,
            "codeDeptNaissance": person.code_dept_naissance,
            "codeCommuneNaissance": person.code_commune_naissance,
            "lieuNaissance": person.lieu_naissance,
        },
        "adresse": dict(person.adresse),
    }


class _R2pOperation:
    def __init__(self, deps: ApiDeps) -> None:
        self._deps = deps

    def authorize(self, ctx: CallContext, params: Any) -> None:
        """R2P serves the état-civil and SPI modes only [004 CGU §4]."""
        if ctx.habilitation is None:
            raise HabilitationUnknown()
        if not ctx.habilitation.access_modes & ACCESS_MODES:
            raise AccessModeNotGranted("Le mode d'accès par état civil ou SPI n'est pas habilité.")

    def _search(self, store: str, criteria: EtatCivil) -> list[Person]:
        with self._deps.session_factory() as session:
            return service.persons_by_etat_civil(
                session,
                store,
                nom=criteria.nom,
                date_naissance=criteria.date_naissance,
                prenom=criteria.prenom,
                sexe=criteria.sexe,
                code_pays=criteria.code_pays,
                code_dept=criteria.code_dept,
                code_commune=criteria.code_commune,
            )


class PersonneSpi(_R2pOperation):
    """``GET /personne/spi``: the SPI of the one person with this état civil."""

    def parse(self, request: Request) -> EtatCivil:
        return parse_etat_civil(request.query_params, complete=True)

    async def fetch(self, ctx: CallContext, params: EtatCivil) -> ApiResponse:
        found = await asyncio.to_thread(self._search, ctx.environment.value, params)
        if not found:
            raise NotFound()
        if len(found) > 1:
            raise TooManyAnswers("Plusieurs personnes correspondent : préciser les critères.")
        person = found[0]
        ctx.subject_spi = person.spi
        if not person.communicable:
            raise NotCommunicable()
        ctx.data_scopes_returned = list(RELEASED_SPI)
        return ApiResponse(body={"identifiant": {"spi": person.spi}}, media_type=MEDIA_TYPE)


class PersonneRecherche(_R2pOperation):
    """``GET /personne``: persons matching the criteria (communicable ones only)."""

    def parse(self, request: Request) -> EtatCivil:
        return parse_etat_civil(request.query_params, complete=False)

    async def fetch(self, ctx: CallContext, params: EtatCivil) -> ApiResponse:
        found = await asyncio.to_thread(self._search, ctx.environment.value, params)
        if not found:
            raise NotFound()
        if len(found) > MAX_ANSWERS:
            raise TooManyAnswers(
                f"Plus de {MAX_ANSWERS} personnes correspondent : préciser les critères."
            )
        communicable = [p for p in found if p.communicable]
        if len(found) == 1:
            ctx.subject_spi = found[0].spi
        if not communicable:
            raise NotCommunicable()
        ctx.data_scopes_returned = list(RELEASED_PERSON)
        return ApiResponse(body=[personne_physique(p) for p in communicable], media_type=MEDIA_TYPE)


class Personne(_R2pOperation):
    """``GET /personne/{spi}``: one person's identifier, état civil and address."""

    def parse(self, request: Request) -> SpiParams:
        return SpiParams(parse_spi(request.path_params.get("spi")))

    async def fetch(self, ctx: CallContext, params: SpiParams) -> ApiResponse:
        ctx.subject_spi = params.spi

        def read() -> Person | None:
            with self._deps.session_factory() as session:
                return service.person_by_spi(session, ctx.environment.value, params.spi)

        person = await asyncio.to_thread(read)
        if person is None:
            raise NotFound()
        if not person.communicable:
            raise NotCommunicable()
        ctx.data_scopes_returned = list(RELEASED_PERSON)
        return ApiResponse(
            body={"personnePhysique": personne_physique(person)}, media_type=MEDIA_TYPE
        )


def build_operations(deps: ApiDeps) -> dict[str, OperationHandler]:
    """The handlers, keyed by the catalogue's operation names."""
    makers: dict[str, Callable[[ApiDeps], OperationHandler]] = {
        "r2p_personne_spi": PersonneSpi,
        "r2p_personne_recherche": PersonneRecherche,
        "r2p_personne": Personne,
    }
    return {name: make(deps) for name, make in makers.items()}
