"""Issue 11 §8: the SQLite files (password hashes, sessions, journal) were created 0644:
readable by every local account."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from guichet.db import make_engine
from guichet.runtime import open_runtime
from guichet.schema import metadata
from guichet.settings import Settings


@pytest.fixture(autouse=True)
def permissive_umask() -> Iterator[None]:
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_database_and_its_wal_files_are_the_owners_only(tmp_path: Path) -> None:
    database = tmp_path / "guichet.db"
    engine = make_engine(f"sqlite:///{database}")
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE attack (x)"))
        conn.execute(text("INSERT INTO attack VALUES (1)"))
        created = [database, *database.parent.glob("guichet.db-*")]
        assert {p.name for p in created} >= {"guichet.db", "guichet.db-wal", "guichet.db-shm"}
        for path in created:
            assert mode(path) == 0o600, path
    engine.dispose()


def test_an_existing_world_readable_database_is_tightened(tmp_path: Path) -> None:
    database = tmp_path / "guichet.db"
    database.touch(mode=0o644)
    database.chmod(0o644)
    engine = make_engine(f"sqlite:///{database}")
    with engine.connect():
        pass
    engine.dispose()
    assert mode(database) == 0o600


def test_a_new_data_directory_is_the_owners_only(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    runtime = open_runtime(Settings(data_dir=data_dir), migrate=False)
    with runtime.engine.connect():
        pass
    runtime.close()
    assert mode(data_dir) == 0o700
    assert mode(data_dir / "guichet.db") == 0o600
    assert mode(data_dir / "secret.key") == 0o600
