"""Appending to the chain: links, group commit, several processes, and failing closed."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, event
from sqlalchemy.orm import Session, sessionmaker

from guichet.db import make_engine, make_sessionmaker
from guichet.errors import JournalUnavailable
from guichet.journal.chain import HEAD_ID, Head, engine_of, ensure_head, read_head
from guichet.journal.entry import GENESIS_HASH, record_hash
from guichet.journal.verify import verify
from guichet.journal.writer import JournalWriter
from guichet.schema import metadata
from tests.support.postgres import free_port
from tests.unit.journal.conftest import EntryFactory, rows, sql
from tests.unit.journal.test_entry import CANONICAL, fixed_entry


def head(session_factory: sessionmaker[Session]) -> Head:
    with session_factory() as s:
        h = read_head(s)
    assert h is not None
    return h


def test_records_are_chained_from_genesis(
    session_factory: sessionmaker[Session], entry: EntryFactory
) -> None:
    writer = JournalWriter(session_factory)
    for _ in range(3):
        writer.append_sync(entry())

    async def more() -> None:
        for _ in range(2):
            await writer.append(entry(outcome="token_expired", http_status=401))
        await writer.close()

    asyncio.run(more())
    records = rows(session_factory)
    assert [r["seq"] for r in records] == [1, 2, 3, 4, 5]
    assert records[0]["prev_hash"] == GENESIS_HASH
    for prev, cur in itertools.pairwise(records):
        assert cur["prev_hash"] == prev["hash"]
    for r in records:
        assert r["hash"] == record_hash(r)
    assert records[-1]["outcome"] == "token_expired"
    h = head(session_factory)
    assert (h.seq, h.hash) == (5, records[-1]["hash"])
    assert (h.anchor_seq, h.anchor_hash) == (0, GENESIS_HASH)
    assert verify(session_factory).ok


def test_hash_is_the_same_on_every_database(session_factory: sessionmaker[Session]) -> None:
    """The row read back (UUIDs, UTC time, scopes, latency) hashes as the documented form."""
    import hashlib

    JournalWriter(session_factory).append_sync(fixed_entry())
    (record,) = rows(session_factory)
    expected = hashlib.sha256(CANONICAL.encode()).hexdigest()
    assert record["hash"] == expected
    assert record_hash(record) == expected


def test_ensure_head_is_idempotent(session_factory: sessionmaker[Session]) -> None:
    for _ in range(2):
        with session_factory() as s, s.begin():
            ensure_head(s)
    assert head(session_factory) == Head(0, GENESIS_HASH, 0, GENESIS_HASH)
    assert HEAD_ID == 1


def test_concurrent_appends_share_transactions(
    session_factory: sessionmaker[Session], engine: Engine, entry: EntryFactory
) -> None:
    commits: list[int] = []
    event.listen(engine, "commit", lambda _conn: commits.append(1))
    writer = JournalWriter(session_factory)
    entries = [entry() for _ in range(200)]

    async def run() -> None:
        await asyncio.gather(*(writer.append(e) for e in entries))
        await writer.close()

    asyncio.run(run())
    transactions = len(commits)
    records = rows(session_factory)
    assert len(records) == 200
    assert {r["id"] for r in records} == {e.id for e in entries}
    report = verify(session_factory)
    assert report.ok
    assert report.checked == 200
    assert writer.records == 200
    assert writer.transactions == transactions
    assert transactions < 200, "group commit should batch concurrent appends"
    print(f"200 concurrent appends in {transactions} transactions")


def test_max_batch_bounds_a_transaction(
    session_factory: sessionmaker[Session], entry: EntryFactory
) -> None:
    writer = JournalWriter(session_factory, max_batch=7)

    async def run() -> None:
        await asyncio.gather(*(writer.append(entry()) for _ in range(50)))
        await writer.close()

    asyncio.run(run())
    assert writer.records == 50
    assert writer.transactions >= 8  # ceil(50 / 7)
    assert verify(session_factory).ok


def test_two_processes_keep_one_linear_chain(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    ready = tmp_path / "ready"
    ready.mkdir()
    script = Path(__file__).with_name("_appender.py")
    count = 300
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), db_url, tag, str(count), str(ready), "2"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for tag in ("proc-a", "proc-b")
    ]
    for proc in procs:
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    records = rows(session_factory)
    assert [r["seq"] for r in records] == list(range(1, 2 * count + 1))
    tags = [r["client_id"] for r in records]
    assert tags.count("proc-a") == tags.count("proc-b") == count
    switches = sum(1 for a, b in itertools.pairwise(tags) if a != b)
    assert switches >= 2, "the two processes did not actually write concurrently"
    report = verify(session_factory)
    assert report.ok
    assert report.checked == 2 * count


def test_dropped_table_fails_closed(empty_db_url: str, entry: EntryFactory) -> None:
    engine = make_engine(empty_db_url)
    metadata.create_all(engine)
    session_factory = make_sessionmaker(engine)
    writer = JournalWriter(session_factory)
    writer.append_sync(entry())
    sql(session_factory, "DROP TABLE journal_record")
    with pytest.raises(JournalUnavailable):
        writer.append_sync(entry())

    async def run() -> None:
        results = await asyncio.gather(
            *(writer.append(entry()) for _ in range(5)), return_exceptions=True
        )
        assert all(isinstance(r, JournalUnavailable) for r in results)
        await writer.close()

    asyncio.run(run())
    assert head(session_factory).seq == 1  # nothing moved
    engine.dispose()


def _hold_chain_lock(db_url: str, engine: Engine, release: threading.Event) -> threading.Thread:
    """Another connection holding the chain's lock until ``release`` is set."""
    locked = threading.Event()

    def hold() -> None:
        if engine.dialect.name == "sqlite":
            conn: Any = sqlite3.connect(engine.url.database or "", isolation_level=None)
            conn.execute("BEGIN IMMEDIATE")
        else:
            conn = psycopg.connect(db_url.replace("+psycopg", ""))
            conn.execute("SELECT * FROM journal_head WHERE id = 1 FOR UPDATE")
        locked.set()
        release.wait(30)
        conn.rollback() if engine.dialect.name != "sqlite" else conn.execute("ROLLBACK")
        conn.close()

    thread = threading.Thread(target=hold)
    thread.start()
    assert locked.wait(10)
    return thread


def test_locked_chain_fails_closed_then_recovers(
    session_factory: sessionmaker[Session], engine: Engine, db_url: str, entry: EntryFactory
) -> None:
    writer = JournalWriter(session_factory, lock_timeout=0.3)
    writer.append_sync(entry())  # the head row exists
    release = threading.Event()
    holder = _hold_chain_lock(db_url, engine, release)
    try:

        async def blocked() -> float:
            started = time.monotonic()
            with pytest.raises(JournalUnavailable):
                await writer.append(entry())
            return time.monotonic() - started

        waited = asyncio.run(blocked())
        assert 0.2 < waited < 5
    finally:
        release.set()
        holder.join()

    async def recovered() -> None:
        await writer.append(entry())
        await writer.close()

    asyncio.run(recovered())
    report = verify(session_factory)
    assert report.ok
    assert report.checked == 2


def test_lock_timeout_does_not_leak_into_the_pool(
    session_factory: sessionmaker[Session], engine: Engine, entry: EntryFactory
) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("busy_timeout is SQLite's")
    JournalWriter(session_factory, lock_timeout=0.3).append_sync(entry())
    with engine.connect() as conn:
        raw = conn.connection.driver_connection
        assert raw is not None
        assert raw.execute("PRAGMA busy_timeout").fetchone()[0] == 30000


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_unreachable_database_fails_closed(
    backend: str, tmp_path: Path, entry: EntryFactory
) -> None:
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'missing' / 'dir' / 'guichet.db'}"
    else:
        url = f"postgresql+psycopg://guichet@127.0.0.1:{free_port()}/nothing"
    engine = make_engine(url)
    writer = JournalWriter(make_sessionmaker(engine))
    with pytest.raises(JournalUnavailable):
        writer.append_sync(entry())

    async def run() -> None:
        with pytest.raises(JournalUnavailable):
            await writer.append(entry())
        await writer.close()

    asyncio.run(run())
    engine.dispose()


def test_one_bad_entry_does_not_fail_its_batch(
    session_factory: sessionmaker[Session], entry: EntryFactory
) -> None:
    writer = JournalWriter(session_factory)
    duplicate = entry()
    others = [entry() for _ in range(20)]

    async def run() -> list[Any]:
        results = await asyncio.gather(
            writer.append(duplicate),
            *(writer.append(e) for e in others),
            writer.append(duplicate),
            return_exceptions=True,
        )
        await writer.close()
        return results

    results = asyncio.run(run())
    failures = [r for r in results if isinstance(r, BaseException)]
    assert len(failures) == 1
    assert isinstance(failures[0], JournalUnavailable)
    assert len(rows(session_factory)) == 21
    assert verify(session_factory).ok


def test_close_drains_then_refuses(
    session_factory: sessionmaker[Session], entry: EntryFactory
) -> None:
    writer = JournalWriter(session_factory)

    async def run() -> None:
        pending = [asyncio.ensure_future(writer.append(entry())) for _ in range(30)]
        await asyncio.sleep(0)  # every append is queued
        await writer.close()
        await asyncio.gather(*pending)
        with pytest.raises(JournalUnavailable):
            await writer.append(entry())

    asyncio.run(run())
    assert len(rows(session_factory)) == 30
    with pytest.raises(JournalUnavailable):
        writer.append_sync(entry())


def test_a_cancelled_caller_still_gets_its_record_written(
    session_factory: sessionmaker[Session], entry: EntryFactory
) -> None:
    writer = JournalWriter(session_factory)

    async def run() -> None:
        task = asyncio.ensure_future(writer.append(entry()))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await writer.close()

    asyncio.run(run())
    assert len(rows(session_factory)) == 1


def test_writer_needs_no_database_until_used(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'later.db'}")
    writer = JournalWriter(make_sessionmaker(engine))
    assert engine_of(make_sessionmaker(engine)) is engine
    metadata.create_all(engine)
    asyncio.run(writer.close())
    engine.dispose()
