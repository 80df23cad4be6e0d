"""Requests built through the services: people, organisations, complete forms, documents."""

from __future__ import annotations

import copy
import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from sqlalchemy.orm import Session

from guichet.accounts.contacts import confirm_link, issue_link
from guichet.accounts.models import Membership, PartnerRole, ProviderRole, User
from guichet.accounts.service import create_user, grant_provider_role
from guichet.application.issuance import (
    DocumentKind,
    Issuance,
    accept_terms,
    attach_document,
    save_block,
    start_production_request,
    start_request,
    submit,
    validate,
)
from guichet.habilitation.models import Organisation
from guichet.habilitation.request_models import HabilitationRequest
from guichet.habilitation.service import get_or_create_organisation
from guichet.habilitation.validation import TERMS_OF_USE, Block
from guichet.mail import Mailer
from guichet.secrets import MasterSecret

SIRET_A = "21000000610001"
SIRET_B = "73282932000074"
TECH_EMAIL = "technique@ville-a.fr"
PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
CGU = TERMS_OF_USE["impot_particulier"].version


@dataclass(frozen=True)
class World:
    org_a: uuid.UUID
    org_b: uuid.UUID
    applicant: uuid.UUID  # member of A
    technical: uuid.UUID  # member of A, the technical contact (verified account)
    stranger: uuid.UUID  # member of B
    instructor: uuid.UUID  # provider staff, no organisation
    instructor_of_a: uuid.UUID  # instructor who is also a member of A
    operator: uuid.UUID  # provider staff, not an instructor
    security_officer: uuid.UUID


def _member(
    session: Session, email: str, org: Organisation, role: PartnerRole, now: dt.datetime
) -> User:
    user = create_user(session, email, email.split("@")[0], now, verified=True)
    session.add(Membership(user_id=user.id, organisation_id=org.id, role=role, created_at=now))
    session.flush()
    return user


def make_world(session: Session, now: dt.datetime) -> World:
    a = get_or_create_organisation(session, SIRET_A, "Ville A", now)
    b = get_or_create_organisation(session, SIRET_B, "Société B", now)
    applicant = _member(session, "demandeur@ville-a.fr", a, PartnerRole.APPLICANT, now)
    # The controller and the DPO that ``complete_data`` names have followed their
    # confirmation links, for A and for B (a confirmation holds for one organisation).
    for org in (a, b):
        for role, address in (("controller", "maire@ville-a.fr"), ("dpo", "dpo@ville-a.fr")):
            secret, _ = issue_link(session, org.id, role, address, None, now)
            confirm_link(session, secret, now)
    technical = _member(session, TECH_EMAIL, a, PartnerRole.TECHNICAL_CONTACT, now)
    stranger = _member(session, "demandeur@societe-b.fr", b, PartnerRole.APPLICANT, now)
    instructor = create_user(session, "instructeur@dgfip.test", "Instructeur", now, verified=True)
    grant_provider_role(session, instructor, ProviderRole.INSTRUCTOR, now)
    insider = _member(session, "agent@ville-a.fr", a, PartnerRole.APPLICANT, now)
    grant_provider_role(session, insider, ProviderRole.INSTRUCTOR, now)
    operator = create_user(session, "exploitant@dgfip.test", "Exploitant", now, verified=True)
    grant_provider_role(session, operator, ProviderRole.OPERATOR, now)
    officer = create_user(session, "rssi@dgfip.test", "RSSI", now, verified=True)
    grant_provider_role(session, officer, ProviderRole.SECURITY_OFFICER, now)
    return World(
        a.id,
        b.id,
        applicant.id,
        technical.id,
        stranger.id,
        instructor.id,
        insider.id,
        operator.id,
        officer.id,
    )


def user(session: Session, ident: uuid.UUID) -> User:
    found = session.get(User, ident)
    assert found is not None
    return found


def complete_data(cert_pem: str) -> dict[str, dict[str, Any]]:
    """Every block of a sandbox request for Impôt Particulier, complete."""
    return {
        "basics": {
            "demarche": "Quotient familial",
            "description": "Mise à jour en ligne du quotient familial des familles.",
            "intended_use": "Calcul du quotient familial pour les tarifs scolaires.",
        },
        "legal": {
            "nature": "deliberation",
            "reference": "Délibération du conseil municipal du 1er décembre 2022",
            "url": "https://ville-a.fr/deliberations/2022-12-01.pdf",
            "local_authority": True,
        },
        "perimeter": {
            "data_scopes": {
                "dgfip_rfr": "Le quotient familial se calcule à partir du RFR.",
                "dgfip_nbpart": "Le quotient divise le RFR par le nombre de parts.",
            },
            "access_modes": ["spi"],
            "year_scopes": ["dgfip_annee_n_moins_1"],
            "labels": {
                "dgfip_rfr": "Revenu fiscal de référence",
                "dgfip_nbpart": "Nombre de parts fiscales",
            },
            "r11494_domain": "famille",
        },
        "recipients": {"services": ["Direction de l'éducation"]},
        "personal_data": {"retention_months": 12},
        "contacts": {
            "controller": {"name": "Le maire", "email": "maire@ville-a.fr"},
            "technical": {"name": "Responsable technique", "email": TECH_EMAIL},
        },
        "technical": {
            "ip_ranges": ["127.0.0.1/32"],
            "certificate_pem": cert_pem,
            "volumetry_per_minute": 50,
            "annual_files": 6000,
            "hourly_peak": 200,
        },
    }


def ficoba_data(cert_pem: str) -> dict[str, dict[str, Any]]:
    """Every block of a sandbox request for API FICOBA, complete (issue 14)."""
    data = complete_data(cert_pem)
    data["basics"] = {
        "demarche": "Recouvrement des créances de la commune",
        "description": "Saisies administratives à tiers détenteur sur les comptes des débiteurs.",
        "intended_use": "Identifier les comptes bancaires des débiteurs de la commune.",
    }
    data["perimeter"] = {
        "search_types": {
            "personne_physique": "Retrouver les comptes d'un débiteur par son état civil.",
            "verification_iban_personne_physique": "Vérifier l'IBAN donné par un débiteur.",
        },
        "secrecy_derogation": "Article L. 135 ZC du livre des procédures fiscales",
        "annual_searches": 12000,
        "daily_peak": 150,
        "agents_count": 4,
        "agents_description": "Quatre agents du service du recouvrement, habilités par arrêté.",
    }
    data["technical"] = {
        "ip_ranges": ["127.0.0.1/32"],
        "certificate_pem": cert_pem,
        "volumetry_per_minute": 20,
    }
    return data


def fill(
    session: Session,
    request: HabilitationRequest,
    who: User,
    data: dict[str, dict[str, Any]],
    now: dt.datetime,
    trust_store: Sequence[x509.Certificate] = (),
) -> None:
    for block, values in data.items():
        save_block(
            session,
            request,
            who,
            Block(block),
            copy.deepcopy(values),
            now=now,
            trust_store=trust_store,
        )
    accept_terms(session, request, who, TERMS_OF_USE[request.api].version, now=now)


def new_ficoba_request(
    session: Session,
    world: World,
    cert_pem: str,
    now: dt.datetime,
    trust_store: Sequence[x509.Certificate] = (),
) -> HabilitationRequest:
    applicant = user(session, world.applicant)
    request = start_request(session, applicant, world.org_a, api="ficoba", now=now)
    fill(session, request, applicant, ficoba_data(cert_pem), now, trust_store)
    return request


def new_complete_request(
    session: Session, world: World, cert_pem: str, now: dt.datetime
) -> HabilitationRequest:
    applicant = user(session, world.applicant)
    request = start_request(session, applicant, world.org_a, now=now)
    fill(session, request, applicant, complete_data(cert_pem), now)
    return request


def production_block(
    session: Session,
    request: HabilitationRequest,
    who: User,
    uploads_dir: Path,
    now: dt.datetime,
    *,
    start_date: str = "2026-01-01",
    duration_months: int = 36,
) -> dict[str, Any]:
    doc = attach_document(
        session,
        request,
        who,
        DocumentKind.HOMOLOGATION,
        "attestation.pdf",
        PDF,
        uploads_dir=uploads_dir,
        now=now,
    )
    return {
        "recette_confirmed": True,
        "recette_results": "Recette menée du 1er au 15 octobre : 40 cas, tous conformes.",
        "formalities_declared": True,
        "security_kind": "homologation",
        "homologation": {
            "document_id": str(doc.id),
            "authority": "Ville A, autorité d'homologation",
            "signatory_name": "Camille Martin",
            "signatory_function": "Directrice générale des services",
            "start_date": start_date,
            "duration_months": duration_months,
        },
    }


def validated(
    session: Session,
    world: World,
    request: HabilitationRequest,
    now: dt.datetime,
    master: MasterSecret,
    mailer: Mailer | None = None,
) -> Issuance:
    """Submit (as the applicant) and validate (as the instructor)."""
    submit(session, request, user(session, world.applicant), now=now)
    return validate(
        session,
        request,
        user(session, world.instructor),
        "Conforme.",
        now=now,
        master=master,
        mailer=mailer,
    )


def production_request(
    session: Session,
    world: World,
    sandbox: HabilitationRequest,
    uploads_dir: Path,
    now: dt.datetime,
    **homologation: Any,
) -> HabilitationRequest:
    """The production step of a validated sandbox request, complete."""
    applicant = user(session, world.applicant)
    request = start_production_request(session, applicant, sandbox, now=now)
    data = copy.deepcopy(request.data)
    data["legal"]["secrecy_derogation"] = "Articles L. 114-8 et R. 114-9-4 du CRPA"
    data["contacts"]["dpo"] = {"name": "DPO", "email": "dpo@ville-a.fr"}
    data["production"] = production_block(
        session, request, applicant, uploads_dir, now, **homologation
    )
    fill(session, request, applicant, data, now)
    return request
