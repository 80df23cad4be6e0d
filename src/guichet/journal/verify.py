"""Checks the journal's hash chain from the purge anchor to the head, in bounded memory."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from guichet.journal.chain import engine_of, read_head, record_table
from guichet.journal.entry import record_hash

_seq = record_table.c.seq


@dataclass(frozen=True, slots=True)
class VerifyReport:
    ok: bool
    checked: int
    first_bad_seq: int | None = None
    reason: str | None = None


def verify(session_factory: sessionmaker[Session], *, batch_size: int = 1000) -> VerifyReport:
    """Walk the records in ``seq`` order from the anchor and report the first bad one.

    Each record must follow its predecessor without a gap, its stored hash must equal the
    hash recomputed from its content (altered content), its ``prev_hash`` must equal the
    previous record's hash (broken link; the anchor's hash for the first), and the head
    must point at the last record (head mismatch). One read-only snapshot, so concurrent
    writers do not disturb the check.
    """
    engine = engine_of(session_factory)
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        with conn.begin():
            return _verify(conn, batch_size)


def _verify(conn: Connection, batch_size: int) -> VerifyReport:
    head = read_head(conn)
    if head is None:
        first = conn.execute(select(func.min(_seq))).scalar()
        if first is None:
            return VerifyReport(ok=True, checked=0)
        return VerifyReport(False, 0, first, "head mismatch: records exist but the head is absent")
    below = conn.execute(select(func.min(_seq)).where(_seq <= head.anchor_seq)).scalar()
    if below is not None:
        return VerifyReport(
            False,
            0,
            below,
            f"anchor mismatch: record {below} lies at or before the purge anchor "
            f"(seq {head.anchor_seq}) yet was not purged",
        )
    checked = 0
    expected, prev = head.anchor_seq + 1, head.anchor_hash
    for seq, row in _walk(conn, head.anchor_seq, head.seq, batch_size):
        if seq != expected:
            return VerifyReport(
                False, checked, expected, f"missing record: seq {expected} absent (next is {seq})"
            )
        if row is None:
            return VerifyReport(False, checked, seq, "altered content: the record is unreadable")
        if record_hash(row) != row["hash"]:
            return VerifyReport(
                False, checked, seq, "altered content: the record does not match its hash"
            )
        if row["prev_hash"] != prev:
            return VerifyReport(
                False,
                checked,
                seq,
                f"broken link: prev_hash differs from the hash of record {seq - 1} "
                f"(record {seq - 1} or {seq} was rewritten)",
            )
        prev = row["hash"]
        expected += 1
        checked += 1
    if expected <= head.seq:
        return VerifyReport(
            False,
            checked,
            expected,
            f"missing record: seq {expected} to {head.seq} absent (the head is at seq {head.seq})",
        )
    if prev != head.hash:
        return VerifyReport(
            False, checked, head.seq, "head mismatch: the head's hash is not the last record's"
        )
    beyond = conn.execute(select(func.min(_seq)).where(_seq > head.seq)).scalar()
    if beyond is not None:
        return VerifyReport(
            False,
            checked,
            beyond,
            f"head mismatch: record {beyond} lies after the head (seq {head.seq})",
        )
    return VerifyReport(ok=True, checked=checked)


def _walk(
    conn: Connection, after: int, upto: int, batch_size: int
) -> Iterator[tuple[int, dict[str, Any] | None]]:
    """Records with ``after < seq <= upto`` in order, by pages; ``None`` for an unreadable row."""
    last = after
    while True:
        window = (_seq > last, _seq <= upto)
        try:
            rows = [
                dict(r._mapping)
                for r in conn.execute(
                    select(record_table).where(*window).order_by(_seq).limit(batch_size)
                )
            ]
            page: list[tuple[int, dict[str, Any] | None]] = [(row["seq"], row) for row in rows]
        except DBAPIError:
            raise
        except Exception:
            # A value its column type cannot load (tampered in SQL): find which, row by row.
            seqs = conn.execute(select(_seq).where(*window).order_by(_seq).limit(batch_size))
            page = [(seq, _load(conn, seq)) for seq in seqs.scalars()]
        if not page:
            return
        yield from page
        last = page[-1][0]


def _load(conn: Connection, seq: int) -> dict[str, Any] | None:
    try:
        return dict(conn.execute(select(record_table).where(_seq == seq)).one()._mapping)
    except DBAPIError:
        raise
    except Exception:
        return None
