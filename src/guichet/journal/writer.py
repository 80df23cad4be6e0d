"""Durable, hash-chained appends with group commit: one writer thread per process."""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, insert
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from guichet.errors import JournalUnavailable
from guichet.journal.chain import (
    Head,
    engine_of,
    locked_chain,
    locked_transaction,
    record_table,
    set_head,
)
from guichet.journal.entry import JournalEntry, record_hash
from guichet.logs import event

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Pending:
    entry: JournalEntry
    future: Future[None]


class JournalWriter:
    """Appends entries to the chain; ``append`` returns once its record is committed.

    Concurrent ``append`` calls are queued to one thread that writes whatever has
    accumulated (up to ``max_batch``) in one transaction: lock the chain head, number the
    records from it (``seq`` = head + 1, + 2, …), hash each over its predecessor, insert,
    move the head, commit — then wake each caller. Processes sharing the database
    serialise on the head lock, so the chain stays linear. Any failure to commit raises
    ``JournalUnavailable`` in every caller of that batch: they fail closed.
    """

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        *,
        max_batch: int = 256,
        lock_timeout: float = 5.0,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._engine = engine_of(session_factory)
        self._max_batch = max_batch
        self._lock_timeout = lock_timeout
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._conn: Connection | None = None  # the writer thread's own connection
        self.transactions = 0  # committed transactions (batches), for metrics and tests
        self.records = 0

    def start(self) -> None:
        """Start the writer thread (``append`` does it on first use)."""
        with self._lock:
            self._start_locked()

    def _start_locked(self) -> None:
        if self._closed:
            raise JournalUnavailable("Journal des échanges fermé")
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="guichet-journal-writer", daemon=True
            )
            self._thread.start()

    async def append(self, entry: JournalEntry) -> None:
        """Return once ``entry`` is committed; raise ``JournalUnavailable`` if it cannot be."""
        future: Future[None] = Future()
        with self._lock:
            self._start_locked()
            self._queue.put(_Pending(entry, future))
        # Shielded: a caller that goes away does not withdraw an exchange already queued.
        waiter = asyncio.wrap_future(future)
        waiter.add_done_callback(_consume)
        await asyncio.shield(waiter)

    def append_sync(self, entry: JournalEntry) -> None:
        """Write ``entry`` in its own transaction from the calling thread (CLI, tests)."""
        if self._closed:
            raise JournalUnavailable("Journal des échanges fermé")
        try:
            self._write([entry])
        except Exception as exc:
            self._log_failure(exc, 1)
            raise JournalUnavailable() from exc

    async def close(self) -> None:
        """Write everything already queued, then stop the writer thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
            if thread is not None:
                self._queue.put(None)
        if thread is not None:
            await asyncio.to_thread(thread.join)

    def _run(self) -> None:
        try:
            self._loop()
        finally:
            self._drop_connection()

    def _loop(self) -> None:
        stopping = False
        while not stopping:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            while len(batch) < self._max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stopping = True
                    break
                batch.append(nxt)
            try:
                self._flush(batch)
            except Exception as exc:  # pragma: no cover - the thread must never die silently
                self._fail([p for p in batch if not p.future.done()], exc)

    def _flush(self, batch: list[_Pending]) -> None:
        try:
            self._write_batch([p.entry for p in batch])
        except (IntegrityError, DataError) as exc:
            # One bad entry (e.g. a reused id) must not fail the others: write them apart.
            if len(batch) > 1:
                for pending in batch:
                    self._flush([pending])
                return
            self._fail(batch, exc)
        except Exception as exc:
            self._fail(batch, exc)
        else:
            for pending in batch:
                _settle(pending.future, None)

    def _fail(self, batch: list[_Pending], exc: Exception) -> None:
        self._log_failure(exc, len(batch))
        for pending in batch:
            error = JournalUnavailable()
            error.__cause__ = exc
            _settle(pending.future, error)

    def _write(self, entries: list[JournalEntry]) -> None:
        """One transaction on a pooled connection (``append_sync``: CLI, tests)."""
        with locked_chain(self._engine, lock_timeout=self._lock_timeout) as (conn, head):
            self._chain(conn, head, entries)

    def _write_batch(self, entries: list[JournalEntry]) -> None:
        """One transaction on the writer thread's own connection, opened once: no pool
        checkout and no busy-timeout juggling per batch (this is the gateway's hot path)."""
        conn = self._connection()
        try:
            with locked_transaction(conn, lock_timeout=self._lock_timeout) as head:
                self._chain(conn, head, entries)
        except Exception:
            self._drop_connection()
            raise

    def _chain(self, conn: Connection, head: Head, entries: list[JournalEntry]) -> None:
        seq, prev = head.seq, head.hash
        rows: list[dict[str, Any]] = []
        for entry in entries:
            seq += 1
            row = {**entry.values(), "seq": seq, "prev_hash": prev}
            row["hash"] = prev = record_hash(row)
            rows.append(row)
        conn.execute(insert(record_table), rows)
        set_head(conn, seq=seq, hash=prev)
        with self._lock:
            self.transactions += 1
            self.records += len(entries)

    def _connection(self) -> Connection:
        if self._conn is None:
            conn = self._engine.connect()
            if self._engine.dialect.name == "sqlite":
                # This connection never goes back to the pool while the writer lives.
                raw = conn.connection.driver_connection
                assert raw is not None
                raw.execute(f"PRAGMA busy_timeout={max(1, int(self._lock_timeout * 1000))}")
            self._conn = conn
        return self._conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            try:
                self._conn.invalidate()
                self._conn.close()
            except Exception:  # noqa: S110 - already failing; the next batch reconnects
                pass
            self._conn = None

    @staticmethod
    def _log_failure(exc: Exception, size: int) -> None:
        # The exception's text may quote row values: log its class only.
        cause = getattr(exc, "orig", None)
        event(
            log,
            "journal:write:failed",
            logging.ERROR,
            error=type(exc).__name__,
            cause=type(cause).__name__ if cause is not None else "",
            records=size,
        )


def _consume(waiter: asyncio.Future[None]) -> None:
    # Marks the outcome as seen even when the caller was cancelled meanwhile (no
    # "exception never retrieved" noise); the failure itself is already logged.
    if not waiter.cancelled():
        waiter.exception()


def _settle(future: Future[None], error: BaseException | None) -> None:
    try:
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)
    except InvalidStateError:  # pragma: no cover - cancelled by its owner
        pass
