"""Shared fixtures: a database per test on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import datetime as dt
import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from guichet.clock import FrozenClock
from guichet.db import make_engine, make_sessionmaker
from guichet.schema import metadata
from guichet.secrets import MasterSecret
from tests.support.postgres import PostgresServer

BACKENDS = [
    b.strip() for b in os.environ.get("GUICHET_TEST_BACKENDS", "sqlite,postgres").split(",")
]
_counter = itertools.count()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_schema_url(postgres_server: PostgresServer) -> str:
    """One PostgreSQL database with the schema, shared by the tests and emptied after each."""
    url = postgres_server.create_database(f"t{os.getpid()}_{next(_counter)}")
    eng = make_engine(url)
    metadata.create_all(eng)
    eng.dispose()
    return url


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database with the schema: a new SQLite file, or the emptied PostgreSQL one."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'guichet.db'}"
        eng = make_engine(url)
        metadata.create_all(eng)
        eng.dispose()
        yield url
        return
    url = request.getfixturevalue("postgres_schema_url")
    yield url
    eng = make_engine(url)
    with eng.begin() as conn:
        names = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
        conn.exec_driver_sql(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
    eng.dispose()


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def session_factory(engine: Engine) -> sessionmaker[Session]:
    return make_sessionmaker(engine)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC))


@pytest.fixture
def master_secret() -> MasterSecret:
    return MasterSecret(b"k" * 48)
