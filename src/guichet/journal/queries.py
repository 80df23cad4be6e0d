"""Read functions over the journal for the pages that show it: a citizen's own records."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from guichet.journal.models import JournalRecord


@dataclass(frozen=True, slots=True)
class RecordPage:
    """One page of records, newest first; ``page`` is the one shown (within 1…``pages``)."""

    records: Sequence[JournalRecord]
    page: int
    pages: int
    total: int


def records_about(session: Session, subject: str) -> Sequence[JournalRecord]:
    """Every record whose ``subject`` is this pseudonym, newest first."""
    return session.scalars(
        select(JournalRecord)
        .where(JournalRecord.subject == subject)
        .order_by(JournalRecord.seq.desc())
    ).all()


def page_about(session: Session, subject: str, page: int, page_size: int) -> RecordPage:
    """The records about ``subject``, ``page_size`` a page, newest first; a page number out of
    range shows the nearest page (there is always one, empty when there is no record)."""
    total = int(
        session.scalar(
            select(func.count()).select_from(JournalRecord).where(JournalRecord.subject == subject)
        )
        or 0
    )
    pages = max(1, -(-total // page_size))
    page = min(max(1, page), pages)
    records = session.scalars(
        select(JournalRecord)
        .where(JournalRecord.subject == subject)
        .order_by(JournalRecord.seq.desc())
        .limit(page_size)
        .offset((page - 1) * page_size)
    ).all()
    return RecordPage(records, page, pages, total)
