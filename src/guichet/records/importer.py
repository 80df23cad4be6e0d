"""Loads a provider extract (JSON Lines) into a store, all or nothing.

One JSON object per line (format in ``docs/catalogue.md``), of one of three kinds, told
apart by ``"ressource"``:

- absent or ``"ir"``: an IR situation ``{"spi", "annrev", "rang", "foyer", "record"}`` and,
  optionally, the lines of its notice ``"facture"``;
- ``"ifi"``: an IFI declaration ``{"spi", "annrev", "foyer", "record"}``, the record being
  ``{"indicateurIfiIsf"}``;
- ``"th"``: a housing-tax assessment ``{"spi", "annee", "avis", "regimeTax", "entete",
  "locaux"}``.

Records have the provider's shapes (``guichet.records.ir_record``): a value that does not
exist is omitted, ``null`` being refused but for the four nullable IR values; an IR
record's ``spiDec1``/``spiDec2``, when given, include the line's ``spi``, and its period
lies in ``annrev``.

Every line is validated before anything is written; one bad line and nothing of the file
is loaded. What the file holds for a (spi, year) pair replaces everything of the same kind
the store held for that pair.
"""

from __future__ import annotations

import codecs
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy import Table, and_, bindparam, delete, insert
from sqlalchemy.orm import Session, sessionmaker

from guichet.records.ir_record import (
    Facture,
    IfiRecord,
    IrRecord,
    Spi,
    ThHeading,
    ThLocalRecord,
)
from guichet.records.models import IfiSituation, IrSituation, ThAvis, ThLocal

log = logging.getLogger(__name__)

STORES = ("sandbox", "production")


Year = Annotated[int, Field(ge=1000, le=9999)]
Foyer = Annotated[str, Field(min_length=1, max_length=32)]


class ImportLine(BaseModel):
    """An IR situation, with the lines of its notice when one was issued."""

    model_config = ConfigDict(extra="forbid", strict=True)

    ressource: Literal["ir"] = "ir"
    spi: Spi
    annrev: Year
    rang: Annotated[int, Field(ge=1, le=99)] = 1
    foyer: Foyer
    record: IrRecord
    facture: Facture | None = None

    @model_validator(mode="after")
    def _record_matches_the_line(self) -> ImportLine:
        """The line's SPI is one of the record's declarants, and its period lies in
        ``annrev``."""
        record = self.record
        declarants = {record.spiDec1, record.spiDec2} - {None}
        if declarants and self.spi not in declarants:
            raise ValueError("spi : ni spiDec1 ni spiDec2 de record")
        for name in ("dateDebutPeriode", "dateFinPeriode"):
            value = getattr(record, name)
            if value is not None and not value.startswith(f"{self.annrev:04d}-"):
                raise ValueError(f"record.{name} : hors de l'année de revenus {self.annrev}")
        return self


class IfiLine(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    ressource: Literal["ifi"]
    spi: Spi
    annrev: Year
    foyer: Foyer
    record: IfiRecord


class ThLine(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    ressource: Literal["th"]
    spi: Spi
    annee: Year
    avis: Annotated[str, Field(pattern=r"^[0-9A-Z-]{1,24}$")]
    regimeTax: Literal["P", "S"]
    entete: ThHeading
    locaux: Annotated[list[ThLocalRecord], Field(min_length=1)]


_KINDS: dict[str, type[ImportLine] | type[IfiLine] | type[ThLine]] = {
    "ir": ImportLine,
    "ifi": IfiLine,
    "th": ThLine,
}


@dataclass(frozen=True, slots=True)
class LineError:
    line: int
    message: str

    def __str__(self) -> str:
        return f"ligne {self.line} : {self.message}"


class ImportRejected(Exception):
    """The file holds at least one bad line (or none to load, or is not UTF-8); nothing was
    loaded."""

    def __init__(self, errors: list[LineError]) -> None:
        super().__init__(f"{len(errors)} ligne(s) invalide(s)")
        self.errors = errors


@dataclass(frozen=True, slots=True)
class ImportReport:
    store: str
    situations: int
    pairs: int  # (spi, annrev) pairs whose IR situations were replaced
    ifi: int = 0  # IFI declarations loaded
    th_avis: int = 0  # housing-tax assessments loaded


def load_json_line(text: str) -> tuple[Any, str | None]:
    """One line's JSON value, or the error saying why it is not JSON (or not an object)."""
    try:
        raw: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"JSON invalide ({exc.msg}, colonne {exc.colno})"
    if not isinstance(raw, dict):
        return None, "un objet JSON est attendu sur chaque ligne"
    return raw, None


def describe_error(exc: ValidationError) -> str:
    """The errors of a line, each with the field at fault; a rule of the whole line (which
    names its fields itself) is its message alone."""
    parts = []
    for err in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(p) for p in err["loc"])
        if where:
            parts.append(f"{where}: {err['msg']}")
        else:
            parts.append(str(err["msg"]).removeprefix("Value error, "))
    return "; ".join(parts)


@dataclass(slots=True)
class ParsedFile:
    """The valid lines of a file, by kind."""

    situations: list[ImportLine]
    ifi: list[IfiLine]
    th: list[ThLine]


def _key(row: ImportLine | IfiLine | ThLine) -> tuple[Any, ...]:
    if isinstance(row, ImportLine):
        return ("ir", row.spi, row.annrev, row.rang)
    if isinstance(row, IfiLine):
        return ("ifi", row.spi, row.annrev)
    return ("th", row.spi, row.annee, row.avis)


_KEY_NAMES = {"ir": "(spi, annrev, rang)", "ifi": "(ressource ifi, spi, annrev)"}


def read_lines(path: Path) -> list[str]:
    """The file's lines, each decoded from UTF-8 on its own (a UTF-8 byte order mark at its
    start is allowed): a bad byte is reported at its line, and every such line is; a file
    holding no line to load is refused too. Raises ``ImportRejected``."""
    data = path.read_bytes()
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    lines: list[str] = []
    errors: list[LineError] = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        try:
            lines.append(raw.decode("utf-8").removesuffix("\r"))
        except UnicodeDecodeError as exc:
            errors.append(
                LineError(
                    number,
                    f"pas en UTF-8 (octet 0x{raw[exc.start]:02x} en position {exc.start + 1} "
                    "de la ligne) : le fichier doit être encodé en UTF-8",
                )
            )
            lines.append("")
    if errors:
        raise ImportRejected(errors)
    if not any(line.strip() for line in lines):
        raise ImportRejected([LineError(1, "fichier vide : aucune ligne à charger")])
    return lines


def parse_file(lines: list[str]) -> tuple[ParsedFile, list[LineError]]:
    """Every valid line by kind, and every error with its 1-based line number (blank lines
    skipped)."""
    parsed = ParsedFile([], [], [])
    errors: list[LineError] = []
    seen: dict[tuple[Any, ...], int] = {}
    invariants: dict[tuple[str, int, str], int] = {}
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        raw, error = load_json_line(text)
        if error is not None:
            errors.append(LineError(number, error))
            continue
        kind = raw.get("ressource", "ir")
        model = _KINDS.get(kind) if isinstance(kind, str) else None
        if model is None:
            errors.append(LineError(number, f"ressource: inconnue ({kind!r}) : ir, ifi ou th"))
            continue
        try:
            row = model.model_validate(raw)
        except ValidationError as exc:
            errors.append(LineError(number, describe_error(exc)))
            continue
        key = _key(row)
        if key in seen:
            names = _KEY_NAMES.get(key[0], "(ressource th, spi, annee, avis)")
            errors.append(LineError(number, f"doublon de la ligne {seen[key]} {names}"))
            continue
        seen[key] = number
        if isinstance(row, ThLine):
            clash = next(
                (
                    (local.invariant, invariants[(row.spi, row.annee, local.invariant)])
                    for local in row.locaux
                    if (row.spi, row.annee, local.invariant) in invariants
                ),
                None,
            )
            if clash is not None:
                errors.append(
                    LineError(number, f"local {clash[0]} déjà déclaré à la ligne {clash[1]}")
                )
                continue
            for local in row.locaux:
                invariants[(row.spi, row.annee, local.invariant)] = number
            parsed.th.append(row)
        elif isinstance(row, IfiLine):
            parsed.ifi.append(row)
        else:
            parsed.situations.append(row)
    return parsed, errors


def _table(model: type[IrSituation | IfiSituation | ThAvis | ThLocal]) -> Table:
    return cast(Table, model.__table__)


def _replace(
    session: Session, table: Table, store: str, year: str, pairs: list[tuple[str, int]]
) -> None:
    """Delete ``table``'s rows of ``store`` for each (spi, year) pair."""
    if not pairs:
        return
    session.execute(
        delete(table).where(
            and_(
                table.c.store == store,
                table.c.spi == bindparam("b_spi"),
                table.c[year] == bindparam("b_year"),
            )
        ),
        [{"b_spi": spi, "b_year": y} for spi, y in pairs],
    )


def import_impot_particulier(
    session_factory: sessionmaker[Session], path: Path, *, store: str = "production"
) -> ImportReport:
    """Validate the whole file, then replace the pairs it holds in one transaction."""
    if store not in STORES:
        raise ValueError(f"unknown store {store!r}")
    parsed, errors = parse_file(read_lines(path))
    if errors:
        raise ImportRejected(errors)
    rows = parsed.situations
    pairs = sorted({(r.spi, r.annrev) for r in rows})
    values = [
        {
            "store": store,
            "spi": r.spi,
            "annrev": r.annrev,
            "rang": r.rang,
            "foyer": r.foyer,
            "record": r.record.model_dump(mode="json", exclude_unset=True),
            "facture": (
                None
                if r.facture is None
                else [line.model_dump(mode="json", exclude_unset=True) for line in r.facture]
            ),
        }
        for r in rows
    ]
    ifi_values = [
        {
            "store": store,
            "spi": r.spi,
            "annrev": r.annrev,
            "foyer": r.foyer,
            "record": r.record.model_dump(mode="json", exclude_unset=True),
        }
        for r in parsed.ifi
    ]
    avis_values = [
        {
            "store": store,
            "spi": r.spi,
            "annee": r.annee,
            "avis": r.avis,
            "record": r.entete.model_dump(mode="json", exclude_unset=True),
        }
        for r in parsed.th
    ]
    local_values = [
        {
            "store": store,
            "spi": r.spi,
            "annee": r.annee,
            "avis": r.avis,
            "invariant": local.invariant,
            "nature_local": local.natureLocal,
            "affectation": local.affectation,
            "principal": r.regimeTax == "P",
        }
        for r in parsed.th
        for local in r.locaux
    ]
    th_pairs = sorted({(r.spi, r.annee) for r in parsed.th})
    with session_factory() as session, session.begin():
        _replace(session, _table(IrSituation), store, "annrev", pairs)
        _replace(
            session,
            _table(IfiSituation),
            store,
            "annrev",
            sorted({(r.spi, r.annrev) for r in parsed.ifi}),
        )
        _replace(session, _table(ThAvis), store, "annee", th_pairs)
        _replace(session, _table(ThLocal), store, "annee", th_pairs)
        for model, batch in (
            (IrSituation, values),
            (IfiSituation, ifi_values),
            (ThAvis, avis_values),
            (ThLocal, local_values),
        ):
            if batch:
                session.execute(insert(_table(model)), batch)
    log.info(
        "records:import:loaded store=%s situations=%d pairs=%d ifi=%d th_avis=%d",
        store,
        len(values),
        len(pairs),
        len(ifi_values),
        len(avis_values),
    )
    return ImportReport(
        store=store,
        situations=len(values),
        pairs=len(pairs),
        ifi=len(ifi_values),
        th_avis=len(avis_values),
    )
