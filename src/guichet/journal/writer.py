"""Durable, hash-chained appends with group commit: one writer thread per process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, insert
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from guichet.errors import JournalUnavailable
from guichet.journal.chain import (
    HEAD_QUERY,
    MOVE_HEAD,
    Head,
    engine_of,
    ensure_head,
    locked_chain,
    locked_transaction,
    record_table,
    set_head,
    subject_table,
)
from guichet.journal.entry import JournalEntry, record_hash
from guichet.logs import Outage

log = logging.getLogger(__name__)
_OUTAGE = Outage(log, "journal:write:failed", "journal:write:recovered")

# Seconds a batch waits for more records under load. Measured on the gateway benchmark
# (2 cores, SQLite): 2–3 ms gave 20–40 % more calls per second than none, at a lower p50.
BATCH_WINDOW = 0.002

# A bad row is written apart from its batch; on SQLite's direct path the driver's own
# exceptions arrive unwrapped.
_ROW_ERRORS = (IntegrityError, DataError, sqlite3.IntegrityError, sqlite3.DataError)


@dataclass(slots=True)
class _Pending:
    entry: JournalEntry
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[None]


@dataclass(frozen=True, slots=True)
class _SqliteStatements:
    """The batch's statements as SQLite text, compiled once by SQLAlchemy, and each
    column's bind processor (UUID → hex, datetime → text, JSON → text): the rows reach the
    driver as SQLAlchemy itself would have sent them."""

    read_head: str
    read_head_params: tuple[Any, ...]
    move_head: str
    move_head_order: tuple[str, ...]
    move_head_fixed: dict[str, Any]
    insert: str
    columns: tuple[str, ...]
    processors: tuple[Callable[[Any], Any] | None, ...]
    rows_per_insert: int

    @classmethod
    def compile(cls, conn: Connection) -> _SqliteStatements:
        dialect = conn.dialect
        read = HEAD_QUERY.compile(dialect=dialect)
        move = MOVE_HEAD.compile(dialect=dialect)
        columns = tuple(c.name for c in record_table.columns)
        ins = insert(record_table).compile(dialect=dialect, column_keys=list(columns))
        # Positional ("?") parameters: the insert's in column order; the head's bound
        # constants (its id) taken from the statements themselves.
        assert ins.positiontup == list(columns), ins.positiontup
        assert read.positiontup is not None
        assert move.positiontup is not None
        read_defaults = read.construct_params()
        processors = tuple(
            record_table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
            for name in columns
        )
        return cls(
            read_head=str(read),
            read_head_params=tuple(read_defaults[k] for k in read.positiontup),
            move_head=str(move),
            move_head_order=tuple(move.positiontup),
            move_head_fixed=dict(move.construct_params({"new_seq": 0, "new_hash": ""})),
            insert=str(ins),
            columns=columns,
            processors=processors,
            rows_per_insert=max(1, _variable_limit(conn) // len(columns)),
        )

    def move_head_params(self, seq: int, hash_: str) -> tuple[Any, ...]:
        values = {**self.move_head_fixed, "new_seq": seq, "new_hash": hash_}
        return tuple(values[k] for k in self.move_head_order)

    def insert_rows(self, count: int) -> str:
        """One INSERT of ``count`` rows: the driver steps one statement for many rows
        (``executemany`` steps once per row, and gives the GIL away at every step)."""
        head, values = self.insert.split(" VALUES ", 1)
        return f"{head} VALUES {', '.join([values] * count)}"

    def insert_all(self, cursor: sqlite3.Cursor, rows: list[tuple[Any, ...]]) -> None:
        # At most ``rows_per_insert`` rows a statement: SQLite caps the number of "?".
        step = self.rows_per_insert
        for start in range(0, len(rows), step):
            chunk = rows[start : start + step]
            cursor.execute(self.insert_rows(len(chunk)), [v for row in chunk for v in row])

    def params(self, row: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(
            row[name] if proc is None else proc(row[name])
            for name, proc in zip(self.columns, self.processors, strict=True)
        )


class JournalWriter:
    """Appends entries to the chain; ``append`` returns once its record is committed.

    Concurrent ``append`` calls are queued to one thread that writes whatever has
    accumulated (up to ``max_batch``) in one transaction: lock the chain head, number the
    records from it (``seq`` = head + 1, + 2, …), hash each over its predecessor, insert,
    move the head, commit — then wake each caller. Processes sharing the database
    serialise on the head lock, so the chain stays linear. Any failure to commit raises
    ``JournalUnavailable`` in every caller of that batch: they fail closed.

    Under load, a batch waits up to ``batch_window`` seconds after its first record for
    others to join it: each commit costs an fsync and a fixed share of work whatever its
    size, so fewer, fuller batches leave more of the machine to the calls themselves
    (``docs/performance.md``). A caller alone — the previous batch held a single record —
    never waits.
    """

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        *,
        max_batch: int = 256,
        lock_timeout: float = 5.0,
        batch_window: float = BATCH_WINDOW,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        if batch_window < 0:
            raise ValueError("batch_window must not be negative")
        self._batch_window = batch_window
        self._engine = engine_of(session_factory)
        self._max_batch = max_batch
        self._lock_timeout = lock_timeout
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._conn: Connection | None = None  # the writer thread's own connection
        self._sqlite: _SqliteStatements | None = None  # its direct path, on SQLite
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
        loop = asyncio.get_running_loop()
        # A plain loop future: the writer settles a whole batch with one wake-up of the
        # loop (``_settle``), instead of one cross-thread future per call.
        future: asyncio.Future[None] = loop.create_future()
        future.add_done_callback(_consume)
        with self._lock:
            self._start_locked()
            self._queue.put(_Pending(entry, loop, future))
        # Shielded: a caller that goes away does not withdraw an exchange already queued.
        await asyncio.shield(future)

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
        previous = 1
        while not stopping:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            # Wait for company only when the last batch had some: a lone caller goes at once.
            window = self._batch_window if previous > 1 else 0.0
            deadline = time.monotonic() + window
            while len(batch) < self._max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    try:
                        nxt = self._queue.get(timeout=left)
                    except queue.Empty:
                        break
                if nxt is None:
                    stopping = True
                    break
                batch.append(nxt)
            previous = len(batch)
            try:
                self._flush(batch)
            except Exception as exc:  # pragma: no cover - the thread must never die silently
                self._fail(batch, exc)

    def _flush(self, batch: list[_Pending]) -> None:
        try:
            self._write_batch([p.entry for p in batch])
        except _ROW_ERRORS as exc:
            # One bad entry (e.g. a reused id) must not fail the others: write them apart.
            if len(batch) > 1:
                for pending in batch:
                    self._flush([pending])
                return
            self._fail(batch, exc)
        except Exception as exc:
            self._fail(batch, exc)
        else:
            _OUTAGE.recovered()
            _settle(batch, None)

    def _fail(self, batch: list[_Pending], exc: Exception) -> None:
        self._log_failure(exc, len(batch))
        _settle(batch, exc)

    def _write(self, entries: list[JournalEntry]) -> None:
        """One transaction on a pooled connection (``append_sync``: CLI, tests)."""
        with locked_chain(self._engine, lock_timeout=self._lock_timeout) as (conn, head):
            self._chain(conn, head, entries)

    def _write_batch(self, entries: list[JournalEntry]) -> None:
        """One transaction on the writer thread's own connection, opened once: no pool
        checkout and no busy-timeout juggling per batch (this is the gateway's hot path)."""
        conn = self._connection()
        try:
            if self._sqlite is not None:
                self._write_sqlite(conn, self._sqlite, entries)
            else:
                with locked_transaction(conn, lock_timeout=self._lock_timeout) as head:
                    self._chain(conn, head, entries)
        except Exception:
            self._drop_connection()
            raise

    def _write_sqlite(
        self, conn: Connection, sql: _SqliteStatements, entries: list[JournalEntry]
    ) -> None:
        """The same transaction as ``locked_transaction`` + ``_chain`` (BEGIN IMMEDIATE by the
        engine's listener, commit by SQLAlchemy), its statements straight on the driver."""
        raw = conn.connection.driver_connection
        assert raw is not None
        with conn.begin():
            cursor = raw.cursor()
            try:
                head = cursor.execute(sql.read_head, sql.read_head_params).fetchone()
                if head is None:
                    ensure_head(conn)
                    head = cursor.execute(sql.read_head, sql.read_head_params).fetchone()
                seq, prev = head[0], head[1]
                rows: list[tuple[Any, ...]] = []
                subjects: list[tuple[str, int]] = []
                for entry in entries:
                    seq += 1
                    row = entry.values()
                    row["seq"] = seq
                    row["prev_hash"] = prev
                    row["hash"] = prev = record_hash(row)
                    rows.append(sql.params(row))
                    subjects += [(s, seq) for s in entry.subjects or ()]
                sql.insert_all(cursor, rows)
                if subjects:
                    cursor.executemany(
                        "INSERT INTO journal_subject (subject, seq) VALUES (?, ?)", subjects
                    )
                cursor.execute(sql.move_head, sql.move_head_params(seq, prev))
            finally:
                cursor.close()
        self._count(len(entries))

    def _chain(self, conn: Connection, head: Head, entries: list[JournalEntry]) -> None:
        seq, prev = head.seq, head.hash
        rows: list[dict[str, Any]] = []
        subjects: list[dict[str, Any]] = []
        for entry in entries:
            seq += 1
            row = {**entry.values(), "seq": seq, "prev_hash": prev}
            row["hash"] = prev = record_hash(row)
            rows.append(row)
            subjects += [{"subject": s, "seq": seq} for s in entry.subjects or ()]
        conn.execute(insert(record_table), rows)
        if subjects:
            conn.execute(insert(subject_table), subjects)
        set_head(conn, seq=seq, hash=prev)
        self._count(len(entries))

    def _count(self, records: int) -> None:
        with self._lock:
            self.transactions += 1
            self.records += records

    def _connection(self) -> Connection:
        if self._conn is None:
            conn = self._engine.connect()
            if self._engine.dialect.name == "sqlite":
                # This connection never goes back to the pool while the writer lives.
                raw = conn.connection.driver_connection
                assert raw is not None
                raw.execute(f"PRAGMA busy_timeout={max(1, int(self._lock_timeout * 1000))}")
                # Every transaction of this connection takes the write lock up front.
                conn.execution_options(immediate=True)
                self._sqlite = _SqliteStatements.compile(conn)
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
            self._sqlite = None

    @staticmethod
    def _log_failure(exc: Exception, size: int) -> None:
        # The exception's text may quote row values: log its class only; and once per
        # outage, with the records refused meanwhile when it ends (issue 13).
        cause = getattr(exc, "orig", None)
        _OUTAGE.failed(exc, size, cause=type(cause).__name__ if cause is not None else "")


def _variable_limit(conn: Connection) -> int:
    """How many "?" one SQLite statement may hold (999 before SQLite 3.32, 32766 after)."""
    raw = conn.connection.driver_connection
    assert isinstance(raw, sqlite3.Connection)
    return int(raw.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER))


def _consume(waiter: asyncio.Future[None]) -> None:
    # Marks the outcome as seen even when the caller was cancelled meanwhile (no
    # "exception never retrieved" noise); the failure itself is already logged.
    if not waiter.cancelled():
        waiter.exception()


def _settle(batch: list[_Pending], cause: Exception | None) -> None:
    """From the writer thread: wake each loop once for all of its callers in the batch."""
    by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
    for pending in batch:
        by_loop.setdefault(pending.loop, []).append(pending.future)
    for loop, futures in by_loop.items():
        # A closed loop (RuntimeError) has nobody waiting any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_resolve, futures, cause)


def _resolve(futures: list[asyncio.Future[None]], cause: Exception | None) -> None:
    # On the callers' loop. Each caller gets its own JournalUnavailable (they fail closed).
    for future in futures:
        if future.done():  # cancelled by its owner
            continue
        if cause is None:
            future.set_result(None)
        else:
            error = JournalUnavailable()
            error.__cause__ = cause
            future.set_exception(error)
