"""Loads a provider extract of persons (R2P, état civil) into a store, all or nothing.

One JSON object per line (format in ``docs/catalogue.md``)::

    {"spi": "1234567890123", "sexe": "F", "nomNaissance": "DUPONT", "nomUsage": "MARTIN",
     "prenoms": "MARIE CLAIRE", "dateNaissance": "1980-05-12", "codePaysNaissance": "99100",
     "codeDepartementNaissance": "75", "codeCommuneNaissance": "75118",
     "lieuNaissance": "PARIS 18E ARRONDISSEMENT",
     "adresse": {"cdPays": "99100", "lbPays": "FRANCE", "cdDepartement": "16", …},
     "communicable": true}

``adresse`` is R2P's ``AdresseReponse`` as the API answers it (every value a string, one that
does not exist omitted). Names are stored in the provider's canonical form (upper case, no
accents: what the searches compare). Born in France (``99100``), the birth department (or
overseas collectivity) and commune (COG, in that department) are required; abroad, there are
none — but for an overseas collectivity, which has its own country code.

Every line is validated as the IR import does (``guichet.records.importer``: same file
reading, same line errors); one bad line and nothing is loaded. A person of the file
replaces the one with the same SPI in the store.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
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

from guichet.records.geography import DEPARTMENTS, FRANCE, TOMS, department_of
from guichet.records.importer import (
    STORES,
    ImportRejected,
    LineError,
    describe_error,
    load_json_line,
    read_lines,
)
from guichet.records.ir_record import Spi
from guichet.records.models import Person
from guichet.records.names import canonical_name

log = logging.getLogger(__name__)

_Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
_Code = Annotated[str, Field(pattern=r"^[0-9A-Z]{1,5}$")]


class AdresseReponse(BaseModel):
    """R2P's ``AdresseReponse``: every value a string; ``cdPays`` required."""

    model_config = ConfigDict(extra="forbid", strict=True)

    cdPays: Annotated[str, Field(pattern=r"^\d{5}$")]
    lbPays: _Text | None = None
    cdDepartement: Annotated[str, Field(pattern=r"^(\d{2}|2[AB]|97\d)$")] | None = None
    lbDepartement: _Text | None = None
    cdTOM: Annotated[str, Field(pattern=r"^9[78]\d$")] | None = None
    lbTOM: _Text | None = None
    cdCommune: Annotated[str, Field(pattern=r"^[0-9]{3}$")] | None = None
    lbCommune: _Text | None = None
    cdVoie: _Code | None = None
    lbVoie: _Text | None = None
    numeroVoie: Annotated[str, Field(pattern=r"^\d{1,5}$")] | None = None
    indiceDeRepetition: Annotated[str, Field(pattern=r"^[A-Z]{1,3}$")] | None = None


def _no_null(raw: Any) -> Any:
    if isinstance(raw, dict):
        for key, value in raw.items():
            if value is None:
                raise ValueError(f"{key} : null refusé (une valeur qui n'existe pas est omise)")
    return raw


class PersonLine(BaseModel):
    """One person as R2P knows them."""

    model_config = ConfigDict(extra="forbid", strict=True)

    spi: Spi
    sexe: Literal["M", "F"]
    nomNaissance: _Text
    nomUsage: _Text | None = None
    prenoms: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    dateNaissance: Annotated[str, Field(pattern=r"^\d{4}-\d{2}-\d{2}$")]
    codePaysNaissance: Annotated[str, Field(pattern=r"^\d{5}$")]
    codeDepartementNaissance: Annotated[str, Field(pattern=r"^(\d{2}|2[AB]|9[78]\d)$")] | None = (
        None
    )
    codeCommuneNaissance: Annotated[str, Field(pattern=r"^(\d{5}|2[AB]\d{3})$")] | None = None
    lieuNaissance: _Text | None = None
    adresse: AdresseReponse
    communicable: bool = True

    _null_refused = model_validator(mode="before")(_no_null)

    @model_validator(mode="after")
    def _consistent(self) -> PersonLine:
        try:
            born = dt.date.fromisoformat(self.dateNaissance)
        except ValueError:
            raise ValueError("dateNaissance : date inexistante (AAAA-MM-JJ)") from None
        if not dt.date(1850, 1, 1) <= born <= dt.datetime.now(dt.UTC).date():
            raise ValueError("dateNaissance : hors des dates possibles")
        dept, commune = self.codeDepartementNaissance, self.codeCommuneNaissance
        if dept is not None and dept not in DEPARTMENTS and dept not in TOMS:
            raise ValueError(f"codeDepartementNaissance : département inconnu ({dept})")
        if self.codePaysNaissance == FRANCE and (dept is None or commune is None):
            raise ValueError(
                "né en France (99100) : codeDepartementNaissance et codeCommuneNaissance requis"
            )
        if self.codePaysNaissance != FRANCE and dept is not None and dept not in TOMS:
            raise ValueError(
                "né hors de France : pas de codeDepartementNaissance (sauf collectivité "
                "d'outre-mer)"
            )
        if commune is not None and (dept is None or department_of(commune) != dept):
            raise ValueError(
                "codeCommuneNaissance : la commune n'est pas dans codeDepartementNaissance"
            )
        return self


@dataclass(frozen=True, slots=True)
class PersonsReport:
    store: str
    persons: int
    replaced: int  # persons of the store the file replaced


def parse_persons(lines: list[str]) -> tuple[list[PersonLine], list[LineError]]:
    """Every valid person, and every error with its 1-based line number (blank lines
    skipped, an SPI given twice refused)."""
    persons: list[PersonLine] = []
    errors: list[LineError] = []
    seen: dict[str, int] = {}
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        raw, error = load_json_line(text)
        if error is not None:
            errors.append(LineError(number, error))
            continue
        try:
            person = PersonLine.model_validate(raw)
        except ValidationError as exc:
            errors.append(LineError(number, describe_error(exc)))
            continue
        if person.spi in seen:
            errors.append(LineError(number, f"doublon de la ligne {seen[person.spi]} (spi)"))
            continue
        seen[person.spi] = number
        persons.append(person)
    return persons, errors


def _row(store: str, p: PersonLine) -> dict[str, Any]:
    return {
        "store": store,
        "spi": p.spi,
        "sexe": p.sexe,
        "nom_naissance": canonical_name(p.nomNaissance),
        "nom_usage": canonical_name(p.nomUsage) if p.nomUsage else None,
        "prenoms": canonical_name(p.prenoms),
        "date_naissance": dt.date.fromisoformat(p.dateNaissance),
        "code_pays_naissance": p.codePaysNaissance,
        "code_dept_naissance": p.codeDepartementNaissance,
        "code_commune_naissance": p.codeCommuneNaissance,
        "lieu_naissance": canonical_name(p.lieuNaissance) if p.lieuNaissance else None,
        "adresse": p.adresse.model_dump(exclude_none=True),
        "communicable": p.communicable,
    }


def import_r2p(
    session_factory: sessionmaker[Session], path: Path, *, store: str = "production"
) -> PersonsReport:
    """Validate the whole file, then replace its persons in ``store`` in one transaction."""
    if store not in STORES:
        raise ValueError(f"unknown store {store!r}")
    persons, errors = parse_persons(read_lines(path))
    if errors:
        raise ImportRejected(errors)
    rows = [_row(store, p) for p in persons]
    table = cast(Table, Person.__table__)
    spis = [p.spi for p in persons]
    with session_factory() as session, session.begin():
        replaced = 0
        for start in range(0, len(spis), 500):
            chunk = spis[start : start + 500]
            result = session.execute(
                delete(table).where(table.c.store == store, table.c.spi.in_(chunk))
            )
            replaced += int(getattr(result, "rowcount", 0) or 0)
        session.execute(insert(table), rows)
    log.info("records:import:persons store=%s persons=%d replaced=%d", store, len(rows), replaced)
    return PersonsReport(store=store, persons=len(rows), replaced=replaced)
