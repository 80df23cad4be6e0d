"""federation clients have an owner; guichet's own clients are never bindable (issue 11)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05 10:00:00.000000

``federation_client`` gains ``organisation_id`` (the owner: only its organisation's requests
may bind the client to a habilitation) and ``internal`` (a client guichet registered for
itself: never bound, never accepted by the gateway). Backfilled:

- guichet's own: every data provider, and the portal's "who read my data" client (by its
  registered name) → ``internal``, without owner; one a partner's request had bound is
  unbound, loses any DGFiP data scope, and its declarations for habilitations
  (``habilitation_federation_client``) are withdrawn;
- a service provider bound to a habilitation → that habilitation's organisation;
- any other → no owner: unbindable until an operator assigns one
  (``guichet federation client assign-owner``).

Downgrade drops the two columns (what was unbound stays unbound).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# ``guichet.demo.PORTAL_CLIENT_NAME``, as registered by every version that made that client.
PORTAL_CLIENT_NAME = "guichet — Qui a consulté mes données ?"

_client = sa.table(
    "federation_client",
    sa.column("client_id", sa.String()),
    sa.column("kind", sa.String()),
    sa.column("name", sa.String()),
    sa.column("scopes", sa.JSON()),
    sa.column("habilitation_id", sa.Uuid()),
    sa.column("organisation_id", sa.Uuid()),
    sa.column("internal", sa.Boolean()),
)
_habilitation = sa.table(
    "habilitation", sa.column("id", sa.Uuid()), sa.column("organisation_id", sa.Uuid())
)
_declared = sa.table("habilitation_federation_client", sa.column("client_id", sa.String()))


def upgrade() -> None:
    with op.batch_alter_table("federation_client", schema=None) as batch_op:
        batch_op.add_column(sa.Column("organisation_id", sa.Uuid(), nullable=True))
        batch_op.add_column(
            sa.Column("internal", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.create_index(
            batch_op.f("ix_federation_client_organisation_id"), ["organisation_id"], unique=False
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_federation_client_organisation_id_organisation"),
            "organisation",
            ["organisation_id"],
            ["id"],
        )
    _backfill()


def _backfill() -> None:
    bind = op.get_bind()
    own = sa.or_(_client.c.kind == "data-provider", _client.c.name == PORTAL_CLIENT_NAME)
    internal = bind.execute(sa.select(_client.c.client_id, _client.c.scopes).where(own)).all()
    for row in internal:
        scopes = [s for s in (row.scopes or []) if not str(s).startswith("dgfip_")]
        bind.execute(
            _client.update()
            .where(_client.c.client_id == row.client_id)
            .values(internal=True, organisation_id=None, habilitation_id=None, scopes=scopes)
        )
    ids = [row.client_id for row in internal]
    if ids:
        bind.execute(_declared.delete().where(_declared.c.client_id.in_(ids)))
    owners = {
        row.id: row.organisation_id
        for row in bind.execute(sa.select(_habilitation.c.id, _habilitation.c.organisation_id))
    }
    bound = bind.execute(
        sa.select(_client.c.client_id, _client.c.habilitation_id).where(
            _client.c.internal == sa.false(), _client.c.habilitation_id.is_not(None)
        )
    ).all()
    for row in bound:
        owner = owners.get(row.habilitation_id)
        if owner is not None:
            bind.execute(
                _client.update()
                .where(_client.c.client_id == row.client_id)
                .values(organisation_id=owner)
            )


def downgrade() -> None:
    with op.batch_alter_table("federation_client", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_federation_client_organisation_id_organisation"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_federation_client_organisation_id"))
        batch_op.drop_column("internal")
        batch_op.drop_column("organisation_id")
