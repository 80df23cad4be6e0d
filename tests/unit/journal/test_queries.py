"""The journal's read functions for the citizen's page: their records only, newest first,
a page at a time, a page number out of range showing the nearest page."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session, sessionmaker

from guichet.clock import FrozenClock
from guichet.journal.queries import page_about, records_about
from guichet.journal.writer import JournalWriter
from tests.unit.journal.conftest import make_entry

ALICE = "1" * 64
BOB = "2" * 64


def _write(session_factory: sessionmaker[Session], clock: FrozenClock, plan: list[str]) -> None:
    writer = JournalWriter(session_factory)
    for minutes, subject in enumerate(plan, start=1):
        at = clock.now() + dt.timedelta(minutes=minutes)
        writer.append_sync(make_entry(at, subject=subject, correlation_id=f"{subject[0]}{minutes}"))


def test_records_about_one_subject_newest_first(
    session_factory: sessionmaker[Session], clock: FrozenClock
) -> None:
    _write(session_factory, clock, [ALICE, BOB, ALICE, ALICE])
    with session_factory() as session:
        found = records_about(session, ALICE)
        assert [r.correlation_id for r in found] == ["14", "13", "11"]
        assert records_about(session, "3" * 64) == []


def test_pages_are_counted_and_clamped(
    session_factory: sessionmaker[Session], clock: FrozenClock
) -> None:
    _write(session_factory, clock, [ALICE] * 5 + [BOB])
    with session_factory() as session:
        first = page_about(session, ALICE, 1, 2)
        assert (first.page, first.pages, first.total) == (1, 3, 5)
        assert [r.correlation_id for r in first.records] == ["15", "14"]
        last = page_about(session, ALICE, 3, 2)
        assert [r.correlation_id for r in last.records] == ["11"]
        beyond = page_about(session, ALICE, 99, 2)
        assert beyond.page == 3
        assert [r.correlation_id for r in beyond.records] == ["11"]
        assert page_about(session, ALICE, 0, 2).page == 1


def test_no_record_is_one_empty_page(
    session_factory: sessionmaker[Session], clock: FrozenClock
) -> None:
    with session_factory() as session:
        empty = page_about(session, ALICE, 5, 50)
    assert (empty.page, empty.pages, empty.total, list(empty.records)) == (1, 1, 0, [])
