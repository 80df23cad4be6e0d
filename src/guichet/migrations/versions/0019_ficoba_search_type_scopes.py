"""API FICOBA's habilitations grant per search type (issue 14)

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-05 12:30:00.000000

The convention habilitates per search type [002 §4], while a FICOBA habilitation held three
data scopes, each shared by several types: ``ficoba_comptes`` (natural person, legal person,
account, SIREN/SIRET, SPI), ``ficoba_verification_iban`` and ``ficoba_multi_detention``
(natural person, legal person, SIRET each). Each type now has its own data scope,
``ficoba_recherche_<type>`` (``catalog.products.FICOBA_SEARCH_SCOPES``), and the three are
journaled only (what an answer released), never granted.

``habilitation.data_scopes`` trades each of the three for the scopes of the types it stood
for — those of them the validated request that last created or updated the habilitation
asked for (its ``perimeter.search_types``), or all of them when no request made it (the demo
partner's, one made from the command line). The requests themselves already name their
search types: nothing to change there. The policy generation is bumped so that running
gateways reload. The journal keeps what it recorded: it is history. Running it twice changes
nothing; the downgrade gives each habilitation back the shared scope of every type it holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As they are at this revision (the catalogue may change later; the migration may not).
_SHARED: dict[str, tuple[str, ...]] = {
    "ficoba_comptes": ("personne_physique", "personne_morale", "compte", "siren_siret", "spi"),
    "ficoba_verification_iban": (
        "verification_iban_personne_physique",
        "verification_iban_personne_morale",
        "verification_iban_siret",
    ),
    "ficoba_multi_detention": (
        "multi_detention_personne_physique",
        "multi_detention_personne_morale",
        "multi_detention_siret",
    ),
}
_PREFIX = "ficoba_recherche_"

_habilitation = sa.table(
    "habilitation",
    sa.column("id", sa.Uuid()),
    sa.column("data_scopes", sa.JSON()),
)
_request = sa.table(
    "habilitation_request",
    sa.column("id", sa.Uuid()),
    sa.column("api", sa.String()),
    sa.column("status", sa.String()),
    sa.column("data", sa.JSON()),
    sa.column("habilitation_id", sa.Uuid()),
    sa.column("decided_at", sa.DateTime()),
    sa.column("updated_at", sa.DateTime()),
)
_generation = sa.table("cache_generation", sa.column("id", sa.Integer()), sa.column("value"))


def _requested(conn: sa.Connection) -> dict[Any, set[str]]:
    """Habilitation id → the search types of the last validated FICOBA request that made it."""
    rows = conn.execute(
        sa.select(_request.c.habilitation_id, _request.c.data)
        .where(
            _request.c.api == "ficoba",
            _request.c.status == "validated",
            _request.c.habilitation_id.is_not(None),
        )
        .order_by(_request.c.decided_at, _request.c.updated_at)
    ).all()
    found: dict[Any, set[str]] = {}
    for row in rows:  # the last one wins
        data = row.data if isinstance(row.data, dict) else {}
        perimeter = data.get("perimeter")
        kinds = perimeter.get("search_types") if isinstance(perimeter, dict) else None
        if isinstance(kinds, dict):
            found[row.habilitation_id] = {str(k) for k in kinds}
    return found


def _bump(conn: sa.Connection) -> None:
    updated = conn.execute(sa.update(_generation).values(value=_generation.c.value + 1))
    if updated.rowcount == 0:
        conn.execute(sa.insert(_generation).values(id=1, value=1))


def upgrade() -> None:
    conn = op.get_bind()
    requested = _requested(conn)
    changed = False
    for row in conn.execute(sa.select(_habilitation)).all():
        scopes = row.data_scopes
        if not isinstance(scopes, list) or not set(scopes) & set(_SHARED):
            continue
        kinds = {k for s in scopes if s in _SHARED for k in _SHARED[s]}
        if row.id in requested:
            kinds &= requested[row.id]
        kept = [s for s in scopes if s not in _SHARED]
        new = sorted({*kept, *(f"{_PREFIX}{k}" for k in kinds)})
        conn.execute(
            sa.update(_habilitation).where(_habilitation.c.id == row.id).values(data_scopes=new)
        )
        changed = True
    if changed:
        _bump(conn)


def downgrade() -> None:
    conn = op.get_bind()
    shared_of = {f"{_PREFIX}{k}": s for s, kinds in _SHARED.items() for k in kinds}
    changed = False
    for row in conn.execute(sa.select(_habilitation)).all():
        scopes = row.data_scopes
        if not isinstance(scopes, list) or not set(scopes) & set(shared_of):
            continue
        new = sorted({str(shared_of.get(s, s)) for s in scopes})
        conn.execute(
            sa.update(_habilitation).where(_habilitation.c.id == row.id).values(data_scopes=new)
        )
        changed = True
    if changed:
        _bump(conn)
