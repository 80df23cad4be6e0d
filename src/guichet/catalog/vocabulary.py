"""The one French vocabulary of what people read: data, years, modes, fields, outcomes, calls.

Codes (``dgfip_rfr``, ``ir_assiettes_spi``, ``year_not_granted``, ``basics.intended_use``)
stay the system's names; every page shows the words below, and the provider's names only in
the technical contact's small print.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final
from zoneinfo import ZoneInfo

from guichet.catalog.products import (
    DATA_SCOPE_LABELS,
    FACTURE_FIELD_SCOPES,
    FICOBA_RELEASED_SCOPES,
    FICOBA_SEARCH_SCOPES,
    IFI_FIELD_SCOPES,
    IR_FIELD_SCOPES,
    LEP_FIELD_SCOPES,
    OFFERS_OF_SERVICE,
    PERSON_RESOURCES,
    TH_FIELD_SCOPES,
    YEAR_FALLBACK_SCOPE,
    YEAR_SCOPES,
)
from guichet.errors import GuichetError

PARIS: Final = ZoneInfo("Europe/Paris")


@dataclass(frozen=True, slots=True)
class Theme:
    key: str
    label: str
    scopes: tuple[str, ...]


# Data scopes grouped by what they are about, in the order a partner reads them.
THEMES: Final = (
    Theme(
        "revenus",
        "Revenus",
        (
            "dgfip_rfr",
            "dgfip_revimposable",
            "dgfip_rbg",
            "dgfip_mntRevbareme",
            "dgfip_rns",
            "dgfip_rev_monde",
            "dgfip_pensalper",
            "dgfip_inddeficit",
        ),
    ),
    Theme("foyer", "Foyer fiscal", ("dgfip_nbpart", "dgfip_sitfam", "dgfip_pac", "dgfip_pariso")),
    Theme("identite", "Identité des déclarants", ("dgfip_decl",)),
    Theme("adresse", "Adresse", ("dgfip_aft", "dgfip_adresse_th")),
    Theme(
        "impot",
        "Impôt sur le revenu",
        ("dgfip_montantimpot", "dgfip_recouvrement", "dgfip_ir_facture"),
    ),
    Theme("logement", "Logement", ("dgfip_locaux_th", "dgfip_redevables_th")),
    Theme("patrimoine", "Patrimoine", ("dgfip_ifi",)),
    Theme("epargne", "Épargne", ("dgfip_eligibilite_lep",)),
    Theme(
        "etat_civil", "État civil (API R2P)", ("r2p_identifiant", "r2p_etat_civil", "r2p_adresse")
    ),
    Theme(
        "comptes_bancaires",
        "Comptes bancaires (API FICOBA)",
        (*FICOBA_SEARCH_SCOPES.values(), *FICOBA_RELEASED_SCOPES),
    ),
)

# The search types of API FICOBA [002 §4], journaled with each search.
FICOBA_SEARCH_TYPES: Final = MappingProxyType(
    {
        "personne_physique": "personne physique",
        "personne_morale": "personne morale",
        "compte": "compte",
        "siren_siret": "SIREN/SIRET",
        "spi": "numéro fiscal (SPI)",
        "verification_iban_personne_physique": "vérification IBAN personne physique",
        "verification_iban_personne_morale": "vérification IBAN personne morale",
        "verification_iban_siret": "vérification IBAN SIRET",
        "multi_detention_personne_physique": "multi-détention personne physique",
        "multi_detention_personne_morale": "multi-détention personne morale",
        "multi_detention_siret": "multi-détention SIRET",
    }
)

# Plain names: shorter than the consent page's, which also says what the scope covers.
SCOPE_NAMES: Final = MappingProxyType(
    {
        **DATA_SCOPE_LABELS,
        "dgfip_sitfam": "Situation de famille (marié, pacsé, célibataire…)",
        "dgfip_decl": "Identité des déclarants (noms, prénoms, naissance)",
        "dgfip_rns": "Détail des revenus par catégorie (salaires, pensions…)",
        "dgfip_ir_facture": "Avis d'impôt sur le revenu (montants, dates, reste à payer)",
        "r2p_identifiant": "Numéro fiscal (SPI)",
        "r2p_etat_civil": "État civil (noms, prénoms, date et lieu de naissance)",
        "r2p_adresse": "Adresse",
        "ficoba_comptes": (
            "Comptes bancaires d'une personne et leurs titulaires, mandataires, "
            "bénéficiaires effectifs et coffres-forts"
        ),
        "ficoba_verification_iban": "Vérification du titulaire d'un IBAN",
        "ficoba_multi_detention": "Comptes réglementés détenus (multi-détention)",
        # What a FICOBA habilitation grants: one search type each [002 §4].
        **{
            scope: f"Recherche FICOBA « {FICOBA_SEARCH_TYPES[kind]} »"
            for kind, scope in FICOBA_SEARCH_SCOPES.items()
        },
    }
)

# The resource scopes of API FICOBA's searches (what a client's token carries), in words.
FICOBA_RESOURCE_SCOPES: Final = MappingProxyType(
    {
        "RessourceFicobaSante": "État de santé de l'API",
        "RessourceFicobaCompte": "Recherche des comptes par numéro de compte (IBAN)",
        "RessourceFicobaSiretSiren": "Recherche des comptes par SIREN ou SIRET",
        "RessourceFicobaSpi": "Recherche des comptes par numéro fiscal (SPI)",
        "RessourceFicobaPerPhy": "Recherche des comptes d'une personne physique",
        "RessourceFicobaPerPro": "Recherche des comptes d'une personne morale",
        "RessourceFicobaMultiDet": "Recherche de multi-détention de comptes réglementés",
        "RessourceFicobaVerifIban": "Vérification du titulaire d'un IBAN",
    }
)


def _provider_fields() -> Mapping[str, tuple[str, ...]]:
    found: dict[str, list[str]] = {}
    for mapping in (
        IR_FIELD_SCOPES,
        FACTURE_FIELD_SCOPES,
        IFI_FIELD_SCOPES,
        TH_FIELD_SCOPES,
        LEP_FIELD_SCOPES,
    ):
        for name, scope in mapping.items():
            found.setdefault(scope, []).append(name)
    return MappingProxyType({k: tuple(v) for k, v in found.items()})


# The provider's field names of each scope: the technical contact's small print.
PROVIDER_FIELDS: Final = _provider_fields()


def scope_name(scope: str) -> str:
    """A data scope in plain French (an unknown scope keeps its code: it is a new one)."""
    return SCOPE_NAMES.get(scope) or YEAR_NAMES.get(scope) or scope


def themes_of(scopes: Iterable[str]) -> list[tuple[Theme, list[str]]]:
    """The themes that hold some of ``scopes``, each with its scopes in the theme's order."""
    wanted = set(scopes)
    found = [(t, [s for s in t.scopes if s in wanted]) for t in THEMES if wanted & set(t.scopes)]
    themed = {s for t in THEMES for s in t.scopes}
    others = sorted(wanted - themed - set(YEAR_NAMES))
    if others:  # a scope newer than this vocabulary: shown, never dropped
        found.append((Theme("autres", "Autres données", tuple(others)), others))
    return found


# Revenue years, relative to N (the current year in Paris).
YEAR_NAMES: Final = MappingProxyType(
    {
        **{scope: f"Revenus de l'année N-{offset}" for scope, offset in YEAR_SCOPES.items()},
        YEAR_FALLBACK_SCOPE: "Revenus de l'année N-2 si ceux de N-1 ne sont pas disponibles",
    }
)


def year_name(scope: str, now: dt.datetime | None = None) -> str:
    """``dgfip_annee_n_moins_1`` → "Revenus de l'année N-1 (2025)" (N: this year in Paris)."""
    n = (now or dt.datetime.now(dt.UTC)).astimezone(PARIS).year
    if scope in YEAR_SCOPES:
        return f"{YEAR_NAMES[scope]} ({n - YEAR_SCOPES[scope]})"
    if scope == YEAR_FALLBACK_SCOPE:
        return f"Revenus de l'année N-2 ({n - 2}) si ceux de N-1 ({n - 1}) ne sont pas disponibles"
    return scope_name(scope)


ACCESS_MODES: Final = MappingProxyType(
    {
        "franceconnect": "FranceConnect (l'usager se connecte)",
        "spi": "Numéro fiscal (SPI)",
        "etat_civil": "État civil (via l'API R2P)",
    }
)
ENVIRONMENTS: Final = MappingProxyType({"sandbox": "Bac à sable", "production": "Production"})
LEGAL_NATURES: Final = MappingProxyType(
    {
        "loi": "Loi",
        "decret": "Décret",
        "arrete": "Arrêté",
        "deliberation": "Délibération du conseil (collectivité)",
        "autre": "Autre",
    }
)
SECURITY_KINDS: Final = MappingProxyType(
    {
        "homologation": "Attestation d'homologation (RGS)",
        "questionnaire": "Questionnaire de sécurité (hors RGS)",
    }
)
CONTACT_ROLES: Final = MappingProxyType(
    {
        "controller": "Responsable de traitement",
        "dpo": "Délégué à la protection des données (DPO)",
        "technical": "Responsable technique",
    }
)
BLOCKS: Final = MappingProxyType(
    {
        "basics": "Informations générales",
        "legal": "Cadre juridique",
        "perimeter": "Périmètre des données",
        "recipients": "Destinataires des données",
        "personal_data": "Données personnelles",
        "contacts": "Contacts",
        "technical": "Données techniques",
        "terms": "Conditions générales d'utilisation",
        "production": "Prérequis de la production",
    }
)

# Every field of a request, by its path in the request's data (and in its errors).
REQUEST_FIELDS: Final = MappingProxyType(
    {
        "basics.demarche": "Nom de la démarche",
        "basics.description": "Description de la démarche",
        "basics.intended_use": "Usage prévu des données",
        "legal.nature": "Nature du texte",
        "legal.local_authority": "Collectivité territoriale (délibération du conseil)",
        "legal.reference": "Référence du texte",
        "legal.url": "Adresse du texte (URL)",
        "legal.document_id": "Texte ou délibération en PDF",
        "legal.secrecy_derogation": "Dérogation au secret professionnel",
        "perimeter.data_scopes": "Données demandées",
        "perimeter.labels": "Libellés pour l'usager",
        "perimeter.access_modes": "Modes d'accès",
        "perimeter.year_scopes": "Années de revenus",
        "perimeter.r11494_domain": "Domaine de la démarche (article R. 114-9-4 du CRPA)",
        # API FICOBA's perimeter (issue 14).
        "perimeter.search_types": "Types de recherche",
        "perimeter.secrecy_derogation": "Texte qui lève le secret professionnel (article 103 "
        "du LPF)",
        "perimeter.annual_searches": "Nombre de recherches par an",
        "perimeter.daily_peak": "Pic de recherches par jour",
        "perimeter.agents_count": "Nombre d'agents habilités à consulter FICOBA",
        "perimeter.agents_description": "Agents concernés (services, fonctions, habilitation)",
        "recipients.services": "Services destinataires",
        "personal_data.retention_months": "Durée de conservation (en mois)",
        "personal_data.retention_justification": "Justification de la durée de conservation",
        **{
            f"contacts.{role}{suffix}": f"{what}{title[0].lower()}{title[1:]}"
            for role, title in CONTACT_ROLES.items()
            for suffix, what in (
                ("", ""),
                (".name", "Nom du "),
                (".email", "Adresse électronique du "),
                (".verified", "Adresse vérifiée du "),
            )
        },
        "contacts.dpo": "Délégué à la protection des données (DPO)",
        "technical.ip_ranges": "Adresses IP sortantes",
        "technical.certificate_pem": "Certificat client",
        "technical.certificate_file": "Fichier du certificat client",
        "technical.volumetry_per_minute": "Volumétrie attendue (appels par minute)",
        "technical.volumetry_justification": "Justification de la volumétrie",
        "technical.annual_files": "Nombre de dossiers par an",
        "technical.hourly_peak": "Pic de charge (demandes par heure)",
        "technical.federation_client_id": "Identifiant du service auprès de FranceConnect",
        "technical.federation_redirect_uris": "Adresses de retour FranceConnect",
        "terms.version": "Conditions générales d'utilisation",
        "production.recette_confirmed": "Recette fonctionnelle réalisée au bac à sable",
        "production.recette_results": "Résultats de la recette fonctionnelle",
        "production.formalities_declared": "Formalités de protection des données accomplies",
        "production.security_kind": "Engagement de sécurité",
        "production.homologation": "Attestation d'homologation",
        "production.homologation.document_id": "Attestation d'homologation (PDF)",
        "production.homologation.authority": "Autorité d'homologation",
        "production.homologation.signatory_name": "Signataire de l'homologation",
        "production.homologation.signatory_function": "Fonction du signataire de l'homologation",
        "production.homologation.start_date": "Date de l'homologation",
        "production.homologation.duration_months": "Durée de l'homologation (en mois)",
        "production.questionnaire": "Questionnaire de sécurité",
        "production.questionnaire.document_id": "Questionnaire de sécurité (PDF)",
        "production.questionnaire.date": "Date du questionnaire de sécurité",
    }
)


# Fields of the instruction's forms, outside the request's data.
OTHER_FIELDS: Final = MappingProxyType({"reason": "Motif de la décision", "comment": "Commentaire"})


def field_name(path: str) -> str:
    """A request field's path (``perimeter.data_scopes.dgfip_rfr``) in words, block first:
    "Périmètre des données — Justification : Revenu fiscal de référence (RFR)"."""
    block, _, rest = path.partition(".")
    if block in OTHER_FIELDS:
        return OTHER_FIELDS[block]
    block_name = BLOCKS.get(block, "Demande")
    if not rest:
        return block_name
    name = REQUEST_FIELDS.get(path)
    if name is None:
        head, _, scope = path.rpartition(".")
        if head == "perimeter.data_scopes":
            name = f"Justification : {scope_name(scope)}"
        elif head == "perimeter.labels":
            name = f"Libellé pour l'usager : {scope_name(scope)}"
        elif head == "perimeter.search_types":
            name = f"Finalité de la recherche « {search_type_name(scope)} »"
        else:
            name = REQUEST_FIELDS.get(head, "Autre information")
    return f"{block_name} — {name}"


def search_type_name(kind: str) -> str:
    """An API FICOBA search type in words (``multi_detention_siret`` → "multi-détention
    SIRET"); an unknown one keeps its code."""
    return FICOBA_SEARCH_TYPES.get(kind, kind)


def _word(value: Any, words: Mapping[str, str]) -> str:
    return words.get(str(value), str(value))


# Fields whose values are codes: the words each value is read as.
_VALUE_WORDS: Final[Mapping[str, Mapping[str, str]]] = MappingProxyType(
    {
        "legal.nature": LEGAL_NATURES,
        "perimeter.access_modes": ACCESS_MODES,
        "perimeter.year_scopes": YEAR_NAMES,
        "production.security_kind": SECURITY_KINDS,
    }
)


def field_value(path: str, value: Any, extra: Mapping[str, Mapping[str, str]] | None = None) -> Any:
    """A request field's value in words where it is a code (modes, years, natures…);
    ``extra`` adds words for other fields (the portal's R. 114-9-4 domains)."""
    words = (extra or {}).get(path) or _VALUE_WORDS.get(path)
    if words is None:
        return value
    if isinstance(value, list):
        return [_word(v, words) for v in value]
    return _word(value, words)


def terms_version(version: str) -> str:
    """A terms-of-use version as people read it: ``impot_particulier-2023-01`` → "2023-01"."""
    api, _, dated = version.partition("-")
    return dated if dated and ("_" in api or api == "ficoba") else version


PREREQUISITES: Final = MappingProxyType(
    {
        "recette_confirmed": REQUEST_FIELDS["production.recette_confirmed"],
        "recette_results": REQUEST_FIELDS["production.recette_results"],
        "formalities_declared": REQUEST_FIELDS["production.formalities_declared"],
        "security_kind": REQUEST_FIELDS["production.security_kind"],
    }
)


# --- the journal: calls and their outcomes ----------------------------------------------------

_RESOURCES: Final = MappingProxyType(
    {
        "ir_assiettes": "Situation d'impôt sur le revenu",
        "ir_assiettes_multiple": "Situations d'impôt sur le revenu (déclarations multiples)",
        "ir_derniere_situation": "Dernière situation d'impôt sur le revenu d'une année",
        "ir_derniere_situation_deuxans": "Dernière situation d'impôt sur le revenu "
        "(deux dernières années)",
        "ir_factures": "Avis d'impôt sur le revenu",
        "ifi_assiettes": "Situation d'impôt sur la fortune immobilière",
        "th_principale": "Taxe d'habitation de la résidence principale",
    }
)
_BY: Final = MappingProxyType(
    {"spi": "par numéro fiscal", "fc": "après connexion FranceConnect de l'usager"}
)
OPERATIONS: Final = MappingProxyType(
    {
        **{
            f"{r.stem}_{mode}": f"{_RESOURCES[r.stem]} ({by})"
            for r in PERSON_RESOURCES
            for mode, by in _BY.items()
        },
        "lep_spi": "Éligibilité au livret d'épargne populaire (par numéro fiscal)",
        **{
            o.operation: f"Offre de service n° {o.number} : {o.label} "
            "(après connexion FranceConnect de l'usager)"
            for o in OFFERS_OF_SERVICE
        },
        "r2p_personne_spi": "Numéro fiscal d'une personne (par état civil)",
        "r2p_personne_recherche": "Recherche d'une personne (par état civil)",
        "r2p_personne": "État civil et adresse d'une personne (par numéro fiscal)",
        "ficoba_etat_sante": "État de santé de l'API FICOBA",
        "ficoba_num_cpte": "Comptes bancaires (par numéro de compte)",
        "ficoba_siret_siren": "Comptes bancaires (par SIREN ou SIRET)",
        "ficoba_spi": "Comptes bancaires (par numéro fiscal)",
        "ficoba_per_phy": "Comptes bancaires d'une personne physique",
        "ficoba_per_pro": "Comptes bancaires d'une personne morale",
        "ficoba_multi_det": "Multi-détention de comptes réglementés",
        "ficoba_verif_iban": "Vérification du titulaire d'un IBAN",
        "unknown": "Adresse inconnue de la passerelle",
        "/token": "Demande de jeton d'accès",
    }
)
# The token endpoint's refusals (RFC 6749 §5.2), which are not domain errors.
OAUTH_OUTCOMES: Final = MappingProxyType(
    {
        "invalid_request": "demande de jeton mal formée",
        "invalid_client": "authentification du client refusée",
        "invalid_grant": "autorisation invalide",
        "unauthorized_client": "client non autorisé pour ce type de demande",
        "unsupported_grant_type": "type de demande de jeton non pris en charge",
        "invalid_scope": "portée demandée non couverte par l'habilitation",
    }
)


def operation_name(operation: str) -> str:
    """A journal operation (``GET ir_assiettes_spi``, or the bare name) in words."""
    name = operation.split(" ", 1)[-1]
    return OPERATIONS.get(name, "Autre appel")


def _error_titles() -> dict[str, str]:
    titles: dict[str, str] = {}
    pending: list[type[GuichetError]] = [GuichetError]
    while pending:
        cls = pending.pop()
        titles.setdefault(cls.code, cls.title)
        pending.extend(cls.__subclasses__())
    return titles


def outcome_sentence(outcome: str) -> str:
    """A journal outcome as a sentence: "Données transmises", or "Refusé : " and the refusal
    in words (the domain error's French title), e.g. "Refusé : année de revenus non couverte
    par l'habilitation"."""
    if outcome == "ok":
        return "Données transmises"
    title = _error_titles().get(outcome)
    if title is None and outcome in OAUTH_OUTCOMES:
        return f"Refusé : {OAUTH_OUTCOMES[outcome]}"
    if title is None:
        return "Refusé : motif technique"
    return f"Refusé : {title[0].lower()}{title[1:]}"


# --- time ---------------------------------------------------------------------------------------


def paris(moment: dt.datetime) -> dt.datetime:
    """A moment in Paris time; a naive datetime is UTC (how the database keeps them)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(PARIS)


def datetime_words(moment: dt.datetime | None, *, seconds: bool = False) -> str:
    """ "05/12/2026 à 09:19" in Paris time (the reader's, and the mails')."""
    if moment is None:
        return "—"
    return paris(moment).strftime("%d/%m/%Y à %H:%M:%S" if seconds else "%d/%m/%Y à %H:%M")


def date_words(moment: dt.date | dt.datetime | None) -> str:
    """ "05/12/2026": a datetime's day in Paris; a date as it is."""
    if moment is None:
        return "—"
    if isinstance(moment, dt.datetime):
        moment = paris(moment).date()
    return moment.strftime("%d/%m/%Y")
