"""Read functions over the journal for the pages that show it: a citizen's own records, a
partner's last calls and a habilitation's counts."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Row, desc, func, or_, select
from sqlalchemy.orm import Session

from guichet.journal.models import JournalRecord, JournalSubject


@dataclass(frozen=True, slots=True)
class RecordPage:
    """One page of records, newest first; ``page`` is the one shown (within 1…``pages``)."""

    records: Sequence[JournalRecord]
    page: int
    pages: int
    total: int


def about(subject: str) -> ColumnElement[bool]:
    """The records about this pseudonym: their ``subject``, or one of their ``subjects``
    (a search about several persons, through ``journal_subject``)."""
    return or_(
        JournalRecord.subject == subject,
        JournalRecord.seq.in_(select(JournalSubject.seq).where(JournalSubject.subject == subject)),
    )


def records_about(session: Session, subject: str) -> Sequence[JournalRecord]:
    """Every record about this pseudonym (``about``), newest first."""
    return session.scalars(
        select(JournalRecord).where(about(subject)).order_by(JournalRecord.seq.desc())
    ).all()


def page_about(session: Session, subject: str, page: int, page_size: int) -> RecordPage:
    """The records about ``subject``, ``page_size`` a page, newest first; a page number out of
    range shows the nearest page (there is always one, empty when there is no record)."""
    total = int(
        session.scalar(select(func.count()).select_from(JournalRecord).where(about(subject))) or 0
    )
    pages = max(1, -(-total // page_size))
    page = min(max(1, page), pages)
    records = session.scalars(
        select(JournalRecord)
        .where(about(subject))
        .order_by(JournalRecord.seq.desc())
        .limit(page_size)
        .offset((page - 1) * page_size)
    ).all()
    return RecordPage(records, page, pages, total)


def last_records_of(
    session: Session, partner_ids: Collection[uuid.UUID], limit: int
) -> Sequence[Row[dt.datetime, str, str | None, str, str, int, uuid.UUID | None]]:
    """The partners' latest ``limit`` records, newest first: date, environment, API,
    operation, outcome, HTTP status and habilitation (never the subject)."""
    if not partner_ids:
        return []
    return session.execute(
        select(
            JournalRecord.at,
            JournalRecord.environment,
            JournalRecord.api,
            JournalRecord.operation,
            JournalRecord.outcome,
            JournalRecord.http_status,
            JournalRecord.habilitation_id,
        )
        .where(JournalRecord.partner_id.in_(partner_ids))
        .order_by(desc(JournalRecord.seq))
        .limit(limit)
    ).all()


def outcome_counts(
    session: Session, habilitation_id: uuid.UUID, since: dt.datetime
) -> list[tuple[str, int]]:
    """The habilitation's records from ``since`` on, counted by outcome (in its order)."""
    rows = session.execute(
        select(JournalRecord.outcome, func.count())
        .where(JournalRecord.habilitation_id == habilitation_id, JournalRecord.at >= since)
        .group_by(JournalRecord.outcome)
        .order_by(JournalRecord.outcome)
    )
    return [(str(r[0]), int(r[1])) for r in rows]


def api_counts(
    session: Session,
    habilitation_id: uuid.UUID,
    after: dt.datetime,
    excluded_statuses: Collection[int] = (),
) -> dict[str | None, int]:
    """The habilitation's records strictly after ``after``, counted by API, leaving out the
    HTTP statuses ``excluded_statuses``."""
    rows = session.execute(
        select(JournalRecord.api, func.count())
        .where(
            JournalRecord.habilitation_id == habilitation_id,
            JournalRecord.at > after,
            JournalRecord.http_status.not_in(excluded_statuses),
        )
        .group_by(JournalRecord.api)
    ).all()
    return {api: int(count) for api, count in rows}
