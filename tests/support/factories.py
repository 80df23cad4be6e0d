"""Test data built through the domain services, as the product itself would build it."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from guichet.catalog.products import IR_DATA_SCOPES, PRODUCTS
from guichet.db import transaction
from guichet.habilitation.models import Environment
from guichet.habilitation.service import (
    HabilitationSpec,
    create_habilitation,
    get_or_create_organisation,
)
from guichet.oauth.clients import create_client
from guichet.pki import LocalPki, issue_client_certificate

ALL_RESOURCE_SCOPES = sorted(
    PRODUCTS["impot_particulier"].resource_scopes | PRODUCTS["r2p"].resource_scopes
)


@dataclass
class Partner:
    habilitation_id: str
    client_id: str
    client_secret: str
    cert_file: Path
    key_file: Path
    cert_pem: bytes


def make_partner(
    session_factory: sessionmaker[Session],
    pki: LocalPki,
    directory: Path,
    now: dt.datetime,
    *,
    name: str = "Commune de Testville",
    siret: str = "21000000610001",
    environment: Environment = Environment.SANDBOX,
    ip_ranges: tuple[str, ...] = ("127.0.0.1/32",),
    quotas: dict[str, int] | None = None,
    year_scopes: tuple[str, ...] = ("dgfip_annee_n_moins_1", "dgfip_annee_n_moins_2"),
    data_scopes: tuple[str, ...] = tuple(sorted(IR_DATA_SCOPES)),
    access_modes: tuple[str, ...] = ("spi", "etat_civil"),
    scopes: tuple[str, ...] = tuple(ALL_RESOURCE_SCOPES),
    certificate: tuple[bytes, bytes] | None = None,
    apis: tuple[str, ...] = ("impot_particulier", "r2p"),
) -> Partner:
    """A partner with a validated habilitation and a client; ``certificate`` reuses a key pair."""
    directory.mkdir(parents=True, exist_ok=True)
    cert_pem, key_pem = certificate or issue_client_certificate(
        pki, f"{name} client", name, 30, now
    )
    with transaction(session_factory) as session:
        org = get_or_create_organisation(session, siret, name, now)
        hab = create_habilitation(
            session,
            org,
            HabilitationSpec(
                demarche=f"Démarche de {name}",
                environment=environment,
                apis=list(apis),
                access_modes=list(access_modes),
                data_scopes=list(data_scopes),
                year_scopes=list(year_scopes),
                ip_ranges=list(ip_ranges),
                certificates_pem=[cert_pem.decode()],
                quotas=quotas,
            ),
            actor="tests",
            now=now,
        )
        client, secret = create_client(
            session,
            habilitation=hab,
            scopes=list(scopes),
            auth_methods=["client_secret_basic", "client_secret_post", "tls_client_auth"],
            now=now,
        )
        assert secret is not None
        hab_id, client_id = str(hab.id), client.client_id
    cert_file = directory / f"{client_id}.crt"
    key_file = directory / f"{client_id}.key"
    cert_file.write_bytes(cert_pem)
    key_file.write_bytes(key_pem)
    return Partner(hab_id, client_id, secret, cert_file, key_file, cert_pem)
