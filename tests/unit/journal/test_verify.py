"""Verification finds the first bad record, whatever was done to the tables."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy.orm import Session, sessionmaker

from guichet.journal.entry import record_hash
from guichet.journal.verify import verify
from guichet.journal.writer import JournalWriter
from tests.unit.journal.conftest import EntryFactory, rows, sql


@pytest.fixture
def chain(session_factory: sessionmaker[Session], entry: EntryFactory) -> sessionmaker[Session]:
    """Ten records, seq 1 to 10, the fourth a refusal."""
    writer = JournalWriter(session_factory)
    for i in range(10):
        if i == 3:
            writer.append_sync(entry(outcome="ip_not_allowed", http_status=403, data_scopes=[]))
        else:
            writer.append_sync(entry())
    return session_factory


def test_empty_journal_verifies(session_factory: sessionmaker[Session]) -> None:
    assert verify(session_factory) == verify(session_factory).__class__(ok=True, checked=0)


def test_intact_chain_verifies_in_small_batches(chain: sessionmaker[Session]) -> None:
    report = verify(chain, batch_size=3)
    assert report.ok
    assert report.checked == 10
    assert report.first_bad_seq is None
    assert report.reason is None


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE journal_record SET outcome = 'ok', http_status = 200 WHERE seq = 4",
        "UPDATE journal_record SET subject = NULL WHERE seq = 4",
        "UPDATE journal_record SET latency_ms = 99 WHERE seq = 4",
        "UPDATE journal_record SET at = (SELECT at FROM journal_record WHERE seq = 1)"
        " WHERE seq = 4",
        "UPDATE journal_record SET data_scopes = '[\"dgfip_rfr\"]' WHERE seq = 4",
        "UPDATE journal_record SET data_scopes = '\"dgfip_rfr\"' WHERE seq = 4",
        "UPDATE journal_record SET prev_hash = (SELECT hash FROM journal_record WHERE seq = 2)"
        " WHERE seq = 4",
    ],
)
def test_altered_field_is_reported(chain: sessionmaker[Session], statement: str) -> None:
    sql(chain, statement)
    report = verify(chain, batch_size=3)
    assert not report.ok
    assert report.first_bad_seq == 4
    assert report.checked == 3
    assert report.reason is not None
    assert report.reason.startswith("altered content")


def test_unreadable_field_is_reported(chain: sessionmaker[Session]) -> None:
    """A value its column type cannot even load is tampering too (SQLite does not type-check)."""
    if chain.kw["bind"].dialect.name != "sqlite":
        pytest.skip("PostgreSQL refuses values of the wrong type")
    sql(chain, "UPDATE journal_record SET data_scopes = 'not json' WHERE seq = 6")
    report = verify(chain, batch_size=4)
    assert (report.ok, report.first_bad_seq, report.checked) == (False, 6, 5)
    assert report.reason is not None
    assert "unreadable" in report.reason


def test_rewritten_record_with_recomputed_hash_breaks_the_next_link(
    chain: sessionmaker[Session],
) -> None:
    record = rows(chain)[4]  # seq 5
    forged = {**record, "outcome": "not_found", "http_status": 404}
    sql(
        chain,
        "UPDATE journal_record SET outcome = 'not_found', http_status = 404, hash = :h"
        " WHERE seq = 5",
        h=record_hash(forged),
    )
    report = verify(chain)
    assert (report.ok, report.first_bad_seq) == (False, 6)
    assert report.reason is not None
    assert report.reason.startswith("broken link")


def test_deleted_middle_record_is_reported(chain: sessionmaker[Session]) -> None:
    sql(chain, "DELETE FROM journal_record WHERE seq = 7")
    report = verify(chain, batch_size=3)
    assert (report.ok, report.first_bad_seq, report.checked) == (False, 7, 6)
    assert report.reason is not None
    assert report.reason.startswith("missing record")


def test_deleted_tail_is_reported(chain: sessionmaker[Session]) -> None:
    sql(chain, "DELETE FROM journal_record WHERE seq >= 9")
    report = verify(chain)
    assert (report.ok, report.first_bad_seq, report.checked) == (False, 9, 8)
    assert report.reason is not None
    assert report.reason.startswith("missing record")


def test_deleted_head_of_chain_is_reported(chain: sessionmaker[Session]) -> None:
    sql(chain, "DELETE FROM journal_record WHERE seq <= 2")
    report = verify(chain)
    assert (report.ok, report.first_bad_seq) == (False, 1)


def test_reordered_records_are_reported(chain: sessionmaker[Session]) -> None:
    sql(chain, "UPDATE journal_record SET seq = -1 WHERE seq = 3")
    sql(chain, "UPDATE journal_record SET seq = 3 WHERE seq = 5")
    sql(chain, "UPDATE journal_record SET seq = 5 WHERE seq = -1")
    report = verify(chain)
    assert (report.ok, report.first_bad_seq) == (False, 3)


def test_head_mismatch_is_reported(chain: sessionmaker[Session]) -> None:
    sql(chain, "UPDATE journal_head SET hash = :h WHERE id = 1", h="f" * 64)
    report = verify(chain)
    assert (report.ok, report.first_bad_seq, report.checked) == (False, 10, 10)
    assert report.reason is not None
    assert report.reason.startswith("head mismatch")


def test_record_appended_behind_the_writers_back_is_reported(
    chain: sessionmaker[Session],
) -> None:
    sql(
        chain,
        "INSERT INTO journal_record (seq, id, at, environment, correlation_id, operation,"
        " source_ip, data_scopes, outcome, http_status, latency_ms, prev_hash, hash)"
        " SELECT 11, :id, at, environment, correlation_id, operation, source_ip, data_scopes,"
        " outcome, http_status, latency_ms, hash, hash FROM journal_record WHERE seq = 10",
        id=uuid.uuid4().hex,
    )
    report = verify(chain)
    assert (report.ok, report.first_bad_seq) == (False, 11)


def test_moved_anchor_is_reported(chain: sessionmaker[Session]) -> None:
    """Moving the anchor forward to skip checking old records, without purging them."""
    record = rows(chain)[4]
    sql(chain, "UPDATE journal_head SET anchor_seq = 5, anchor_hash = :h", h=record["hash"])
    report = verify(chain)
    assert (report.ok, report.first_bad_seq) == (False, 1)
    assert report.reason is not None
    assert report.reason.startswith("anchor mismatch")
