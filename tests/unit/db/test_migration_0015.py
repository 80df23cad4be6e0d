"""Migration 0015 adds the search type and the subjects to the journal: records written before
it verify unchanged after it, records written after it too, and the downgrade drops them."""

from __future__ import annotations

import datetime as dt
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command

from guichet.db import make_engine, make_sessionmaker
from guichet.db.base import UTCDateTime
from guichet.db.migrate import alembic_config, upgrade
from guichet.journal.entry import GENESIS_HASH, record_hash
from guichet.journal.verify import verify
from guichet.journal.writer import JournalWriter
from tests.conftest import BACKENDS
from tests.support.postgres import PostgresServer
from tests.unit.journal.conftest import make_entry

# journal_record and journal_head as they are at revision 0014.
_COLUMNS: dict[str, sa.types.TypeEngine[Any]] = {
    "seq": sa.BigInteger(),
    "id": sa.Uuid(),
    "at": UTCDateTime(),
    "environment": sa.String(),
    "correlation_id": sa.String(),
    "partner_id": sa.Uuid(),
    "habilitation_id": sa.Uuid(),
    "client_id": sa.String(),
    "api": sa.String(),
    "operation": sa.String(),
    "source_ip": sa.String(),
    "cert_thumbprint": sa.String(),
    "subject": sa.String(),
    "data_scopes": sa.JSON(),
    "outcome": sa.String(),
    "http_status": sa.Integer(),
    "latency_ms": sa.Float(),
    "prev_hash": sa.String(),
    "hash": sa.String(),
}
_record = sa.table("journal_record", *(sa.column(name, kind) for name, kind in _COLUMNS.items()))
_head = sa.table(
    "journal_head",
    sa.column("id", sa.Integer()),
    sa.column("seq", sa.BigInteger()),
    sa.column("hash", sa.String()),
    sa.column("anchor_seq", sa.BigInteger()),
    sa.column("anchor_hash", sa.String()),
)


@pytest.fixture(params=BACKENDS)
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.create_database(f"mig15_{os.getpid()}_{uuid.uuid4().hex[:8]}")


def test_records_from_before_verify_after_it(empty_url: str) -> None:
    engine = make_engine(empty_url)
    upgrade(engine, "0014")
    now = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    prev = GENESIS_HASH
    rows: list[dict[str, Any]] = []
    for seq in (1, 2):
        row = {**make_entry(now + dt.timedelta(seconds=seq)).values(), "seq": seq}
        for name in ("search_type", "subjects"):  # the columns 0014 does not have
            del row[name]
        row["prev_hash"] = prev
        row["hash"] = prev = record_hash(row)
        rows.append(row)
    with engine.begin() as conn:
        conn.execute(_record.insert(), rows)
        conn.execute(
            _head.insert(),
            {"id": 1, "seq": 2, "hash": prev, "anchor_seq": 0, "anchor_hash": GENESIS_HASH},
        )

    upgrade(engine)
    session_factory = make_sessionmaker(engine)
    report = verify(session_factory)
    assert (report.ok, report.checked) == (True, 2)
    JournalWriter(session_factory).append_sync(
        make_entry(now + dt.timedelta(seconds=3), search_type="spi", subjects=["1" * 64])
    )
    report = verify(session_factory)
    assert (report.ok, report.checked) == (True, 3)

    command.downgrade(alembic_config(engine), "0014")
    inspector = sa.inspect(engine)
    assert "journal_subject" not in inspector.get_table_names()
    assert "subjects" not in {c["name"] for c in inspector.get_columns("journal_record")}
    engine.dispose()
