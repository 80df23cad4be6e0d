"""The batch window: concurrent appends wait a little to share a commit; a lone one never waits.
And a batch too large for one SQLite INSERT is split."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest
from sqlalchemy.orm import Session, sessionmaker

from guichet.journal.verify import verify
from guichet.journal.writer import JournalWriter
from tests.unit.journal.conftest import EntryFactory


def test_a_lone_caller_does_not_wait_for_the_window(
    session_factory: sessionmaker[Session], entry: EntryFactory
) -> None:
    # A window far longer than a commit: if a lone append waited for it, five would take 5 s.
    writer = JournalWriter(session_factory, batch_window=1.0)

    async def run() -> float:
        started = time.monotonic()
        for _ in range(5):
            await writer.append(entry())
        elapsed = time.monotonic() - started
        await writer.close()
        return elapsed

    assert asyncio.run(run()) < 2.5
    assert writer.transactions == 5
    assert verify(session_factory).ok


def test_concurrent_callers_share_fewer_commits(
    session_factory: sessionmaker[Session], entry: EntryFactory
) -> None:
    writer = JournalWriter(session_factory, batch_window=0.2)

    async def wave(n: int) -> None:
        await asyncio.gather(*(writer.append(entry()) for _ in range(n)))

    async def run() -> None:
        await wave(20)  # queued in one go, so its last batch has company: the window is on
        for _ in range(3):
            # Arrivals spread over 50 ms all make the same (windowed) commit.
            async def late(delay: float) -> None:
                await asyncio.sleep(delay)
                await writer.append(entry())

            before = writer.transactions
            await asyncio.gather(*(late(i * 0.005) for i in range(10)))
            assert writer.transactions - before <= 2
        await writer.close()

    asyncio.run(run())
    assert writer.records == 50
    report = verify(session_factory)
    assert report.ok
    assert report.checked == 50


def test_a_negative_window_is_refused(session_factory: sessionmaker[Session]) -> None:
    with pytest.raises(ValueError, match="batch_window"):
        JournalWriter(session_factory, batch_window=-0.001)


def test_a_batch_larger_than_one_insert_allows_is_split(
    session_factory: sessionmaker[Session], entry: EntryFactory
) -> None:
    writer = JournalWriter(session_factory)
    if writer._engine.dialect.name != "sqlite":
        pytest.skip("the direct path and its variable limit are SQLite's")
    writer._connection()
    assert writer._sqlite is not None
    # As if SQLite allowed the "?" of only 7 rows per statement (old builds allow 999).
    writer._sqlite = dataclasses.replace(writer._sqlite, rows_per_insert=7)
    assert writer._conn is not None
    raw = writer._conn.connection.driver_connection
    statements: list[str] = []
    raw.set_trace_callback(statements.append)
    writer._write_batch([entry() for _ in range(30)])
    raw.set_trace_callback(None)
    inserts = [s for s in statements if s.startswith("INSERT INTO journal_record")]
    assert len(inserts) == 5  # 7 + 7 + 7 + 7 + 2
    report = verify(session_factory)
    assert report.ok
    assert report.checked == 30
    assert writer.transactions == 1
