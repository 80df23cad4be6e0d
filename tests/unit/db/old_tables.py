"""The tables the migration tests write rows into, as lightweight clauses at the columns the
migrations under test read: a migration test cannot use today's models, whose columns may not
exist yet at the revision it starts from."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from guichet.db.base import UTCDateTime

JSON = sa.JSON()


def table(name: str, /, **columns: sa.types.TypeEngine[Any]) -> sa.TableClause:
    """``name`` positional only: a table may have a column called ``name``."""
    return sa.table(name, *(sa.column(c, t) for c, t in columns.items()))


# As they are from revision 0012 on.
ORGANISATION = table(
    "organisation", id=sa.Uuid(), siret=sa.String(), name=sa.String(), created_at=UTCDateTime()
)
HABILITATION = table(
    "habilitation",
    id=sa.Uuid(),
    organisation_id=sa.Uuid(),
    environment=sa.String(),
    demarche=sa.String(),
    status=sa.String(),
    apis=JSON,
    access_modes=JSON,
    data_scopes=JSON,
    year_scopes=JSON,
    ip_ranges=JSON,
    quotas=JSON,
    data_labels=JSON,
    valid_from=UTCDateTime(),
    created_at=UTCDateTime(),
    updated_at=UTCDateTime(),
)
