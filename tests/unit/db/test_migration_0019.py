"""Migration 0019 trades API FICOBA's three shared data scopes for one scope per search type:
a habilitation made by a request keeps exactly the types the request asked for, one made
without a request (the demo partner's) every type it could search, and the downgrade gives the
shared scopes back."""

from __future__ import annotations

import datetime as dt
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command

from guichet.catalog.products import FICOBA_DATA_SCOPES, IR_DATA_SCOPES
from guichet.db import make_engine
from guichet.db.base import UTCDateTime
from guichet.db.migrate import alembic_config, upgrade
from tests.conftest import BACKENDS
from tests.support.postgres import PostgresServer
from tests.unit.db.old_tables import HABILITATION, JSON, ORGANISATION, table

SHARED = ["ficoba_comptes", "ficoba_multi_detention", "ficoba_verification_iban"]


_org = ORGANISATION
_hab = HABILITATION
_req = table(
    "habilitation_request",
    id=sa.Uuid(),
    organisation_id=sa.Uuid(),
    environment=sa.String(),
    api=sa.String(),
    status=sa.String(),
    data=JSON,
    habilitation_id=sa.Uuid(),
    decided_at=UTCDateTime(),
    created_at=UTCDateTime(),
    updated_at=UTCDateTime(),
)
_generation = table("cache_generation", id=sa.Integer(), value=sa.BigInteger())


@pytest.fixture(params=BACKENDS)
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.create_database(f"mig19_{os.getpid()}_{uuid.uuid4().hex[:8]}")


def _habilitation(conn: sa.Connection, org: uuid.UUID, apis: list[str], scopes: list[str]) -> Any:
    now = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    hab = uuid.uuid4()
    conn.execute(
        _hab.insert(),
        {
            "id": hab,
            "organisation_id": org,
            "environment": "sandbox",
            "demarche": "Recouvrement",
            "status": "active",
            "apis": apis,
            "access_modes": [],
            "data_scopes": scopes,
            "year_scopes": [],
            "ip_ranges": ["127.0.0.1/32"],
            "quotas": {},
            "data_labels": {},
            "valid_from": now,
            "created_at": now,
            "updated_at": now,
        },
    )
    return hab


def _request(
    conn: sa.Connection, org: uuid.UUID, hab: uuid.UUID, kinds: list[str], day: int
) -> None:
    at = dt.datetime(2026, 11, day, tzinfo=dt.UTC)
    conn.execute(
        _req.insert(),
        {
            "id": uuid.uuid4(),
            "organisation_id": org,
            "environment": "sandbox",
            "api": "ficoba",
            "status": "validated",
            "data": {"perimeter": {"search_types": {k: "Finalité." for k in kinds}}},
            "habilitation_id": hab,
            "decided_at": at,
            "created_at": at,
            "updated_at": at,
        },
    )


def _scopes(conn: sa.Connection, hab: uuid.UUID) -> list[str]:
    value = conn.execute(sa.select(_hab.c.data_scopes).where(_hab.c.id == hab)).scalar_one()
    return list(value)


def test_each_habilitation_gets_the_search_types_it_was_granted(empty_url: str) -> None:
    engine = make_engine(empty_url)
    upgrade(engine, "0018")
    now = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    org = uuid.uuid4()
    ir = sorted(IR_DATA_SCOPES)
    with engine.begin() as conn:
        conn.execute(_org.insert(), {"id": org, "siret": "1" * 14, "name": "O", "created_at": now})
        requested = _habilitation(
            conn, org, ["ficoba"], ["ficoba_comptes", "ficoba_verification_iban"]
        )
        # An older request asked for more; the last validated one made the habilitation.
        _request(conn, org, requested, ["spi", "multi_detention_siret"], day=1)
        _request(
            conn, org, requested, ["personne_physique", "verification_iban_personne_physique"], 2
        )
        demo = _habilitation(conn, org, ["impot_particulier", "r2p", "ficoba"], ir + SHARED)
        other = _habilitation(conn, org, ["impot_particulier"], ir)
        before = conn.execute(sa.select(_generation.c.value)).scalar()

    upgrade(engine, "0019")
    with engine.connect() as conn:
        assert _scopes(conn, requested) == [
            "ficoba_recherche_personne_physique",
            "ficoba_recherche_verification_iban_personne_physique",
        ]
        assert _scopes(conn, demo) == sorted([*ir, *FICOBA_DATA_SCOPES])
        assert _scopes(conn, other) == ir
        assert conn.execute(sa.select(_generation.c.value)).scalar() == (before or 0) + 1

    upgrade(engine, "0019")  # nothing more to do
    with engine.connect() as conn:
        assert _scopes(conn, demo) == sorted([*ir, *FICOBA_DATA_SCOPES])

    command.downgrade(alembic_config(engine), "0018")
    with engine.connect() as conn:
        assert _scopes(conn, requested) == ["ficoba_comptes", "ficoba_verification_iban"]
        assert _scopes(conn, demo) == sorted([*ir, *SHARED])
        assert _scopes(conn, other) == ir
    engine.dispose()
