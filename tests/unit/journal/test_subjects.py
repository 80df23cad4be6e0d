"""Records about several subjects (API FICOBA's searches): the search type and every subject's
pseudonym are hashed, looked up and purged with their record, while records without them —
every record written before them — keep the hash they always had."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from guichet.clock import FrozenClock
from guichet.journal.chain import subject_table
from guichet.journal.entry import HASHED_FIELDS, OPTIONAL_FIELDS, canonical_form, record_hash
from guichet.journal.export import export
from guichet.journal.queries import page_about, records_about
from guichet.journal.retention import purge
from guichet.journal.verify import verify
from guichet.journal.writer import JournalWriter
from tests.unit.journal.conftest import EntryFactory, make_entry, rows, sql

FIRST, SECOND = "1" * 64, "2" * 64


def _subject_rows(session_factory: sessionmaker[Session]) -> list[tuple[str, int]]:
    with session_factory() as s:
        found = s.execute(select(subject_table.c.subject, subject_table.c.seq))
        return sorted((r.subject, r.seq) for r in found)


def test_a_record_without_them_hashes_as_before(entry: EntryFactory) -> None:
    e = entry()
    row: dict[str, Any] = {**e.values(), "seq": 1, "prev_hash": "0" * 64}
    # Format 1: the fields before issue 14 only.
    before = {k: v for k, v in row.items() if k not in OPTIONAL_FIELDS}
    assert set(before) == set(HASHED_FIELDS) - set(OPTIONAL_FIELDS)
    assert record_hash(row) == record_hash(before)
    assert b"search_type" not in canonical_form(row)
    assert b"subjects" not in canonical_form(row)


def test_a_record_with_them_hashes_them(entry: EntryFactory) -> None:
    e = entry(search_type="spi", subjects=[FIRST, SECOND])
    row: dict[str, Any] = {**e.values(), "seq": 1, "prev_hash": "0" * 64}
    assert b'"subjects":["' + FIRST.encode() in canonical_form(row)
    assert record_hash(row) != record_hash({**row, "subjects": None})
    assert record_hash(row) != record_hash({**row, "search_type": None})
    assert entry(subjects=[]).subjects is None
    with pytest.raises(ValueError, match="subjects"):
        entry(subjects=["x" * 65])


@pytest.fixture
def chain(session_factory: sessionmaker[Session], entry: EntryFactory) -> sessionmaker[Session]:
    """Four records: an old-style one, two searches (written by the batch writer, the
    gateway's path), an old-style one."""
    writer = JournalWriter(session_factory)
    writer.append_sync(entry(subject=None))

    async def searches() -> None:
        await writer.append(
            entry(subject=FIRST, search_type="personne_physique", subjects=[FIRST, SECOND])
        )
        await writer.append(entry(subject=SECOND, search_type="spi", subjects=[SECOND]))
        await writer.close()

    asyncio.run(searches())
    JournalWriter(session_factory).append_sync(entry(subject=None))
    return session_factory


def test_searches_are_written_indexed_and_verified(chain: sessionmaker[Session]) -> None:
    records = rows(chain)
    assert [r["search_type"] for r in records] == [None, "personne_physique", "spi", None]
    assert records[1]["subjects"] == [FIRST, SECOND]
    assert records[0]["subjects"] is None
    assert _subject_rows(chain) == [(FIRST, 2), (SECOND, 2), (SECOND, 3)]
    assert verify(chain).ok
    with chain() as session:
        # The second subject of a search finds it, as its first does.
        assert [r.seq for r in records_about(session, SECOND)] == [3, 2]
        assert [r.seq for r in records_about(session, FIRST)] == [2]
        assert page_about(session, SECOND, 1, 10).total == 2
    out = io.StringIO()
    assert export(chain, out, subject=SECOND) == 2
    exported = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(r["seq"], r["search_type"]) for r in exported] == [
        (2, "personne_physique"),
        (3, "spi"),
    ]
    assert exported[0]["subjects"] == [FIRST, SECOND]


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE journal_record SET subjects = NULL WHERE seq = 2",
        "UPDATE journal_record SET subjects = '[\"1111\"]' WHERE seq = 2",
        "UPDATE journal_record SET search_type = 'spi' WHERE seq = 2",
        "UPDATE journal_record SET search_type = NULL WHERE seq = 2",
    ],
)
def test_altered_subjects_or_type_are_reported(
    chain: sessionmaker[Session], statement: str
) -> None:
    sql(chain, statement)
    report = verify(chain)
    assert not report.ok
    assert report.first_bad_seq == 2


def test_adding_them_to_an_old_record_is_reported(chain: sessionmaker[Session]) -> None:
    sql(chain, "UPDATE journal_record SET search_type = 'spi' WHERE seq = 1")
    assert verify(chain).first_bad_seq == 1


def test_the_purge_takes_the_index_with_its_records(
    session_factory: sessionmaker[Session], clock: FrozenClock
) -> None:
    now = clock.now()
    writer = JournalWriter(session_factory)
    for age, subjects in ((800, [FIRST]), (760, [FIRST, SECOND]), (1, [SECOND])):
        writer.append_sync(
            make_entry(now - dt.timedelta(days=age), search_type="spi", subjects=subjects)
        )
    assert purge(session_factory, now=now, retention_days=730) == 2
    assert _subject_rows(session_factory) == [(SECOND, 3)]
    assert verify(session_factory).ok
