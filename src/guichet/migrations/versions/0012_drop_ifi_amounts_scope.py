"""the data scope dgfip_ifi_montants leaves the catalogue (issue 9)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05 09:00:00.000000

The provider's IFI resource carries only ``indicateurIfiIsf``; the two amounts guichet once
added, and the scope that released them, are gone. A habilitation, a request or a federation
client still naming the scope would fail every later update with "Donnée inconnue", so the
scope is removed from:

- ``habilitation.data_scopes`` and ``habilitation.data_labels``;
- the perimeter of every habilitation request (``data.perimeter.data_scopes``, the scope →
  justification mapping);
- ``federation_client.scopes``.

Consent records and the journal keep what they recorded: they are history. Running it twice
changes nothing; downgrade does nothing (the scope no longer exists to be given back).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCOPE = "dgfip_ifi_montants"

_habilitation = sa.table(
    "habilitation",
    sa.column("id", sa.Uuid()),
    sa.column("data_scopes", sa.JSON()),
    sa.column("data_labels", sa.JSON()),
)
_request = sa.table(
    "habilitation_request",
    sa.column("id", sa.Uuid()),
    sa.column("data", sa.JSON()),
)
_client = sa.table(
    "federation_client",
    sa.column("client_id", sa.String()),
    sa.column("scopes", sa.JSON()),
)


def _without(scopes: Any) -> Any:
    if isinstance(scopes, list) and SCOPE in scopes:
        return [s for s in scopes if s != SCOPE]
    return scopes


def upgrade() -> None:
    conn = op.get_bind()
    for row in conn.execute(sa.select(_habilitation)).all():
        labels = row.data_labels
        new_labels = (
            {k: v for k, v in labels.items() if k != SCOPE}
            if isinstance(labels, dict) and SCOPE in labels
            else labels
        )
        new_scopes = _without(row.data_scopes)
        if new_scopes is not row.data_scopes or new_labels is not labels:
            conn.execute(
                sa.update(_habilitation)
                .where(_habilitation.c.id == row.id)
                .values(data_scopes=new_scopes, data_labels=new_labels)
            )
    for row in conn.execute(sa.select(_request)).all():
        data = row.data
        perimeter = data.get("perimeter") if isinstance(data, dict) else None
        scopes = perimeter.get("data_scopes") if isinstance(perimeter, dict) else None
        if isinstance(perimeter, dict) and isinstance(scopes, dict) and SCOPE in scopes:
            kept = {k: v for k, v in scopes.items() if k != SCOPE}
            new_data = {**data, "perimeter": {**perimeter, "data_scopes": kept}}
            conn.execute(sa.update(_request).where(_request.c.id == row.id).values(data=new_data))
    for row in conn.execute(sa.select(_client)).all():
        new_scopes = _without(row.scopes)
        if new_scopes is not row.scopes:
            conn.execute(
                sa.update(_client)
                .where(_client.c.client_id == row.client_id)
                .values(scopes=new_scopes)
            )


def downgrade() -> None:
    """Nothing to give back: the scope no longer exists."""
