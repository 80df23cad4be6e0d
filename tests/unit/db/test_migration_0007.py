"""Migration 0007 records the federation client ids habilitations already had: the sandbox
federation's bound clients and the client ids validated requests declared."""

from __future__ import annotations

import datetime as dt
import os
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from guichet.db import make_engine
from guichet.db.base import UTCDateTime
from guichet.db.migrate import upgrade
from tests.conftest import BACKENDS
from tests.support.postgres import PostgresServer

_UUIDS = {"id", "organisation_id", "habilitation_id"}
_JSONS = {"apis", "access_modes", "data_scopes", "year_scopes", "ip_ranges", "quotas"}
_JSONS |= {"data_labels", "redirect_uris", "post_logout_redirect_uris", "scopes", "data"}
_TIMES = {"valid_from", "created_at", "updated_at"}
# The columns as they are at revision 0006 (not the models, which later revisions change).
_COLUMNS = {
    "organisation": "id siret name created_at",
    "habilitation": "id organisation_id environment demarche status apis access_modes "
    "data_scopes year_scopes ip_ranges quotas data_labels valid_from created_at updated_at",
    "federation_client": "client_id kind name secret_hash redirect_uris "
    "post_logout_redirect_uris scopes sector disabled created_at habilitation_id",
    "habilitation_request": "id organisation_id environment api status data habilitation_id "
    "created_at updated_at",
}


def _table(name: str, columns: str) -> sa.TableClause:
    def kind(column: str) -> sa.types.TypeEngine[object]:
        if column in _UUIDS:
            return sa.Uuid()
        if column in _JSONS:
            return sa.JSON()
        if column in _TIMES:
            return UTCDateTime()
        if column == "disabled":
            return sa.Boolean()
        return sa.String()

    return sa.table(name, *(sa.column(c, kind(c)) for c in columns.split()))


@pytest.fixture(params=BACKENDS)
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.create_database(f"mig7_{os.getpid()}_{uuid.uuid4().hex[:8]}")


def test_backfill_from_bound_clients_and_validated_requests(empty_url: str) -> None:
    engine = make_engine(empty_url)
    upgrade(engine, "0006")
    now = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    org = uuid.uuid4()
    sandbox_hab, production_hab, other_hab = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    hab_row = {
        "organisation_id": org,
        "demarche": "Démarche",
        "status": "active",
        "apis": [],
        "access_modes": ["franceconnect"],
        "data_scopes": [],
        "year_scopes": [],
        "ip_ranges": [],
        "quotas": {},
        "data_labels": {},
        "valid_from": now,
        "created_at": now,
        "updated_at": now,
    }
    client_row = {
        "name": "Service",
        "secret_hash": "x",
        "redirect_uris": [],
        "post_logout_redirect_uris": [],
        "scopes": [],
        "sector": "s",
        "disabled": False,
        "created_at": now,
    }
    request_row = {"organisation_id": org, "api": "impot_particulier", "created_at": now}
    request_row["updated_at"] = now
    with engine.begin() as conn:
        t = {name: _table(name, rows) for name, rows in _COLUMNS.items()}
        conn.execute(
            t["organisation"].insert(),
            {"id": org, "siret": "1" * 14, "name": "O", "created_at": now},
        )
        conn.execute(
            t["habilitation"].insert(),
            [
                {**hab_row, "id": sandbox_hab, "environment": "sandbox"},
                {**hab_row, "id": production_hab, "environment": "production"},
                {**hab_row, "id": other_hab, "environment": "production"},
            ],
        )
        conn.execute(
            t["federation_client"].insert(),
            [
                {**client_row, "client_id": "sp-bound", "kind": "service-provider"}
                | {"habilitation_id": sandbox_hab},
                {**client_row, "client_id": "sp-free", "kind": "service-provider"}
                | {"habilitation_id": None},
                {**client_row, "client_id": "dp", "kind": "data-provider"}
                | {"habilitation_id": sandbox_hab},
            ],
        )
        conn.execute(
            t["habilitation_request"].insert(),
            [
                {
                    **request_row,
                    "id": uuid.uuid4(),
                    "environment": "production",
                    "status": "validated",
                    "habilitation_id": production_hab,
                    "data": {"technical": {"federation_client_id": " fc-real "}},
                },
                # Not validated: nothing to record.
                {
                    **request_row,
                    "id": uuid.uuid4(),
                    "environment": "production",
                    "status": "submitted",
                    "habilitation_id": other_hab,
                    "data": {"technical": {"federation_client_id": "fc-pending"}},
                },
                {
                    **request_row,
                    "id": uuid.uuid4(),
                    "environment": "production",
                    "status": "validated",
                    "habilitation_id": other_hab,
                    "data": {"technical": {}},
                },
            ],
        )
    upgrade(engine)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT habilitation_id, client_id, environment FROM habilitation_federation_client"
            )
        ).all()
    engine.dispose()
    found = {(uuid.UUID(str(r[0])), r[1], r[2]) for r in rows}
    assert found == {
        (sandbox_hab, "sp-bound", "sandbox"),
        (production_hab, "fc-real", "production"),
    }
