"""Persons and their tax situations (IR, IFI, housing tax), held per store (``sandbox`` or
``production``).

The sandbox store holds the fictive population; the production store holds what the
provider loads with ``guichet data import``. A gateway only ever reads its own store.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Boolean, Date, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from guichet.db.base import Base


class Person(Base):
    """A natural person as R2P knows them (état civil, SPI, address).

    The état civil is held in columns the searches index and compare; the API R2P writes
    them in its own codes (``sexe`` M/F → ``cdSexe`` 1/2, the commune's COG → its last three
    characters). ``adresse`` is the provider's ``AdresseReponse`` as R2P answers it (codes
    and labels as strings, a value that does not exist omitted): see
    ``guichet.records.geography.adresse_reponse``.
    """

    __tablename__ = "person"
    __table_args__ = (Index("ix_person_etat_civil", "store", "nom_naissance", "date_naissance"),)

    store: Mapped[str] = mapped_column(String(16), primary_key=True)
    spi: Mapped[str] = mapped_column(String(13), primary_key=True)
    sexe: Mapped[str] = mapped_column(String(1))  # "M" or "F"
    nom_naissance: Mapped[str] = mapped_column(String(100))
    nom_usage: Mapped[str | None] = mapped_column(String(100))
    prenoms: Mapped[str] = mapped_column(String(200))  # space-separated
    date_naissance: Mapped[dt.date] = mapped_column(Date)
    code_pays_naissance: Mapped[str] = mapped_column(String(5))  # COG, 99100 = France
    # The birth department (75, 2A, 974) or overseas collectivity (975, 987); None abroad.
    code_dept_naissance: Mapped[str | None] = mapped_column(String(3))
    code_commune_naissance: Mapped[str | None] = mapped_column(String(5))  # COG
    lieu_naissance: Mapped[str | None] = mapped_column(String(100))
    adresse: Mapped[dict[str, Any]]  # AdresseReponse: cdPays, lbPays, cdDepartement…
    communicable: Mapped[bool] = mapped_column(Boolean, default=True)


class IrSituation(Base):
    """One situation of one tax household in an income year, indexed by each declarant's
    SPI.

    ``record`` is the provider's full IR "assiettes" record (``IrRecord``: the properties of
    ``SituationIRAssietteMultiJAXBbean`` but ``annRevenu``, which is ``annrev``; a value that
    does not exist is omitted, ``null`` only for ``rfr``, ``sitFam``, ``sitParIso`` and
    ``revenuBrutGlobal``); the gateway projects it on the operation's schema and filters it
    by the habilitation's data scopes before it leaves.
    """

    __tablename__ = "ir_situation"

    store: Mapped[str] = mapped_column(String(16), primary_key=True)
    spi: Mapped[str] = mapped_column(String(13), primary_key=True)
    annrev: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Several situations in one year (marriage, divorce, death, a rectifying notice): 1, 2,
    # … in date order.
    rang: Mapped[int] = mapped_column(Integer, primary_key=True, default=1)
    foyer: Mapped[str] = mapped_column(String(32), index=True)
    record: Mapped[dict[str, Any]]
    # The lines of this situation's tax notice, as the provider sends them (``numLigne``,
    # ``codeLigne``, ``libelleLigne``, ``colonne1``…``colonne4``, a column not used being
    # omitted); None when no notice was issued. Only the ``factures`` resource returns them.
    facture: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)


class IfiSituation(Base):
    """The wealth tax on real estate (IFI) a household declared with the income of
    ``annrev``, indexed by each declarant's SPI; no row, no IFI declaration."""

    __tablename__ = "ifi_situation"

    store: Mapped[str] = mapped_column(String(16), primary_key=True)
    spi: Mapped[str] = mapped_column(String(13), primary_key=True)
    annrev: Mapped[int] = mapped_column(Integer, primary_key=True)
    foyer: Mapped[str] = mapped_column(String(32))
    record: Mapped[dict[str, Any]]  # {"indicateurIfiIsf": "O" | "N"}: SituationIfiIsfJAXBbean


class ThLocal(Base):
    """One premises (local) of a person's housing-tax (TH) assessment of one year: what
    OS7 returns [003 annexe 3 §5.7].

    ``avis`` groups the premises of one assessment; ``principal`` marks a principal-residence
    assessment (``regimeTax`` "P"), the others being secondary ("S"). Each declarant of a
    household has the rows under their own SPI, like ``IrSituation``.
    """

    __tablename__ = "th_local"

    store: Mapped[str] = mapped_column(String(16), primary_key=True)
    spi: Mapped[str] = mapped_column(String(13), primary_key=True)
    annee: Mapped[int] = mapped_column(Integer, primary_key=True)
    invariant: Mapped[str] = mapped_column(String(10), primary_key=True)  # the premises' id
    avis: Mapped[str] = mapped_column(String(24))
    nature_local: Mapped[str] = mapped_column(String(3))  # MA maison, AP appartement, DE …
    affectation: Mapped[str] = mapped_column(String(1))  # H habitation, D dépendance, P pro
    principal: Mapped[bool] = mapped_column(Boolean)


class ThAvis(Base):
    """The heading of one housing-tax assessment (``avis``) of a person: the premises'
    address and the payers' names as printed on the notice; its premises are ``ThLocal``
    rows of the same ``avis``."""

    __tablename__ = "th_avis"

    store: Mapped[str] = mapped_column(String(16), primary_key=True)
    spi: Mapped[str] = mapped_column(String(13), primary_key=True)
    annee: Mapped[int] = mapped_column(Integer, primary_key=True)
    avis: Mapped[str] = mapped_column(String(24), primary_key=True)
    # codeDsf, codeCommune, codeAft, numVoie, btq, libelleVoie, libelleCommune, natureImp,
    # libelleEdition1, libelleEdition2 (``ThHeading``); a value that does not exist (btq,
    # libelleEdition2…) is omitted, not null
    record: Mapped[dict[str, Any]]
