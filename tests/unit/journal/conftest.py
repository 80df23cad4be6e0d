"""Journal test helpers: entry factories and raw access to the chain's tables."""

from __future__ import annotations

import datetime as dt
import itertools
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from guichet.clock import FrozenClock
from guichet.journal.chain import record_table
from guichet.journal.entry import JournalEntry
from tests.conftest import BACKENDS
from tests.support.postgres import PostgresServer

PARTNER_A = uuid.UUID("00000000-0000-4000-8000-00000000000a")
PARTNER_B = uuid.UUID("00000000-0000-4000-8000-00000000000b")

EntryFactory = Callable[..., JournalEntry]
_private = itertools.count()


@pytest.fixture(params=BACKENDS)
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database of this test's own, without any table: for migrations and for tests that
    break the database (the shared ``db_url`` is reused by the next test)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'private.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.create_database(f"journal{os.getpid()}_{next(_private)}")


def make_entry(at: dt.datetime, **overrides: Any) -> JournalEntry:
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "at": at,
        "environment": "sandbox",
        "correlation_id": str(uuid.uuid4()),
        "partner_id": PARTNER_A,
        "habilitation_id": uuid.UUID("00000000-0000-4000-8000-0000000000c1"),
        "client_id": "client-demo",
        "api": "impot_particulier",
        "operation": "GET situations_ir",
        "source_ip": "127.0.0.1",
        "cert_thumbprint": "q3o2Yt4vq8b3kR2mYt4vq8b3kR2mYt4vq8b3kR2mYt4",
        "subject": "a" * 64,
        "data_scopes": ["dgfip_rfr", "dgfip_nbpart"],
        "outcome": "ok",
        "http_status": 200,
        "latency_ms": 3.25,
    }
    values.update(overrides)
    return JournalEntry(**values)


@pytest.fixture
def entry(clock: FrozenClock) -> EntryFactory:
    """Entries one second apart, from the frozen clock."""

    def factory(**overrides: Any) -> JournalEntry:
        clock.advance(1)
        return make_entry(clock.now(), **overrides)

    return factory


def rows(session_factory: sessionmaker[Session]) -> list[dict[str, Any]]:
    with session_factory() as s:
        result = s.execute(select(record_table).order_by(record_table.c.seq))
        return [dict(r._mapping) for r in result]


def sql(session_factory: sessionmaker[Session], statement: str, **params: Any) -> None:
    with session_factory() as s, s.begin():
        s.execute(text(statement), params)
