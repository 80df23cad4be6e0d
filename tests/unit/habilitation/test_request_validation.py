"""Each block's server-side checks: every error names its field."""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from guichet.application.issuance import (
    DocumentKind,
    RequestInvalid,
    attach_document,
    save_block,
    start_request,
    submit,
)
from guichet.clock import FrozenClock
from guichet.db import transaction
from guichet.habilitation.models import Environment
from guichet.habilitation.request_models import HabilitationRequest, RequestStatus
from guichet.habilitation.validation import (
    R11494_WORDING,
    Block,
    R11494Domain,
    production_prerequisites,
    validate_block,
    validate_for_submission,
)
from guichet.pki import self_signed_certificate
from tests.unit.habilitation.support import (
    CGU,
    PDF,
    complete_data,
    make_world,
    user,
)

NOW = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC)
Data = dict[str, dict[str, Any]]


def request_with(
    data: Data, environment: Environment = Environment.SANDBOX, cgu: str | None = CGU
) -> HabilitationRequest:
    data = copy.deepcopy(data)
    for contact in data["contacts"].values():
        contact.setdefault("verified", True)  # what saving the block computes
    return HabilitationRequest(
        api="impot_particulier",
        environment=environment,
        status=RequestStatus.DRAFT,
        data=data,
        cgu_version=cgu,
        cgu_accepted_at=NOW if cgu else None,
    )


def test_a_complete_request_has_no_error(cert_pem: str) -> None:
    assert validate_for_submission(request_with(complete_data(cert_pem)), now=NOW) == []


def _set(block: str, key: str, value: Any) -> Callable[[Data], None]:
    def change(data: Data) -> None:
        data[block][key] = value

    return change


def _drop(block: str, key: str) -> Callable[[Data], None]:
    def change(data: Data) -> None:
        data[block].pop(key, None)

    return change


def _contact(role: str, key: str, value: Any) -> Callable[[Data], None]:
    def change(data: Data) -> None:
        data["contacts"].setdefault(role, {})[key] = value

    return change


CASES: list[tuple[str, Callable[[Data], None], str]] = [
    ("basics", _set("basics", "demarche", "  "), "basics.demarche"),
    ("basics", _set("basics", "demarche", "x" * 201), "basics.demarche"),
    ("basics", _drop("basics", "description"), "basics.description"),
    ("basics", _drop("basics", "intended_use"), "basics.intended_use"),
    ("legal", _set("legal", "nature", "coutume"), "legal.nature"),
    ("legal", _set("legal", "nature", "decret"), "legal.nature"),  # a city: its deliberation
    ("legal", _drop("legal", "reference"), "legal.reference"),
    ("legal", _drop("legal", "url"), "legal.url"),  # neither URL nor document
    ("legal", _set("legal", "url", "javascript:alert(1)"), "legal.url"),
    ("perimeter", _set("perimeter", "data_scopes", {}), "perimeter.data_scopes"),
    (
        "perimeter",
        _set("perimeter", "data_scopes", {"dgfip_rfr": " ", "dgfip_nbpart": "x"}),
        "perimeter.data_scopes.dgfip_rfr",
    ),
    (
        "perimeter",
        _set(
            "perimeter", "data_scopes", {"dgfip_tout": "x", "dgfip_rfr": "x", "dgfip_nbpart": "x"}
        ),
        "perimeter.data_scopes.dgfip_tout",
    ),
    ("perimeter", _set("perimeter", "access_modes", []), "perimeter.access_modes"),
    ("perimeter", _set("perimeter", "access_modes", ["pigeon"]), "perimeter.access_modes"),
    ("perimeter", _set("perimeter", "year_scopes", []), "perimeter.year_scopes"),
    ("perimeter", _set("perimeter", "year_scopes", ["dgfip_annee_n"]), "perimeter.year_scopes"),
    (
        "perimeter",
        _set("perimeter", "labels", {"dgfip_rfr": "Revenu fiscal de référence"}),
        "perimeter.labels.dgfip_nbpart",
    ),
    (
        "perimeter",
        _set(
            "perimeter",
            "labels",
            {"dgfip_rfr": "RFR", "dgfip_nbpart": "Parts", "dgfip_aft": "Adresse"},
        ),
        "perimeter.labels.dgfip_aft",
    ),
    ("perimeter", _drop("perimeter", "r11494_domain"), "perimeter.r11494_domain"),
    ("perimeter", _set("perimeter", "r11494_domain", "loisirs"), "perimeter.r11494_domain"),
    ("recipients", _set("recipients", "services", []), "recipients.services"),
    ("recipients", _set("recipients", "services", ["  "]), "recipients.services"),
    (
        "personal_data",
        _set("personal_data", "retention_months", 0),
        "personal_data.retention_months",
    ),
    (
        "personal_data",
        _set("personal_data", "retention_months", "douze"),
        "personal_data.retention_months",
    ),
    (
        "personal_data",
        _set("personal_data", "retention_months", 37),
        "personal_data.retention_justification",
    ),
    ("contacts", _contact("controller", "email", "pas-une-adresse"), "contacts.controller.email"),
    ("contacts", _contact("controller", "name", ""), "contacts.controller.name"),
    ("contacts", _contact("technical", "verified", False), "contacts.technical.email"),
    ("contacts", _contact("dpo", "email", "dpo@"), "contacts.dpo.email"),  # given: checked
    ("technical", _set("technical", "ip_ranges", []), "technical.ip_ranges"),
    ("technical", _set("technical", "ip_ranges", ["300.0.0.1"]), "technical.ip_ranges"),
    ("technical", _set("technical", "ip_ranges", ["10.0.0.0/8"]), "technical.ip_ranges"),
    ("technical", _drop("technical", "certificate_pem"), "technical.certificate_pem"),
    (
        "technical",
        _set("technical", "certificate_pem", "-----BEGIN CERTIFICATE-----\nxx"),
        "technical.certificate_pem",
    ),
    ("technical", _set("technical", "volumetry_per_minute", 0), "technical.volumetry_per_minute"),
    (
        "technical",
        _set("technical", "volumetry_per_minute", 500),
        "technical.volumetry_justification",
    ),
    ("technical", _drop("technical", "annual_files"), "technical.annual_files"),
    ("technical", _set("technical", "hourly_peak", -3), "technical.hourly_peak"),
]


@pytest.mark.parametrize(
    ("block", "change", "field"), CASES, ids=[f"{c[2]}-{i}" for i, c in enumerate(CASES)]
)
def test_block_errors_name_the_field(
    cert_pem: str, block: str, change: Callable[[Data], None], field: str
) -> None:
    data = complete_data(cert_pem)
    change(data)
    request = request_with(data)
    errors = validate_block(request, Block(block), now=NOW)
    assert field in [e.field for e in errors], errors
    assert all(e.message for e in errors)
    assert field in [e.field for e in validate_for_submission(request, now=NOW)]


def test_volumetry_above_the_default_quota_is_fine_when_justified(cert_pem: str) -> None:
    data = complete_data(cert_pem)
    data["technical"].update(volumetry_per_minute=500, volumetry_justification="Rentrée : 6 000")
    assert validate_block(request_with(data), Block.TECHNICAL, now=NOW) == []


def test_franceconnect_mode_needs_the_federation_client_and_no_domain(cert_pem: str) -> None:
    data = complete_data(cert_pem)
    data["perimeter"]["access_modes"] = ["franceconnect"]
    del data["perimeter"]["r11494_domain"]  # only outside FranceConnect [004 §3.1]
    request = request_with(data)
    assert validate_block(request, Block.PERIMETER, now=NOW) == []
    fields = [e.field for e in validate_block(request, Block.TECHNICAL, now=NOW)]
    assert fields == ["technical.federation_client_id"]
    data["technical"]["federation_redirect_uris"] = ["https://qf.ville-a.fr/callback"]
    assert validate_block(request_with(data), Block.TECHNICAL, now=NOW) == []
    # In production the real FranceConnect client_id is required.
    prod = request_with(data, Environment.PRODUCTION)
    fields = [e.field for e in validate_block(prod, Block.TECHNICAL, now=NOW)]
    assert "technical.federation_client_id" in fields


def test_certificate_dates_and_production_rgs(cert_pem: str) -> None:
    data = complete_data(cert_pem)
    later = NOW + dt.timedelta(days=400)  # the certificate is valid 365 days
    assert [e.field for e in validate_block(request_with(data), Block.TECHNICAL, now=later)] == [
        "technical.certificate_pem"
    ]
    own, _key = self_signed_certificate("partner", 30, NOW)
    data["technical"]["certificate_pem"] = own.decode()
    assert validate_block(request_with(data), Block.TECHNICAL, now=NOW) == []
    prod = request_with(data, Environment.PRODUCTION)
    errors = validate_block(prod, Block.TECHNICAL, now=NOW)
    assert [e.field for e in errors] == ["technical.certificate_pem"]
    assert "autorité de certification" in errors[0].message


def test_terms_must_be_accepted_in_their_current_version(cert_pem: str) -> None:
    for version in (None, "impot_particulier-2019-01"):
        request = request_with(complete_data(cert_pem), cgu=version)
        assert [e.field for e in validate_block(request, Block.TERMS, now=NOW)] == ["terms.version"]


def test_the_ten_domains_of_r_114_9_4() -> None:
    assert len(R11494Domain) == 10
    assert R11494_WORDING[R11494Domain.FAMILLE].startswith("4° Famille")
    assert R11494_WORDING[R11494Domain.TRANSPORT].startswith("10° Transport")


PRODUCTION_CASES = [
    ("recette_confirmed", False, "production.recette_confirmed"),
    ("recette_results", "", "production.recette_results"),
    ("formalities_declared", False, "production.formalities_declared"),
    ("security_kind", None, "production.security_kind"),
    ("homologation.document_id", None, "production.homologation.document_id"),
    ("homologation.authority", "", "production.homologation.authority"),
    ("homologation.signatory_name", "", "production.homologation.signatory_name"),
    ("homologation.signatory_function", "", "production.homologation.signatory_function"),
    ("homologation.start_date", "hier", "production.homologation.start_date"),
    ("homologation.start_date", "2027-01-01", "production.homologation.start_date"),
    ("homologation.duration_months", 61, "production.homologation.duration_months"),
    ("homologation.duration_months", 6, "production.homologation.duration_months"),  # expired
    ("dpo", None, "contacts.dpo"),
    ("secrecy_derogation", None, "legal.secrecy_derogation"),
]


def production_data(cert_pem: str) -> Data:
    data = complete_data(cert_pem)
    data["legal"]["secrecy_derogation"] = "Articles L. 114-8 et R. 114-9-4 du CRPA"
    data["contacts"]["dpo"] = {"name": "DPO", "email": "dpo@ville-a.fr"}
    data["production"] = {
        "recette_confirmed": True,
        "recette_results": "40 cas, tous conformes.",
        "formalities_declared": True,
        "security_kind": "homologation",
        "homologation": {
            "document_id": "7d4a9ad1-6f0c-4a0e-9d53-1e0b1c1b2a3f",
            "authority": "Ville A",
            "signatory_name": "Camille Martin",
            "signatory_function": "DGS",
            "start_date": "2026-01-01",
            "duration_months": 36,
        },
    }
    return data


@pytest.mark.parametrize(("key", "value", "field"), PRODUCTION_CASES)
def test_each_missing_production_prerequisite_is_named(
    cert_pem: str, key: str, value: Any, field: str
) -> None:
    data = production_data(cert_pem)
    assert production_prerequisites(request_with(data, Environment.PRODUCTION), now=NOW) == []
    if key == "dpo":
        del data["contacts"]["dpo"]
    elif key == "secrecy_derogation":
        del data["legal"]["secrecy_derogation"]
    elif "." in key:
        outer, inner = key.split(".")
        data["production"][outer][inner] = value
    else:
        data["production"][key] = value
    request = request_with(data, Environment.PRODUCTION)
    missing = production_prerequisites(request, now=NOW)
    assert [e.field for e in missing] == [field], missing
    assert field in [e.field for e in validate_for_submission(request, now=NOW)]
    # In the sandbox, neither the DPO nor the production block is required.
    if key == "dpo":
        assert validate_for_submission(request_with(data), now=NOW) == []


def test_the_security_questionnaire_instead_of_an_attestation(cert_pem: str) -> None:
    data = production_data(cert_pem)
    data["production"]["security_kind"] = "questionnaire"
    data["production"]["questionnaire"] = {"document_id": "x", "date": "2024-01-10"}
    assert production_prerequisites(request_with(data, Environment.PRODUCTION), now=NOW) == []
    data["production"]["questionnaire"]["date"] = "2023-11-22"  # more than three years old
    fields = [
        e.field
        for e in production_prerequisites(request_with(data, Environment.PRODUCTION), now=NOW)
    ]
    assert fields == ["production.questionnaire.date"]


@pytest.fixture
def world_ids(session_factory: sessionmaker[Session], clock: FrozenClock) -> Any:
    with transaction(session_factory) as s:
        return make_world(s, clock.now())


def test_saving_computes_verification_certificate_facts_and_checks_documents(
    session_factory: sessionmaker[Session],
    world_ids: Any,
    cert_pem: str,
    clock: FrozenClock,
    uploads_dir: Path,
) -> None:
    with transaction(session_factory) as s:
        applicant = user(s, world_ids.applicant)
        request = start_request(s, applicant, world_ids.org_a, now=clock.now())
        other = start_request(s, applicant, world_ids.org_a, now=clock.now())
        data = complete_data(cert_pem)
        # Drafts save partial data, and say what is missing.
        errors = save_block(
            s, request, applicant, Block.BASICS, {"demarche": "QF"}, now=clock.now()
        )
        assert [e.field for e in errors] == ["basics.description", "basics.intended_use"]
        data["contacts"]["controller"]["email"] = "demandeur@ville-a.fr"
        save_block(s, request, applicant, Block.CONTACTS, data["contacts"], now=clock.now())
        contacts = request.data["contacts"]
        assert contacts["technical"]["verified"] is True  # a verified member of A
        assert contacts["controller"]["verified"] is True
        data["contacts"]["technical"]["email"] = "demandeur@societe-b.fr"  # not of A
        errors = save_block(
            s, request, applicant, Block.CONTACTS, data["contacts"], now=clock.now()
        )
        assert [e.field for e in errors] == ["contacts.technical.email"]
        save_block(s, request, applicant, Block.TECHNICAL, data["technical"], now=clock.now())
        facts = request.data["technical"]["certificate"]
        assert len(facts["thumbprint"]) == 43
        assert facts["self_signed"] is False
        assert facts["not_after"].startswith("2027-11-23")
        # A document of another request (or of the wrong kind) is not accepted.
        doc = attach_document(
            s,
            other,
            applicant,
            DocumentKind.LEGAL_TEXT,
            "d.pdf",
            PDF,
            uploads_dir=uploads_dir,
            now=clock.now(),
        )
        legal = dict(data["legal"], document_id=str(doc.id))
        legal.pop("url")
        errors = save_block(s, request, applicant, Block.LEGAL, legal, now=clock.now())
        assert "legal.document_id" in [e.field for e in errors]
        assert "document_id" not in request.data["legal"]
        mine = attach_document(
            s,
            request,
            applicant,
            DocumentKind.LEGAL_TEXT,
            "d.pdf",
            PDF,
            uploads_dir=uploads_dir,
            now=clock.now(),
        )
        legal["document_id"] = str(mine.id)
        assert save_block(s, request, applicant, Block.LEGAL, legal, now=clock.now()) == []
        with pytest.raises(RequestInvalid) as refused:
            submit(s, request, applicant, now=clock.now())
        fields = {e.field for e in refused.value.errors}
        assert {"perimeter.data_scopes", "terms.version", "contacts.technical.email"} <= fields
        assert request.status is RequestStatus.DRAFT
