"""journal records of searches about several persons: search type and subjects (issue 14)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05 11:00:00.000000

API FICOBA's searches are about one or more persons or companies: ``journal_record`` gains
``search_type`` (one of the provider's eleven search types) and ``subjects`` (the keyed
pseudonym of each SPI or SIREN the answer is about), both null on every existing record and
hashed only when set (``guichet.journal.entry``), so existing records verify unchanged.
``journal_subject`` (subject, seq) indexes those pseudonyms for "who read my data" and
investigations. Downgrade drops the table and the two columns.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("journal_record") as batch:
        batch.add_column(sa.Column("search_type", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("subjects", sa.JSON(), nullable=True))
    op.create_table(
        "journal_subject",
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("subject", "seq", name=op.f("pk_journal_subject")),
    )
    op.create_index(op.f("ix_journal_subject_seq"), "journal_subject", ["seq"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_journal_subject_seq"), table_name="journal_subject")
    op.drop_table("journal_subject")
    with op.batch_alter_table("journal_record") as batch:
        batch.drop_column("subjects")
        batch.drop_column("search_type")
