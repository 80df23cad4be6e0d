"""The national bank-accounts file (FICOBA), held per store (``sandbox`` or ``production``).

What the provider's FICOBA searches answer, and so what these tables hold:

- **banks and branches** (``ficoba_etablissement``, ``ficoba_guichet``): the provider's
  ``EtablissementBancaire`` (code, name, BIC) and ``GuichetDto`` (code, name, address lines);
- **accounts** (``ficoba_compte``): the provider's ``CompteCaracteristiques`` — IBAN, opening
  date and reason, fiscal date, closing date (and guichet's closing reason), nature, type and
  characteristic as coded below, format, residency, succession, currency — and the branch
  that manages it; a safe-deposit box is an account of nature ``NATURE_COFFRE`` with no IBAN
  (its number is the box's);
- **persons**: natural persons (``ficoba_personne_physique``: the provider's
  ``PersonnePhysique`` — birth and usage names, first names, sex, birth date and place,
  date of death, SPI when known, address) and legal persons (``ficoba_personne_morale``: one
  row per establishment — SIREN, SIRET, raison sociale, sigle, enseigne, catégorie
  juridique, address);
- **holdings** (``ficoba_detention``): who holds what, in which capacity (``QUALITES``:
  holder, co-holder, proxy, beneficial owner, heir, legal representative), a person of
  either kind on each row;
- **the names' vocabulary** (``ficoba_nom``): every natural person's name key once;
- **the designations' vocabulary** (``ficoba_designation``): every legal person's
  designation key (raison sociale, enseigne) once, kept by triggers on the establishments.

Searches compare names through **keys** the writer computes (``person_key``, ``words_key``,
``designation_key``, ``phonetic_key``): upper case, no accents, separators normalised, so
"Lefèvre", "LEFEVRE" and "le-fevre" meet. Natural persons' name keys are also gathered in a
vocabulary (``ficoba_nom``). On PostgreSQL the vocabulary and the designations carry
trigram indexes (``pg_trgm``, GIN ``gin_trgm_ops``) and ``guichet.records.ficoba_search``
ranks by ``similarity()``; on SQLite the same index declarations are plain B-trees (exact
and prefix look-ups) and the phonetic keys' indexes find the sound-alikes (see
``docs/performance.md``).

Codes the provider's document leaves open (natures, types, characteristics, reasons,
capacities) are guichet's coding, listed here and in ``docs/sandbox.md``.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import unicodedata
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Final

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Table,
    event,
)
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapped, mapped_column

from guichet.db.base import Base

# --- guichet's coding of what the provider's document leaves open -------------------------

NATURES: Final[Mapping[int, str]] = MappingProxyType(
    {
        1: "Compte courant",
        2: "Compte sur livret",
        3: "Livret A",
        4: "Livret de développement durable et solidaire",
        5: "Livret d'épargne populaire",
        6: "Livret jeune",
        7: "Compte épargne logement",
        8: "Plan d'épargne logement",
        9: "Compte à terme",
        10: "Compte-titres ordinaire",
        11: "Plan d'épargne en actions",
        12: "Plan d'épargne en actions PME-ETI",
        13: "Compte de paiement",
        14: "Coffre-fort",
    }
)
NATURE_COURANT: Final = 1
NATURE_LIVRET_A: Final = 3
NATURE_COFFRE: Final = 14
# Regulated savings: one of each per holder; what a multi-holding search looks for.
NATURES_REGLEMENTEES: Final = frozenset({3, 4, 5, 6, 7, 8})

TYPES: Final[Mapping[int, str]] = MappingProxyType(
    {1: "Compte individuel", 2: "Compte joint", 3: "Compte collectif (indivision)"}
)
TYPE_INDIVIDUEL: Final = 1
TYPE_JOINT: Final = 2

CARACTERISTIQUES: Final[Mapping[int, str]] = MappingProxyType(
    {
        1: "Usage privé",
        2: "Usage professionnel",
        3: "Usage privé et professionnel",
        4: "Fonds de tiers",
    }
)

MOTIFS_OUVERTURE: Final[Mapping[str, str]] = MappingProxyType(
    {
        "01": "Ouverture à la demande du client",
        "02": "Transfert depuis un autre établissement",
        "03": "Droit au compte (désignation par la Banque de France)",
        "04": "Règlement d'une succession",
        "05": "Reprise d'un établissement absorbé",
    }
)

MOTIFS_CLOTURE: Final[Mapping[str, str]] = MappingProxyType(
    {
        "01": "À la demande du titulaire",
        "02": "À l'initiative de l'établissement",
        "03": "Décès du titulaire",
        "04": "Transfert vers un autre établissement",
        "05": "Compte inactif (fonds remis à la Caisse des dépôts)",
    }
)

QUALITES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "TIT": "Titulaire",
        "COT": "Cotitulaire",
        "MAN": "Mandataire (procuration)",
        "BEF": "Bénéficiaire effectif",
        "AYD": "Ayant droit",
        "RPL": "Représentant légal",
    }
)
# The capacities that make a person the account's holder (IBAN checks, multi-holding).
QUALITES_TITULAIRE: Final = frozenset({"TIT", "COT"})

FORMATS: Final[Mapping[str, str]] = MappingProxyType(
    {"IBAN": "IBAN français", "INTERNE": "Numéro interne de l'établissement (coffre-fort)"}
)

# INSEE's catégories juridiques the sandbox uses (level 3, four digits).
CATEGORIES_JURIDIQUES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "1000": "Entrepreneur individuel",
        "5202": "Société en nom collectif",
        "5485": "Société d'exercice libéral à responsabilité limitée",
        "5498": "SARL unipersonnelle",
        "5499": "Société à responsabilité limitée (sans autre indication)",
        "5599": "SA à conseil d'administration (s.a.i.)",
        "5710": "SAS, société par actions simplifiée",
        "5720": "Société par actions simplifiée à associé unique",
        "6540": "Société civile immobilière",
        "7210": "Commune et commune nouvelle",
        "9220": "Association déclarée",
    }
)

# --- keys ---------------------------------------------------------------------------------

_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "`": "'"})
_NOT_ALNUM = re.compile(r"[^A-Z0-9]+")
# Legal forms a designation may carry or not: "DUPONT SARL" and "SARL DUPONT" are the
# company "DUPONT".
_LEGAL_FORMS = frozenset(
    {"SA", "SAS", "SASU", "SARL", "EURL", "SNC", "SCI", "SCP", "SELARL", "SELAS", "SCOP"}
)
# Words too common to tell designations apart ("Garnier et Fils", "Garnier Fils").
_SMALL_WORDS = frozenset(
    {"A", "AU", "AUX", "D", "DE", "DES", "DU", "EN", "ET", "L", "LA", "LE", "LES", "SUR"}
)


@functools.lru_cache(maxsize=65_536)
def _upper(value: str) -> str:
    decomposed = unicodedata.normalize("NFKD", value.translate(_APOSTROPHES))
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return stripped.upper().replace("Œ", "OE").replace("Æ", "AE").replace("ß", "SS")


@functools.lru_cache(maxsize=65_536)
def canonical(value: str) -> str:
    """How the file writes a name or a label: upper case, no accents, spaces collapsed
    (hyphens and apostrophes kept): ``"Lefèvre-d’Ornano"`` → ``"LEFEVRE-D'ORNANO"``."""
    return " ".join(_upper(value).split())


@functools.lru_cache(maxsize=65_536)
def words_key(value: str) -> str:
    """Upper case, no accents, every run of separators one space: ``"Jean-Pierre"`` →
    ``"JEAN PIERRE"``."""
    return " ".join(_NOT_ALNUM.sub(" ", _upper(value)).split())


@functools.lru_cache(maxsize=65_536)
def person_key(value: str) -> str:
    """A natural person's name with no separator at all: ``"Da Silva"``, ``"da-silva"`` and
    ``"DASILVA"`` are ``"DASILVA"``."""
    return _NOT_ALNUM.sub("", _upper(value))


@functools.lru_cache(maxsize=65_536)
def designation_key(value: str) -> str:
    """A legal person's designation as words, without its legal form nor small words:
    ``"Garnier et Fils S.A.R.L."`` → ``"GARNIER FILS"``; a designation of nothing else
    keeps them."""
    words = words_key(value.replace(".", "")).split()
    kept = [w for w in words if w not in _LEGAL_FORMS and w not in _SMALL_WORDS]
    return " ".join(kept or words)


_PHONETIC_RULES: Final = tuple(
    (re.compile(pattern), replacement)
    for pattern, replacement in (
        (r"X", "KS"),
        (r"PH", "F"),
        (r"SCH|SH", "CH"),
        (r"CH", "9"),  # the "ch" sound, kept apart from K
        (r"CK|QU|Q", "K"),
        (r"C(?=[EIY])", "S"),
        (r"C", "K"),
        (r"GU(?=[EIY])", "G"),
        (r"G(?=[EIY])", "J"),
        (r"GN", "NI"),
        (r"TH", "T"),
        (r"BV", "V"),
        (r"W", "V"),
        (r"Y", "I"),
        (r"Z", "S"),
        (r"H", ""),
        (r"EAU|AU", "O"),
        (r"OU", "U"),
        (r"AI|EI", "E"),
        (r"(?<=[AEIOU])S(?=[AEIOU])", "Z"),
    )
)
_SILENT_ENDINGS = re.compile(r"(?<=.)(?:[ETDSZX]|ER|EZ|ES|ENT)+$")
_DOUBLES = re.compile(r"(.)\1+")


@functools.lru_cache(maxsize=65_536)
def phonetic_key(value: str) -> str:
    """A French sound-alike key of a name (``person_key`` first): ``DUPONT`` and ``DUPOND``
    are ``DUPON``, ``LEFEBVRE`` and ``LEFEVRE`` are ``LEFEVR``, ``BONNET`` and ``BONET`` are
    ``BON``. Empty for an empty name."""
    key = person_key(value)
    if not key:
        return ""
    for pattern, replacement in _PHONETIC_RULES:
        key = pattern.sub(replacement, key)
    key = _DOUBLES.sub(r"\1", key)
    key = _SILENT_ENDINGS.sub("", key)
    return key or person_key(value)[:1]


# --- tables -------------------------------------------------------------------------------


def _trigram(name: str, column: str) -> Index:
    """A trigram (GIN ``gin_trgm_ops``) index on PostgreSQL; a B-tree on SQLite."""
    return Index(name, column, postgresql_using="gin", postgresql_ops={column: "gin_trgm_ops"})


class FicobaEtablissement(Base):
    """A bank (``EtablissementBancaire``): its five-digit code, name and BIC."""

    __tablename__ = "ficoba_etablissement"

    store: Mapped[str] = mapped_column(String(16), primary_key=True)
    code: Mapped[str] = mapped_column(String(5), primary_key=True)  # numeroEtablissement
    libelle: Mapped[str] = mapped_column(String(100))
    bic: Mapped[str] = mapped_column(String(11))


class FicobaGuichet(Base):
    """A bank's branch (``GuichetDto``): code, name, and up to four address lines."""

    __tablename__ = "ficoba_guichet"
    __table_args__ = (
        ForeignKeyConstraint(
            ["store", "etablissement"],
            ["ficoba_etablissement.store", "ficoba_etablissement.code"],
        ),
    )

    store: Mapped[str] = mapped_column(String(16), primary_key=True)
    etablissement: Mapped[str] = mapped_column(String(5), primary_key=True)
    code: Mapped[str] = mapped_column(String(5), primary_key=True)  # numeroGuichet
    libelle: Mapped[str] = mapped_column(String(100))
    adresse: Mapped[list[str]]  # libAdr1…libAdr4, those that exist


class _Adresse:
    """The address columns of a person (the provider's ``Adresse``), each searchable."""

    adr_code_pays: Mapped[str] = mapped_column(String(5))  # COG, 99100 France
    # Department (75, 2A, 974) or overseas collectivity; None abroad.
    adr_code_departement: Mapped[str | None] = mapped_column(String(3))
    adr_code_commune: Mapped[str | None] = mapped_column(String(3))  # COG's last three
    adr_libelle_commune: Mapped[str | None] = mapped_column(String(100))
    adr_code_postal: Mapped[str | None] = mapped_column(String(10))
    adr_nature_voie: Mapped[str | None] = mapped_column(String(4))  # RUE, AV, BD…
    adr_libelle_voie: Mapped[str | None] = mapped_column(String(100))  # canonical
    adr_numero_voie: Mapped[str | None] = mapped_column(String(5))
    adr_indice_repetition: Mapped[str | None] = mapped_column(String(1))  # B, T, Q
    adr_complement: Mapped[str | None] = mapped_column(String(100))
    adr_codifiee: Mapped[bool] = mapped_column(Boolean, default=True)  # street coded


class FicobaPersonnePhysique(_Adresse, Base):
    """A natural person of the file, once per store, with the keys searches compare."""

    __tablename__ = "ficoba_personne_physique"
    __table_args__ = (
        Index("ix_ficoba_pp_spi", "store", "spi"),
        Index("ix_ficoba_pp_nom", "store", "nom_cle", "date_naissance"),
        Index("ix_ficoba_pp_nom_usage", "store", "nom_usage_cle", "date_naissance"),
    )

    store: Mapped[str] = mapped_column(String(16), primary_key=True)
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    spi: Mapped[str | None] = mapped_column(String(13))
    sexe: Mapped[str] = mapped_column(String(1))  # "M" or "F"
    nom_naissance: Mapped[str] = mapped_column(String(100))  # canonical
    nom_usage: Mapped[str | None] = mapped_column(String(100))
    prenoms: Mapped[str] = mapped_column(String(200))  # canonical, space-separated
    nom_cle: Mapped[str] = mapped_column(String(100))  # person_key(nom_naissance)
    nom_usage_cle: Mapped[str | None] = mapped_column(String(100))
    prenoms_cle: Mapped[str] = mapped_column(String(200))  # words_key(prenoms)
    prenom_cle: Mapped[str] = mapped_column(String(100))  # words_key(first first name)
    date_naissance: Mapped[dt.date] = mapped_column(Date)
    code_pays_naissance: Mapped[str] = mapped_column(String(5))  # COG, 99100 France
    code_departement_naissance: Mapped[str | None] = mapped_column(String(3))
    code_commune_naissance: Mapped[str | None] = mapped_column(String(3))
    libelle_commune_naissance: Mapped[str | None] = mapped_column(String(100))
    date_deces: Mapped[dt.date | None] = mapped_column(Date)


class FicobaNom(Base):
    """The vocabulary of the natural persons' names (birth and usage) of a store: each key
    once, with its phonetic key. A name search finds the similar keys here (trigrams on
    PostgreSQL, sound-alikes on SQLite), a few among all the names of the file, then the
    persons through ``ix_ficoba_pp_nom*`` (key and birth date)."""

    __tablename__ = "ficoba_nom"
    __table_args__ = (
        _trigram("ix_ficoba_nom_trgm", "cle"),
        Index("ix_ficoba_nom_phon", "store", "phon"),
    )

    store: Mapped[str] = mapped_column(String(16), primary_key=True)
    cle: Mapped[str] = mapped_column(String(100), primary_key=True)  # person_key
    phon: Mapped[str] = mapped_column(String(100))  # phonetic_key


class FicobaDesignation(Base):
    """The vocabulary of the legal persons' designations (raison sociale and enseigne
    keys) of a store, each key once: a designation search finds the similar keys here
    (trigrams, PostgreSQL), a few among every designation of the file, then the
    establishments through ``ix_ficoba_pm_raison_sociale`` / ``ix_ficoba_pm_enseigne``.
    Kept by the database itself (``DESIGNATION_TRIGGERS``: every insert or update of an
    establishment adds its keys), so every writer — sandbox, import, ``COPY`` — fills it."""

    __tablename__ = "ficoba_designation"
    __table_args__ = (_trigram("ix_ficoba_designation_trgm", "cle"),)

    store: Mapped[str] = mapped_column(String(16), primary_key=True)
    cle: Mapped[str] = mapped_column(String(200), primary_key=True)  # designation_key


class FicobaPersonneMorale(_Adresse, Base):
    """A legal person's establishment (one row per SIRET) with the keys searches compare."""

    __tablename__ = "ficoba_personne_morale"
    __table_args__ = (
        Index("ix_ficoba_pm_siren", "store", "siren"),
        Index("ix_ficoba_pm_siret", "store", "siret", unique=True),
        _trigram("ix_ficoba_pm_raison_sociale_trgm", "raison_sociale_cle"),
        _trigram("ix_ficoba_pm_enseigne_trgm", "enseigne_cle"),
        # A designation's establishments in the order answers list them (see
        # ``ficoba_search._legal_scores``): the first few of each key without a sort.
        Index(
            "ix_ficoba_pm_raison_sociale",
            "store",
            "raison_sociale_cle",
            "raison_sociale",
            "siret",
            "id",
        ),
        Index("ix_ficoba_pm_enseigne", "store", "enseigne_cle", "raison_sociale", "siret", "id"),
        Index("ix_ficoba_pm_raison_sociale_phon", "store", "raison_sociale_phon"),
        Index("ix_ficoba_pm_enseigne_phon", "store", "enseigne_phon"),
        Index("ix_ficoba_pm_sigle", "store", "sigle_cle"),
    )

    store: Mapped[str] = mapped_column(String(16), primary_key=True)
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    siren: Mapped[str] = mapped_column(String(9))
    siret: Mapped[str] = mapped_column(String(14))
    raison_sociale: Mapped[str] = mapped_column(String(200))  # canonical
    sigle: Mapped[str | None] = mapped_column(String(50))
    enseigne: Mapped[str | None] = mapped_column(String(200))
    categorie_juridique: Mapped[str] = mapped_column(String(4))  # INSEE, four digits
    raison_sociale_cle: Mapped[str] = mapped_column(String(200))  # designation_key
    sigle_cle: Mapped[str | None] = mapped_column(String(50))  # person_key
    enseigne_cle: Mapped[str | None] = mapped_column(String(200))  # designation_key
    raison_sociale_phon: Mapped[str] = mapped_column(String(200))  # phonetic_key
    enseigne_phon: Mapped[str | None] = mapped_column(String(200))


class FicobaCompte(Base):
    """An account, or a safe-deposit box (nature ``NATURE_COFFRE``, no IBAN), and the branch
    that manages it."""

    __tablename__ = "ficoba_compte"
    __table_args__ = (
        ForeignKeyConstraint(
            ["store", "etablissement", "guichet"],
            ["ficoba_guichet.store", "ficoba_guichet.etablissement", "ficoba_guichet.code"],
        ),
        Index("ix_ficoba_compte_iban", "store", "iban", unique=True),
        Index(
            "ix_ficoba_compte_numero", "store", "etablissement", "guichet", "numero", unique=True
        ),
    )

    store: Mapped[str] = mapped_column(String(16), primary_key=True)
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    iban: Mapped[str | None] = mapped_column(String(34))  # None for a safe-deposit box
    etablissement: Mapped[str] = mapped_column(String(5))
    guichet: Mapped[str] = mapped_column(String(5))
    numero: Mapped[str] = mapped_column(String(20))  # account (11 characters) or box number
    format: Mapped[str] = mapped_column(String(8))  # FORMATS
    nature: Mapped[int] = mapped_column(Integer)  # NATURES
    type: Mapped[int] = mapped_column(Integer)  # TYPES
    caracteristique: Mapped[int] = mapped_column(Integer)  # CARACTERISTIQUES
    devise: Mapped[str] = mapped_column(String(3), default="EUR")
    date_ouverture: Mapped[dt.date] = mapped_column(Date)
    date_fiscale: Mapped[dt.date] = mapped_column(Date)  # when the file recorded it
    motif_ouverture: Mapped[str] = mapped_column(String(2))  # MOTIFS_OUVERTURE
    date_cloture: Mapped[dt.date | None] = mapped_column(Date)
    motif_cloture: Mapped[str | None] = mapped_column(String(2))  # MOTIFS_CLOTURE
    resident: Mapped[bool] = mapped_column(Boolean, default=True)
    succession: Mapped[bool] = mapped_column(Boolean, default=False)  # a holder died


class FicobaDetention(Base):
    """One person's capacity (``QUALITES``) on one account: exactly one of the two person
    columns is set."""

    __tablename__ = "ficoba_detention"
    __table_args__ = (
        ForeignKeyConstraint(["store", "compte_id"], ["ficoba_compte.store", "ficoba_compte.id"]),
        ForeignKeyConstraint(
            ["store", "personne_physique_id"],
            ["ficoba_personne_physique.store", "ficoba_personne_physique.id"],
        ),
        ForeignKeyConstraint(
            ["store", "personne_morale_id"],
            ["ficoba_personne_morale.store", "ficoba_personne_morale.id"],
        ),
        CheckConstraint(
            "(personne_physique_id IS NULL) <> (personne_morale_id IS NULL)", name="une_personne"
        ),
        Index("ix_ficoba_detention_compte", "store", "compte_id"),
        Index("ix_ficoba_detention_pp", "store", "personne_physique_id"),
        Index("ix_ficoba_detention_pm", "store", "personne_morale_id"),
    )

    store: Mapped[str] = mapped_column(String(16), primary_key=True)
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    compte_id: Mapped[int] = mapped_column(BigInteger)
    personne_physique_id: Mapped[int | None] = mapped_column(BigInteger)
    personne_morale_id: Mapped[int | None] = mapped_column(BigInteger)
    qualite: Mapped[str] = mapped_column(String(3))  # QUALITES
    date_debut: Mapped[dt.date | None] = mapped_column(Date)
    date_fin: Mapped[dt.date | None] = mapped_column(Date)


# ``create_all`` (tests, a fresh embedded database) needs the extensions the trigram indexes
# use, as migration 0013 installs them.
EXTENSIONS_DDL: Final = (
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE EXTENSION IF NOT EXISTS unaccent",
    # pg_trgm prices similarity() like a comparison; it costs about a hundred: told so,
    # the planner takes the trigram index rather than computing it on every row of a
    # small table. Skipped (with a notice) where the role does not own the extension.
    """DO $$
BEGIN
    ALTER FUNCTION similarity(text, text) COST 100;
    ALTER FUNCTION similarity_op(text, text) COST 100;
EXCEPTION WHEN insufficient_privilege OR undefined_function THEN
    RAISE NOTICE USING MESSAGE = 'pg_trgm : coût de similarity() inchangé : ' || SQLERRM;
END $$""",
)


# ``ficoba_designation`` follows the establishments' keys (migration 0018 creates the same).
DESIGNATION_TRIGGERS: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {
        "postgresql": (
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
            # One event per trigger where a transition table is named.
            """CREATE TRIGGER ficoba_designation_insert AFTER INSERT ON ficoba_personne_morale
REFERENCING NEW TABLE AS nouvelles FOR EACH STATEMENT
EXECUTE FUNCTION ficoba_designation_ajout()""",
            """CREATE TRIGGER ficoba_designation_update AFTER UPDATE ON ficoba_personne_morale
REFERENCING NEW TABLE AS nouvelles FOR EACH STATEMENT
EXECUTE FUNCTION ficoba_designation_ajout()""",
        ),
        "sqlite": tuple(
            f"""CREATE TRIGGER ficoba_designation_{name} AFTER {name.upper()}
ON ficoba_personne_morale BEGIN
    INSERT OR IGNORE INTO ficoba_designation (store, cle)
    VALUES (NEW.store, NEW.raison_sociale_cle);
    INSERT OR IGNORE INTO ficoba_designation (store, cle)
    SELECT NEW.store, NEW.enseigne_cle WHERE NEW.enseigne_cle IS NOT NULL;
END"""  # noqa: S608 - a constant (insert, update)
            for name in ("insert", "update")
        ),
    }
)


def _create_extensions(_table: object, connection: Connection, **_kw: object) -> None:
    if connection.dialect.name == "postgresql":
        for statement in EXTENSIONS_DDL:
            connection.exec_driver_sql(statement)


def _create_designation_triggers(
    _metadata: object, connection: Connection, *, tables: Sequence[Table] = (), **_kw: object
) -> None:
    """After ``create_all``, once both tables exist."""
    names = {table.name for table in tables}
    if {"ficoba_designation", "ficoba_personne_morale"} <= names:
        for statement in DESIGNATION_TRIGGERS.get(connection.dialect.name, ()):
            connection.exec_driver_sql(statement)


for _model in (FicobaNom, FicobaDesignation, FicobaPersonneMorale):  # trigram indexes
    event.listen(_model.__table__, "before_create", _create_extensions)
event.listen(Base.metadata, "after_create", _create_designation_triggers)
