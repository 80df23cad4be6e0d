"""FICOBA: the designations' vocabulary, and the establishments by designation (issue 14, scale)

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-05 12:30:00.000000

``ficoba_designation`` holds each legal person's designation key (raison sociale and
enseigne, ``designation_key``) once per store, with a trigram index on PostgreSQL: a
designation search compares the searched name with the distinct designations, not with
every establishment (at 10 million accounts the synthetic file's 25 000 associations
share 18 names, and the trigram index on the establishments gave all of them to recheck).
Triggers on ``ficoba_personne_morale`` (insert, update) keep it, whatever writes the
establishments; the upgrade fills it from the rows already there.
``ix_ficoba_pm_raison_sociale`` and ``ix_ficoba_pm_enseigne`` (store, key, raison sociale,
SIRET, id) then give a designation's establishments in the answers' order.
Downgrade drops them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_POSTGRESQL = (
    """CREATE OR REPLACE FUNCTION ficoba_designation_ajout() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ficoba_designation (store, cle)
    SELECT store, raison_sociale_cle FROM nouvelles
    UNION
    SELECT store, enseigne_cle FROM nouvelles WHERE enseigne_cle IS NOT NULL
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$""",
    """CREATE TRIGGER ficoba_designation_insert AFTER INSERT ON ficoba_personne_morale
REFERENCING NEW TABLE AS nouvelles FOR EACH STATEMENT
EXECUTE FUNCTION ficoba_designation_ajout()""",
    """CREATE TRIGGER ficoba_designation_update AFTER UPDATE ON ficoba_personne_morale
REFERENCING NEW TABLE AS nouvelles FOR EACH STATEMENT
EXECUTE FUNCTION ficoba_designation_ajout()""",
)
_SQLITE = (
    """CREATE TRIGGER ficoba_designation_insert AFTER INSERT
ON ficoba_personne_morale BEGIN
    INSERT OR IGNORE INTO ficoba_designation (store, cle)
    VALUES (NEW.store, NEW.raison_sociale_cle);
    INSERT OR IGNORE INTO ficoba_designation (store, cle)
    SELECT NEW.store, NEW.enseigne_cle WHERE NEW.enseigne_cle IS NOT NULL;
END""",
    """CREATE TRIGGER ficoba_designation_update AFTER UPDATE
ON ficoba_personne_morale BEGIN
    INSERT OR IGNORE INTO ficoba_designation (store, cle)
    VALUES (NEW.store, NEW.raison_sociale_cle);
    INSERT OR IGNORE INTO ficoba_designation (store, cle)
    SELECT NEW.store, NEW.enseigne_cle WHERE NEW.enseigne_cle IS NOT NULL;
END""",
)


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.create_table(
        "ficoba_designation",
        sa.Column("store", sa.String(length=16), nullable=False),
        sa.Column("cle", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("store", "cle", name=op.f("pk_ficoba_designation")),
    )
    op.execute(
        "INSERT INTO ficoba_designation (store, cle) "
        "SELECT store, raison_sociale_cle FROM ficoba_personne_morale "
        "UNION SELECT store, enseigne_cle FROM ficoba_personne_morale "
        "WHERE enseigne_cle IS NOT NULL"
    )
    op.create_index(
        "ix_ficoba_designation_trgm",
        "ficoba_designation",
        ["cle"],
        unique=False,
        postgresql_using="gin",
        postgresql_ops={"cle": "gin_trgm_ops"},
    )
    pm = "ficoba_personne_morale"
    op.create_index(
        "ix_ficoba_pm_raison_sociale",
        pm,
        ["store", "raison_sociale_cle", "raison_sociale", "siret", "id"],
        unique=False,
    )
    op.create_index(
        "ix_ficoba_pm_enseigne",
        pm,
        ["store", "enseigne_cle", "raison_sociale", "siret", "id"],
        unique=False,
    )
    for statement in _POSTGRESQL if postgres else _SQLITE:
        op.execute(statement)


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for event in ("insert", "update"):
        suffix = " ON ficoba_personne_morale" if postgres else ""
        op.execute(f"DROP TRIGGER IF EXISTS ficoba_designation_{event}{suffix}")
    if postgres:
        op.execute("DROP FUNCTION IF EXISTS ficoba_designation_ajout()")
    op.drop_index("ix_ficoba_pm_enseigne", table_name="ficoba_personne_morale")
    op.drop_index("ix_ficoba_pm_raison_sociale", table_name="ficoba_personne_morale")
    op.drop_index("ix_ficoba_designation_trgm", table_name="ficoba_designation")
    op.drop_table("ficoba_designation")
