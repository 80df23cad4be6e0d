"""The embedded default's first start: keys, local CA, sandbox population, a demo partner.

Everything here is idempotent: a later start finds it in place and changes nothing.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select

from guichet.accounts.seed import ensure_instructor
from guichet.catalog.products import IR_DATA_SCOPES, PRODUCTS
from guichet.db import transaction
from guichet.federation.clients import register_client
from guichet.federation.models import ClientKind
from guichet.habilitation.models import AccessMode, Environment, Habilitation, Organisation
from guichet.habilitation.service import (
    HabilitationSpec,
    create_habilitation,
    get_or_create_organisation,
)
from guichet.oauth.clients import create_client
from guichet.oauth.keys import ensure_signing_key
from guichet.pki import LocalPki, ensure_local_pki, issue_client_certificate
from guichet.records.models import IrSituation
from guichet.runtime import Runtime
from guichet.sandbox.population import seed

DEMO_SIRET = "21000000610001"
DEMO_NAME = "Ville de Démoville"
DEMO_DEMARCHE = "Calcul du quotient familial pour les tarifs scolaires et périscolaires"


@dataclass(frozen=True)
class InitReport:
    pki: LocalPki
    credentials_file: Path
    seeded_households: int | None
    demo_created: bool
    instructor_email: str


def initialise(runtime: Runtime, *, households: int = 10_000) -> InitReport:
    settings = runtime.settings
    now = runtime.clock.now()
    pki = ensure_local_pki(settings.data_dir / "pki", now, hosts=[settings.host])
    with transaction(runtime.session_factory) as session:
        for env in Environment:
            ensure_signing_key(session, env, runtime.master, now)
    seeded = None
    with runtime.session_factory() as session:
        empty = not session.scalar(
            select(func.count()).select_from(IrSituation).where(IrSituation.store == "sandbox")
        )
    if empty:
        seed(runtime.session_factory, households=households, reference_year=now.year)
        seeded = households
    credentials, created = ensure_demo(runtime, pki)
    ensure_federation_data_provider(runtime)
    instructor, _ = ensure_instructor(runtime)
    return InitReport(pki, credentials, seeded, created, instructor)


def ensure_federation_data_provider(runtime: Runtime) -> Path:
    """The gateway's data-provider client at the embedded federation (for /checktoken).

    Its secret lives only in ``DATA_DIR/federation/data-provider.json`` (0600), read by
    ``guichet.gateway.franceconnect.from_settings`` when no credentials are configured.
    """
    path = runtime.settings.data_dir.resolve() / "federation" / "data-provider.json"
    if path.exists():
        return path
    with transaction(runtime.session_factory) as session:
        registered = register_client(
            session,
            kind=ClientKind.DATA_PROVIDER,
            name="DGFiP — passerelle guichet",
            now=runtime.clock.now(),
        )
        document = {"client_id": registered.client_id, "client_secret": registered.client_secret}
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_private(path, (json.dumps(document, indent=2) + "\n").encode())
    return path


def ensure_demo(runtime: Runtime, pki: LocalPki) -> tuple[Path, bool]:
    """The demo partner: a validated sandbox habilitation for Impôt Particulier (SPI) and R2P."""
    settings = runtime.settings
    demo_dir = settings.data_dir.resolve() / "demo"
    credentials = demo_dir / "credentials.json"
    now = runtime.clock.now()
    with runtime.session_factory() as session:
        exists = session.scalar(
            select(Habilitation.id)
            .join(Organisation)
            .where(
                Organisation.siret == DEMO_SIRET, Habilitation.environment == Environment.SANDBOX
            )
        )
    if exists and credentials.exists():
        return credentials, False
    cert_pem, key_pem = issue_client_certificate(pki, "demo.demoville.example", DEMO_NAME, 365, now)
    with transaction(runtime.session_factory) as session:
        org = get_or_create_organisation(session, DEMO_SIRET, DEMO_NAME, now)
        spec = HabilitationSpec(
            demarche=DEMO_DEMARCHE,
            environment=Environment.SANDBOX,
            apis=["impot_particulier", "r2p"],
            access_modes=[AccessMode.SPI.value, AccessMode.ETAT_CIVIL.value],
            data_scopes=sorted(IR_DATA_SCOPES),
            year_scopes=["dgfip_annee_n_moins_1", "dgfip_annee_n_moins_2"],
            ip_ranges=["127.0.0.1/32", "::1/128"],
            certificates_pem=[cert_pem.decode()],
            quotas={"impot_particulier": 120, "r2p": 120},
        )
        hab = create_habilitation(session, org, spec, actor="guichet init", now=now)
        scopes = sorted(
            PRODUCTS["impot_particulier"].resource_scopes | PRODUCTS["r2p"].resource_scopes
        )
        client, secret = create_client(
            session,
            habilitation=hab,
            scopes=scopes,
            auth_methods=["client_secret_basic", "client_secret_post", "tls_client_auth"],
            now=now,
        )
        hab_id, client_id = str(hab.id), client.client_id
    demo_dir.mkdir(parents=True, exist_ok=True)
    _write_private(demo_dir / "client.key", key_pem)
    (demo_dir / "client.crt").write_bytes(cert_pem)
    (demo_dir / "ca.crt").write_bytes(pki.ca_cert_pem)
    base = settings.public_url("sandbox")
    document = {
        "environment": "sandbox",
        "token_url": f"{base}/token",
        "api_base_url": f"{base}/impotparticulier/1.0",
        "r2p_base_url": f"{base}/r2p/v1",
        "client_id": client_id,
        "client_secret": secret,
        "scopes": scopes,
        "habilitation_id": hab_id,
        "cert_file": str(demo_dir / "client.crt"),
        "key_file": str(demo_dir / "client.key"),
        "ca_file": str(demo_dir / "ca.crt"),
        "openapi": {
            "impot_particulier": f"{base}/openapi/impotparticulier.yaml",
            "r2p": f"{base}/openapi/r2p.yaml",
        },
    }
    _write_private(
        credentials, (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode()
    )
    return credentials, True


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def demo_curl(credentials_file: Path, credentials: dict[str, object], spi: str, year: int) -> str:
    """The ready-to-paste sequence: a token over mutual TLS, then one SPI call.

    The secret is read from the credentials file when the command runs, never printed.
    """
    c = credentials
    tls = f"--cacert {c['ca_file']} --cert {c['cert_file']} --key {c['key_file']}"
    extract = "python3 -c 'import json,sys; print(json.load(sys.stdin)[\"access_token\"])'"
    basic = (
        f'$(python3 -c \'import json; c=json.load(open("{credentials_file}")); '
        'print(c["client_id"] + ":" + c["client_secret"])\')'
    )
    new_uuid = "$(python3 -c 'import uuid; print(uuid.uuid4())')"
    return "\n".join(
        [
            f"TOKEN=$(curl -s {tls} \\",
            f'  -u "{basic}" -d grant_type=client_credentials \\',
            f"  {c['token_url']} | {extract})",
            f"curl -s {tls} \\",
            f'  -H "Authorization: Bearer $TOKEN" -H "X-Correlation-ID: {new_uuid}" \\',
            f"  {c['api_base_url']}/spi/{spi}/situations/ir/assiettes/annrev/{year}",
        ]
    )
