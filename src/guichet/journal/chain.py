"""The chain head: one locked row that serialises every writer of the journal, in any process."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, Executable, Table, bindparam, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from guichet.journal.entry import GENESIS_HASH
from guichet.journal.models import JournalHead, JournalRecord, JournalSubject

HEAD_ID = 1
record_table: Table = JournalRecord.__table__  # type: ignore[assignment]
subject_table: Table = JournalSubject.__table__  # type: ignore[assignment]
head_table: Table = JournalHead.__table__  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class Head:
    """The last record (``seq``, ``hash``) and the last purged one (the anchor)."""

    seq: int
    hash: str
    anchor_seq: int
    anchor_hash: str


def engine_of(session_factory: sessionmaker[Session]) -> Engine:
    """The engine behind a session factory: the journal works at the Core level."""
    with session_factory() as session:
        bind = session.get_bind()
    return bind if isinstance(bind, Engine) else bind.engine


def ensure_head(conn: Connection | Session) -> None:
    """Create the head row (genesis) unless it exists; safe when several processes race."""
    values = {
        "id": HEAD_ID,
        "seq": 0,
        "hash": GENESIS_HASH,
        "anchor_seq": 0,
        "anchor_hash": GENESIS_HASH,
    }
    dialect = (conn if isinstance(conn, Connection) else conn.get_bind()).dialect.name
    stmt: Executable
    if dialect == "postgresql":
        stmt = postgresql.insert(head_table).values(values).on_conflict_do_nothing()
    elif dialect == "sqlite":
        stmt = sqlite.insert(head_table).values(values).on_conflict_do_nothing()
    else:  # pragma: no cover - guichet runs on SQLite and PostgreSQL only
        exists = conn.execute(select(head_table.c.id).where(head_table.c.id == HEAD_ID))
        if exists.first() is not None:
            return
        conn.execute(insert(head_table).values(values))
        return
    conn.execute(stmt)


# Built once: the writer reads and moves the head in every batch.
HEAD_QUERY = select(
    head_table.c.seq, head_table.c.hash, head_table.c.anchor_seq, head_table.c.anchor_hash
).where(head_table.c.id == HEAD_ID)
# FOR UPDATE on PostgreSQL; SQLite renders nothing (BEGIN IMMEDIATE already locks).
LOCKED_HEAD_QUERY = HEAD_QUERY.with_for_update()
MOVE_HEAD = (
    update(head_table)
    .where(head_table.c.id == HEAD_ID)
    .values(seq=bindparam("new_seq"), hash=bindparam("new_hash"))
)


def read_head(conn: Connection | Session, *, lock: bool = False) -> Head | None:
    row = conn.execute(LOCKED_HEAD_QUERY if lock else HEAD_QUERY).first()
    if row is None:
        return None
    return Head(seq=row.seq, hash=row.hash, anchor_seq=row.anchor_seq, anchor_hash=row.anchor_hash)


def set_head(conn: Connection, **values: int | str) -> None:
    if values.keys() == {"seq", "hash"}:
        conn.execute(MOVE_HEAD, {"new_seq": values["seq"], "new_hash": values["hash"]})
        return
    conn.execute(update(head_table).where(head_table.c.id == HEAD_ID).values(**values))


@contextmanager
def locked_transaction(conn: Connection, *, lock_timeout: float) -> Iterator[Head]:
    """On a connection the caller owns (the writer's own, whose SQLite busy timeout it set
    once): a transaction holding the chain's write lock, committed on exit."""
    conn.execution_options(immediate=True)
    with conn.begin():
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SET LOCAL lock_timeout = {max(1, int(lock_timeout * 1000))}")
        head = read_head(conn, lock=True)
        if head is None:
            ensure_head(conn)
            head = read_head(conn, lock=True)
            assert head is not None
        yield head


@contextmanager
def locked_chain(engine: Engine, *, lock_timeout: float) -> Iterator[tuple[Connection, Head]]:
    """One transaction holding the chain's write lock, committed on exit.

    PostgreSQL: ``SELECT … FOR UPDATE`` on the head row, waiting at most ``lock_timeout``.
    SQLite: ``BEGIN IMMEDIATE`` (the database's write lock), with the connection's busy
    timeout lowered to ``lock_timeout`` for the wait and restored afterwards.
    """
    timeout_ms = max(1, int(lock_timeout * 1000))
    with engine.connect() as conn:
        is_sqlite = engine.dialect.name == "sqlite"
        restore: int | None = None
        if is_sqlite:
            # Straight to the driver: no SQLAlchemy transaction is opened (autocommit).
            raw = conn.connection.driver_connection
            assert raw is not None
            restore = int(raw.execute("PRAGMA busy_timeout").fetchone()[0])
            raw.execute(f"PRAGMA busy_timeout={timeout_ms}")
        try:
            with locked_transaction(conn, lock_timeout=lock_timeout) as head:
                yield conn, head
        finally:
            if restore is not None and not conn.invalidated:
                try:
                    raw = conn.connection.driver_connection
                    assert raw is not None
                    raw.execute(f"PRAGMA busy_timeout={restore}")
                except Exception:
                    # Never hand a connection with a short busy timeout back to the pool.
                    conn.invalidate()
