"""Retention purges a prefix of the chain and moves the anchor; what remains verifies."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy.orm import Session, sessionmaker

from guichet.clock import FrozenClock
from guichet.journal.chain import read_head
from guichet.journal.retention import purge
from guichet.journal.verify import verify
from guichet.journal.writer import JournalWriter
from tests.unit.journal.conftest import EntryFactory, make_entry, rows, sql

DAY = dt.timedelta(days=1)


def write_days_old(
    session_factory: sessionmaker[Session], now: dt.datetime, ages: list[int]
) -> None:
    writer = JournalWriter(session_factory)
    for age in ages:
        writer.append_sync(make_entry(now - age * DAY))


def test_purge_removes_the_old_prefix_and_moves_the_anchor(
    session_factory: sessionmaker[Session], clock: FrozenClock
) -> None:
    now = clock.now()
    write_days_old(session_factory, now, [800, 760, 731, 700, 10, 0])
    before = rows(session_factory)
    assert purge(session_factory, now=now, retention_days=730) == 3
    assert [r["seq"] for r in rows(session_factory)] == [4, 5, 6]
    with session_factory() as s:
        head = read_head(s)
    assert head is not None
    assert (head.anchor_seq, head.anchor_hash) == (3, before[2]["hash"])
    assert (head.seq, head.hash) == (6, before[5]["hash"])
    report = verify(session_factory)
    assert report.ok
    assert report.checked == 3
    # Idempotent: nothing more is old enough.
    assert purge(session_factory, now=now, retention_days=730) == 0
    assert verify(session_factory).ok


def test_purge_never_leaves_a_hole(
    session_factory: sessionmaker[Session], clock: FrozenClock
) -> None:
    """An old record after a recent one (another worker's clock) waits for its turn."""
    now = clock.now()
    write_days_old(session_factory, now, [800, 5, 900, 800, 1])
    assert purge(session_factory, now=now, retention_days=730) == 1
    assert [r["seq"] for r in rows(session_factory)] == [2, 3, 4, 5]
    assert verify(session_factory).ok


def test_nothing_old_enough_purges_nothing(
    session_factory: sessionmaker[Session], clock: FrozenClock
) -> None:
    now = clock.now()
    write_days_old(session_factory, now, [3, 2, 1])
    assert purge(session_factory, now=now, retention_days=730) == 0
    assert len(rows(session_factory)) == 3
    assert purge(session_factory, now=now, retention_days=1) == 2  # the 3- and 2-day-old ones


def test_purge_everything_then_keep_appending(
    session_factory: sessionmaker[Session], clock: FrozenClock, entry: EntryFactory
) -> None:
    now = clock.now()
    write_days_old(session_factory, now, [900, 800])
    assert purge(session_factory, now=now, retention_days=730) == 2
    assert rows(session_factory) == []
    report = verify(session_factory)
    assert report.ok
    assert report.checked == 0
    JournalWriter(session_factory).append_sync(entry())
    assert [r["seq"] for r in rows(session_factory)] == [3]
    assert verify(session_factory).ok


def test_purge_in_chunks_keeps_the_chain_verifiable(
    session_factory: sessionmaker[Session], clock: FrozenClock
) -> None:
    now = clock.now()
    write_days_old(session_factory, now, [800] * 7 + [1] * 2)
    assert purge(session_factory, now=now, retention_days=730, chunk=3) == 7
    assert [r["seq"] for r in rows(session_factory)] == [8, 9]
    assert verify(session_factory).ok


def test_purge_on_empty_journal(session_factory: sessionmaker[Session], clock: FrozenClock) -> None:
    assert purge(session_factory, now=clock.now(), retention_days=730) == 0
    assert verify(session_factory).ok


def test_tampering_in_what_remains_is_still_found(
    session_factory: sessionmaker[Session], clock: FrozenClock
) -> None:
    now = clock.now()
    write_days_old(session_factory, now, [800, 800, 3, 2, 1])
    purge(session_factory, now=now, retention_days=730)
    sql(session_factory, "UPDATE journal_record SET outcome = 'forged' WHERE seq = 4")
    report = verify(session_factory)
    assert (report.ok, report.first_bad_seq) == (False, 4)


def test_retention_must_be_positive(
    session_factory: sessionmaker[Session], clock: FrozenClock
) -> None:
    with pytest.raises(ValueError, match="retention_days"):
        purge(session_factory, now=clock.now(), retention_days=0)
