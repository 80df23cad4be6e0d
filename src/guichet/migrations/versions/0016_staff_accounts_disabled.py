"""accounts can be disabled (issue 12)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05 11:00:00.000000

``user_account`` gains ``disabled_at``: a disabled account cannot sign in, its sessions are
ended, its password-reset links no longer work; it keeps its place in the history of the
requests it acted on (``guichet user disable`` / ``enable`` / ``remove``, the portal's
"Agents" page). Downgrade drops the column (disabled accounts become enabled again).

The production records move to a database of their own in the same issue; that is no
schema change (every database gets every migration): ``guichet init`` moves the rows.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import guichet.db.base

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("user_account", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("disabled_at", guichet.db.base.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("user_account", schema=None) as batch_op:
        batch_op.drop_column("disabled_at")
