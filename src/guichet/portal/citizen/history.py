"""The citizen's exchanges in words: the journal records whose ``subject`` is their pseudonym,
newest first, each with its partner, démarche, API, operation, data and outcome."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session, sessionmaker

from guichet.catalog.products import OFFERS_OF_SERVICE, PRODUCTS
from guichet.catalog.vocabulary import search_type_name
from guichet.errors import GuichetError
from guichet.federation.consent import CATALOGUE_LABELS
from guichet.habilitation import queries as habilitations
from guichet.journal import queries as journal
from guichet.journal.models import JournalRecord

PAGE_SIZE: Final = 50
PARIS: Final = ZoneInfo("Europe/Paris")

ENVIRONMENT_LABELS: Final = {
    "sandbox": "Bac à sable (données fictives)",
    "production": "Production",
}
# Data released by scopes that are not the tax administration's data scopes.
OTHER_DATA_LABELS: Final = {
    "r2p_identifiant": "Numéro fiscal (SPI)",
    "r2p_etat_civil": "État civil (noms, prénoms, date et lieu de naissance)",
    "r2p_adresse": "Adresse",
    "ficoba_comptes": "Vos comptes bancaires (établissement, guichet, titulaires, mandataires, "
    "bénéficiaires effectifs, coffres-forts)",
    "ficoba_verification_iban": "Vérification que vous êtes titulaire d'un IBAN",
    "ficoba_multi_detention": "Vos livrets et comptes réglementés ouverts (multi-détention)",
}
_IR_RESOURCE_LABELS: Final = {
    "ir_assiettes": "Situation à l'impôt sur le revenu d'une année",
    "ir_assiettes_multiple": "Situations à l'impôt sur le revenu d'une année "
    "(déclarations multiples)",
    "ir_derniere_situation": "Dernière situation à l'impôt sur le revenu connue pour une année",
    "ir_derniere_situation_deuxans": "Dernière situation à l'impôt sur le revenu connue "
    "(la plus récente des deux dernières années)",
    "ir_factures": "Avis d'impôt sur le revenu d'une année (montants et paiements)",
    "ifi_assiettes": "Situation à l'impôt sur la fortune immobilière d'une année",
    "th_principale": "Taxe d'habitation de votre résidence principale",
}
OPERATION_LABELS: Final = {
    **{f"{k}_spi": f"{v}, à partir de votre numéro fiscal" for k, v in _IR_RESOURCE_LABELS.items()},
    **{
        f"{k}_fc": f"{v}, après votre connexion avec FranceConnect"
        for k, v in _IR_RESOURCE_LABELS.items()
    },
    **{
        o.operation: f"{o.label} (offre de service n° {o.number}), après votre connexion avec "
        "FranceConnect"
        for o in OFFERS_OF_SERVICE
    },
    "lep_spi": "Vérification de votre droit au livret d'épargne populaire (LEP), à partir de "
    "votre numéro fiscal",
    "r2p_personne_spi": "Recherche de votre numéro fiscal à partir de votre état civil",
    "r2p_personne_recherche": "Recherche d'une personne par son état civil",
    "r2p_personne": "Lecture de votre état civil et de votre adresse",
    "ficoba_num_cpte": "Recherche d'un compte bancaire par son IBAN (fichier FICOBA)",
    "ficoba_siret_siren": "Recherche des comptes bancaires d'une entreprise (fichier FICOBA)",
    "ficoba_spi": "Recherche de vos comptes bancaires à partir de votre numéro fiscal "
    "(fichier FICOBA)",
    "ficoba_per_phy": "Recherche des comptes bancaires d'une personne par son état civil "
    "(fichier FICOBA)",
    "ficoba_per_pro": "Recherche des comptes bancaires d'une personne morale (fichier FICOBA)",
    "ficoba_multi_det": "Recherche des livrets et comptes réglementés détenus (fichier FICOBA)",
    "ficoba_verif_iban": "Vérification du titulaire d'un IBAN (fichier FICOBA)",
    "ficoba_etat_sante": "État de santé de l'API FICOBA",
    "unknown": "Adresse inconnue de la passerelle",
}


def _operation(name: str, search_type: str | None) -> str:
    """The operation in words; an API FICOBA search with its search type (issue 14)."""
    label = OPERATION_LABELS.get(name, name)
    if search_type:
        label = f"{label} — type de recherche « {search_type_name(search_type)} »"
    return label


def _error_titles() -> dict[str, str]:
    """Every domain error's stable code → its French title (the refusal in words)."""
    titles: dict[str, str] = {}
    pending: list[type[GuichetError]] = [GuichetError]
    while pending:
        cls = pending.pop()
        titles.setdefault(cls.code, cls.title)
        pending.extend(cls.__subclasses__())
    return titles


@dataclass(frozen=True, slots=True)
class Exchange:
    """One journal record about the citizen, in words."""

    record_id: str
    at: dt.datetime  # UTC
    when: str  # Europe/Paris, dd/mm/yyyy à HH:MM:SS
    environment: str
    partner: str
    demarche: str
    api: str
    operation: str
    data: tuple[str, ...]
    served: bool
    outcome: str
    reason: str | None
    correlation_id: str

    def row(self) -> dict[str, Any]:
        """The exchange as one download row (CSV and JSON share the columns)."""
        return {
            "date": self.at.astimezone(PARIS).isoformat(timespec="seconds"),
            "environnement": self.environment,
            "partenaire": self.partner,
            "demarche": self.demarche,
            "api": self.api,
            "operation": self.operation,
            "donnees_transmises": list(self.data),
            "resultat": self.outcome,
            "motif": self.reason or "",
            "identifiant_echange": self.record_id,
            "identifiant_correlation": self.correlation_id,
        }


@dataclass(frozen=True, slots=True)
class ExchangePage:
    exchanges: list[Exchange]
    page: int
    pages: int
    total: int


class ExchangeHistory:
    """The journal as one citizen may read it: only the records whose ``subject`` is their
    pseudonym, newest first, in words."""

    def __init__(self, session_factory: sessionmaker[Session], page_size: int = PAGE_SIZE):
        self.session_factory = session_factory
        self.page_size = page_size
        self._reasons = _error_titles()

    def page(self, subject: str, page: int) -> ExchangePage:
        with self.session_factory() as session:
            found = journal.page_about(session, subject, page, self.page_size)
            exchanges = self._describe(session, found.records)
        return ExchangePage(exchanges, found.page, found.pages, found.total)

    def all(self, subject: str) -> list[Exchange]:
        with self.session_factory() as session:
            return self._describe(session, journal.records_about(session, subject))

    def _describe(self, session: Session, rows: Sequence[JournalRecord]) -> list[Exchange]:
        """Partner and démarche from the habilitation (→ its organisation), else from the
        record's partner (organisation) id."""
        habs = habilitations.partners_of(
            session, {r.habilitation_id for r in rows if r.habilitation_id is not None}
        )
        orgs = habilitations.organisation_names(
            session, {r.partner_id for r in rows if r.partner_id is not None}
        )
        return [self._exchange(r, habs, orgs) for r in rows]

    def _exchange(
        self,
        record: JournalRecord,
        habs: Mapping[uuid.UUID, tuple[str, str]],
        orgs: Mapping[uuid.UUID, str],
    ) -> Exchange:
        partner, demarche = "Partenaire non identifié", "Non précisée"
        if record.habilitation_id is not None and record.habilitation_id in habs:
            partner, demarche = habs[record.habilitation_id]
        elif record.partner_id is not None and record.partner_id in orgs:
            partner = orgs[record.partner_id]
        product = PRODUCTS.get(record.api or "")
        op_name = record.operation.split(" ", 1)[-1]
        served = record.outcome == "ok"
        at = record.at if record.at.tzinfo else record.at.replace(tzinfo=dt.UTC)
        return Exchange(
            record_id=str(record.id),
            at=at.astimezone(dt.UTC),
            when=at.astimezone(PARIS).strftime("%d/%m/%Y à %H:%M:%S"),
            environment=ENVIRONMENT_LABELS.get(record.environment, record.environment),
            partner=partner,
            demarche=demarche,
            api=product.name if product else (record.api or "API inconnue"),
            operation=_operation(op_name, record.search_type),
            data=tuple(
                CATALOGUE_LABELS.get(s) or OTHER_DATA_LABELS.get(s) or s for s in record.data_scopes
            )
            if served
            else (),
            served=served,
            outcome="Données transmises" if served else "Refusé : aucune donnée transmise",
            reason=None
            if served
            else self._reasons.get(record.outcome, f"Motif technique « {record.outcome} »"),
            correlation_id=record.correlation_id,
        )
