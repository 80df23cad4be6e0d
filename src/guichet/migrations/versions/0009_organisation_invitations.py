"""organisation invitations and contact confirmations

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 21:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import guichet.db.base

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _token_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", guichet.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", guichet.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("used_at", guichet.db.base.UTCDateTime(timezone=True), nullable=True),
    ]


def upgrade() -> None:
    op.create_table(
        "organisation_invitation",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("email_key", sa.String(length=320), nullable=False),
        sa.Column(
            "role",
            sa.Enum(
                "applicant",
                "technical_contact",
                "dpo",
                "legal_representative",
                name="partner_role",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("invited_by", sa.Uuid(), nullable=True),
        sa.Column("accepted_by", sa.Uuid(), nullable=True),
        sa.Column("cancelled_at", guichet.db.base.UTCDateTime(timezone=True), nullable=True),
        *_token_columns(),
        sa.ForeignKeyConstraint(
            ["accepted_by"],
            ["user_account.id"],
            name=op.f("fk_organisation_invitation_accepted_by_user_account"),
        ),
        sa.ForeignKeyConstraint(
            ["invited_by"],
            ["user_account.id"],
            name=op.f("fk_organisation_invitation_invited_by_user_account"),
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisation.id"],
            name=op.f("fk_organisation_invitation_organisation_id_organisation"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organisation_invitation")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_organisation_invitation_token_hash")),
    )
    with op.batch_alter_table("organisation_invitation", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_organisation_invitation_email_key"), ["email_key"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_organisation_invitation_organisation_id"),
            ["organisation_id"],
            unique=False,
        )

    op.create_table(
        "contact_confirmation",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("email_key", sa.String(length=320), nullable=False),
        sa.Column("contact_role", sa.String(length=32), nullable=False),
        sa.Column("requested_by", sa.Uuid(), nullable=True),
        *_token_columns(),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisation.id"],
            name=op.f("fk_contact_confirmation_organisation_id_organisation"),
        ),
        sa.ForeignKeyConstraint(
            ["requested_by"],
            ["user_account.id"],
            name=op.f("fk_contact_confirmation_requested_by_user_account"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact_confirmation")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_contact_confirmation_token_hash")),
    )
    with op.batch_alter_table("contact_confirmation", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_contact_confirmation_email_key"), ["email_key"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_contact_confirmation_organisation_id"),
            ["organisation_id"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("contact_confirmation", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_contact_confirmation_organisation_id"))
        batch_op.drop_index(batch_op.f("ix_contact_confirmation_email_key"))
    op.drop_table("contact_confirmation")
    with op.batch_alter_table("organisation_invitation", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_organisation_invitation_organisation_id"))
        batch_op.drop_index(batch_op.f("ix_organisation_invitation_email_key"))
    op.drop_table("organisation_invitation")
