"""federation client ids declared for a habilitation

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 21:40:00.000000

Backfilled from what existed before: the sandbox federation's clients bound to a
habilitation, and the ``technical.federation_client_id`` of validated requests (the real
FranceConnect's client ids, which were kept only in the request's data).
"""

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

import guichet.db.base

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    table = op.create_table(
        "habilitation_federation_client",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("habilitation_id", sa.Uuid(), nullable=False),
        sa.Column("client_id", sa.String(length=200), nullable=False),
        sa.Column(
            "environment",
            sa.Enum("sandbox", "production", name="environment", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("created_at", guichet.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["habilitation_id"],
            ["habilitation.id"],
            name=op.f("fk_habilitation_federation_client_habilitation_id_habilitation"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_habilitation_federation_client")),
        sa.UniqueConstraint(
            "habilitation_id",
            "client_id",
            name=op.f("uq_habilitation_federation_client_habilitation_id"),
        ),
    )
    with op.batch_alter_table("habilitation_federation_client", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_habilitation_federation_client_client_id"), ["client_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_habilitation_federation_client_habilitation_id"),
            ["habilitation_id"],
            unique=False,
        )
    _backfill(table)


def _backfill(table: sa.Table | None) -> None:
    if table is None:
        return
    bind = op.get_bind()
    habilitation = sa.table(
        "habilitation", sa.column("id", sa.Uuid()), sa.column("environment", sa.String())
    )
    client = sa.table(
        "federation_client",
        sa.column("client_id", sa.String()),
        sa.column("kind", sa.String()),
        sa.column("habilitation_id", sa.Uuid()),
    )
    request = sa.table(
        "habilitation_request",
        sa.column("habilitation_id", sa.Uuid()),
        sa.column("status", sa.String()),
        sa.column("data", sa.JSON()),
    )
    environments = {row.id: row.environment for row in bind.execute(sa.select(habilitation))}
    pairs: set[tuple[uuid.UUID, str]] = set()
    for row in bind.execute(
        sa.select(client.c.client_id, client.c.habilitation_id).where(
            client.c.kind == "service-provider", client.c.habilitation_id.is_not(None)
        )
    ):
        pairs.add((row.habilitation_id, row.client_id))
    for row in bind.execute(
        sa.select(request.c.habilitation_id, request.c.data).where(
            request.c.status == "validated", request.c.habilitation_id.is_not(None)
        )
    ):
        data: Any = row.data
        technical = data.get("technical") if isinstance(data, dict) else None
        declared = technical.get("federation_client_id") if isinstance(technical, dict) else None
        if isinstance(declared, str) and declared.strip():
            pairs.add((row.habilitation_id, declared.strip()))
    now = dt.datetime.now(dt.UTC)
    rows = [
        {
            "id": uuid.uuid4(),
            "habilitation_id": hab_id,
            "client_id": client_id,
            "environment": environments[hab_id],
            "created_at": now,
        }
        for hab_id, client_id in sorted(pairs, key=lambda p: (str(p[0]), p[1]))
        if hab_id in environments
    ]
    if rows:
        op.bulk_insert(table, rows)


def downgrade() -> None:
    with op.batch_alter_table("habilitation_federation_client", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_habilitation_federation_client_habilitation_id"))
        batch_op.drop_index(batch_op.f("ix_habilitation_federation_client_client_id"))

    op.drop_table("habilitation_federation_client")
