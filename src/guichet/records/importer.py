"""Loads a provider extract of IR situations (JSON Lines) into a store, all or nothing.

One JSON object per line: ``{"spi", "annrev", "rang", "foyer", "record"}`` (format in
``docs/catalogue.md``). Every line is validated before anything is written; one bad line
and nothing of the file is loaded. The situations of a (spi, annrev) pair found in the
file replace every situation the store held for that pair.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, cast

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import Table, and_, bindparam, delete, insert
from sqlalchemy.orm import Session, sessionmaker

from guichet.records.ir_record import IrRecord
from guichet.records.models import IrSituation
from guichet.records.spi import is_spi

log = logging.getLogger(__name__)

STORES = ("sandbox", "production")


def _spi(value: str) -> str:
    if not is_spi(value):
        raise ValueError("not a valid SPI (13 digits, stdnum.fr.nif)")
    return value


class ImportLine(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    spi: Annotated[str, AfterValidator(_spi)]
    annrev: Annotated[int, Field(ge=1000, le=9999)]
    rang: Annotated[int, Field(ge=1, le=99)] = 1
    foyer: Annotated[str, Field(min_length=1, max_length=32)]
    record: IrRecord


@dataclass(frozen=True, slots=True)
class LineError:
    line: int
    message: str

    def __str__(self) -> str:
        return f"ligne {self.line} : {self.message}"


class ImportRejected(Exception):
    """The file holds at least one bad line; nothing was loaded."""

    def __init__(self, errors: list[LineError]) -> None:
        super().__init__(f"{len(errors)} ligne(s) invalide(s)")
        self.errors = errors


@dataclass(frozen=True, slots=True)
class ImportReport:
    store: str
    situations: int
    pairs: int  # (spi, annrev) pairs replaced


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(p) for p in err["loc"]) or "(ligne)"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def parse_lines(lines: list[str]) -> tuple[list[ImportLine], list[LineError]]:
    """Every valid line, and every error with its 1-based line number (blank lines skipped)."""
    good: list[ImportLine] = []
    errors: list[LineError] = []
    seen: dict[tuple[str, int, int], int] = {}
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            raw: Any = json.loads(text)
        except json.JSONDecodeError as exc:
            errors.append(LineError(number, f"JSON invalide ({exc.msg}, colonne {exc.colno})"))
            continue
        try:
            row = ImportLine.model_validate(raw)
        except ValidationError as exc:
            errors.append(LineError(number, _describe(exc)))
            continue
        key = (row.spi, row.annrev, row.rang)
        if key in seen:
            errors.append(LineError(number, f"doublon de la ligne {seen[key]} (spi, annrev, rang)"))
            continue
        seen[key] = number
        good.append(row)
    return good, errors


def import_impot_particulier(
    session_factory: sessionmaker[Session], path: Path, *, store: str = "production"
) -> ImportReport:
    """Validate the whole file, then replace the pairs it holds in one transaction."""
    if store not in STORES:
        raise ValueError(f"unknown store {store!r}")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise ImportRejected(
            [LineError(0, f"le fichier n'est pas en UTF-8 ({exc.reason})")]
        ) from None
    rows, errors = parse_lines(lines)
    if errors:
        raise ImportRejected(errors)
    pairs = sorted({(r.spi, r.annrev) for r in rows})
    values = [
        {
            "store": store,
            "spi": r.spi,
            "annrev": r.annrev,
            "rang": r.rang,
            "foyer": r.foyer,
            "record": r.record.model_dump(mode="json", exclude_unset=True),
        }
        for r in rows
    ]
    table = cast(Table, IrSituation.__table__)
    with session_factory() as session, session.begin():
        if pairs:
            session.execute(
                delete(table).where(
                    and_(
                        table.c.store == store,
                        table.c.spi == bindparam("b_spi"),
                        table.c.annrev == bindparam("b_annrev"),
                    )
                ),
                [{"b_spi": spi, "b_annrev": annrev} for spi, annrev in pairs],
            )
            session.execute(insert(table), values)
    log.info(
        "records:import:loaded store=%s situations=%d pairs=%d", store, len(values), len(pairs)
    )
    return ImportReport(store=store, situations=len(values), pairs=len(pairs))
