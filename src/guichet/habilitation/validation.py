"""The request form's blocks and their server-side checks, each error naming its field.

The blocks follow the conventions: [000 §3.1.1] (démarche, use, perimeter, volumetry,
recipients, legal texts), [000 §3.1.2, §3.2, §3.4] and [003 art. 6] (production
prerequisites), [003 art. 7] and [003 annexe 3 §3.1] (volumetry, IPs, certificate,
federation client_id), [004 §3.1] (the R.114-9-4 domain outside FranceConnect).
Checks read only the request (no database): what needs one (contact verification,
certificate facts, document ownership) is computed when a block is saved.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final
from urllib.parse import urlsplit

from dateutil.relativedelta import relativedelta
from email_validator import EmailNotValidError, validate_email

from guichet.catalog.products import PRODUCTS, YEAR_FALLBACK_SCOPE, YEAR_SCOPES
from guichet.federation.scopes import DATA_SCOPES as FEDERATION_DATA_SCOPES
from guichet.habilitation.models import AccessMode, Environment
from guichet.habilitation.request_models import HabilitationRequest, SecurityKind
from guichet.pki import certificate_info


class Block(StrEnum):
    BASICS = "basics"
    LEGAL = "legal"
    PERIMETER = "perimeter"
    RECIPIENTS = "recipients"
    PERSONAL_DATA = "personal_data"
    CONTACTS = "contacts"
    TECHNICAL = "technical"
    TERMS = "terms"
    PRODUCTION = "production"


# Blocks every request has; production requests add ``PRODUCTION``.
COMMON_BLOCKS: Final = tuple(b for b in Block if b is not Block.PRODUCTION)


class LegalNature(StrEnum):
    LAW = "loi"
    DECREE = "decret"
    ORDER = "arrete"
    COUNCIL_DELIBERATION = "deliberation"  # a local authority's council [000 §3.1.1]
    OTHER = "autre"


class R11494Domain(StrEnum):
    """The ten domains of article R. 114-9-4 of the CRPA [004 §3.1]."""

    CONSOMMATION = "consommation"
    ENSEIGNEMENT = "enseignement"
    EMPLOI = "emploi"
    FAMILLE = "famille"
    IDENTITE = "identite"
    IMPOTS = "impots"
    JUSTICE = "justice"
    LOGEMENT = "logement"
    SANTE_SOLIDARITE = "sante_solidarite"
    TRANSPORT = "transport"


R11494_WORDING: Final = {
    R11494Domain.CONSOMMATION: "1° Consommation, notamment assurances, banques, surendettement, "
    "épargne",
    R11494Domain.ENSEIGNEMENT: "2° Enseignement et études supérieures",
    R11494Domain.EMPLOI: "3° Emploi, chômage, formation, santé et sécurité au travail, rupture "
    "contractuelle des relations de travail",
    R11494Domain.FAMILLE: "4° Famille, notamment enfance, protection des personnes, succession, "
    "union et séparation",
    R11494Domain.IDENTITE: "5° Identité, notamment état civil, titres d'identité sous réserve des "
    "dispositions de l'article R. 113-9, et élections",
    R11494Domain.IMPOTS: "6° Impôts, taxes et droits de douane",
    R11494Domain.JUSTICE: "7° Justice, notamment aide juridictionnelle",
    R11494Domain.LOGEMENT: "8° Logement et urbanisme, notamment les procédures relatives à "
    "l'achat d'un bien et aux aides financières y afférentes, copropriété, location et "
    "protection de l'habitat",
    R11494Domain.SANTE_SOLIDARITE: "9° Santé et solidarité, notamment aides sociales, handicap, "
    "perte d'autonomie, retraite, sécurité sociale et soins",
    R11494Domain.TRANSPORT: "10° Transport, notamment cartes de transport et permis de conduire",
}


@dataclass(frozen=True, slots=True)
class TermsOfUse:
    """One version of an API's terms of use (CGU); a new version needs a new acceptance."""

    api: str
    version: str
    title: str
    text: str


TERMS_OF_USE: Final = {
    "impot_particulier": TermsOfUse(
        api="impot_particulier",
        version="impot_particulier-2023-01",
        title="Conditions générales d'utilisation de l'API Impôt Particulier",
        text=(
            "Le fournisseur de service s'engage à n'utiliser les données fiscales que pour la "
            "démarche déclarée et dans la limite du périmètre strictement nécessaire ; à "
            "informer l'usager de l'origine des données ; à ne pas conserver le SPI hors cadre "
            "juridique l'y autorisant ; à accomplir les formalités relatives à la protection des "
            "données personnelles ; à faire prononcer l'homologation de sécurité de son service "
            "avant toute mise en production et à en transmettre une nouvelle attestation trois "
            "mois avant l'échéance, faute de quoi l'échange est suspendu ; à conserver ses "
            "journaux techniques trois ans. Le fournisseur de données peut suspendre le service "
            "sans préavis pour maintenance ou sécurité. Chaque partie peut résilier par écrit "
            "motivé avec un préavis de deux mois, sauf problème de sécurité."
        ),
    ),
}

RETENTION_WITHOUT_JUSTIFICATION: Final = 36  # months
MAX_HOMOLOGATION_MONTHS: Final = 60  # [003 annexe 5 §2]: at most 5 years
QUESTIONNAIRE_VALIDITY: Final = relativedelta(years=3)  # [000 §3.4.2]
MAX_ADDRESSES_PER_RANGE: Final = 65_536
CONTACT_ROLES: Final = ("controller", "dpo", "technical")
CONTACT_LABELS: Final = {
    "controller": "responsable de traitement",
    "dpo": "délégué à la protection des données",
    "technical": "responsable technique",
}


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str  # dotted path: "<block>.<field>[.<key>…]"
    message: str


def blocks_of(request: HabilitationRequest) -> tuple[Block, ...]:
    if request.environment is Environment.PRODUCTION:
        return (*COMMON_BLOCKS, Block.PRODUCTION)
    return COMMON_BLOCKS


def _block(request: HabilitationRequest, block: Block) -> Mapping[str, Any]:
    value = (request.data or {}).get(block.value)
    return value if isinstance(value, Mapping) else {}


def _text(values: Mapping[str, Any], key: str) -> str:
    value = values.get(key)
    return value.strip() if isinstance(value, str) else ""


def _int(values: Mapping[str, Any], key: str) -> int | None:
    value = values.get(key)
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _date(values: Mapping[str, Any], key: str) -> dt.date | None:
    value = values.get(key)
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            return None
    return None


def _strings(values: Mapping[str, Any], key: str) -> list[str]:
    value = values.get(key)
    if not isinstance(value, list):
        return []
    return [v.strip() for v in value if isinstance(v, str) and v.strip()]


def _required_text(
    errors: list[FieldError], values: Mapping[str, Any], path: str, key: str, label: str, limit: int
) -> str:
    text = _text(values, key)
    if not text:
        errors.append(FieldError(f"{path}.{key}", f"{label} : champ obligatoire."))
    elif len(text) > limit:
        errors.append(FieldError(f"{path}.{key}", f"{label} : {limit} caractères au plus."))
    return text


def _http_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _at_midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), dt.UTC)


def check_basics(request: HabilitationRequest, now: dt.datetime) -> list[FieldError]:
    values, errors = _block(request, Block.BASICS), list[FieldError]()
    _required_text(errors, values, "basics", "demarche", "Nom de la démarche", 200)
    _required_text(errors, values, "basics", "description", "Description de la démarche", 5000)
    _required_text(errors, values, "basics", "intended_use", "Usage des données", 5000)
    return errors


def check_legal(request: HabilitationRequest, now: dt.datetime) -> list[FieldError]:
    """[000 §3.1.1] the legal texts (or the council's deliberation), by URL or document;
    [000 §3.1.2] in production, the derogation to professional secrecy."""
    values, errors = _block(request, Block.LEGAL), list[FieldError]()
    nature = _text(values, "nature")
    if nature not in {n.value for n in LegalNature}:
        errors.append(
            FieldError(
                "legal.nature",
                "Nature du texte : choisissez loi, décret, arrêté, délibération ou autre.",
            )
        )
    elif values.get("local_authority") is True and nature != LegalNature.COUNCIL_DELIBERATION:
        errors.append(
            FieldError(
                "legal.nature",
                "Nature du texte : une collectivité fonde sa demande sur la délibération de son "
                "conseil.",
            )
        )
    _required_text(errors, values, "legal", "reference", "Référence du texte", 500)
    url, document = _text(values, "url"), _text(values, "document_id")
    if url and not _http_url(url):
        errors.append(FieldError("legal.url", "Adresse du texte : une URL http(s) complète."))
    if not url and not document:
        errors.append(
            FieldError("legal.url", "Adresse du texte : indiquez son URL ou joignez-le en PDF.")
        )
    if request.environment is Environment.PRODUCTION:
        _required_text(
            errors,
            values,
            "legal",
            "secrecy_derogation",
            "Dérogation au secret professionnel (par exemple L. 114-8 et R. 114-9-4 du CRPA)",
            500,
        )
    return errors


def check_perimeter(request: HabilitationRequest, now: dt.datetime) -> list[FieldError]:
    """Data scopes, each justified as strictly necessary [000 §3.1.1]; for Impôt Particulier
    the access mode, revenue years, literal labels [003 annexe 1] and, outside FranceConnect,
    the R.114-9-4 domain [004 §3.1]."""
    values, errors = _block(request, Block.PERIMETER), list[FieldError]()
    product = PRODUCTS.get(request.api)
    known_scopes = product.data_scopes if product else frozenset()
    scopes = values.get("data_scopes")
    scopes = scopes if isinstance(scopes, Mapping) else {}
    if not scopes:
        errors.append(
            FieldError("perimeter.data_scopes", "Données demandées : choisissez-en au moins une.")
        )
    for scope, justification in sorted(scopes.items()):
        if scope not in known_scopes:
            errors.append(
                FieldError(f"perimeter.data_scopes.{scope}", f"Donnée inconnue : {scope}.")
            )
        elif not isinstance(justification, str) or not justification.strip():
            errors.append(
                FieldError(
                    f"perimeter.data_scopes.{scope}",
                    "Justifiez en quoi cette donnée est strictement nécessaire à la démarche.",
                )
            )
    modes = _strings(values, "access_modes")
    valid_modes = {m.value for m in AccessMode}
    if not modes:
        errors.append(
            FieldError("perimeter.access_modes", "Mode d'accès : choisissez-en au moins un.")
        )
    for mode in modes:
        if mode not in valid_modes:
            errors.append(FieldError("perimeter.access_modes", f"Mode d'accès inconnu : {mode}."))
    years = _strings(values, "year_scopes")
    valid_years = set(YEAR_SCOPES) | {YEAR_FALLBACK_SCOPE}
    if not years:
        errors.append(
            FieldError("perimeter.year_scopes", "Années de revenus : choisissez-en au moins une.")
        )
    for year in years:
        if year not in valid_years:
            errors.append(
                FieldError("perimeter.year_scopes", f"Année de revenus inconnue : {year}.")
            )
    labels = values.get("labels")
    labels = labels if isinstance(labels, Mapping) else {}
    for scope in sorted(scopes):
        label = labels.get(scope)
        if not isinstance(label, str) or not label.strip():
            errors.append(
                FieldError(
                    f"perimeter.labels.{scope}",
                    "Libellé : écrivez la donnée telle que l'usager la lira.",
                )
            )
        elif len(label.strip()) > 200:
            errors.append(
                FieldError(f"perimeter.labels.{scope}", "Libellé : 200 caractères au plus.")
            )
    for scope in sorted(set(labels) - set(scopes)):
        errors.append(
            FieldError(f"perimeter.labels.{scope}", "Libellé d'une donnée qui n'est pas demandée.")
        )
    errors.extend(_franceconnect_scopes(modes, sorted(scopes), known_scopes, years))
    if set(modes) - {AccessMode.FRANCECONNECT.value}:
        domain = _text(values, "r11494_domain")
        if domain not in {d.value for d in R11494Domain}:
            errors.append(
                FieldError(
                    "perimeter.r11494_domain",
                    "Hors FranceConnect, choisissez le domaine de la démarche parmi ceux de "
                    "l'article R. 114-9-4 du CRPA.",
                )
            )
    return errors


def _franceconnect_scopes(
    modes: list[str], scopes: list[str], known_scopes: frozenset[str], years: list[str]
) -> list[FieldError]:
    """FranceConnect as the only access mode: every data and year scope must be one the
    federation can carry (``federation.scopes.DATA_SCOPES``), since the citizen consents
    to exactly those at the federation and the gateway serves nothing else in this mode. A
    catalogue scope outside that table (e.g. ``dgfip_montantimpot``) would be refused on
    every call. With another access mode too, such a scope stays useful (served by SPI or
    état civil, left out of FranceConnect-mode answers). Derived from the two tables, so a
    scope added to both is accepted at once."""
    if set(modes) != {AccessMode.FRANCECONNECT.value}:
        return []
    errors = [
        FieldError(
            f"perimeter.data_scopes.{scope}",
            "En mode FranceConnect, l'usager ne peut pas consentir à la transmission de "
            f"cette donnée ({scope}) : retirez-la, ou ajoutez un mode d'accès par SPI ou "
            "par état civil.",
        )
        for scope in scopes
        if scope in known_scopes and scope not in FEDERATION_DATA_SCOPES
    ]
    errors += [
        FieldError(
            "perimeter.year_scopes",
            f"En mode FranceConnect, l'usager ne peut pas consentir à l'année {year}.",
        )
        for year in years
        if year in {*YEAR_SCOPES, YEAR_FALLBACK_SCOPE} and year not in FEDERATION_DATA_SCOPES
    ]
    return errors


def check_recipients(request: HabilitationRequest, now: dt.datetime) -> list[FieldError]:
    values, errors = _block(request, Block.RECIPIENTS), list[FieldError]()
    services = _strings(values, "services")
    if not services:
        errors.append(
            FieldError("recipients.services", "Services destinataires : indiquez-en au moins un.")
        )
    if any(len(s) > 200 for s in services):
        errors.append(
            FieldError("recipients.services", "Services destinataires : 200 caractères au plus.")
        )
    return errors


def check_personal_data(request: HabilitationRequest, now: dt.datetime) -> list[FieldError]:
    values, errors = _block(request, Block.PERSONAL_DATA), list[FieldError]()
    months = _int(values, "retention_months")
    if months is None or not 1 <= months <= 1200:
        errors.append(
            FieldError(
                "personal_data.retention_months",
                "Durée de conservation : un nombre de mois entre 1 et 1200.",
            )
        )
    elif months > RETENTION_WITHOUT_JUSTIFICATION and not _text(values, "retention_justification"):
        errors.append(
            FieldError(
                "personal_data.retention_justification",
                f"Au-delà de {RETENTION_WITHOUT_JUSTIFICATION} mois, justifiez la durée de "
                "conservation.",
            )
        )
    return errors


def valid_email(address: str) -> bool:
    try:
        validate_email(address, check_deliverability=False)
    except EmailNotValidError:
        return False
    return True


def check_contacts(request: HabilitationRequest, now: dt.datetime) -> list[FieldError]:
    """The controller, the DPO (required in production) and the technical contact, each with
    a verified address (issue 4 §2). The technical contact receives the credentials [000 §4]
    and so must have a verified portal account in the organisation; the controller and the
    DPO may instead confirm their address by the link mailed to it
    (``guichet.accounts.contacts``, which computes ``verified``)."""
    values, errors = _block(request, Block.CONTACTS), list[FieldError]()
    for role in CONTACT_ROLES:
        contact = values.get(role)
        contact = contact if isinstance(contact, Mapping) else {}
        label = CONTACT_LABELS[role].capitalize()
        if not contact and role == "dpo":
            if request.environment is Environment.PRODUCTION:
                errors.append(
                    FieldError(
                        "contacts.dpo",
                        "Délégué à la protection des données : obligatoire en production "
                        "(nom et adresse électronique).",
                    )
                )
            continue
        name, email = _text(contact, "name"), _text(contact, "email")
        if not name:
            errors.append(FieldError(f"contacts.{role}.name", f"{label} : nom obligatoire."))
        if not email or not valid_email(email):
            errors.append(
                FieldError(f"contacts.{role}.email", f"{label} : adresse électronique valide.")
            )
        elif role == "technical" and contact.get("verified") is not True:
            errors.append(
                FieldError(
                    "contacts.technical.email",
                    "Responsable technique : son adresse doit être celle d'un compte vérifié "
                    "de l'organisation sur le portail (il y recevra les accès).",
                )
            )
        elif contact.get("verified") is not True:
            errors.append(
                FieldError(
                    f"contacts.{role}.email",
                    f"{label} : adresse non confirmée. Un lien de confirmation lui a été "
                    "envoyé ; renvoyez-le depuis le bloc Contacts s'il a expiré.",
                )
            )
    return errors


def check_technical(request: HabilitationRequest, now: dt.datetime) -> list[FieldError]:
    """Outgoing IPs, client certificate, federation client_id [003 annexe 3 §3.1];
    volumetry [003 art. 7, 000 §9.2]."""
    values, errors = _block(request, Block.TECHNICAL), list[FieldError]()
    ranges = _strings(values, "ip_ranges")
    if not ranges:
        errors.append(
            FieldError("technical.ip_ranges", "Adresses IP sortantes : déclarez-en au moins une.")
        )
    for cidr in ranges:
        try:
            network = ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            errors.append(FieldError("technical.ip_ranges", f"Adresse ou plage invalide : {cidr}."))
            continue
        if network.num_addresses > MAX_ADDRESSES_PER_RANGE:
            errors.append(
                FieldError(
                    "technical.ip_ranges",
                    f"Plage trop large : {cidr} (déclarez les adresses de vos serveurs).",
                )
            )
    pem = _text(values, "certificate_pem")
    if not pem:
        errors.append(FieldError("technical.certificate_pem", "Certificat client : obligatoire."))
    else:
        try:
            info = certificate_info(pem)
        except ValueError:
            errors.append(
                FieldError("technical.certificate_pem", "Certificat client : PEM illisible.")
            )
        else:
            if not info.not_before <= now < info.not_after:
                errors.append(
                    FieldError(
                        "technical.certificate_pem",
                        "Certificat client : hors de sa période de validité.",
                    )
                )
            if info.self_signed and request.environment is Environment.PRODUCTION:
                errors.append(
                    FieldError(
                        "technical.certificate_pem",
                        "Certificat client : en production, un certificat délivré par une "
                        "autorité de certification (RGS) est exigé.",
                    )
                )
    product = PRODUCTS.get(request.api)
    default = product.default_quota_per_minute if product else 0
    volumetry = _int(values, "volumetry_per_minute")
    if volumetry is None or not 1 <= volumetry <= 100_000:
        errors.append(
            FieldError(
                "technical.volumetry_per_minute",
                "Volumétrie : un nombre d'appels par minute entre 1 et 100 000.",
            )
        )
    elif volumetry > default and not _text(values, "volumetry_justification"):
        errors.append(
            FieldError(
                "technical.volumetry_justification",
                f"Au-delà du quota par défaut ({default} appels par minute), justifiez la "
                "volumétrie (pics de charge, nombre de dossiers, périodicité).",
            )
        )
    if request.api == "impot_particulier":
        for key, label in (
            ("annual_files", "Nombre de dossiers par an"),
            ("hourly_peak", "Pic de charge (demandes par heure)"),
        ):
            number = _int(values, key)
            if number is None or number < 1:
                errors.append(FieldError(f"technical.{key}", f"{label} : un nombre positif."))
    modes = _strings(_block(request, Block.PERIMETER), "access_modes")
    if AccessMode.FRANCECONNECT.value in modes:
        client_id = _text(values, "federation_client_id")
        redirects = _strings(values, "federation_redirect_uris")
        sandbox = request.environment is Environment.SANDBOX
        if not client_id and not (sandbox and redirects):
            errors.append(
                FieldError(
                    "technical.federation_client_id",
                    "Mode FranceConnect : indiquez le client_id FranceConnect de votre service"
                    + (
                        " (ou ses URL de retour, pour en créer un au bac à sable)."
                        if sandbox
                        else "."
                    ),
                )
            )
        for uri in redirects:
            if not _http_url(uri):
                errors.append(
                    FieldError(
                        "technical.federation_redirect_uris", f"URL de retour invalide : {uri}."
                    )
                )
    return errors


def check_terms(request: HabilitationRequest, now: dt.datetime) -> list[FieldError]:
    terms = TERMS_OF_USE.get(request.api)
    if terms is None:
        return [FieldError("terms.version", "Aucune condition d'utilisation pour cette API.")]
    if request.cgu_version != terms.version or request.cgu_accepted_at is None:
        return [
            FieldError(
                "terms.version",
                f"Acceptez les conditions générales d'utilisation (version {terms.version}).",
            )
        ]
    return []


def check_production(request: HabilitationRequest, now: dt.datetime) -> list[FieldError]:
    """[000 §3.1.2] recette fonctionnelle; [000 §3.2] formalities checkbox; [000 §3.4] the
    homologation attestation (authority, signatory name and function, date, duration ≤ 5 years
    [003 art. 6, annexe 5 §2]) or, outside the RGS, the security questionnaire (≤ 3 years)."""
    values, errors = _block(request, Block.PRODUCTION), list[FieldError]()
    if values.get("recette_confirmed") is not True:
        errors.append(
            FieldError(
                "production.recette_confirmed",
                "Confirmez la réalisation de la recette fonctionnelle au bac à sable.",
            )
        )
    if not _text(values, "recette_results"):
        errors.append(
            FieldError(
                "production.recette_results", "Résultats de la recette fonctionnelle : à joindre."
            )
        )
    if values.get("formalities_declared") is not True:
        errors.append(
            FieldError(
                "production.formalities_declared",
                "Déclarez l'accomplissement des formalités relatives à la protection des données "
                "personnelles (case à cocher).",
            )
        )
    kind = _text(values, "security_kind")
    if kind == SecurityKind.HOMOLOGATION:
        errors += _check_homologation(values, now)
    elif kind == SecurityKind.QUESTIONNAIRE:
        errors += _check_questionnaire(values, now)
    else:
        errors.append(
            FieldError(
                "production.security_kind",
                "Engagement de sécurité : joignez l'attestation d'homologation, ou le "
                "questionnaire de sécurité si votre organisme ne relève pas du RGS.",
            )
        )
    return errors


def _check_homologation(values: Mapping[str, Any], now: dt.datetime) -> list[FieldError]:
    h = values.get("homologation")
    h = h if isinstance(h, Mapping) else {}
    errors: list[FieldError] = []
    p = "production.homologation"
    if not _text(h, "document_id"):
        errors.append(
            FieldError(f"{p}.document_id", "Attestation d'homologation : joignez le PDF.")
        )
    _required_text(errors, h, p, "authority", "Autorité d'homologation signataire", 200)
    _required_text(errors, h, p, "signatory_name", "Nom du signataire", 200)
    _required_text(errors, h, p, "signatory_function", "Fonction du signataire", 200)
    start = _date(h, "start_date")
    months = _int(h, "duration_months")
    if start is None:
        errors.append(FieldError(f"{p}.start_date", "Date d'homologation : AAAA-MM-JJ."))
    elif _at_midnight(start) > now:
        errors.append(FieldError(f"{p}.start_date", "Date d'homologation : pas dans le futur."))
    if months is None or not 1 <= months <= MAX_HOMOLOGATION_MONTHS:
        errors.append(
            FieldError(f"{p}.duration_months", "Durée de l'homologation : de 1 à 60 mois (5 ans).")
        )
    elif start is not None and homologation_expiry(start, months) <= now:
        errors.append(
            FieldError(f"{p}.duration_months", "L'homologation est expirée : joignez la nouvelle.")
        )
    return errors


def _check_questionnaire(values: Mapping[str, Any], now: dt.datetime) -> list[FieldError]:
    q = values.get("questionnaire")
    q = q if isinstance(q, Mapping) else {}
    errors: list[FieldError] = []
    p = "production.questionnaire"
    if not _text(q, "document_id"):
        errors.append(FieldError(f"{p}.document_id", "Questionnaire de sécurité : joignez le PDF."))
    day = _date(q, "date")
    if day is None:
        errors.append(FieldError(f"{p}.date", "Date du questionnaire : AAAA-MM-JJ."))
    elif _at_midnight(day) > now:
        errors.append(FieldError(f"{p}.date", "Date du questionnaire : pas dans le futur."))
    elif questionnaire_expiry(day) <= now:
        errors.append(
            FieldError(f"{p}.date", "Le questionnaire a plus de trois ans : renouvelez-le.")
        )
    return errors


def homologation_expiry(start: dt.date, months: int) -> dt.datetime:
    return _at_midnight(start + relativedelta(months=months))


def questionnaire_expiry(day: dt.date) -> dt.datetime:
    return _at_midnight(day + QUESTIONNAIRE_VALIDITY)


_CHECKS: Final = {
    Block.BASICS: check_basics,
    Block.LEGAL: check_legal,
    Block.PERIMETER: check_perimeter,
    Block.RECIPIENTS: check_recipients,
    Block.PERSONAL_DATA: check_personal_data,
    Block.CONTACTS: check_contacts,
    Block.TECHNICAL: check_technical,
    Block.TERMS: check_terms,
    Block.PRODUCTION: check_production,
}


def validate_block(
    request: HabilitationRequest, block: Block, *, now: dt.datetime
) -> list[FieldError]:
    """The block's errors, each naming its field; [] when the block is complete."""
    if block is Block.PRODUCTION and request.environment is not Environment.PRODUCTION:
        return []
    return _CHECKS[block](request, now)


def validate_for_submission(request: HabilitationRequest, *, now: dt.datetime) -> list[FieldError]:
    """Every block of the request, in the form's order."""
    return [e for block in blocks_of(request) for e in validate_block(request, block, now=now)]


def production_prerequisites(request: HabilitationRequest, *, now: dt.datetime) -> list[FieldError]:
    """What a production request still lacks before it may be validated [SPEC §3]."""
    if request.environment is not Environment.PRODUCTION:
        return []
    dpo = [e for e in check_contacts(request, now) if e.field.startswith("contacts.dpo")]
    secrecy = [e for e in check_legal(request, now) if e.field == "legal.secrecy_derogation"]
    return check_production(request, now) + dpo + secrecy
