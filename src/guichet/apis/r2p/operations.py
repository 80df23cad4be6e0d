"""API R2P: état civil → SPI, the first of the two calls of the état-civil mode [004 CGU §4],
with the provider's query formats and answers (its document ``API_R2P`` v1).

``/personne/spi`` (RechercheParEtatCivil) answers the SPI of the one person matching an
état civil, ``/personne`` (RechercheParCriteres) the one person matching an état civil and
address filters, ``/personne/{spi}`` (RechercheParSPI) a person's record. Several persons
→ 403 too many answers; none → 404; a record marked not communicable never leaves (403).
"""

from __future__ import annotations

import asyncio
import calendar
import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import QueryParams
from starlette.requests import Request

from guichet.apis.context import ApiDeps, ApiResponse, CallContext, OperationHandler
from guichet.errors import (
    AccessModeNotGranted,
    HabilitationUnknown,
    NotCommunicable,
    NotFound,
    ParameterInvalid,
    TooManyAnswers,
)
from guichet.records import service
from guichet.records.geography import (
    ABROAD_DEPARTMENT,
    STREET_NAME_LENGTH,
    TOMS,
    commune_code,
    commune_cog,
)
from guichet.records.models import Person
from guichet.records.names import canonical_name
from guichet.records.spi import parse_spi

MEDIA_TYPE = "application/json"
ACCESS_MODES = frozenset({"spi", "etat_civil"})
# What each operation releases, recorded in the journal as "data scopes returned".
RELEASED_SPI = ["r2p_identifiant"]
RELEASED_PERSON = ["r2p_adresse", "r2p_etat_civil", "r2p_identifiant"]

# R2P's codes of sex (``sexe``, ``cdSexe``) and the store's.
SEXES = {"1": "M", "2": "F"}
CD_SEXE = {stored: code for code, stored in SEXES.items()}
NOM_LENGTH = 100  # the birth name, as the provider's document says
PRENOM_LENGTH = 20  # each first name
STREET_TYPE_LENGTH = 4

# Each pattern matches a whole value (``fullmatch``), as the document's do.
_NAME = re.compile(r"[^\W\d_]+(?:[ '’\-]+[^\W\d_]+)*")
_PAYS = re.compile(r"99[0-9]{3}")
# A department as R2P writes it, two or three characters: 75, 075, 2A, 02A, 976, 987.
_DEPT = re.compile(r"(?:0?(?:0[1-9]|[1-8][0-9]|9[0-5]|2[AB]|99)|97[1-8]|98[4-8])", re.I | re.A)
_TOM = re.compile(r"97[5-8]|98[4-8]")
_COMMUNE = re.compile(r"[0-9]{2,3}")
_ADR_COMMUNE = re.compile(r"[0-9]{3}")
_NUMERO = re.compile(r"[0-9]{1,5}")
_INDICE = re.compile(r"[A-Z]", re.I | re.A)
_LABEL = re.compile(r"[A-Z0-9]+(?:[ '\-]+[A-Z0-9]+)*")
_DATE_FORMS = (
    re.compile(r"(?P<year>[0-9]{4})"),
    re.compile(r"(?P<month>[0-9]{2})/(?P<year>[0-9]{4})"),
    re.compile(r"(?P<day>[0-9]{2})/(?P<month>[0-9]{2})/(?P<year>[0-9]{4})"),
)
_BIRTH_CRITERIA = ("sexe", "naisDate", "naisCodePays", "naisCodeDept", "naisCodeCommune")
_ADDRESS_CRITERIA = (
    "adrCodePays",
    "adrCodeDept",
    "adrCodeTom",
    "adrCodeCommune",
    "adrLibelleTypeVoie",
    "adrLibelleVoie",
    "adrNumVoie",
    "adrIndiceRepetition",
)


@dataclass(frozen=True, slots=True)
class Search:
    """A search's criteria, in the store's terms (see ``service.persons_by_etat_civil``)."""

    nom: str
    prenom: str
    sexe: str | None = None
    born: tuple[dt.date, dt.date] | None = None
    code_pays: str | None = None
    code_dept: str | None = None
    born_abroad: bool = False
    code_commune: str | None = None
    commune_suffix: str | None = None
    adresse: service.AddressCriteria | None = None
    # Criteria no person can satisfy (e.g. a commune code its department cannot have).
    impossible: bool = False


@dataclass(frozen=True, slots=True)
class SpiParams:
    spi: str


def _text(query: QueryParams, name: str, *, required: bool = False) -> str | None:
    """A name, trimmed (``nom``, ``prenom``)."""
    value = query.get(name)
    if value is None or not value.strip():
        if required:
            raise ParameterInvalid(f"Le paramètre {name} est obligatoire.", field=name)
        return None
    return value.strip()


def _nom(query: QueryParams) -> str:
    value = _text(query, "nom", required=True)
    assert value is not None
    if len(value) > NOM_LENGTH or not _NAME.fullmatch(value):
        raise ParameterInvalid(
            f"nom : {NOM_LENGTH} caractères au plus, lettres, espaces, tirets et apostrophes.",
            field="nom",
        )
    return value


def _prenom(query: QueryParams) -> str:
    value = _text(query, "prenom", required=True)
    assert value is not None
    if not _NAME.fullmatch(value) or any(len(p) > PRENOM_LENGTH for p in value.split()):
        raise ParameterInvalid(
            f"prenom : {PRENOM_LENGTH} caractères au plus par prénom, lettres, espaces, "
            "tirets et apostrophes.",
            field="prenom",
        )
    return value


def _coded(query: QueryParams, name: str, pattern: re.Pattern[str], what: str) -> str | None:
    """A code, exactly as the document's pattern says (letters in either case): present but
    empty, or with spaces, it is an error, not an absent criterion."""
    value = query.get(name)
    if value is not None and not pattern.fullmatch(value):
        raise ParameterInvalid(f"{name} : {what}.", field=name)
    return value.upper() if value is not None else None


def _sexe(query: QueryParams) -> str | None:
    value = query.get("sexe")
    if value is None:
        return None
    if value not in SEXES:
        raise ParameterInvalid("sexe : 1 (masculin) ou 2 (féminin).", field="sexe")
    return SEXES[value]


def _nais_date(query: QueryParams) -> tuple[dt.date, dt.date] | None:
    """``AAAA``, ``MM/AAAA`` or ``JJ/MM/AAAA``: the range of birth dates it designates."""
    value = query.get("naisDate")
    if value is None:
        return None
    for form in _DATE_FORMS:
        match = form.fullmatch(value)
        if match is None:
            continue
        parts = match.groupdict()
        try:
            year = int(parts["year"])
            if parts.get("month") is None:
                return dt.date(year, 1, 1), dt.date(year, 12, 31)
            month = int(parts["month"])
            if parts.get("day") is None:
                last = calendar.monthrange(year, month)[1] if 1 <= month <= 12 else 0
                return dt.date(year, month, 1), dt.date(year, month, last)
            day = dt.date(year, month, int(parts["day"]))
        except ValueError:
            break
        return day, day
    raise ParameterInvalid(
        "naisDate : une date existante au format AAAA, MM/AAAA ou JJ/MM/AAAA (ex. 22/08/1978).",
        field="naisDate",
    )


def _department(query: QueryParams, name: str) -> str | None:
    """A department code, normalised as the store holds it: ``075`` → ``75``, ``02a`` →
    ``2A``; ``976``, ``987`` stay."""
    value = _coded(
        query,
        name,
        _DEPT,
        "code département ou TOM sur 2 ou 3 caractères (ex. 75, 075, 2A, 02A, 976)",
    )
    if value is not None and len(value) == 3 and value.startswith("0"):
        return value[1:]
    return value


def _label(query: QueryParams, name: str, length: int) -> str | None:
    """A street label, compared in the provider's form (upper case, no accents)."""
    value = query.get(name)
    if value is None:
        return None
    label = canonical_name(value)
    if len(value) > length or not _LABEL.fullmatch(label):
        raise ParameterInvalid(
            f"{name} : {length} caractères au plus, lettres, chiffres, espaces, tirets et "
            "apostrophes.",
            field=name,
        )
    return label


def _birth(query: QueryParams) -> dict[str, Any]:
    """The birth criteria (``naisCodeCommune`` designates a commune with ``naisCodeDept``,
    or matches the last three characters of the commune's COG without it)."""
    pays = _coded(query, "naisCodePays", _PAYS, "code pays INSEE sur 5 chiffres (99100 = France)")
    dept = _department(query, "naisCodeDept")
    commune = _coded(
        query,
        "naisCodeCommune",
        _COMMUNE,
        "code commune sur 3 chiffres (les 3 derniers du code INSEE), 2 pour un TOM",
    )
    criteria: dict[str, Any] = {
        "sexe": _sexe(query),
        "born": _nais_date(query),
        "code_pays": pays,
    }
    if commune is not None and len(commune) == 2 and (dept is None or len(dept) != 3):
        raise ParameterInvalid(
            "naisCodeCommune : 3 chiffres ; 2 seulement avec le code d'un TOM en naisCodeDept.",
            field="naisCodeCommune",
        )
    if dept == ABROAD_DEPARTMENT:
        # INSEE's convention: born abroad, the "commune" being the country's code.
        criteria["born_abroad"] = True
        if commune is not None:
            country = ABROAD_DEPARTMENT + commune
            criteria["impossible"] = pays is not None and pays != country
            criteria["code_pays"] = country
    elif dept is not None:
        criteria["code_dept"] = dept
        if commune is not None:
            criteria["code_commune"] = commune_cog(dept, commune)
    elif commune is not None:
        criteria["commune_suffix"] = commune
    return criteria


def _address(query: QueryParams) -> service.AddressCriteria | None:
    """The address filters of ``/personne``, with the provider's rules: a commune only
    with a department, a street name only with a department and a commune."""
    pays = _coded(query, "adrCodePays", _PAYS, "code pays INSEE sur 5 chiffres (99100 = France)")
    dept = _department(query, "adrCodeDept")
    tom = _coded(query, "adrCodeTom", _TOM, "code TOM sur 3 chiffres (ex. 975, 987, 988)")
    commune = _coded(query, "adrCodeCommune", _ADR_COMMUNE, "code commune sur 3 chiffres")
    street_type = _label(query, "adrLibelleTypeVoie", STREET_TYPE_LENGTH)
    street_name = _label(query, "adrLibelleVoie", STREET_NAME_LENGTH)
    numero = _coded(query, "adrNumVoie", _NUMERO, "numéro de voie, chiffres seulement")
    indice = _coded(
        query, "adrIndiceRepetition", _INDICE, "une lettre (B = bis, T = ter, Q = quater)"
    )
    if commune is not None and dept is None:
        raise ParameterInvalid(
            "adrCodeCommune ne peut être valorisé qu'avec un département (adrCodeDept).",
            field="adrCodeCommune",
        )
    if street_name is not None and (dept is None or commune is None):
        raise ParameterInvalid(
            "adrLibelleVoie ne peut être valorisé qu'avec un département (adrCodeDept) et "
            "une commune (adrCodeCommune).",
            field="adrLibelleVoie",
        )
    codes = {
        key: value
        for key, value in (
            ("cdPays", pays),
            ("cdTOM", tom),
            ("cdCommune", commune),
            ("numeroVoie", str(int(numero)) if numero is not None else None),
            ("indiceDeRepetition", indice),
        )
        if value is not None
    }
    if not codes and dept is None and street_type is None and street_name is None:
        return None
    return service.AddressCriteria(codes, dept, street_type, street_name)


def parse_search(query: QueryParams, *, with_address: bool) -> Search:
    """The criteria of ``/personne/spi`` (``with_address`` False) or ``/personne``: ``nom``
    and ``prenom``, and at least one other."""
    nom = _nom(query)
    prenom = _prenom(query)
    birth = _birth(query)
    adresse = _address(query) if with_address else None
    criteria = (*_BIRTH_CRITERIA, *(_ADDRESS_CRITERIA if with_address else ()))
    if all(query.get(name) is None for name in criteria):
        raise ParameterInvalid(
            "Préciser au moins un critère en plus du nom et du prénom : "
            + ", ".join(criteria)
            + "."
        )
    return Search(nom=nom, prenom=prenom, adresse=adresse, **birth)


def etat_civil(person: Person) -> dict[str, str]:
    """``EtatCivilReponse``: every value a string, those that do not exist omitted."""
    born = person.date_naissance
    first_names = canonical_name(person.prenoms)
    answer = {
        "cdSexe": CD_SEXE[person.sexe],
        "lbNomNaissance": person.nom_naissance,
        "lbPrenomNaissance": first_names,
    }
    if person.nom_usage:
        answer["lbNomUsage"] = person.nom_usage
    answer |= {
        "lbPrenomUsage": first_names.split(" ")[0],
        "anneeNaissance": f"{born.year:04d}",
        "moisNaissance": f"{born.month:02d}",
        "jourNaissance": f"{born.day:02d}",
        "cdPaysNaissance": person.code_pays_naissance,
    }
    dept = person.code_dept_naissance
    if dept is not None:
        answer["cdTOMNaissance" if dept in TOMS else "cdDeptNaissance"] = dept
    if person.code_commune_naissance is not None:
        answer["cdCommuneNaissance"] = commune_code(person.code_commune_naissance)
    return answer


def personne_physique(person: Person) -> dict[str, Any]:
    """``PersonneReponse``: the address is stored in the provider's ``AdresseReponse`` shape."""
    return {
        "identifiant": {"spi": person.spi},
        "etatCivil": etat_civil(person),
        "adresse": {k: str(v) for k, v in person.adresse.items() if v is not None},
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

    def _search(self, store: str, criteria: Search) -> list[Person]:
        if criteria.impossible:
            return []
        with self._deps.session_factory() as session:
            return service.persons_by_etat_civil(
                session,
                store,
                nom=criteria.nom,
                prenom=criteria.prenom,
                sexe=criteria.sexe,
                born=criteria.born,
                code_pays=criteria.code_pays,
                code_dept=criteria.code_dept,
                born_abroad=criteria.born_abroad,
                code_commune=criteria.code_commune,
                commune_suffix=criteria.commune_suffix,
                adresse=criteria.adresse,
            )

    async def _the_one(self, ctx: CallContext, criteria: Search) -> Person:
        """The one communicable person the criteria designate (the journal's subject)."""
        found = await asyncio.to_thread(self._search, ctx.environment.value, criteria)
        if not found:
            raise NotFound("Aucune personne ne correspond à ces critères.")
        if len(found) > 1:
            raise TooManyAnswers("Plusieurs personnes correspondent : préciser les critères.")
        person = found[0]
        ctx.subject_spi = person.spi
        if not person.communicable:
            raise NotCommunicable()
        return person


class PersonneSpi(_R2pOperation):
    """``GET /personne/spi`` (RechercheParEtatCivil): the SPI of the one person with this
    état civil."""

    def parse(self, request: Request, body: Any = None) -> Search:
        return parse_search(request.query_params, with_address=False)

    async def fetch(self, ctx: CallContext, params: Search) -> ApiResponse:
        person = await self._the_one(ctx, params)
        ctx.data_scopes_returned = list(RELEASED_SPI)
        return ApiResponse(body={"identifiant": {"spi": person.spi}}, media_type=MEDIA_TYPE)


class PersonneRecherche(_R2pOperation):
    """``GET /personne`` (RechercheParCriteres): the one person matching the état civil and
    the address filters."""

    def parse(self, request: Request, body: Any = None) -> Search:
        return parse_search(request.query_params, with_address=True)

    async def fetch(self, ctx: CallContext, params: Search) -> ApiResponse:
        person = await self._the_one(ctx, params)
        ctx.data_scopes_returned = list(RELEASED_PERSON)
        return ApiResponse(
            body={"personnePhysique": personne_physique(person)}, media_type=MEDIA_TYPE
        )


class Personne(_R2pOperation):
    """``GET /personne/{spi}`` (RechercheParSPI): one person's identifier, état civil and
    address."""

    def parse(self, request: Request, body: Any = None) -> SpiParams:
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
