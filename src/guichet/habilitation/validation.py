"""The request's validation: each block's model checked (``guichet.habilitation.blocks``),
the terms of use, and what a production request still lacks before it is validated.

The form's vocabulary (``Block``, ``FieldError``, the legal natures, the R. 114-9-4
domains, the contact roles…) is the blocks'; it is importable from here too.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final

from guichet.habilitation.blocks import (
    COMMON_BLOCKS,
    CONTACT_LABELS,
    CONTACT_ROLES,
    MAX_ADDRESSES_PER_RANGE,
    MAX_HOMOLOGATION_MONTHS,
    QUESTIONNAIRE_VALIDITY,
    R11494_WORDING,
    RETENTION_WITHOUT_JUSTIFICATION,
    Block,
    CheckContext,
    FieldError,
    LegalNature,
    R11494Domain,
    RequestForm,
    homologation_expiry,
    questionnaire_expiry,
    valid_email,
)
from guichet.habilitation.models import Environment
from guichet.habilitation.request_models import HabilitationRequest

__all__ = [
    "COMMON_BLOCKS",
    "CONTACT_LABELS",
    "CONTACT_ROLES",
    "MAX_ADDRESSES_PER_RANGE",
    "MAX_HOMOLOGATION_MONTHS",
    "QUESTIONNAIRE_VALIDITY",
    "R11494_WORDING",
    "RETENTION_WITHOUT_JUSTIFICATION",
    "TERMS_OF_USE",
    "Block",
    "FieldError",
    "LegalNature",
    "R11494Domain",
    "TermsOfUse",
    "blocks_of",
    "form_of",
    "homologation_expiry",
    "production_prerequisites",
    "questionnaire_expiry",
    "valid_email",
    "validate_block",
    "validate_for_submission",
]


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
    "ficoba": TermsOfUse(
        api="ficoba",
        version="ficoba-2025-11",
        title="Conditions générales d'utilisation de l'API FICOBA",
        text=(
            "Le consommateur de l'API s'engage à ne traiter les données bancaires que pour la "
            "seule finalité déclarée et dans la limite des types de recherche habilités ; à "
            "n'en réserver l'accès qu'aux agents des services compétents ou personnels "
            "habilités, dont les services sont déclarés dans la demande ; à stocker les données "
            "restituées dans un silo sécurisé garantissant leur intégrité et à tracer les accès "
            "de ses utilisateurs ; à ne pas conserver les identifiants au-delà du temps "
            "nécessaire au traitement de la demande, sauf cadre juridique l'y autorisant ; à "
            "s'authentifier par un certificat client délivré par une autorité de certification "
            "reconnue (sensibilité C4) ; à informer par écrit et sans délai le producteur de "
            "tout événement de sécurité. Le quota est de 200 appels par minute ; le service "
            "est ouvert 23 heures sur 24, 7 jours sur 7. Le producteur peut suspendre le "
            "service sans préavis pour maintenance ou sécurité. Les données saisies dans la "
            "demande validée et l'acceptation des présentes conditions valent convention."
        ),
    ),
}


def blocks_of(request: HabilitationRequest) -> tuple[Block, ...]:
    if request.environment is Environment.PRODUCTION:
        return (*COMMON_BLOCKS, Block.PRODUCTION)
    return COMMON_BLOCKS


def form_of(request: HabilitationRequest) -> RequestForm:
    """The request's data as its blocks' models."""
    return RequestForm.read(request.api, request.data)


def _context(request: HabilitationRequest, now: dt.datetime) -> CheckContext:
    return CheckContext(request.api, request.environment, now, form_of(request))


def check_terms(request: HabilitationRequest) -> list[FieldError]:
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


def validate_block(
    request: HabilitationRequest, block: Block, *, now: dt.datetime
) -> list[FieldError]:
    """The block's errors, each naming its field; [] when the block is complete."""
    if block is Block.PRODUCTION and request.environment is not Environment.PRODUCTION:
        return []
    if block is Block.TERMS:
        return check_terms(request)
    ctx = _context(request, now)
    return ctx.form.block(block).check(ctx)


def validate_for_submission(request: HabilitationRequest, *, now: dt.datetime) -> list[FieldError]:
    """Every block of the request, in the form's order."""
    return [e for block in blocks_of(request) for e in validate_block(request, block, now=now)]


def production_prerequisites(request: HabilitationRequest, *, now: dt.datetime) -> list[FieldError]:
    """What a production request still lacks before it may be validated [SPEC §3]."""
    if request.environment is not Environment.PRODUCTION:
        return []
    ctx = _context(request, now)
    dpo = [e for e in ctx.form.contacts.check(ctx) if e.field.startswith("contacts.dpo")]
    secrecy = [e for e in ctx.form.legal.check(ctx) if e.field == "legal.secrecy_derogation"]
    return ctx.form.production.check(ctx) + dpo + secrecy
