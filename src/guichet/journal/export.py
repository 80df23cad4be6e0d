"""Writes journal records for an investigation, filtered by time, environment, partner and
subject."""

from __future__ import annotations

import csv
import datetime as dt
import json
import uuid
from collections.abc import Collection, Iterator
from enum import StrEnum
from typing import Any, TextIO

from sqlalchemy import ColumnElement, Connection, or_, select
from sqlalchemy.orm import Session, sessionmaker

from guichet.journal.chain import engine_of, record_table, subject_table
from guichet.journal.entry import format_at
from guichet.spreadsheet import spreadsheet_cell

# Stable column order of both formats (CSV header, JSON key order).
EXPORT_COLUMNS: tuple[str, ...] = (
    "seq",
    "id",
    "at",
    "environment",
    "correlation_id",
    "partner_id",
    "habilitation_id",
    "client_id",
    "api",
    "operation",
    "source_ip",
    "cert_thumbprint",
    "subject",
    "search_type",
    "subjects",
    "data_scopes",
    "outcome",
    "http_status",
    "latency_ms",
    "prev_hash",
    "hash",
)

_seq = record_table.c.seq


class ExportFormat(StrEnum):
    JSONL = "jsonl"
    CSV = "csv"


def export(
    session_factory: sessionmaker[Session],
    out: TextIO,
    *,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    partner_id: uuid.UUID | Collection[uuid.UUID] | None = None,
    subject: str | None = None,
    environment: str | None = None,
    fmt: ExportFormat | str = ExportFormat.JSONL,
    batch_size: int = 1000,
) -> int:
    """Write the matching records in ``seq`` order to ``out``; return how many.

    ``start`` is inclusive and ``end`` exclusive (both on ``at``, timezone-aware);
    ``partner_id`` one organisation or several; ``subject`` is the pseudonym, never an SPI;
    ``environment`` ``sandbox`` or ``production``. JSON Lines: one object per record, keys in
    ``EXPORT_COLUMNS`` order. CSV: a header row, then one row per record; ``data_scopes``
    space-separated, absent values empty, and a cell a spreadsheet would take for a formula
    prefixed with ``'`` (``guichet.spreadsheet``).
    """
    fmt = ExportFormat(fmt)
    where: list[ColumnElement[bool]] = []
    if start is not None:
        where.append(record_table.c.at >= start)
    if end is not None:
        where.append(record_table.c.at < end)
    if isinstance(partner_id, uuid.UUID):
        where.append(record_table.c.partner_id == partner_id)
    elif partner_id is not None:
        where.append(record_table.c.partner_id.in_(list(partner_id)))
    if environment is not None:
        where.append(record_table.c.environment == environment)
    if subject is not None:
        # Its ``subject``, or one of a search's ``subjects`` (issue 14).
        where.append(
            or_(
                record_table.c.subject == subject,
                _seq.in_(select(subject_table.c.seq).where(subject_table.c.subject == subject)),
            )
        )
    writer = csv.writer(out) if fmt is ExportFormat.CSV else None
    if writer is not None:
        writer.writerow(EXPORT_COLUMNS)
    count = 0
    with engine_of(session_factory).connect() as conn:
        for row in _rows(conn, where, batch_size):
            if writer is not None:
                writer.writerow(_csv_cell(row[c]) for c in EXPORT_COLUMNS)
            else:
                out.write(json.dumps({c: _json_value(row[c]) for c in EXPORT_COLUMNS}) + "\n")
            count += 1
    return count


def _rows(
    conn: Connection, where: list[ColumnElement[bool]], batch_size: int
) -> Iterator[dict[str, Any]]:
    last: int | None = None
    while True:
        page = select(record_table).where(*where).order_by(_seq).limit(batch_size)
        if last is not None:
            page = page.where(_seq > last)
        rows = [dict(r._mapping) for r in conn.execute(page)]
        if not rows:
            return
        yield from rows
        last = rows[-1]["seq"]


def _json_value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return format_at(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _csv_cell(value: Any) -> str:
    """A flat cell; text an outsider chose (the HTTP method in ``operation``, a client id…)
    never reaches the investigator's spreadsheet as a formula."""
    if value is None:
        return ""
    if isinstance(value, list):
        return spreadsheet_cell(" ".join(value))
    if isinstance(value, float):
        return f"{value:.3f}"
    return spreadsheet_cell(str(_json_value(value)))
