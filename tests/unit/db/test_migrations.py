"""The Alembic migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from sqlalchemy import inspect

from guichet.db import make_engine
from guichet.db.migrate import check, is_current, upgrade
from guichet.schema import metadata
from tests.conftest import BACKENDS
from tests.support.postgres import PostgresServer


@pytest.fixture(params=BACKENDS)
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.create_database(f"mig_{os.getpid()}_{uuid.uuid4().hex[:8]}")


def test_migrations_match_the_models(empty_url: str) -> None:
    engine = make_engine(empty_url)
    assert not is_current(engine)
    upgrade(engine)
    assert is_current(engine)
    check(engine, metadata)  # raises if autogenerate would find any difference
    assert set(inspect(engine).get_table_names()) >= set(metadata.tables)
    upgrade(engine)  # idempotent
    engine.dispose()
