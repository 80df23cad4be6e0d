"""IR bills, IFI situations and housing-tax assessment headings

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 22:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("ir_situation", schema=None) as batch_op:
        batch_op.add_column(sa.Column("facture", sa.JSON(), nullable=True))
    op.create_table(
        "ifi_situation",
        sa.Column("store", sa.String(length=16), nullable=False),
        sa.Column("spi", sa.String(length=13), nullable=False),
        sa.Column("annrev", sa.Integer(), nullable=False),
        sa.Column("foyer", sa.String(length=32), nullable=False),
        sa.Column("record", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("store", "spi", "annrev", name=op.f("pk_ifi_situation")),
    )
    op.create_table(
        "th_avis",
        sa.Column("store", sa.String(length=16), nullable=False),
        sa.Column("spi", sa.String(length=13), nullable=False),
        sa.Column("annee", sa.Integer(), nullable=False),
        sa.Column("avis", sa.String(length=24), nullable=False),
        sa.Column("record", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("store", "spi", "annee", "avis", name=op.f("pk_th_avis")),
    )


def downgrade() -> None:
    op.drop_table("th_avis")
    op.drop_table("ifi_situation")
    with op.batch_alter_table("ir_situation", schema=None) as batch_op:
        batch_op.drop_column("facture")
