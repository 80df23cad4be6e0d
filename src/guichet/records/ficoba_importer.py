"""Loads a provider extract of the bank-accounts file (FICOBA) into a store, all or nothing.

The extract is the whole file: it **replaces** every FICOBA row of the store (banks,
branches, persons, accounts, holdings, the names' vocabulary). One JSON object per line
(format in ``docs/catalogue.md``), told apart by ``"ressource"``: ``etablissement``,
``guichet``, ``personnePhysique``, ``personneMorale``, ``compte`` (with its
``detenteurs``). A line refers to others by their codes (a branch to its bank, an account to
its branch) and ids (a holder to a person), in any order; a reference to nothing is an error
at the referring line.

Every line is validated as the other imports do (``guichet.records.importer``: the same file
reading, the same line errors), the codes against guichet's coding of what the provider's
document leaves open (``guichet.records.ficoba``: natures, types, characteristics, reasons,
capacities, formats); the keys the searches compare are computed here, as the sandbox's
writer computes them.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, cast

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)
from sqlalchemy import Table, delete, insert
from sqlalchemy.orm import Session, sessionmaker
from stdnum import iban as stdnum_iban
from stdnum.fr import siret as stdnum_siret

from guichet.records.ficoba import (
    CARACTERISTIQUES,
    FORMATS,
    MOTIFS_CLOTURE,
    MOTIFS_OUVERTURE,
    NATURE_COFFRE,
    NATURES,
    QUALITES,
    TYPES,
    FicobaCompte,
    FicobaDetention,
    FicobaEtablissement,
    FicobaGuichet,
    FicobaNom,
    FicobaPersonneMorale,
    FicobaPersonnePhysique,
    canonical,
    designation_key,
    person_key,
    phonetic_key,
    words_key,
)
from guichet.records.geography import FRANCE
from guichet.records.importer import (
    STORES,
    ImportRejected,
    LineError,
    describe_error,
    load_json_line,
    read_lines,
)
from guichet.records.ir_record import Spi

log = logging.getLogger(__name__)

_CHUNK = 1000
_Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
_Long = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
_Code5 = Annotated[str, Field(pattern=r"^[0-9]{5}$")]
_Id = Annotated[int, Field(ge=1, le=9_000_000_000_000_000)]
_Date = Annotated[str, Field(pattern=r"^\d{4}-\d{2}-\d{2}$")]


def _date(value: str | None, name: str) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{name} : date inexistante (AAAA-MM-JJ)") from None


def _one_of(value: Any, allowed: Any, name: str) -> None:
    if value is not None and value not in allowed:
        raise ValueError(
            f"{name} : valeur inconnue ({value}) ; parmi {', '.join(map(str, allowed))}"
        )


class _Line(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    @model_validator(mode="before")
    @classmethod
    def _no_null(cls, raw: Any) -> Any:
        if isinstance(raw, dict):
            for key, value in raw.items():
                if value is None:
                    raise ValueError(f"{key} : null refusé (une valeur qui n'existe pas est omise)")
        return raw


class Adresse(_Line):
    """The file's address of a person (the provider's ``Adresse``)."""

    codePays: Annotated[str, Field(pattern=r"^\d{5}$")]
    codeDepartement: Annotated[str, Field(pattern=r"^(\d{2}|2[AB]|9[78]\d)$")] | None = None
    codeCommune: Annotated[str, Field(pattern=r"^\d{3}$")] | None = None
    libelleCommune: _Text | None = None
    codePostal: Annotated[str, Field(pattern=r"^[0-9A-Z -]{1,10}$")] | None = None
    natureVoie: Annotated[str, Field(pattern=r"^[A-Z]{1,4}$")] | None = None
    libelleVoie: _Text | None = None
    numeroVoie: Annotated[str, Field(pattern=r"^\d{1,5}$")] | None = None
    indiceRepetition: Annotated[str, Field(pattern=r"^[BTQ]$")] | None = None
    complement: _Text | None = None
    codifiee: bool = True

    @model_validator(mode="after")
    def _france(self) -> Adresse:
        if self.codePays == FRANCE and (self.codeDepartement is None or self.codeCommune is None):
            raise ValueError("adresse en France : codeDepartement et codeCommune requis")
        return self

    def columns(self) -> dict[str, Any]:
        return {
            "adr_code_pays": self.codePays,
            "adr_code_departement": self.codeDepartement,
            "adr_code_commune": self.codeCommune,
            "adr_libelle_commune": canonical(self.libelleCommune) if self.libelleCommune else None,
            "adr_code_postal": self.codePostal,
            "adr_nature_voie": self.natureVoie,
            "adr_libelle_voie": canonical(self.libelleVoie) if self.libelleVoie else None,
            "adr_numero_voie": self.numeroVoie,
            "adr_indice_repetition": self.indiceRepetition,
            "adr_complement": canonical(self.complement) if self.complement else None,
            "adr_codifiee": self.codifiee,
        }


class EtablissementLine(_Line):
    ressource: Literal["etablissement"]
    code: _Code5
    libelle: _Text
    bic: Annotated[str, Field(pattern=r"^[A-Z]{4}[A-Z]{2}[A-Z0-9]{2}([A-Z0-9]{3})?$")]


class GuichetLine(_Line):
    ressource: Literal["guichet"]
    etablissement: _Code5
    code: _Code5
    libelle: _Text
    adresse: Annotated[
        list[Annotated[str, StringConstraints(min_length=1, max_length=100)]],
        Field(min_length=1, max_length=4),
    ]


class PersonnePhysiqueLine(_Line):
    ressource: Literal["personnePhysique"]
    id: _Id
    spi: Spi | None = None
    sexe: Literal["M", "F"]
    nomNaissance: _Text
    nomUsage: _Text | None = None
    prenoms: _Long
    dateNaissance: _Date
    codePaysNaissance: Annotated[str, Field(pattern=r"^\d{5}$")]
    codeDepartementNaissance: Annotated[str, Field(pattern=r"^(\d{2}|2[AB]|9[78]\d)$")] | None = (
        None
    )
    codeCommuneNaissance: Annotated[str, Field(pattern=r"^\d{3}$")] | None = None
    libelleCommuneNaissance: _Text | None = None
    dateDeces: _Date | None = None
    adresse: Adresse

    @model_validator(mode="after")
    def _dates(self) -> PersonnePhysiqueLine:
        born = _date(self.dateNaissance, "dateNaissance")
        died = _date(self.dateDeces, "dateDeces")
        assert born is not None
        if died is not None and died < born:
            raise ValueError("dateDeces : avant dateNaissance")
        if self.codePaysNaissance == FRANCE and self.codeDepartementNaissance is None:
            raise ValueError("né en France (99100) : codeDepartementNaissance requis")
        return self


class PersonneMoraleLine(_Line):
    ressource: Literal["personneMorale"]
    id: _Id
    siret: Annotated[str, Field(pattern=r"^\d{14}$")]
    raisonSociale: _Long
    sigle: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)] | None
    ) = None
    enseigne: _Long | None = None
    categorieJuridique: Annotated[str, Field(pattern=r"^\d{4}$")]
    adresse: Adresse

    @model_validator(mode="after")
    def _siret(self) -> PersonneMoraleLine:
        if not stdnum_siret.is_valid(self.siret):
            raise ValueError("siret : SIRET invalide (clé de Luhn)")
        return self


class Detenteur(_Line):
    qualite: str
    personnePhysique: _Id | None = None
    personneMorale: _Id | None = None
    dateDebut: _Date | None = None
    dateFin: _Date | None = None

    @model_validator(mode="after")
    def _one_person(self) -> Detenteur:
        _one_of(self.qualite, QUALITES, "qualite")
        if (self.personnePhysique is None) == (self.personneMorale is None):
            raise ValueError("une personne : personnePhysique ou personneMorale, l'une des deux")
        start, end = _date(self.dateDebut, "dateDebut"), _date(self.dateFin, "dateFin")
        if start is not None and end is not None and end < start:
            raise ValueError("dateFin : avant dateDebut")
        return self


class CompteLine(_Line):
    ressource: Literal["compte"]
    id: _Id
    iban: Annotated[str, Field(pattern=r"^[A-Z]{2}\d{2}[0-9A-Z]{1,30}$")] | None = None
    etablissement: _Code5
    guichet: _Code5
    numero: Annotated[str, Field(pattern=r"^[0-9A-Z]{1,20}$")]
    format: str
    nature: int
    type: int
    caracteristique: int
    devise: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "EUR"
    dateOuverture: _Date
    dateFiscale: _Date
    motifOuverture: str
    dateCloture: _Date | None = None
    motifCloture: str | None = None
    resident: bool = True
    succession: bool = False
    detenteurs: Annotated[list[Detenteur], Field(min_length=1, max_length=50)]

    @model_validator(mode="after")
    def _coherent(self) -> CompteLine:
        _one_of(self.format, FORMATS, "format")
        _one_of(self.nature, NATURES, "nature")
        _one_of(self.type, TYPES, "type")
        _one_of(self.caracteristique, CARACTERISTIQUES, "caracteristique")
        _one_of(self.motifOuverture, MOTIFS_OUVERTURE, "motifOuverture")
        _one_of(self.motifCloture, MOTIFS_CLOTURE, "motifCloture")
        opened = _date(self.dateOuverture, "dateOuverture")
        _date(self.dateFiscale, "dateFiscale")
        closed = _date(self.dateCloture, "dateCloture")
        assert opened is not None
        if closed is not None and closed < opened:
            raise ValueError("dateCloture : avant dateOuverture")
        if (closed is None) != (self.motifCloture is None):
            raise ValueError("motifCloture : donné avec dateCloture, et seulement avec elle")
        if self.nature == NATURE_COFFRE:
            if self.iban is not None:
                raise ValueError("iban : un coffre-fort n'a pas d'IBAN")
        elif self.iban is None:
            raise ValueError("iban : requis (sauf pour un coffre-fort)")
        elif not stdnum_iban.is_valid(self.iban):
            raise ValueError("iban : IBAN invalide (clé)")
        elif self.iban.startswith("FR") and (
            self.iban[4:9] != self.etablissement
            or self.iban[9:14] != self.guichet
            or self.iban[14:25] != self.numero
        ):
            raise ValueError("iban : ne correspond pas à etablissement, guichet et numero")
        return self


_KINDS: dict[str, type[_Line]] = {
    "etablissement": EtablissementLine,
    "guichet": GuichetLine,
    "personnePhysique": PersonnePhysiqueLine,
    "personneMorale": PersonneMoraleLine,
    "compte": CompteLine,
}


@dataclass
class BankExtract:
    """The valid lines of a file, by kind, with their line numbers."""

    etablissements: list[tuple[int, EtablissementLine]] = field(default_factory=list)
    guichets: list[tuple[int, GuichetLine]] = field(default_factory=list)
    physiques: list[tuple[int, PersonnePhysiqueLine]] = field(default_factory=list)
    morales: list[tuple[int, PersonneMoraleLine]] = field(default_factory=list)
    comptes: list[tuple[int, CompteLine]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class BankFileReport:
    store: str
    etablissements: int
    guichets: int
    personnes_physiques: int
    personnes_morales: int
    comptes: int
    detentions: int


def _unique(
    seen: dict[Any, int], key: Any, number: int, what: str, errors: list[LineError]
) -> bool:
    if key in seen:
        errors.append(LineError(number, f"doublon de la ligne {seen[key]} ({what})"))
        return False
    seen[key] = number
    return True


def _declared_key(raw: dict[str, Any]) -> Any:
    kind = raw.get("ressource")
    if kind == "etablissement":
        return ("etab", raw.get("code"))
    if kind == "guichet":
        return ("guichet", raw.get("etablissement"), raw.get("code"))
    if kind == "personnePhysique":
        return ("pp", raw.get("id"))
    if kind == "personneMorale":
        return ("pm", raw.get("id"))
    return None


def parse_bank_file(lines: list[str]) -> tuple[BankExtract, list[LineError]]:
    """Every valid line by kind, and every error with its line number: each line alone,
    then what lines say of each other (duplicates, references)."""
    extract = BankExtract()
    errors: list[LineError] = []
    seen: dict[Any, int] = {}
    # What each line declares, valid or not: a reference to a bad line is not an error of
    # its own (the bad line is reported).
    declared: set[Any] = set()
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        raw, error = load_json_line(text)
        if error is not None:
            errors.append(LineError(number, error))
            continue
        kind = raw.get("ressource")
        declared.add(_declared_key(raw))
        model = _KINDS.get(kind) if isinstance(kind, str) else None
        if model is None:
            names = ", ".join(_KINDS)
            errors.append(LineError(number, f"ressource: inconnue ({kind!r}) : {names}"))
            continue
        try:
            row = model.model_validate(raw)
        except ValidationError as exc:
            errors.append(LineError(number, describe_error(exc)))
            continue
        if isinstance(row, EtablissementLine):
            if _unique(seen, ("etab", row.code), number, "etablissement", errors):
                extract.etablissements.append((number, row))
        elif isinstance(row, GuichetLine):
            key = ("guichet", row.etablissement, row.code)
            if _unique(seen, key, number, "etablissement, code", errors):
                extract.guichets.append((number, row))
        elif isinstance(row, PersonnePhysiqueLine):
            if _unique(seen, ("pp", row.id), number, "personnePhysique id", errors):
                extract.physiques.append((number, row))
        elif isinstance(row, PersonneMoraleLine):
            if _unique(seen, ("pm", row.id), number, "personneMorale id", errors) and _unique(
                seen, ("siret", row.siret), number, "siret", errors
            ):
                extract.morales.append((number, row))
        else:
            compte = cast(CompteLine, row)
            if (
                _unique(seen, ("compte", compte.id), number, "compte id", errors)
                and _unique(
                    seen,
                    ("numero", compte.etablissement, compte.guichet, compte.numero),
                    number,
                    "etablissement, guichet, numero",
                    errors,
                )
                and (
                    compte.iban is None
                    or _unique(seen, ("iban", compte.iban), number, "iban", errors)
                )
            ):
                extract.comptes.append((number, compte))
    errors += _references(extract, declared)
    return extract, sorted(errors, key=lambda e: e.line)


def _references(extract: BankExtract, seen: set[Any]) -> list[LineError]:
    errors = []
    for number, g in extract.guichets:
        if ("etab", g.etablissement) not in seen:
            errors.append(LineError(number, f"etablissement : {g.etablissement} absent du fichier"))
    for number, c in extract.comptes:
        if ("guichet", c.etablissement, c.guichet) not in seen:
            errors.append(
                LineError(number, f"guichet : {c.etablissement} {c.guichet} absent du fichier")
            )
        for i, d in enumerate(c.detenteurs):
            for kind, key, ident in (
                ("personnePhysique", "pp", d.personnePhysique),
                ("personneMorale", "pm", d.personneMorale),
            ):
                if ident is not None and (key, ident) not in seen:
                    where = f"detenteurs.{i}.{kind}"
                    errors.append(LineError(number, f"{where} : {ident} absente du fichier"))
    return errors


def _rows(store: str, extract: BankExtract) -> dict[type[Any], list[dict[str, Any]]]:
    rows: dict[type[Any], list[dict[str, Any]]] = {
        FicobaEtablissement: [
            {"store": store, "code": e.code, "libelle": canonical(e.libelle), "bic": e.bic}
            for _, e in extract.etablissements
        ],
        FicobaGuichet: [
            {
                "store": store,
                "etablissement": g.etablissement,
                "code": g.code,
                "libelle": canonical(g.libelle),
                "adresse": [canonical(line) for line in g.adresse],
            }
            for _, g in extract.guichets
        ],
    }
    physiques: list[dict[str, Any]] = []
    noms: dict[str, str] = {}
    for _, p in extract.physiques:
        nom = canonical(p.nomNaissance)
        usage = canonical(p.nomUsage) if p.nomUsage else None
        prenoms = canonical(p.prenoms)
        for name in filter(None, (nom, usage)):
            noms[person_key(name)] = phonetic_key(name)
        physiques.append(
            {
                "store": store,
                "id": p.id,
                "spi": p.spi,
                "sexe": p.sexe,
                "nom_naissance": nom,
                "nom_usage": usage,
                "prenoms": prenoms,
                "nom_cle": person_key(nom),
                "nom_usage_cle": person_key(usage) if usage else None,
                "prenoms_cle": words_key(prenoms),
                "prenom_cle": words_key(prenoms.split()[0]),
                "date_naissance": _date(p.dateNaissance, "dateNaissance"),
                "code_pays_naissance": p.codePaysNaissance,
                "code_departement_naissance": p.codeDepartementNaissance,
                "code_commune_naissance": p.codeCommuneNaissance,
                "libelle_commune_naissance": (
                    canonical(p.libelleCommuneNaissance) if p.libelleCommuneNaissance else None
                ),
                "date_deces": _date(p.dateDeces, "dateDeces"),
                **p.adresse.columns(),
            }
        )
    rows[FicobaPersonnePhysique] = physiques
    rows[FicobaNom] = [
        {"store": store, "cle": key, "phon": phon} for key, phon in sorted(noms.items()) if key
    ]
    morales = []
    for _, m in extract.morales:
        name = canonical(m.raisonSociale)
        sign = canonical(m.enseigne) if m.enseigne else None
        acronym = canonical(m.sigle) if m.sigle else None
        morales.append(
            {
                "store": store,
                "id": m.id,
                "siren": m.siret[:9],
                "siret": m.siret,
                "raison_sociale": name,
                "sigle": acronym,
                "enseigne": sign,
                "categorie_juridique": m.categorieJuridique,
                "raison_sociale_cle": designation_key(name),
                "sigle_cle": person_key(acronym) if acronym else None,
                "enseigne_cle": designation_key(sign) if sign else None,
                "raison_sociale_phon": phonetic_key(designation_key(name)),
                "enseigne_phon": phonetic_key(designation_key(sign)) if sign else None,
                **m.adresse.columns(),
            }
        )
    rows[FicobaPersonneMorale] = morales
    comptes: list[dict[str, Any]] = []
    detentions: list[dict[str, Any]] = []
    for _, c in extract.comptes:
        comptes.append(
            {
                "store": store,
                "id": c.id,
                "iban": c.iban,
                "etablissement": c.etablissement,
                "guichet": c.guichet,
                "numero": c.numero,
                "format": c.format,
                "nature": c.nature,
                "type": c.type,
                "caracteristique": c.caracteristique,
                "devise": c.devise,
                "date_ouverture": _date(c.dateOuverture, "dateOuverture"),
                "date_fiscale": _date(c.dateFiscale, "dateFiscale"),
                "motif_ouverture": c.motifOuverture,
                "date_cloture": _date(c.dateCloture, "dateCloture"),
                "motif_cloture": c.motifCloture,
                "resident": c.resident,
                "succession": c.succession,
            }
        )
        for d in c.detenteurs:
            detentions.append(
                {
                    "store": store,
                    "id": len(detentions) + 1,
                    "compte_id": c.id,
                    "personne_physique_id": d.personnePhysique,
                    "personne_morale_id": d.personneMorale,
                    "qualite": d.qualite,
                    "date_debut": _date(d.dateDebut, "dateDebut"),
                    "date_fin": _date(d.dateFin, "dateFin"),
                }
            )
    rows[FicobaCompte] = comptes
    rows[FicobaDetention] = detentions
    return rows


_ORDER: tuple[type[Any], ...] = (
    FicobaEtablissement,
    FicobaGuichet,
    FicobaPersonnePhysique,
    FicobaNom,
    FicobaPersonneMorale,
    FicobaCompte,
    FicobaDetention,
)


def import_ficoba(
    session_factory: sessionmaker[Session], path: Path, *, store: str = "production"
) -> BankFileReport:
    """Validate the whole file, then replace the store's bank-accounts file with it, in one
    transaction."""
    if store not in STORES:
        raise ValueError(f"unknown store {store!r}")
    extract, errors = parse_bank_file(read_lines(path))
    if errors:
        raise ImportRejected(errors)
    rows = _rows(store, extract)
    with session_factory() as session, session.begin():
        for model in reversed(_ORDER):
            table = cast(Table, model.__table__)
            session.execute(delete(table).where(table.c.store == store))
        for model in _ORDER:
            table = cast(Table, model.__table__)
            batch = rows[model]
            for start in range(0, len(batch), _CHUNK):
                session.execute(insert(table), batch[start : start + _CHUNK])
    report = BankFileReport(
        store=store,
        etablissements=len(rows[FicobaEtablissement]),
        guichets=len(rows[FicobaGuichet]),
        personnes_physiques=len(rows[FicobaPersonnePhysique]),
        personnes_morales=len(rows[FicobaPersonneMorale]),
        comptes=len(rows[FicobaCompte]),
        detentions=len(rows[FicobaDetention]),
    )
    log.info(
        "records:import:ficoba store=%s comptes=%d detentions=%d",
        store,
        report.comptes,
        report.detentions,
    )
    return report
