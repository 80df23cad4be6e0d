"""Database engine and sessions (SQLite by default, PostgreSQL at scale)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.orm import Session, sessionmaker

# The database holds password hashes, sessions and the journal: owner only, like secret.key.
PRIVATE_FILE = 0o600


def private_sqlite_file(url: str) -> None:
    """Create the SQLite file ``url`` names with mode 0600 before SQLite does (it would use
    the umask, often 0644), and tighten an existing one and its WAL files to 0600; SQLite
    gives the WAL and shared-memory files it creates the database file's mode."""
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    if not path.parent.is_dir():
        return  # SQLite will say so when it connects
    # Never open (then close) a database file that exists: closing any descriptor of a file
    # drops every POSIX lock this process holds on it, SQLite's included (sqlite.org
    # howtocorrupt §2.2) — readers of other connections would then see stale pages.
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE))
    for found in (path, path.with_name(f"{path.name}-wal"), path.with_name(f"{path.name}-shm")):
        if found.exists() and stat.S_IMODE(found.stat().st_mode) & 0o077:
            found.chmod(PRIVATE_FILE)


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine with the pragmas guichet relies on (durability, foreign keys, WAL)."""
    if url.startswith("sqlite"):
        # Enough pooled connections for the worker threads: a new connection costs its pragmas.
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=20,
            max_overflow=20,
            **kwargs,
        )

        @event.listens_for(engine, "do_connect")
        def _private(*_: Any) -> None:
            # Before SQLite opens (and maybe creates) the file: whenever the file appears.
            private_sqlite_file(url)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            # Python's sqlite3 opens transactions lazily; take control so that
            # BEGIN IMMEDIATE serialises journal writers across processes.
            dbapi_connection.isolation_level = None
            cur = dbapi_connection.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            # Writers that read-then-write (the journal chain) ask for the write lock up
            # front with execution_options(immediate=True), so they never deadlock.
            immediate = conn.get_execution_options().get("immediate")
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20, **kwargs)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: committed on success, rolled back on any error."""
    with factory() as session, session.begin():
        yield session
