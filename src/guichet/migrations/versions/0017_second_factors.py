"""second factors of the portal's sign-in: TOTP and WebAuthn keys, recovery codes (issue 14, C4)

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-05 11:00:00.000000

``second_factor`` (a TOTP seed encrypted under the master secret with its last accepted time
step, or a WebAuthn key's credential id, public key and signature counter), ``recovery_code``
(argon2id hashes, single use), ``user_account.failed_second_factors`` (five wrong in a row
lock the account) and, on ``portal_session``, ``pending_user_id`` (the password
was right, the second factor not given yet), ``challenge`` (the WebAuthn challenge of the
session's last options) and ``return_to`` (where the sign-in leads once the factor is
given). Downgrade drops them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import guichet.db.base

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _utc() -> guichet.db.base.UTCDateTime:
    return guichet.db.base.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "second_factor",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum("totp", "webauthn", name="second_factor_kind", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("label", sa.String(length=100), nullable=False),
        sa.Column("totp_secret", sa.LargeBinary(), nullable=True),
        sa.Column("totp_last_step", sa.BigInteger(), nullable=True),
        sa.Column("credential_id", sa.LargeBinary(length=1024), nullable=True),
        sa.Column("public_key", sa.LargeBinary(), nullable=True),
        sa.Column("sign_count", sa.BigInteger(), nullable=False),
        sa.Column("confirmed_at", _utc(), nullable=True),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("last_used_at", _utc(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["user_account.id"], name=op.f("fk_second_factor_user_id_user_account")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_second_factor")),
        sa.UniqueConstraint("credential_id", name=op.f("uq_second_factor_credential_id")),
    )
    with op.batch_alter_table("second_factor", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_second_factor_user_id"), ["user_id"], unique=False)
    op.create_table(
        "recovery_code",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("lookup", sa.String(length=8), nullable=False),
        sa.Column("code_hash", sa.String(length=200), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("used_at", _utc(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["user_account.id"], name=op.f("fk_recovery_code_user_id_user_account")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recovery_code")),
    )
    with op.batch_alter_table("recovery_code", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_recovery_code_user_id"), ["user_id"], unique=False)
    with op.batch_alter_table("user_account", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("failed_second_factors", sa.Integer(), server_default="0", nullable=False)
        )
    with op.batch_alter_table("portal_session", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pending_user_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("challenge", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("return_to", sa.String(length=500), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_portal_session_pending_user_id_user_account"),
            "user_account",
            ["pending_user_id"],
            ["id"],
        )


def downgrade() -> None:
    with op.batch_alter_table("portal_session", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_portal_session_pending_user_id_user_account"), type_="foreignkey"
        )
        batch_op.drop_column("return_to")
        batch_op.drop_column("challenge")
        batch_op.drop_column("pending_user_id")
    with op.batch_alter_table("user_account", schema=None) as batch_op:
        batch_op.drop_column("failed_second_factors")
    with op.batch_alter_table("recovery_code", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_recovery_code_user_id"))
    op.drop_table("recovery_code")
    with op.batch_alter_table("second_factor", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_second_factor_user_id"))
    op.drop_table("second_factor")
