"""Applies the journal's retention: deletes the chain's oldest prefix and moves its anchor."""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from guichet.journal.chain import engine_of, locked_chain, record_table, set_head, subject_table
from guichet.logs import event

log = logging.getLogger(__name__)
_seq = record_table.c.seq


def purge(
    session_factory: sessionmaker[Session],
    *,
    now: dt.datetime,
    retention_days: int,
    chunk: int = 10_000,
    lock_timeout: float = 30.0,
) -> int:
    """Delete records older than ``retention_days`` that form a prefix of the chain.

    Records go strictly in ``seq`` order: the purge stops at the first record still within
    the retention, even if later records are older (clocks of several workers), so the
    chain never has a hole. Each transaction deletes at most ``chunk`` records and moves
    the head's anchor to the last one deleted, so ``verify`` passes after every step and
    writers are never held up for long. Returns the number of records deleted.
    """
    if retention_days < 1:
        raise ValueError("retention_days must be at least 1")
    cutoff = now - dt.timedelta(days=retention_days)
    engine = engine_of(session_factory)
    deleted = 0
    while True:
        with locked_chain(engine, lock_timeout=lock_timeout) as (conn, head):
            anchor = head.anchor_seq
            keep_from = conn.execute(
                select(_seq)
                .where(_seq > anchor, record_table.c.at >= cutoff)
                .order_by(_seq)
                .limit(1)
            ).scalar()
            last_q = select(_seq, record_table.c.hash).where(_seq > anchor, _seq <= anchor + chunk)
            if keep_from is not None:
                last_q = last_q.where(_seq < keep_from)
            last = conn.execute(last_q.order_by(_seq.desc()).limit(1)).first()
            if last is None:
                break
            result = conn.execute(delete(record_table).where(_seq <= last.seq))
            conn.execute(delete(subject_table).where(subject_table.c.seq <= last.seq))
            set_head(conn, anchor_seq=last.seq, anchor_hash=last.hash)
            deleted += result.rowcount
    event(log, "journal:purge:done", records=deleted, cutoff=cutoff.isoformat())
    return deleted
