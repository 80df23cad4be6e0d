"""Migration 0012 takes the removed data scope ``dgfip_ifi_montants`` out of habilitations,
requests and federation clients, so that updating them keeps working."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import sqlalchemy as sa
from alembic import command

from guichet.db import make_engine
from guichet.db.base import UTCDateTime
from guichet.db.migrate import alembic_config, upgrade
from tests.unit.db.old_tables import HABILITATION, JSON, ORGANISATION, table

GONE = "dgfip_ifi_montants"


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
    created_at=UTCDateTime(),
    updated_at=UTCDateTime(),
)
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
    disabled=sa.Boolean(),
    created_at=UTCDateTime(),
)


def test_the_scope_leaves_every_place_it_was_named(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'g.db'}")
    upgrade(engine, "0011")
    now = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    org, hab, request = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    with engine.begin() as conn:
        conn.execute(_org.insert(), {"id": org, "siret": "1" * 14, "name": "O", "created_at": now})
        conn.execute(
            _hab.insert(),
            {
                "id": hab,
                "organisation_id": org,
                "environment": "sandbox",
                "demarche": "Tarifs",
                "status": "active",
                "apis": ["impot_particulier"],
                "access_modes": ["spi"],
                "data_scopes": ["dgfip_ifi", GONE, "dgfip_rfr"],
                "year_scopes": ["dgfip_annee_n_moins_1"],
                "ip_ranges": [],
                "quotas": {},
                "data_labels": {GONE: "Montants", "dgfip_rfr": "RFR"},
                "valid_from": now,
                "created_at": now,
                "updated_at": now,
            },
        )
        perimeter = {"data_scopes": {GONE: "pourquoi", "dgfip_ifi": "parce que"}, "x": 1}
        conn.execute(
            _req.insert(),
            {
                "id": request,
                "organisation_id": org,
                "environment": "sandbox",
                "api": "impot_particulier",
                "status": "draft",
                "data": {"perimeter": perimeter, "contacts": {}},
                "created_at": now,
                "updated_at": now,
            },
        )
        conn.execute(
            _client.insert(),
            {
                "client_id": "fc",
                "kind": "service-provider",
                "name": "Ville",
                "secret_hash": "x",
                "redirect_uris": [],
                "post_logout_redirect_uris": [],
                "scopes": ["openid", GONE],
                "sector": "s",
                "disabled": False,
                "created_at": now,
            },
        )
    upgrade(engine)
    command.downgrade(alembic_config(engine), "0011")  # a no-op, then once more: idempotent
    upgrade(engine)
    with engine.connect() as conn:
        scopes, labels = conn.execute(sa.select(_hab.c.data_scopes, _hab.c.data_labels)).one()
        data = conn.execute(sa.select(_req.c.data)).scalar_one()
        client_scopes = conn.execute(sa.select(_client.c.scopes)).scalar_one()
    assert scopes == ["dgfip_ifi", "dgfip_rfr"]
    assert labels == {"dgfip_rfr": "RFR"}
    assert data == {
        "perimeter": {"data_scopes": {"dgfip_ifi": "parce que"}, "x": 1},
        "contacts": {},
    }
    assert client_scopes == ["openid"]
