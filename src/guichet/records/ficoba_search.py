"""The FICOBA searches, one function per search type of the provider's document (no HTTP).

- ``/comptes/numCpte`` (compte): ``search_by_iban``;
- ``/comptes/siretSiren`` (SIREN/SIRET): ``search_by_siret_siren``;
- ``/comptes/spi`` (SPI): ``search_by_spi``;
- ``/comptes/perPhy`` (personne physique): ``search_natural_persons``;
- ``/comptes/perPro`` (personne morale): ``search_legal_persons``;
- ``/comptes/verifIban`` (vérification IBAN personne physique, personne morale, SIRET):
  ``verify_iban_natural_person``, ``verify_iban_legal_person``, ``verify_iban_siret``;
- ``/comptes/multiDet`` (multi-détention personne physique, personne morale, SIRET):
  ``multi_holding_natural_person``, ``multi_holding_legal_person``, ``multi_holding_siret``.

Name searches are **ranked** by the provider's ``scoreAppariement`` (0–100): a weighted mean
of the criteria given — name 50 (birth or usage name; raison sociale for a legal person),
first names 25 (sigle 20, enseigne 30), birth place 10, address 15 — each criterion scoring
its trigram similarity (``pg_trgm``'s definition) or 1/0 for a code. Sex, birth date (exact,
partial or a range) and legal category are filters. The fuzzy part runs in the database:
candidates come from the trigram indexes (``%``, PostgreSQL) or the phonetic and prefix
indexes (both databases), the score is computed by SQL (``similarity()``; on SQLite the same
function, registered on the connection), filtered, ordered and limited there.

The criteria classes parse the provider's ``criteresRecherche`` members (``etatCivil``,
``lieuNaissance``, ``domiciliation``, ``designation``) and raise ``ParameterInvalid``
naming the field. Results are typed; ``provider()`` methods give the provider's shapes
(``PersonnePhysique``, ``PersonneMorale``, ``CompteStructure``, ``CompteMultiDet``), a value
that does not exist being omitted.
"""

from __future__ import annotations

import calendar
import datetime as dt
import functools
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Float,
    String,
    and_,
    bindparam,
    case,
    func,
    literal,
    or_,
    select,
    true,
    union,
    values,
)
from sqlalchemy import column as sql_column
from sqlalchemy.orm import QueryableAttribute, Session
from stdnum import iban as stdnum_iban
from stdnum.fr import siren as stdnum_siren
from stdnum.fr import siret as stdnum_siret

from guichet.errors import ParameterInvalid
from guichet.records.ficoba import (
    CARACTERISTIQUES,
    MOTIFS_OUVERTURE,
    NATURES,
    NATURES_REGLEMENTEES,
    QUALITES,
    QUALITES_TITULAIRE,
    TYPES,
    FicobaCompte,
    FicobaDesignation,
    FicobaDetention,
    FicobaEtablissement,
    FicobaGuichet,
    FicobaNom,
    FicobaPersonneMorale,
    FicobaPersonnePhysique,
    designation_key,
    person_key,
    phonetic_key,
    words_key,
)
from guichet.records.geography import COUNTRIES_BY_COG, DEPARTMENTS, FRANCE, STREET_TYPES, TOMS
from guichet.records.spi import parse_spi

_Column = ColumnElement[Any] | QueryableAttribute[Any]

# A candidate's name must be at least this similar (trigrams) to the one searched.
NAME_MINIMUM: Final = 0.45
# Below this scoreAppariement a person is not an answer.
SCORE_MINIMUM: Final = 50.0
# The person an IBAN check or a multi-holding search describes: at least this score.
HOLDER_MINIMUM: Final = 80.0
# At most this many persons per answer (the best scores).
MAX_ANSWERS: Final = 20

_WEIGHT_NAME, _WEIGHT_FIRST_NAMES, _WEIGHT_BIRTH_PLACE, _WEIGHT_ADDRESS = 50, 25, 10, 15
_WEIGHT_SIGLE, _WEIGHT_ENSEIGNE = 20, 30
_PREFIX_SCORE: Final = 0.9  # a designation that begins with the words searched
# A name whose best possible score falls this much short of the minimum is not a candidate
# (the database computes the score in single precision).
_BOUND_MARGIN: Final = 1e-3

# --- the similarity both databases compute --------------------------------------------------

_WORDS = re.compile(r"[0-9a-z]+")


@functools.lru_cache(maxsize=65_536)
def _trigrams(value: str) -> frozenset[str]:
    out: set[str] = set()
    for word in _WORDS.findall(value.lower()):
        padded = f"  {word} "
        out.update(padded[i : i + 3] for i in range(len(padded) - 2))
    return frozenset(out)


def trigram_similarity(a: str | None, b: str | None) -> float | None:
    """``pg_trgm``'s ``similarity()`` for the keys' alphabet (upper-case letters, digits,
    spaces): shared trigrams over all trigrams, each word padded with two spaces before
    and one after. SQLite gets it as ``ficoba_similarity``."""
    if a is None or b is None:
        return None
    ta, tb = _trigrams(a), _trigrams(b)
    if not ta or not tb:
        return 0.0
    common = len(ta & tb)
    return common / (len(ta) + len(tb) - common)


class _Sql:
    """What differs between the two databases: the similarity function, ``greatest``,
    the trigram operator and the prefix look-up."""

    def __init__(self, session: Session) -> None:
        connection = session.connection()
        self.postgres = connection.dialect.name == "postgresql"
        if not self.postgres:
            pooled = connection.connection
            # Once per connection: registering a function makes SQLite prepare every
            # statement again.
            if not pooled.info.get("ficoba_similarity"):
                raw = pooled.driver_connection
                assert raw is not None
                raw.create_function("ficoba_similarity", 2, trigram_similarity, deterministic=True)
                pooled.info["ficoba_similarity"] = True

    def sim(self, column: _Column, value: str) -> ColumnElement[float]:
        name = "similarity" if self.postgres else "ficoba_similarity"
        return func.coalesce(getattr(func, name)(column, literal(value), type_=Float), 0.0)

    def greatest(self, *values: ColumnElement[float]) -> ColumnElement[float]:
        if len(values) == 1:
            return values[0]
        return (func.greatest if self.postgres else func.max)(*values, type_=Float)

    def similar(self, column: _Column, value: str) -> ColumnElement[bool]:
        """At least ``NAME_MINIMUM`` of similarity, through the trigram index (PostgreSQL
        only): ``%`` at pg_trgm's threshold (0.3 by default, below ours: the index gives a
        few more candidates), then similarity() on those."""
        return and_(column.op("%")(literal(value)), self.sim(column, value) >= NAME_MINIMUM)

    def prefix(self, column: _Column, value: str) -> ColumnElement[bool]:
        """``column`` begins with ``value`` (keys hold only A–Z, 0–9 and spaces): ``LIKE``
        for the trigram index on PostgreSQL, a B-tree range on SQLite."""
        if self.postgres:
            return column.like(f"{value}%")
        return and_(column >= value, column < f"{value}~")


def _match(column: _Column, value: str) -> ColumnElement[float]:
    return case((column == value, 1.0), else_=0.0)


def _mean(parts: Sequence[ColumnElement[float]]) -> ColumnElement[float]:
    total: ColumnElement[float] = parts[0]
    for part in parts[1:]:
        total = total + part
    return total / float(len(parts))


# --- criteria ----------------------------------------------------------------------------------


def _text(source: Mapping[str, Any] | None, key: str, field: str) -> str | None:
    """A member of the provider's criteria as a stripped string; None when absent or empty."""
    if source is None:
        return None
    value = source.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ParameterInvalid("Ce critère doit être une chaîne de caractères.", field=field)
    return value.strip() or None


def _member(source: Mapping[str, Any] | None, key: str, field: str) -> Mapping[str, Any] | None:
    value = None if source is None else source.get(key)
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ParameterInvalid("Ce critère doit être un objet.", field=field)
    return value


def _digits(value: str | None, lengths: Iterable[int], field: str, what: str) -> str | None:
    if value is None:
        return None
    if not value.isdigit() or len(value) not in tuple(lengths):
        raise ParameterInvalid(what, field=field)
    return value


def _department(value: str | None, field: str) -> str | None:
    """``75``, ``075``, ``2A``, ``02A``, ``974`` → ``75``, ``75``, ``2A``, ``2A``, ``974``."""
    if value is None:
        return None
    code = value.upper()
    if len(code) == 3 and code[0] == "0":
        code = code[1:]
    if not re.fullmatch(r"\d{2}|2[AB]|9[78]\d", code):
        raise ParameterInvalid(
            "Le code département compte deux ou trois caractères (75, 2A, 974).", field=field
        )
    return code


def _commune(
    value: str | None, department: str | None, field: str
) -> tuple[str | None, str | None]:
    """A commune code of three characters (with the department), or a five-character COG
    (which gives the department): (department, commune code)."""
    if value is None:
        return department, None
    code = value.upper()
    if re.fullmatch(r"\d[\dAB]\d{3}", code):
        cog_department = code[:3] if code.startswith(("97", "98")) else code[:2]
        return department or cog_department, code[-3:]
    if not re.fullmatch(r"\d{2,3}", code):
        raise ParameterInvalid(
            "Le code commune compte trois chiffres (ou le code officiel géographique à cinq).",
            field=field,
        )
    return department, code.zfill(3)


_REPETITIONS: Final = {"B": "B", "BIS": "B", "T": "T", "TER": "T", "Q": "Q", "QUATER": "Q"}


@dataclass(frozen=True, slots=True)
class AddressCriteria:
    """The provider's ``Domiciliation``: each given value is compared (the address part of
    the score)."""

    pays: str | None = None
    departement: str | None = None
    commune: str | None = None  # three characters
    code_postal: str | None = None
    nature_voie: str | None = None
    libelle_voie: str | None = None  # words_key
    numero_voie: str | None = None
    indice_repetition: str | None = None

    @classmethod
    def from_provider(cls, domiciliation: Mapping[str, Any] | None, field: str) -> AddressCriteria:
        d, f = domiciliation, field
        pays = _digits(
            _text(d, "codePays", f"{f}.codePays"),
            (5,),
            f"{f}.codePays",
            "Le code pays est le code officiel géographique à cinq chiffres (99100 pour la "
            "France).",
        )
        department = _department(
            _text(d, "codeDepartement", f"{f}.codeDepartement"), f"{f}.codeDepartement"
        )
        department, commune = _commune(
            _text(d, "codeCommune", f"{f}.codeCommune"), department, f"{f}.codeCommune"
        )
        postal = _digits(
            _text(d, "codePostal", f"{f}.codePostal"),
            (5,),
            f"{f}.codePostal",
            "Le code postal compte cinq chiffres.",
        )
        nature = _text(d, "codeNatureVoie", f"{f}.codeNatureVoie")
        if nature is not None:
            nature = words_key(nature)
            nature = STREET_TYPES.get(nature, nature)
            if not nature or len(nature) > 4:
                raise ParameterInvalid(
                    "Le code nature de voie est l'abréviation de la voie (RUE, AV, BD…).",
                    field=f"{f}.codeNatureVoie",
                )
        voie = _text(d, "libelleVoie", f"{f}.libelleVoie")
        number = _digits(
            _text(d, "numeroVoie", f"{f}.numeroVoie"),
            range(1, 6),
            f"{f}.numeroVoie",
            "Le numéro de voie compte un à cinq chiffres.",
        )
        repetition = _text(d, "indiceRepetition", f"{f}.indiceRepetition")
        if repetition is not None:
            repetition = _REPETITIONS.get(repetition.upper())
            if repetition is None:
                raise ParameterInvalid(
                    "L'indice de répétition vaut B, T ou Q (bis, ter, quater).",
                    field=f"{f}.indiceRepetition",
                )
        return cls(
            pays=pays,
            departement=department,
            commune=commune,
            code_postal=postal,
            nature_voie=nature,
            libelle_voie=words_key(voie) if voie else None,
            numero_voie=str(int(number)) if number else None,
            indice_repetition=repetition,
        )

    def parts(self, sql: _Sql, t: Any) -> list[ColumnElement[float]]:
        """The address part of the score: one term per value given (``t``: the columns of
        the person table)."""
        parts = []
        for column, value in (
            (t.adr_code_pays, self.pays),
            (t.adr_code_departement, self.departement),
            (t.adr_code_commune, self.commune),
            (t.adr_code_postal, self.code_postal),
            (t.adr_nature_voie, self.nature_voie),
            (t.adr_numero_voie, self.numero_voie),
            (t.adr_indice_repetition, self.indice_repetition),
        ):
            if value is not None:
                parts.append(_match(column, value))
        if self.libelle_voie:
            parts.append(sql.sim(t.adr_libelle_voie, self.libelle_voie))
        return parts


def _date_bound(
    source: Mapping[str, Any], suffix: str, field: str
) -> tuple[dt.date, dt.date] | None:
    """``annee/mois/jourNaissance{suffix}`` as the range of days they designate."""
    names = [f"{part}Naissance{suffix}" for part in ("annee", "mois", "jour")]
    year, month, day = (_text(source, n, f"{field}.{n}") for n in names)
    if year is None and month is None and day is None:
        return None
    if year is None or not re.fullmatch(r"\d{4}", year):
        raise ParameterInvalid(
            "L'année de naissance compte quatre chiffres.", field=f"{field}.{names[0]}"
        )
    if day is not None and month is None:
        raise ParameterInvalid(
            "Un jour de naissance demande son mois.", field=f"{field}.{names[1]}"
        )
    y = int(year)
    if month is None:
        return dt.date(y, 1, 1), dt.date(y, 12, 31)
    if not re.fullmatch(r"\d{1,2}", month) or not 1 <= int(month) <= 12:
        raise ParameterInvalid("Le mois de naissance va de 01 à 12.", field=f"{field}.{names[1]}")
    m = int(month)
    if day is None:
        return dt.date(y, m, 1), dt.date(y, m, calendar.monthrange(y, m)[1])
    if not re.fullmatch(r"\d{1,2}", day) or not 1 <= int(day) <= calendar.monthrange(y, m)[1]:
        raise ParameterInvalid(
            "Ce jour de naissance n'existe pas dans ce mois.", field=f"{field}.{names[2]}"
        )
    return dt.date(y, m, int(day)), dt.date(y, m, int(day))


@dataclass(frozen=True, slots=True)
class NaturalPersonCriteria:
    """A natural person searched: ``nom`` (birth or usage name) is required; a birth date
    is a range of days (``ne_du`` to ``ne_au``, inclusive), exact when both are the same."""

    nom: str
    prenoms: str | None = None
    sexe: str | None = None  # "M" or "F"
    ne_du: dt.date | None = None
    ne_au: dt.date | None = None
    pays_naissance: str | None = None
    departement_naissance: str | None = None
    commune_naissance: str | None = None  # three characters
    adresse: AddressCriteria | None = None

    def __post_init__(self) -> None:
        if not person_key(self.nom):
            raise ParameterInvalid("Le nom est obligatoire.", field="nom")

    @classmethod
    def from_provider(
        cls,
        etat_civil: Mapping[str, Any] | None,
        lieu_naissance: Mapping[str, Any] | None = None,
        domiciliation: Mapping[str, Any] | None = None,
        *,
        field: str = "criteresRecherche",
    ) -> NaturalPersonCriteria:
        """From the provider's ``EtatCivil`` (or ``EtatCivilTitulaire``), ``LieuNaissance``
        and ``Domiciliation``."""
        ec, f = etat_civil or {}, f"{field}.etatCivil"
        nom = _text(ec, "nom", f"{f}.nom")
        if nom is None or not person_key(nom):
            raise ParameterInvalid("Le nom est obligatoire.", field=f"{f}.nom")
        prenoms = _text(ec, "prenoms", f"{f}.prenoms")
        sexe = _text(ec, "sexe", f"{f}.sexe")
        if sexe is not None:
            sexe = {"M": "M", "F": "F", "1": "M", "2": "F"}.get(sexe.upper())
            if sexe is None:
                raise ParameterInvalid("Le sexe vaut M ou F (ou 1 ou 2).", field=f"{f}.sexe")
        exact = _date_bound(ec, "", f)
        start = _date_bound(ec, "Debut", f)
        stop = _date_bound(ec, "Fin", f)
        if exact is not None and (start is not None or stop is not None):
            raise ParameterInvalid(
                "Une date de naissance exacte ou un intervalle, pas les deux.",
                field=f"{f}.anneeNaissanceDebut",
            )
        low = exact[0] if exact else (start[0] if start else None)
        high = exact[1] if exact else (stop[1] if stop else None)
        if low is not None and high is not None and low > high:
            raise ParameterInvalid(
                "Le début de l'intervalle de naissance suit sa fin.",
                field=f"{f}.anneeNaissanceFin",
            )
        ln, g = lieu_naissance, f"{field}.lieuNaissance"
        pays = _digits(
            _text(ln, "codePaysNaissance", f"{g}.codePaysNaissance"),
            (5,),
            f"{g}.codePaysNaissance",
            "Le code pays est le code officiel géographique à cinq chiffres (99100 pour la "
            "France).",
        )
        department = _department(
            _text(ln, "codeDepartementNaissance", f"{g}.codeDepartementNaissance"),
            f"{g}.codeDepartementNaissance",
        )
        department, commune = _commune(
            _text(ln, "codeCommuneNaissance", f"{g}.codeCommuneNaissance"),
            department,
            f"{g}.codeCommuneNaissance",
        )
        address = AddressCriteria.from_provider(domiciliation, f"{field}.domiciliation")
        return cls(
            nom=nom,
            prenoms=prenoms,
            sexe=sexe,
            ne_du=low,
            ne_au=high,
            pays_naissance=pays,
            departement_naissance=department,
            commune_naissance=commune,
            adresse=address,
        )


@dataclass(frozen=True, slots=True)
class LegalPersonCriteria:
    """A legal person searched: at least one of raison sociale, sigle, enseigne; the legal
    category (one, two or four digits: INSEE's levels) filters."""

    raison_sociale: str | None = None
    sigle: str | None = None
    enseigne: str | None = None
    categorie_juridique: str | None = None
    adresse: AddressCriteria | None = None

    def __post_init__(self) -> None:
        if not any(person_key(v or "") for v in (self.raison_sociale, self.sigle, self.enseigne)):
            raise ParameterInvalid(
                "La raison sociale, le sigle ou l'enseigne est obligatoire.",
                field="raisonSociale",
            )

    @classmethod
    def from_provider(
        cls,
        designation: Mapping[str, Any] | None,
        domiciliation: Mapping[str, Any] | None = None,
        *,
        field: str = "criteresRecherche",
    ) -> LegalPersonCriteria:
        """From the provider's ``Designation`` and ``Domiciliation``."""
        d, f = designation or {}, f"{field}.designation"
        names = {key: _text(d, key, f"{f}.{key}") for key in ("raisonSociale", "sigle", "enseigne")}
        if not any(person_key(v or "") for v in names.values()):
            raise ParameterInvalid(
                "La raison sociale, le sigle ou l'enseigne est obligatoire.",
                field=f"{f}.raisonSociale",
            )
        category = _digits(
            _text(d, "codeCategorieJuridique", f"{f}.codeCategorieJuridique"),
            (1, 2, 4),
            f"{f}.codeCategorieJuridique",
            "La catégorie juridique compte un, deux ou quatre chiffres (nomenclature de l'INSEE).",
        )
        return cls(
            raison_sociale=names["raisonSociale"],
            sigle=names["sigle"],
            enseigne=names["enseigne"],
            categorie_juridique=category,
            adresse=AddressCriteria.from_provider(domiciliation, f"{field}.domiciliation"),
        )


def parse_iban(value: object, field: str = "criteresRecherche.iban") -> str:
    """An IBAN as the file holds it (no spaces, upper case), or a 400 naming ``field``."""
    compact = stdnum_iban.compact(value) if isinstance(value, str) else ""
    if not compact or not stdnum_iban.is_valid(compact):
        raise ParameterInvalid("L'IBAN est absent ou invalide (clé de contrôle).", field=field)
    return str(compact)


def parse_siren_siret(
    siret: object, siren: object, field: str = "criteresRecherche"
) -> tuple[str | None, str | None]:
    """(SIRET, SIREN), at least one, each valid (Luhn), consistent if both."""
    out: list[str | None] = []
    for value, name, module, size in (
        (siret, "siret", stdnum_siret, 14),
        (siren, "siren", stdnum_siren, 9),
    ):
        if value is None or value == "":
            out.append(None)
            continue
        compact = module.compact(value) if isinstance(value, str) else ""
        if len(compact) != size or not module.is_valid(compact):
            raise ParameterInvalid(
                f"Le {name.upper()} compte {size} chiffres et une clé valide.",
                field=f"{field}.{name}",
            )
        out.append(str(compact))
    siret_value, siren_value = out
    if siret_value is None and siren_value is None:
        raise ParameterInvalid("Le SIRET ou le SIREN est obligatoire.", field=f"{field}.siret")
    if siret_value and siren_value and siret_value[:9] != siren_value:
        raise ParameterInvalid(
            "Le SIRET n'est pas un établissement de ce SIREN.", field=f"{field}.siren"
        )
    return siret_value, siren_value


def parse_nature(value: object, field: str = "criteresRecherche.codeNatureCompte") -> int | None:
    """A ``codeNatureCompte`` (guichet's coding, ``NATURES``); None when absent."""
    if value is None or value == "":
        return None
    code = value if isinstance(value, int) else (int(str(value)) if str(value).isdigit() else -1)
    if code not in NATURES:
        raise ParameterInvalid(
            "Nature de compte inconnue (voir la nomenclature du bac à sable).", field=field
        )
    return code


# --- results -----------------------------------------------------------------------------------


def _omit_none(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _yes_no(value: bool) -> str:
    return "O" if value else "N"


@dataclass(frozen=True, slots=True)
class Address:
    pays: str
    departement: str | None
    commune: str | None
    libelle_commune: str | None
    code_postal: str | None
    nature_voie: str | None
    libelle_voie: str | None
    numero_voie: str | None
    indice_repetition: str | None
    complement: str | None
    codifiee: bool

    @classmethod
    def of(cls, row: FicobaPersonnePhysique | FicobaPersonneMorale) -> Address:
        return cls(
            row.adr_code_pays,
            row.adr_code_departement,
            row.adr_code_commune,
            row.adr_libelle_commune,
            row.adr_code_postal,
            row.adr_nature_voie,
            row.adr_libelle_voie,
            row.adr_numero_voie,
            row.adr_indice_repetition,
            row.adr_complement,
            row.adr_codifiee,
        )

    def provider(self) -> dict[str, str]:
        """The provider's ``Adresse``."""
        department = self.departement
        return _omit_none(
            {
                "codePaysResidence": self.pays,
                "libellePaysResidence": _country_name(self.pays),
                "codeDepartementResidence": department,
                "libelleDepartementResidence": _department_name(department),
                "codeCommuneResidence": self.commune,
                "libelleCommuneResidence": self.libelle_commune,
                "codeNatureVoie": self.nature_voie,
                "libelleVoie": self.libelle_voie,
                "numeroVoie": self.numero_voie,
                "indiceRepetition": self.indice_repetition,
                "indicateurCodifAdresse": _yes_no(self.codifiee),
                "codePostal": self.code_postal,
                "libelleComplAdr": self.complement,
            }
        )


def _country_name(code: str) -> str | None:
    if code == FRANCE:
        return "FRANCE"
    country = COUNTRIES_BY_COG.get(code)
    return country.name if country else None


def _department_name(code: str | None) -> str | None:
    if code is None:
        return None
    return DEPARTMENTS.get(code) or TOMS.get(code)


@dataclass(frozen=True, slots=True)
class NaturalPerson:
    id: int
    spi: str | None
    sexe: str
    nom_naissance: str
    nom_usage: str | None
    prenoms: str
    date_naissance: dt.date
    pays_naissance: str
    departement_naissance: str | None
    commune_naissance: str | None
    libelle_commune_naissance: str | None
    date_deces: dt.date | None
    adresse: Address

    @classmethod
    def of(cls, row: FicobaPersonnePhysique) -> NaturalPerson:
        return cls(
            row.id,
            row.spi,
            row.sexe,
            row.nom_naissance,
            row.nom_usage,
            row.prenoms,
            row.date_naissance,
            row.code_pays_naissance,
            row.code_departement_naissance,
            row.code_commune_naissance,
            row.libelle_commune_naissance,
            row.date_deces,
            Address.of(row),
        )

    def provider(self, score: float | None = None) -> dict[str, Any]:
        """The provider's ``PersonnePhysique`` (``scoreAppariement`` when given)."""
        born = self.date_naissance
        country = _omit_none(
            {"codePays": self.pays_naissance, "libellePays": _country_name(self.pays_naissance)}
        )
        department = commune = None
        if self.departement_naissance:
            department = _omit_none(
                {
                    "codeDepartement": self.departement_naissance,
                    "libelleDepartement": _department_name(self.departement_naissance),
                }
            )
        if self.commune_naissance:
            commune = _omit_none(
                {
                    "codeCommune": self.commune_naissance,
                    "libelleCommune": self.libelle_commune_naissance,
                }
            )
        return _omit_none(
            {
                "nomNaissance": self.nom_naissance,
                "nomUsage": self.nom_usage,
                "prenom": self.prenoms,
                "sexe": self.sexe,
                "anneeNaissance": f"{born.year:04d}",
                "moisNaissance": f"{born.month:02d}",
                "jourNaissance": f"{born.day:02d}",
                "dateDeces": self.date_deces.isoformat() if self.date_deces else None,
                "paysNaissance": country,
                "departementNaissance": department,
                "communeNaissance": commune,
                "numeroSpi": int(self.spi) if self.spi else None,
                "adresse": self.adresse.provider(),
                "scoreAppariement": score,
            }
        )


@dataclass(frozen=True, slots=True)
class LegalPerson:
    id: int
    siren: str
    siret: str
    raison_sociale: str
    sigle: str | None
    enseigne: str | None
    categorie_juridique: str
    adresse: Address

    @classmethod
    def of(cls, row: FicobaPersonneMorale) -> LegalPerson:
        return cls(
            row.id,
            row.siren,
            row.siret,
            row.raison_sociale,
            row.sigle,
            row.enseigne,
            row.categorie_juridique,
            Address.of(row),
        )

    def provider(self, score: float | None = None) -> dict[str, Any]:
        """The provider's ``PersonneMorale`` (``scoreAppariement`` when given)."""
        return _omit_none(
            {
                "raisonSociale": self.raison_sociale,
                "sigle": self.sigle,
                "enseigne": self.enseigne,
                "siret": self.siret,
                "categorieJuridique": int(self.categorie_juridique),
                "siren": self.siren,
                "adresse": self.adresse.provider(),
                "scoreAppariement": score,
            }
        )


@dataclass(frozen=True, slots=True)
class Holder:
    """A person's capacity on an account (``QUALITES``)."""

    qualite: str
    personne: NaturalPerson | LegalPerson
    debut: dt.date | None
    fin: dt.date | None

    def provider(self) -> dict[str, Any]:
        """An element of ``ayantsDroits`` (the provider's ``TitulaireCompte``, an object
        its document leaves open): the capacity, then the person under
        ``personnePhysique`` or ``personneMorale``."""
        kind = "personnePhysique" if isinstance(self.personne, NaturalPerson) else "personneMorale"
        return _omit_none(
            {
                "codeQualite": self.qualite,
                "libelleQualite": QUALITES.get(self.qualite),
                kind: self.personne.provider(),
                "dateDebut": self.debut.isoformat() if self.debut else None,
                "dateFin": self.fin.isoformat() if self.fin else None,
            }
        )


@dataclass(frozen=True, slots=True)
class Bank:
    code: str
    libelle: str
    bic: str


@dataclass(frozen=True, slots=True)
class Branch:
    code: str
    libelle: str
    adresse: tuple[str, ...]

    def provider(self) -> dict[str, Any]:
        """The provider's ``GuichetDto``."""
        lines = {f"libAdr{i}": line for i, line in enumerate(self.adresse[:4], start=1)}
        return {"numeroGuichet": self.code, "libelleGuichet": self.libelle, "adresse": lines}


@dataclass(frozen=True, slots=True)
class Account:
    """An account (or a safe-deposit box) with everyone who has a capacity on it."""

    id: int
    iban: str | None
    numero: str
    format: str
    nature: int
    type: int
    caracteristique: int
    devise: str
    date_ouverture: dt.date
    date_fiscale: dt.date
    motif_ouverture: str
    date_cloture: dt.date | None
    motif_cloture: str | None
    resident: bool
    succession: bool
    etablissement: Bank
    guichet: Branch
    ayants_droit: tuple[Holder, ...]

    @property
    def ouvert(self) -> bool:
        return self.date_cloture is None

    def holders(self, *qualites: str) -> list[NaturalPerson | LegalPerson]:
        return [h.personne for h in self.ayants_droit if not qualites or h.qualite in qualites]

    def provider(self) -> dict[str, Any]:
        """The provider's ``CompteStructure``."""
        caracteristiques = _omit_none(
            {
                "iban": self.iban,
                "dateOuverture": self.date_ouverture.isoformat(),
                "dateFiscale": self.date_fiscale.isoformat(),
                "codeMotifOuverture": self.motif_ouverture,
                "libelleMotifOuverture": MOTIFS_OUVERTURE.get(self.motif_ouverture),
                "dateCloture": self.date_cloture.isoformat() if self.date_cloture else None,
                "nature": _omit_none(
                    {"codeNature": self.nature, "libelleNature": NATURES.get(self.nature)}
                ),
                "type": _omit_none({"codeType": self.type, "libelleType": TYPES.get(self.type)}),
                "formatCompte": self.format,
                "caracteristique": _omit_none(
                    {
                        "codeCaracteristique": self.caracteristique,
                        "libelleCaracteristique": CARACTERISTIQUES.get(self.caracteristique),
                    }
                ),
                "succession": _yes_no(self.succession),
                "resident": _yes_no(self.resident),
                "devise": {"codeDevise": self.devise},
            }
        )
        return {
            "caracteristiqueCompte": caracteristiques,
            "etablissementGestionnaire": {
                "etablissement": {
                    "numeroEtablissement": self.etablissement.code,
                    "libelleEtablissement": self.etablissement.libelle,
                    "bicEtablissement": self.etablissement.bic,
                },
                "guichet": self.guichet.provider(),
            },
            "ayantsDroits": [h.provider() for h in self.ayants_droit],
        }

    def provider_multi_detention(self) -> dict[str, Any]:
        """The provider's ``CompteMultiDet``."""
        return _omit_none(
            {
                "iban": self.iban,
                "nature": str(self.nature),
                "dateOuverture": self.date_ouverture.isoformat(),
                "dateFiscale": self.date_fiscale.isoformat(),
                "codeMotifOuverture": self.motif_ouverture,
                "libelleMotifOuverture": MOTIFS_OUVERTURE.get(self.motif_ouverture),
                "codeEtab": self.etablissement.code,
                "guichet": self.guichet.provider(),
            }
        )


@dataclass(frozen=True, slots=True)
class NaturalPersonAnswer:
    """One person found, their ``scoreAppariement`` (None for a search by identifier) and
    every account they have a capacity on (open ones first, then by opening date)."""

    personne: NaturalPerson
    score: float | None
    comptes: tuple[Account, ...]


@dataclass(frozen=True, slots=True)
class LegalPersonAnswer:
    personne: LegalPerson
    score: float | None
    comptes: tuple[Account, ...]


@dataclass(frozen=True, slots=True)
class IbanCheck:
    """An IBAN check: whether the IBAN is in the file (``compte``), and whether its holder
    or a co-holder is the person described (``concordant``, with the best ``score``)."""

    iban: str
    compte: Account | None
    concordant: bool
    score: float | None = None

    @property
    def iban_existant(self) -> bool:
        return self.compte is not None

    @property
    def date_cloture(self) -> dt.date | None:
        return self.compte.date_cloture if self.compte else None


@dataclass(frozen=True, slots=True)
class MultiHolding:
    """The persons the criteria describe and their open accounts of the nature searched
    (every regulated nature when none is given): more than one of a nature is a
    multi-holding."""

    personnes: tuple[NaturalPerson | LegalPerson, ...]
    comptes: tuple[Account, ...]


# --- loading ---------------------------------------------------------------------------------


_C = FicobaCompte.__table__
_G = FicobaGuichet.__table__
_E = FicobaEtablissement.__table__
_D = FicobaDetention.__table__
_P = FicobaPersonnePhysique.__table__
_M = FicobaPersonneMorale.__table__
_N = FicobaNom.__table__
_V = FicobaDesignation.__table__


def _natural_from(row: Mapping[Any, Any], prefix: str = "") -> NaturalPerson:
    def v(name: str) -> Any:
        return row[prefix + name]

    return NaturalPerson(
        v("id"),
        v("spi"),
        v("sexe"),
        v("nom_naissance"),
        v("nom_usage"),
        v("prenoms"),
        v("date_naissance"),
        v("code_pays_naissance"),
        v("code_departement_naissance"),
        v("code_commune_naissance"),
        v("libelle_commune_naissance"),
        v("date_deces"),
        _address_from(row, prefix),
    )


def _legal_from(row: Mapping[Any, Any], prefix: str = "") -> LegalPerson:
    def v(name: str) -> Any:
        return row[prefix + name]

    return LegalPerson(
        v("id"),
        v("siren"),
        v("siret"),
        v("raison_sociale"),
        v("sigle"),
        v("enseigne"),
        v("categorie_juridique"),
        _address_from(row, prefix),
    )


def _address_from(row: Mapping[Any, Any], prefix: str) -> Address:
    return Address(
        *(
            row[f"{prefix}adr_{name}"]
            for name in (
                "code_pays",
                "code_departement",
                "code_commune",
                "libelle_commune",
                "code_postal",
                "nature_voie",
                "libelle_voie",
                "numero_voie",
                "indice_repetition",
                "complement",
                "codifiee",
            )
        )
    )


@dataclass(frozen=True, slots=True)
class _Statements:
    """The loader's statements, built once (ids, IBANs, persons and natures are bound
    parameters): accounts with their bank and branch, then their holders with the holders'
    persons — two joins of three tables, quick to plan (one join of six took PostgreSQL
    4 ms to plan, for 0.3 ms of execution)."""

    by_id: Any
    by_iban: Any
    of_natural: Any
    of_legal: Any
    open_of_natural: Any
    open_of_legal: Any
    holders: Any


@functools.cache
def _statements() -> _Statements:
    store: BindParameter[str] = bindparam("store")
    accounts = select(
        *_C.c,
        _G.c.libelle.label("g_libelle"),
        _G.c.adresse.label("g_adresse"),
        _E.c.libelle.label("e_libelle"),
        _E.c.bic.label("e_bic"),
    ).select_from(
        _C.join(
            _G,
            and_(
                _G.c.store == _C.c.store,
                _G.c.etablissement == _C.c.etablissement,
                _G.c.code == _C.c.guichet,
            ),
        ).join(_E, and_(_E.c.store == _C.c.store, _E.c.code == _C.c.etablissement))
    )

    def held_by(column: Any, *, holders_only: bool = False) -> Any:
        persons: BindParameter[list[int]] = bindparam("persons", expanding=True)
        held = select(_D.c.compte_id).where(_D.c.store == store, column.in_(persons))
        if holders_only:
            held = held.where(_D.c.qualite.in_(sorted(QUALITES_TITULAIRE)))
        return _C.c.id.in_(held)

    def open_of(column: Any) -> Any:
        natures: BindParameter[list[int]] = bindparam("natures", expanding=True)
        return accounts.where(
            _C.c.store == store,
            held_by(column, holders_only=True),
            _C.c.date_cloture.is_(None),
            _C.c.nature.in_(natures),
        )

    # No ORDER BY: SQLite would walk a primary key (store, …) to spare a sort, every row of
    # the store; the loader sorts the few rows it gets.
    holders = select(
        _D.c.compte_id,
        _D.c.id.label("detention_id"),
        _D.c.qualite,
        _D.c.date_debut,
        _D.c.date_fin,
        _D.c.personne_physique_id,
        _D.c.personne_morale_id,
        *(c.label(f"pp_{c.name}") for c in _P.c),
        *(c.label(f"pm_{c.name}") for c in _M.c),
    ).select_from(
        _D.outerjoin(
            _P, and_(_P.c.store == _D.c.store, _P.c.id == _D.c.personne_physique_id)
        ).outerjoin(_M, and_(_M.c.store == _D.c.store, _M.c.id == _D.c.personne_morale_id))
    )
    return _Statements(
        by_id=accounts.where(_C.c.store == store, _C.c.id.in_(bindparam("ids", expanding=True))),
        by_iban=accounts.where(_C.c.store == store, _C.c.iban == bindparam("iban")),
        of_natural=accounts.where(_C.c.store == store, held_by(_D.c.personne_physique_id)),
        of_legal=accounts.where(_C.c.store == store, held_by(_D.c.personne_morale_id)),
        open_of_natural=open_of(_D.c.personne_physique_id),
        open_of_legal=open_of(_D.c.personne_morale_id),
        holders=holders.where(
            _D.c.store == store, _D.c.compte_id.in_(bindparam("ids", expanding=True))
        ),
    )


class _Loader:
    """Loads accounts with their holders, bank and branch: two queries whatever the
    number of accounts."""

    def __init__(self, session: Session, store: str) -> None:
        self.session = session
        self.store = store
        self.holdings: list[tuple[int, int | None, int | None]] = []  # account, pp, pm

    def load(self, statement: Any, **params: Any) -> dict[int, Account]:
        rows = self.session.execute(statement, {"store": self.store, **params}).mappings().all()
        if not rows:
            return {}
        found = self.session.execute(
            _statements().holders, {"store": self.store, "ids": [r["id"] for r in rows]}
        ).mappings()
        holders: dict[int, list[Holder]] = {}
        natural: dict[int, NaturalPerson] = {}
        legal: dict[int, LegalPerson] = {}
        for h in sorted(found, key=lambda h: (h["compte_id"], h["detention_id"])):
            pp, pm = h["personne_physique_id"], h["personne_morale_id"]
            person: NaturalPerson | LegalPerson
            if pp is not None:
                person = natural.get(pp) or natural.setdefault(pp, _natural_from(h, "pp_"))
            else:
                person = legal.get(pm) or legal.setdefault(pm, _legal_from(h, "pm_"))
            holders.setdefault(h["compte_id"], []).append(
                Holder(h["qualite"], person, h["date_debut"], h["date_fin"])
            )
            self.holdings.append((h["compte_id"], pp, pm))
        return {
            r["id"]: Account(
                id=r["id"],
                iban=r["iban"],
                numero=r["numero"],
                format=r["format"],
                nature=r["nature"],
                type=r["type"],
                caracteristique=r["caracteristique"],
                devise=r["devise"],
                date_ouverture=r["date_ouverture"],
                date_fiscale=r["date_fiscale"],
                motif_ouverture=r["motif_ouverture"],
                date_cloture=r["date_cloture"],
                motif_cloture=r["motif_cloture"],
                resident=r["resident"],
                succession=r["succession"],
                etablissement=Bank(r["etablissement"], r["e_libelle"], r["e_bic"]),
                guichet=Branch(r["guichet"], r["g_libelle"], tuple(r["g_adresse"])),
                ayants_droit=tuple(holders.get(r["id"], ())),
            )
            for r in sorted(rows, key=lambda r: r["id"])
        }

    def accounts(self, ids: Iterable[int]) -> dict[int, Account]:
        wanted = sorted(set(ids))
        return self.load(_statements().by_id, ids=wanted) if wanted else {}

    def account_by_iban(self, iban: str) -> Account | None:
        return next(iter(self.load(_statements().by_iban, iban=iban).values()), None)

    def accounts_of(self, *, natural: bool, person_ids: Sequence[int]) -> dict[int, list[Account]]:
        """Each person's accounts (any capacity), open first, then by opening date."""
        out: dict[int, list[Account]] = {pid: [] for pid in person_ids}
        if not person_ids:
            return out
        statements = _statements()
        statement = statements.of_natural if natural else statements.of_legal
        accounts = self.load(statement, persons=list(person_ids))
        for compte, pp, pm in self.holdings:
            pid = pp if natural else pm
            if pid in out and accounts[compte] not in out[pid]:
                out[pid].append(accounts[compte])
        for listed in out.values():
            listed.sort(key=_account_order)
        return out


def _account_order(a: Account) -> tuple[bool, dt.date, int]:
    return (not a.ouvert, a.date_ouverture, a.id)


# --- natural persons ---------------------------------------------------------------------------


def _ranked(
    session: Session,
    table: Any,
    store: str,
    score: ColumnElement[float],
    filters: Sequence[ColumnElement[bool]],
    order: Sequence[str],
    minimum: float,
    limit: int,
) -> list[tuple[Mapping[Any, Any], float]]:
    """The rows of ``table`` that pass ``filters``, with their score (at least
    ``minimum``), best first then by ``order``, at most ``limit``: ranked in the database
    (scored once per candidate, then the few rows kept read by primary key). On
    PostgreSQL the candidates are ranked and limited in the inner query: joining every
    candidate to the table let it scan the establishments' table once it grew."""
    if session.get_bind().dialect.name != "postgresql":
        inner = select(table.c.id, score.label("score")).where(*filters).subquery()
        rows = session.execute(
            select(table, inner.c.score)
            .join(inner, and_(table.c.store == store, table.c.id == inner.c.id))
            .where(inner.c.score >= minimum)
            .order_by(inner.c.score.desc(), *(table.c[name] for name in order))
            .limit(limit)
        ).mappings()
        return [(row, round(float(row["score"]), 2)) for row in rows]
    keys = [table.c[name] for name in order if name != "id"]
    inner = select(table.c.id, score.label("score"), *keys).where(*filters).subquery()
    best = (
        select(inner.c.id, inner.c.score)
        .where(inner.c.score >= minimum)
        .order_by(inner.c.score.desc(), *(inner.c[name] for name in order))
        .limit(limit)
        .subquery()
    )
    rows = session.execute(
        select(table, best.c.score)
        .join(best, and_(table.c.store == store, table.c.id == best.c.id))
        .order_by(best.c.score.desc(), *(table.c[name] for name in order))
    ).mappings()
    return [(row, round(float(row["score"]), 2)) for row in rows]


def _natural_scores(
    session: Session,
    store: str,
    c: NaturalPersonCriteria,
    *,
    among: Sequence[int] | None = None,
    minimum: float = SCORE_MINIMUM,
    limit: int = MAX_ANSWERS,
) -> list[tuple[NaturalPerson, float]]:
    """The persons matching ``c`` with their scoreAppariement, best first: found by the
    name indexes, or among ``among`` (then every name counts)."""
    sql = _Sql(session)
    P = _P.c
    key = person_key(c.nom)
    name = sql.greatest(sql.sim(P.nom_cle, key), sql.sim(P.nom_usage_cle, key))
    weighted: list[tuple[int, ColumnElement[float]]] = [(_WEIGHT_NAME, name)]
    if c.prenoms and words_key(c.prenoms):
        first = words_key(c.prenoms)
        weighted.append(
            (
                _WEIGHT_FIRST_NAMES,
                sql.greatest(sql.sim(P.prenoms_cle, first), sql.sim(P.prenom_cle, first)),
            )
        )
    birth = [
        _match(column, value)
        for column, value in (
            (P.code_pays_naissance, c.pays_naissance),
            (P.code_departement_naissance, c.departement_naissance),
            (P.code_commune_naissance, c.commune_naissance),
        )
        if value is not None
    ]
    if birth:
        weighted.append((_WEIGHT_BIRTH_PLACE, _mean(birth)))
    address = c.adresse.parts(sql, P) if c.adresse else []
    if address:
        weighted.append((_WEIGHT_ADDRESS, _mean(address)))
    filters: list[ColumnElement[bool]] = [P.store == store]
    if c.sexe:
        filters.append(P.sexe == c.sexe)
    dates: list[ColumnElement[bool]] = []
    if c.ne_du:
        dates.append(P.date_naissance >= c.ne_du)
    if c.ne_au:
        dates.append(P.date_naissance <= c.ne_au)
    if among is not None:
        filters += [P.id.in_(among), *dates]
    else:
        total = float(sum(w for w, _ in weighted))
        keys = _similar_names(session, sql, store, key, total, minimum)
        if not keys:
            return []
        # Each branch whole (store, key, dates): each its index (key then birth date).
        filters.append(
            or_(
                and_(P.store == store, P.nom_cle.in_(keys), *dates),
                and_(P.store == store, P.nom_usage_cle.in_(keys), *dates),
            )
        )
        filters += [*dates, name >= NAME_MINIMUM]
    rows = _ranked(
        session,
        _P,
        store,
        _weighted(weighted),
        filters,
        ("nom_naissance", "prenoms", "id"),
        minimum,
        limit,
    )
    return [(_natural_from(row), score) for row, score in rows]


def _similar_names(
    session: Session, sql: _Sql, store: str, key: str, total: float, minimum: float
) -> list[str]:
    """The name keys of the vocabulary like ``key``: trigram similarity of at least
    ``NAME_MINIMUM`` (PostgreSQL, ``%`` on its GIN index), or the same phonetic key
    (SQLite); the key itself whenever the file holds it. Of those, the keys whose best
    possible score (every other criterion matching, ``total`` the weights) reaches
    ``minimum``."""
    N = _N.c
    like = sql.similar(N.cle, key) if sql.postgres else N.phon == phonetic_key(key)
    rows = session.execute(select(N.cle, sql.sim(N.cle, key)).where(N.store == store, like))
    return [
        cle
        for cle, similarity in rows
        if 100.0 * (_WEIGHT_NAME * (similarity or 0.0) + total - _WEIGHT_NAME) / total
        >= minimum - _BOUND_MARGIN
    ]


def _weighted(parts: Sequence[tuple[int, ColumnElement[float]]]) -> ColumnElement[float]:
    total = float(sum(w for w, _ in parts))
    expression: ColumnElement[float] = parts[0][1] * (100.0 * parts[0][0] / total)
    for weight, part in parts[1:]:
        expression = expression + part * (100.0 * weight / total)
    return expression


def _natural_answers(
    session: Session, store: str, scored: Sequence[tuple[NaturalPerson, float | None]]
) -> list[NaturalPersonAnswer]:
    ids = [person.id for person, _ in scored]
    accounts = _Loader(session, store).accounts_of(natural=True, person_ids=ids)
    return [
        NaturalPersonAnswer(person, score, tuple(accounts[person.id])) for person, score in scored
    ]


def search_natural_persons(
    session: Session, store: str, criteria: NaturalPersonCriteria, *, limit: int = MAX_ANSWERS
) -> list[NaturalPersonAnswer]:
    """``/comptes/perPhy``: the persons ``criteria`` describe, best ``scoreAppariement``
    first (at least ``SCORE_MINIMUM``, at most ``limit``), with their accounts."""
    return _natural_answers(session, store, _natural_scores(session, store, criteria, limit=limit))


def search_by_spi(session: Session, store: str, spi: str) -> list[NaturalPersonAnswer]:
    """``/comptes/spi``: the person with this SPI and their accounts (none: empty)."""
    spi = parse_spi(spi, field="criteresRecherche.numeroSPI")
    # Sorted here: an ORDER BY would tempt SQLite to walk the primary key instead of the
    # SPI's index.
    rows = session.execute(select(_P).where(_P.c.store == store, _P.c.spi == spi)).mappings()
    persons = sorted((_natural_from(row) for row in rows), key=lambda p: p.id)
    return _natural_answers(session, store, [(person, None) for person in persons])


# --- legal persons -----------------------------------------------------------------------------


def _legal_scores(
    session: Session,
    store: str,
    c: LegalPersonCriteria,
    *,
    among: Sequence[int] | None = None,
    minimum: float = SCORE_MINIMUM,
    limit: int = MAX_ANSWERS,
) -> list[tuple[LegalPerson, float]]:
    """The establishments matching ``c`` with their scoreAppariement, best first."""
    sql = _Sql(session)
    M = _M.c
    weighted: list[tuple[int, ColumnElement[float]]] = []
    names: list[_Named] = []

    def named(weight: int, value: str | None, key_column: Any, phon_column: Any) -> None:
        key = designation_key(value) if value else ""
        if not key:
            return
        starts = case(
            (func.substr(key_column, 1, len(key) + 1) == f"{key} ", _PREFIX_SCORE), else_=0.0
        )
        weighted.append((weight, sql.greatest(sql.sim(key_column, key), starts)))
        names.append(_Named(weight, key, key_column, phon_column))

    named(_WEIGHT_NAME, c.raison_sociale, M.raison_sociale_cle, M.raison_sociale_phon)
    named(_WEIGHT_ENSEIGNE, c.enseigne, M.enseigne_cle, M.enseigne_phon)
    sigle = person_key(c.sigle) if c.sigle else ""
    if sigle:
        weighted.append((_WEIGHT_SIGLE, _match(M.sigle_cle, sigle)))
    address = c.adresse.parts(sql, M) if c.adresse else []
    if address:
        weighted.append((_WEIGHT_ADDRESS, _mean(address)))
    category_filters: list[ColumnElement[bool]] = []
    if c.categorie_juridique:
        category = c.categorie_juridique
        category_filters.append(
            M.categorie_juridique == category
            if len(category) == 4
            else M.categorie_juridique.like(f"{category}%")
        )
    filters: list[ColumnElement[bool]] = [M.store == store, *category_filters]
    if among is not None:
        filters.append(M.id.in_(among))
    else:
        branches: list[Any] = []  # each a SELECT of candidate ids, by its own index
        if sql.postgres:
            # A designation's score depends on its key alone when it is the only criterion:
            # the first ``limit`` establishments of each key are the only ones that can be
            # answered (equal scores, then by raison sociale, SIRET, id).
            by_key = len(weighted) == 1 and len(names) == 1
            total = float(sum(w for w, _ in weighted))
            for name, keys in zip(
                names,
                _similar_designations(session, sql, store, names, total, minimum),
                strict=True,
            ):
                if keys:
                    branches.append(
                        _establishments_of(store, name.key_column, keys, category_filters, limit)
                        if by_key
                        else and_(M.store == store, name.key_column.in_(keys))
                    )
        else:
            # Sound-alikes (phonetic index) and the designations that begin with the words
            # searched (the key's B-tree as a range).
            for name in names:
                branches.append(
                    select(M.id).where(M.store == store, name.phon_column == phonetic_key(name.key))
                )
                branches.append(select(M.id).where(sql.prefix(name.key_column, name.key)))
        if sigle:
            branches.append(select(M.id).where(M.store == store, M.sigle_cle == sigle))
        if not branches:
            return []
        if len(branches) == 1 and isinstance(branches[0], ColumnElement):
            # One branch of keys: scored as the index gives the rows, not read twice.
            filters.append(branches[0])
        else:
            # The candidates of each branch by its own index, united: an OR of them would
            # let SQLite prefer walking a (store, …) index over the whole store.
            filters.append(
                M.id.in_(union(*(_ids(b) for b in branches)) if len(branches) > 1 else branches[0])
            )
    rows = _ranked(
        session,
        _M,
        store,
        _weighted(weighted),
        filters,
        ("raison_sociale", "siret", "id"),
        minimum,
        limit,
    )
    return [(_legal_from(row), score) for row, score in rows]


def _ids(branch: Any) -> Any:
    """A branch of candidates as a SELECT of ids (a condition on the establishments, or
    already a SELECT)."""
    return select(_M.c.id).where(branch) if isinstance(branch, ColumnElement) else branch


@dataclass(frozen=True, slots=True)
class _Named:
    """A designation searched (raison sociale or enseigne): its weight, key and columns."""

    weight: int
    key: str
    key_column: Any
    phon_column: Any


def _similar_designations(
    session: Session,
    sql: _Sql,
    store: str,
    names: Sequence[_Named],
    total: float,
    minimum: float,
) -> list[list[str]]:
    """For each designation searched, the keys of the vocabulary (``ficoba_designation``,
    PostgreSQL) an answer can hold: similar (``NAME_MINIMUM``, through the trigram index)
    or beginning with the words searched — one statement for all — and of those, the keys
    whose best possible score (every other criterion matching) reaches ``minimum``: a
    multi-holding's 80 asks for a close name, not every association of the file."""
    if not names:
        return []
    V = _V.c
    columns: list[ColumnElement[Any]] = [V.cle]
    conditions: list[ColumnElement[bool]] = []
    for name in names:
        similar = sql.similar(V.cle, name.key)
        begins = V.cle.like(f"{name.key}%")
        columns += [sql.sim(V.cle, name.key), or_(similar, begins)]
        conditions += [similar, begins]
    rows = session.execute(select(*columns).where(V.store == store, or_(*conditions))).all()
    out: list[list[str]] = []
    for i, name in enumerate(names):
        kept = []
        for row in rows:
            key, similarity, candidate = row[0], row[1 + 2 * i], row[2 + 2 * i]
            if not candidate:
                continue
            part = similarity or 0.0
            if key.startswith(f"{name.key} "):
                part = max(part, _PREFIX_SCORE)
            best = 100.0 * (name.weight * part + total - name.weight) / total
            if best >= minimum - _BOUND_MARGIN:
                kept.append(key)
        out.append(sorted(kept))
    return out


def _establishments_of(
    store: str,
    key_column: Any,
    keys: Sequence[str],
    filters: Sequence[ColumnElement[bool]],
    limit: int,
) -> Any:
    """The ids of the first ``limit`` establishments of each key (by raison sociale,
    SIRET, id: ``ix_ficoba_pm_raison_sociale`` / ``ix_ficoba_pm_enseigne``)."""
    M = _M.c
    wanted = values(sql_column("cle", String(200)), name="cles").data([(key,) for key in keys])
    first = (
        select(M.id)
        .where(M.store == store, key_column == wanted.c.cle, *filters)
        .order_by(M.raison_sociale, M.siret, M.id)
        .limit(limit)
        .lateral("premiers")
    )
    return select(first.c.id).select_from(wanted).join(first, true())


def _legal_answers(
    session: Session, store: str, scored: Sequence[tuple[LegalPerson, float | None]]
) -> list[LegalPersonAnswer]:
    ids = [person.id for person, _ in scored]
    accounts = _Loader(session, store).accounts_of(natural=False, person_ids=ids)
    return [
        LegalPersonAnswer(person, score, tuple(accounts[person.id])) for person, score in scored
    ]


def search_legal_persons(
    session: Session, store: str, criteria: LegalPersonCriteria, *, limit: int = MAX_ANSWERS
) -> list[LegalPersonAnswer]:
    """``/comptes/perPro``: the establishments ``criteria`` describe, best
    ``scoreAppariement`` first, with their accounts."""
    return _legal_answers(session, store, _legal_scores(session, store, criteria, limit=limit))


def _establishments(
    session: Session, store: str, siret: str | None, siren: str | None
) -> list[LegalPerson]:
    condition = _M.c.siret == siret if siret else _M.c.siren == siren
    rows = session.execute(select(_M).where(_M.c.store == store, condition)).mappings()
    return sorted((_legal_from(row) for row in rows), key=lambda p: p.siret)  # (see by SPI)


def search_by_siret_siren(
    session: Session, store: str, *, siret: str | None = None, siren: str | None = None
) -> list[LegalPersonAnswer]:
    """``/comptes/siretSiren``: the establishment of this SIRET, or every establishment of
    this SIREN, with their accounts."""
    siret, siren = parse_siren_siret(siret, siren)
    persons = _establishments(session, store, siret, siren)
    return _legal_answers(session, store, [(person, None) for person in persons])


# --- accounts --------------------------------------------------------------------------------


def search_by_iban(session: Session, store: str, iban: str) -> Account | None:
    """``/comptes/numCpte``: the account (open or closed) with this IBAN and everyone who
    has a capacity on it; None when the file does not know it."""
    return _Loader(session, store).account_by_iban(parse_iban(iban))


def _check(
    session: Session,
    store: str,
    iban: str,
    scores: Callable[[Account], Sequence[float]],
) -> IbanCheck:
    iban = parse_iban(iban)
    account = _Loader(session, store).account_by_iban(iban)
    if account is None:
        return IbanCheck(iban, None, False)
    best = max(scores(account), default=None)
    return IbanCheck(iban, account, best is not None and best >= HOLDER_MINIMUM, best)


def verify_iban_natural_person(
    session: Session, store: str, iban: str, criteria: NaturalPersonCriteria
) -> IbanCheck:
    """``/comptes/verifIban``, ``recherchePP``: is the holder (or a co-holder) of this IBAN
    the natural person described? Concordant at ``HOLDER_MINIMUM`` and above."""

    def scores(account: Account) -> list[float]:
        ids = [p.id for p in account.holders(*QUALITES_TITULAIRE) if isinstance(p, NaturalPerson)]
        if not ids:
            return []
        found = _natural_scores(session, store, criteria, among=ids, minimum=0.0)
        return [score for _person, score in found]

    return _check(session, store, iban, scores)


def verify_iban_legal_person(
    session: Session, store: str, iban: str, criteria: LegalPersonCriteria
) -> IbanCheck:
    """``/comptes/verifIban``, ``recherchePM``: is the holder of this IBAN the legal
    person described?"""

    def scores(account: Account) -> list[float]:
        ids = [p.id for p in account.holders(*QUALITES_TITULAIRE) if isinstance(p, LegalPerson)]
        if not ids:
            return []
        found = _legal_scores(session, store, criteria, among=ids, minimum=0.0)
        return [score for _person, score in found]

    return _check(session, store, iban, scores)


def verify_iban_siret(
    session: Session,
    store: str,
    iban: str,
    *,
    siret: str | None = None,
    siren: str | None = None,
) -> IbanCheck:
    """``/comptes/verifIban``, ``rechercheSirenSiret``: is the holder of this IBAN this
    establishment (SIRET), or an establishment of this company (SIREN)?"""
    siret, siren = parse_siren_siret(siret, siren)

    def scores(account: Account) -> list[float]:
        return [
            100.0
            for p in account.holders(*QUALITES_TITULAIRE)
            if isinstance(p, LegalPerson) and (p.siret == siret if siret else p.siren == siren)
        ]

    return _check(session, store, iban, scores)


# --- multi-holding -----------------------------------------------------------------------------


def _open_accounts(
    session: Session, store: str, *, natural: bool, person_ids: Sequence[int], nature: int | None
) -> tuple[Account, ...]:
    """The open accounts of ``nature`` (every regulated one when None) the persons hold
    (holder or co-holder), by nature then opening date."""
    if not person_ids:
        return ()
    statements = _statements()
    accounts = _Loader(session, store).load(
        statements.open_of_natural if natural else statements.open_of_legal,
        persons=list(person_ids),
        natures=[nature] if nature is not None else sorted(NATURES_REGLEMENTEES),
    )
    return tuple(sorted(accounts.values(), key=lambda a: (a.nature, a.date_ouverture, a.id)))


def multi_holding_natural_person(
    session: Session, store: str, criteria: NaturalPersonCriteria, nature: int | None = None
) -> MultiHolding:
    """``/comptes/multiDet``, ``recherchePP``: the open accounts of ``nature`` (every
    regulated nature when None) held by the person described (score ``HOLDER_MINIMUM``)."""
    persons = [p for p, _ in _natural_scores(session, store, criteria, minimum=HOLDER_MINIMUM)]
    ids = [p.id for p in persons]
    accounts = _open_accounts(session, store, natural=True, person_ids=ids, nature=nature)
    return MultiHolding(tuple(persons), accounts)


def multi_holding_legal_person(
    session: Session, store: str, criteria: LegalPersonCriteria, nature: int | None = None
) -> MultiHolding:
    """``/comptes/multiDet``, ``recherchePM``: the same for the legal person described."""
    persons = [p for p, _ in _legal_scores(session, store, criteria, minimum=HOLDER_MINIMUM)]
    ids = [p.id for p in persons]
    accounts = _open_accounts(session, store, natural=False, person_ids=ids, nature=nature)
    return MultiHolding(tuple(persons), accounts)


def multi_holding_siret(
    session: Session,
    store: str,
    *,
    siret: str | None = None,
    siren: str | None = None,
    nature: int | None = None,
) -> MultiHolding:
    """``/comptes/multiDet``, ``rechercheSIRENSIRET``: the same for an establishment
    (SIRET) or every establishment of a company (SIREN)."""
    siret, siren = parse_siren_siret(siret, siren)
    persons = _establishments(session, store, siret, siren)
    ids = [p.id for p in persons]
    accounts = _open_accounts(session, store, natural=False, person_ids=ids, nature=nature)
    return MultiHolding(tuple(persons), accounts)
