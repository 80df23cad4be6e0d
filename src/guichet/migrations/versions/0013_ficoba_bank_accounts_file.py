"""FICOBA: the national bank-accounts file (banks, branches, accounts, persons, holdings)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05 09:30:00.000000

Seven tables per store (``guichet.records.ficoba``): ``ficoba_etablissement``,
``ficoba_guichet``, ``ficoba_compte`` (accounts and safe-deposit boxes),
``ficoba_personne_physique``, ``ficoba_personne_morale`` (one row per establishment),
``ficoba_detention`` (who holds what, in which capacity) and ``ficoba_nom`` (the natural
persons' name keys, each once).

On PostgreSQL the ``pg_trgm`` and ``unaccent`` extensions are installed and the normalised
names (``ficoba_nom.cle``, ``raison_sociale_cle``, ``enseigne_cle``) carry GIN trigram
indexes (``gin_trgm_ops``), which the searches' ``%`` and ``similarity()`` use. On SQLite
the same index declarations are B-trees on the keys (exact and prefix look-ups), and the
phonetic keys' indexes (``*phon``, on both databases) find the sound-alikes. Persons are then
found by name key and birth date (``ix_ficoba_pp_nom``, ``ix_ficoba_pp_nom_usage``). The
extensions are left in place by a downgrade: other objects may use them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _address() -> list[sa.Column[object]]:
    return [
        sa.Column("adr_code_pays", sa.String(length=5), nullable=False),
        sa.Column("adr_code_departement", sa.String(length=3), nullable=True),
        sa.Column("adr_code_commune", sa.String(length=3), nullable=True),
        sa.Column("adr_libelle_commune", sa.String(length=100), nullable=True),
        sa.Column("adr_code_postal", sa.String(length=10), nullable=True),
        sa.Column("adr_nature_voie", sa.String(length=4), nullable=True),
        sa.Column("adr_libelle_voie", sa.String(length=100), nullable=True),
        sa.Column("adr_numero_voie", sa.String(length=5), nullable=True),
        sa.Column("adr_indice_repetition", sa.String(length=1), nullable=True),
        sa.Column("adr_complement", sa.String(length=100), nullable=True),
        sa.Column("adr_codifiee", sa.Boolean(), nullable=False),
    ]


def _trigram(table: str, name: str, column: str) -> None:
    """GIN ``gin_trgm_ops`` on PostgreSQL; a B-tree on SQLite (the options are ignored)."""
    op.create_index(
        name,
        table,
        [column],
        unique=False,
        postgresql_using="gin",
        postgresql_ops={column: "gin_trgm_ops"},
    )


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.execute("CREATE EXTENSION IF NOT EXISTS unaccent")
        # pg_trgm prices similarity() like a comparison; it costs about a hundred: told
        # so, the planner takes the trigram index rather than computing it on every row
        # of a small table. Skipped (with a notice) where the role does not own it.
        op.execute(
            """DO $$
BEGIN
    ALTER FUNCTION similarity(text, text) COST 100;
    ALTER FUNCTION similarity_op(text, text) COST 100;
EXCEPTION WHEN insufficient_privilege OR undefined_function THEN
    RAISE NOTICE USING MESSAGE = 'pg_trgm : coût de similarity() inchangé : ' || SQLERRM;
END $$"""
        )
    op.create_table(
        "ficoba_etablissement",
        sa.Column("store", sa.String(length=16), nullable=False),
        sa.Column("code", sa.String(length=5), nullable=False),
        sa.Column("libelle", sa.String(length=100), nullable=False),
        sa.Column("bic", sa.String(length=11), nullable=False),
        sa.PrimaryKeyConstraint("store", "code", name=op.f("pk_ficoba_etablissement")),
    )
    op.create_table(
        "ficoba_guichet",
        sa.Column("store", sa.String(length=16), nullable=False),
        sa.Column("etablissement", sa.String(length=5), nullable=False),
        sa.Column("code", sa.String(length=5), nullable=False),
        sa.Column("libelle", sa.String(length=100), nullable=False),
        sa.Column("adresse", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["store", "etablissement"],
            ["ficoba_etablissement.store", "ficoba_etablissement.code"],
            name=op.f("fk_ficoba_guichet_store_ficoba_etablissement"),
        ),
        sa.PrimaryKeyConstraint("store", "etablissement", "code", name=op.f("pk_ficoba_guichet")),
    )
    op.create_table(
        "ficoba_personne_physique",
        sa.Column("store", sa.String(length=16), nullable=False),
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("spi", sa.String(length=13), nullable=True),
        sa.Column("sexe", sa.String(length=1), nullable=False),
        sa.Column("nom_naissance", sa.String(length=100), nullable=False),
        sa.Column("nom_usage", sa.String(length=100), nullable=True),
        sa.Column("prenoms", sa.String(length=200), nullable=False),
        sa.Column("nom_cle", sa.String(length=100), nullable=False),
        sa.Column("nom_usage_cle", sa.String(length=100), nullable=True),
        sa.Column("prenoms_cle", sa.String(length=200), nullable=False),
        sa.Column("prenom_cle", sa.String(length=100), nullable=False),
        sa.Column("date_naissance", sa.Date(), nullable=False),
        sa.Column("code_pays_naissance", sa.String(length=5), nullable=False),
        sa.Column("code_departement_naissance", sa.String(length=3), nullable=True),
        sa.Column("code_commune_naissance", sa.String(length=3), nullable=True),
        sa.Column("libelle_commune_naissance", sa.String(length=100), nullable=True),
        sa.Column("date_deces", sa.Date(), nullable=True),
        *_address(),
        sa.PrimaryKeyConstraint("store", "id", name=op.f("pk_ficoba_personne_physique")),
    )
    pp = "ficoba_personne_physique"
    op.create_index("ix_ficoba_pp_spi", pp, ["store", "spi"], unique=False)
    op.create_index("ix_ficoba_pp_nom", pp, ["store", "nom_cle", "date_naissance"], unique=False)
    op.create_index(
        "ix_ficoba_pp_nom_usage", pp, ["store", "nom_usage_cle", "date_naissance"], unique=False
    )
    op.create_table(
        "ficoba_nom",
        sa.Column("store", sa.String(length=16), nullable=False),
        sa.Column("cle", sa.String(length=100), nullable=False),
        sa.Column("phon", sa.String(length=100), nullable=False),
        sa.PrimaryKeyConstraint("store", "cle", name=op.f("pk_ficoba_nom")),
    )
    _trigram("ficoba_nom", "ix_ficoba_nom_trgm", "cle")
    op.create_index("ix_ficoba_nom_phon", "ficoba_nom", ["store", "phon"], unique=False)
    op.create_table(
        "ficoba_personne_morale",
        sa.Column("store", sa.String(length=16), nullable=False),
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("siren", sa.String(length=9), nullable=False),
        sa.Column("siret", sa.String(length=14), nullable=False),
        sa.Column("raison_sociale", sa.String(length=200), nullable=False),
        sa.Column("sigle", sa.String(length=50), nullable=True),
        sa.Column("enseigne", sa.String(length=200), nullable=True),
        sa.Column("categorie_juridique", sa.String(length=4), nullable=False),
        sa.Column("raison_sociale_cle", sa.String(length=200), nullable=False),
        sa.Column("sigle_cle", sa.String(length=50), nullable=True),
        sa.Column("enseigne_cle", sa.String(length=200), nullable=True),
        sa.Column("raison_sociale_phon", sa.String(length=200), nullable=False),
        sa.Column("enseigne_phon", sa.String(length=200), nullable=True),
        *_address(),
        sa.PrimaryKeyConstraint("store", "id", name=op.f("pk_ficoba_personne_morale")),
    )
    pm = "ficoba_personne_morale"
    op.create_index("ix_ficoba_pm_siren", pm, ["store", "siren"], unique=False)
    op.create_index("ix_ficoba_pm_siret", pm, ["store", "siret"], unique=True)
    _trigram(pm, "ix_ficoba_pm_raison_sociale_trgm", "raison_sociale_cle")
    _trigram(pm, "ix_ficoba_pm_enseigne_trgm", "enseigne_cle")
    op.create_index(
        "ix_ficoba_pm_raison_sociale_phon", pm, ["store", "raison_sociale_phon"], unique=False
    )
    op.create_index("ix_ficoba_pm_enseigne_phon", pm, ["store", "enseigne_phon"], unique=False)
    op.create_index("ix_ficoba_pm_sigle", pm, ["store", "sigle_cle"], unique=False)
    op.create_table(
        "ficoba_compte",
        sa.Column("store", sa.String(length=16), nullable=False),
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("iban", sa.String(length=34), nullable=True),
        sa.Column("etablissement", sa.String(length=5), nullable=False),
        sa.Column("guichet", sa.String(length=5), nullable=False),
        sa.Column("numero", sa.String(length=20), nullable=False),
        sa.Column("format", sa.String(length=8), nullable=False),
        sa.Column("nature", sa.Integer(), nullable=False),
        sa.Column("type", sa.Integer(), nullable=False),
        sa.Column("caracteristique", sa.Integer(), nullable=False),
        sa.Column("devise", sa.String(length=3), nullable=False),
        sa.Column("date_ouverture", sa.Date(), nullable=False),
        sa.Column("date_fiscale", sa.Date(), nullable=False),
        sa.Column("motif_ouverture", sa.String(length=2), nullable=False),
        sa.Column("date_cloture", sa.Date(), nullable=True),
        sa.Column("motif_cloture", sa.String(length=2), nullable=True),
        sa.Column("resident", sa.Boolean(), nullable=False),
        sa.Column("succession", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["store", "etablissement", "guichet"],
            ["ficoba_guichet.store", "ficoba_guichet.etablissement", "ficoba_guichet.code"],
            name=op.f("fk_ficoba_compte_store_ficoba_guichet"),
        ),
        sa.PrimaryKeyConstraint("store", "id", name=op.f("pk_ficoba_compte")),
    )
    op.create_index("ix_ficoba_compte_iban", "ficoba_compte", ["store", "iban"], unique=True)
    op.create_index(
        "ix_ficoba_compte_numero",
        "ficoba_compte",
        ["store", "etablissement", "guichet", "numero"],
        unique=True,
    )
    op.create_table(
        "ficoba_detention",
        sa.Column("store", sa.String(length=16), nullable=False),
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("compte_id", sa.BigInteger(), nullable=False),
        sa.Column("personne_physique_id", sa.BigInteger(), nullable=True),
        sa.Column("personne_morale_id", sa.BigInteger(), nullable=True),
        sa.Column("qualite", sa.String(length=3), nullable=False),
        sa.Column("date_debut", sa.Date(), nullable=True),
        sa.Column("date_fin", sa.Date(), nullable=True),
        sa.CheckConstraint(
            "(personne_physique_id IS NULL) <> (personne_morale_id IS NULL)",
            name=op.f("ck_ficoba_detention_une_personne"),
        ),
        sa.ForeignKeyConstraint(
            ["store", "compte_id"],
            ["ficoba_compte.store", "ficoba_compte.id"],
            name=op.f("fk_ficoba_detention_store_ficoba_compte"),
        ),
        sa.ForeignKeyConstraint(
            ["store", "personne_physique_id"],
            ["ficoba_personne_physique.store", "ficoba_personne_physique.id"],
            name=op.f("fk_ficoba_detention_store_ficoba_personne_physique"),
        ),
        sa.ForeignKeyConstraint(
            ["store", "personne_morale_id"],
            ["ficoba_personne_morale.store", "ficoba_personne_morale.id"],
            name=op.f("fk_ficoba_detention_store_ficoba_personne_morale"),
        ),
        sa.PrimaryKeyConstraint("store", "id", name=op.f("pk_ficoba_detention")),
    )
    dt = "ficoba_detention"
    op.create_index("ix_ficoba_detention_compte", dt, ["store", "compte_id"], unique=False)
    op.create_index("ix_ficoba_detention_pp", dt, ["store", "personne_physique_id"], unique=False)
    op.create_index("ix_ficoba_detention_pm", dt, ["store", "personne_morale_id"], unique=False)


def downgrade() -> None:
    for table in (
        "ficoba_detention",
        "ficoba_compte",
        "ficoba_personne_morale",
        "ficoba_personne_physique",
        "ficoba_nom",
        "ficoba_guichet",
        "ficoba_etablissement",
    ):
        op.drop_table(table)  # its indexes go with it
