"""Migration 0014 gives every federation client an owner or flags it as guichet's own: a
bound client → its habilitation's organisation; the portal's client and the data providers →
``internal`` (a portal client a partner had claimed is released); any other → no owner."""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

from guichet.db import make_engine
from guichet.db.base import UTCDateTime
from guichet.db.migrate import alembic_config, upgrade
from guichet.demo import PORTAL_CLIENT_NAME
from tests.conftest import BACKENDS
from tests.support.postgres import PostgresServer
from tests.unit.db.old_tables import HABILITATION, JSON, ORGANISATION, table

# The tables as they are at revision 0013.
_org = ORGANISATION
_hab = HABILITATION
_client = table(
    "federation_client",
    client_id=sa.String(),
    kind=sa.String(),
    name=sa.String(),
    secret_hash=sa.String(),
    redirect_uris=JSON,
    post_logout_redirect_uris=JSON,
    scopes=JSON,
    sector=sa.String(),
    habilitation_id=sa.Uuid(),
    disabled=sa.Boolean(),
    created_at=UTCDateTime(),
)
_declared = table(
    "habilitation_federation_client",
    id=sa.Uuid(),
    habilitation_id=sa.Uuid(),
    client_id=sa.String(),
    environment=sa.String(),
    created_at=UTCDateTime(),
)


@pytest.fixture(params=BACKENDS)
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.create_database(f"mig14_{os.getpid()}_{uuid.uuid4().hex[:8]}")


def test_owners_backfilled_and_guichet_clients_flagged(empty_url: str) -> None:
    engine = make_engine(empty_url)
    upgrade(engine, "0013")
    now = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    org_a, org_b, hab_a, hab_b = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    hab_row = {
        "environment": "sandbox",
        "demarche": "Quotient familial",
        "status": "active",
        "apis": ["impot_particulier"],
        "access_modes": ["franceconnect"],
        "data_scopes": ["dgfip_rfr"],
        "year_scopes": ["dgfip_annee_n_moins_1"],
        "ip_ranges": [],
        "quotas": {},
        "data_labels": {},
        "valid_from": now,
        "created_at": now,
        "updated_at": now,
    }
    client_row = {
        "kind": "service-provider",
        "secret_hash": "x",
        "redirect_uris": ["https://a.example/retour"],
        "post_logout_redirect_uris": [],
        "scopes": ["openid", "given_name"],
        "sector": "s",
        "habilitation_id": None,
        "disabled": False,
        "created_at": now,
    }
    with engine.begin() as conn:
        conn.execute(
            _org.insert(),
            [
                {"id": org_a, "siret": "1" * 14, "name": "A", "created_at": now},
                {"id": org_b, "siret": "2" * 14, "name": "B", "created_at": now},
            ],
        )
        conn.execute(
            _hab.insert(),
            [
                {**hab_row, "id": hab_a, "organisation_id": org_a},
                {**hab_row, "id": hab_b, "organisation_id": org_b},
            ],
        )
        conn.execute(
            _client.insert(),
            [
                {**client_row, "client_id": "a-bound", "name": "A", "habilitation_id": hab_a},
                {**client_row, "client_id": "free", "name": "Libre"},
                # The attack of issue 11, already done: B's request claimed the portal's.
                {
                    **client_row,
                    "client_id": "portal",
                    "name": PORTAL_CLIENT_NAME,
                    "habilitation_id": hab_b,
                    "scopes": ["openid", "given_name", "dgfip_rfr", "dgfip_annee_n_moins_1"],
                },
                {
                    **client_row,
                    "client_id": "dp",
                    "kind": "data-provider",
                    "name": "DGFiP",
                    "redirect_uris": [],
                    "scopes": [],
                },
            ],
        )
        conn.execute(
            _declared.insert(),
            [
                {
                    "id": uuid.uuid4(),
                    "habilitation_id": hab,
                    "client_id": client,
                    "environment": "sandbox",
                    "created_at": now,
                }
                for hab, client in ((hab_a, "a-bound"), (hab_b, "portal"))
            ],
        )
    upgrade(engine)
    with engine.connect() as conn:
        rows = {
            r.client_id: r
            for r in conn.execute(
                sa.text(
                    "SELECT client_id, organisation_id, internal, habilitation_id, scopes "
                    "FROM federation_client"
                )
            )
        }
        declared = conn.execute(sa.select(_declared.c.habilitation_id, _declared.c.client_id)).all()

    def owner(client_id: str) -> uuid.UUID | None:
        value = rows[client_id].organisation_id
        return None if value is None else uuid.UUID(str(value))

    assert owner("a-bound") == org_a
    assert not rows["a-bound"].internal
    assert owner("free") is None
    assert not rows["free"].internal
    for own in ("portal", "dp"):
        assert rows[own].internal
        assert owner(own) is None
        assert rows[own].habilitation_id is None
    portal_scopes = rows["portal"].scopes
    if isinstance(portal_scopes, str):  # JSON read through text()
        portal_scopes = json.loads(portal_scopes)
    assert portal_scopes == ["openid", "given_name"]
    assert [(uuid.UUID(str(h)), c) for h, c in declared] == [(hab_a, "a-bound")]
    # Down and up again.
    command.downgrade(alembic_config(engine), "0013")
    with engine.connect() as conn:
        columns = {c["name"] for c in sa.inspect(conn).get_columns("federation_client")}
    assert {"organisation_id", "internal"}.isdisjoint(columns)
    upgrade(engine)
    engine.dispose()
