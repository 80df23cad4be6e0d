"""The embedded default's first start: keys, local CA, sandbox population, a demo partner.

Everything here is idempotent: a later start finds it in place and changes nothing, but
for bringing the demo partner to the sandbox's current perimeter and the URLs of its
credentials files to the configured ports.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from joserfc.jwk import ECKey
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from guichet.accounts.models import User
from guichet.accounts.seed import INSTRUCTOR_EMAIL, ensure_instructor
from guichet.accounts.service import email_key
from guichet.apis import DOCUMENTS
from guichet.catalog.products import FICOBA_DATA_SCOPES, IR_DATA_SCOPES, PRODUCTS, YEAR_SCOPES
from guichet.db import transaction
from guichet.db.models import bump_generation
from guichet.federation.checktoken import DECRYPTION_KEY_FILE, load_decryption_key
from guichet.federation.clients import register_client, set_encryption_key
from guichet.federation.encryption import public_jwk_of
from guichet.federation.models import ClientKind, FederationClient
from guichet.federation.scopes import IDENTITY_SCOPES, OPENID
from guichet.habilitation.models import (
    AccessMode,
    Environment,
    Habilitation,
    HabilitationStatus,
    Organisation,
)
from guichet.habilitation.service import (
    HabilitationError,
    HabilitationSpec,
    add_certificate,
    create_habilitation,
    get_or_create_organisation,
    update_habilitation,
)
from guichet.logs import event
from guichet.oauth.clients import create_client
from guichet.oauth.keys import ensure_signing_key
from guichet.oauth.models import Client
from guichet.pki import LocalPki, ensure_local_pki, issue_client_certificate
from guichet.records.models import IrSituation
from guichet.runtime import Runtime
from guichet.sandbox.population import seed

log = logging.getLogger(__name__)

DEMO_SIRET = "21000000610001"
DEMO_NAME = "Ville de Démoville"
DEMO_DEMARCHE = "Calcul du quotient familial pour les tarifs scolaires et périscolaires"
DEMO_APIS = ("impot_particulier", "r2p", "ficoba")

# The FranceConnect-mode demo: the example partner app of ``examples/quotient_familial``.
FC_DEMARCHE = "Quotient familial — FranceConnect"
FC_DATA_SCOPES = ("dgfip_rfr", "dgfip_nbpart")
FC_YEAR_SCOPES = ("dgfip_annee_n_moins_1", "dgfip_annee_n_moins_2")
# The partner's literal labels, shown to the citizen on the consent page [003 annexe 1].
FC_DATA_LABELS = {
    "dgfip_rfr": "Revenu fiscal de référence, pour calculer votre quotient familial",
    "dgfip_nbpart": "Nombre de parts fiscales de votre foyer",
}
EXAMPLE_URL = "http://127.0.0.1:8700"
EXAMPLE_CALLBACK = "/retour"


@dataclass(frozen=True)
class InitReport:
    pki: LocalPki
    credentials_file: Path
    seeded_households: int | None
    demo_created: bool
    instructor_email: str


def initialise(runtime: Runtime, *, households: int = 10_000, demo: bool = True) -> InitReport:
    """Keys, local PKI, the sandbox population (in the sandbox store only), the embedded
    federation's clients, and with ``demo`` (the embedded default; not ``guichet init
    --production``) the demo partner, its FranceConnect-mode side and the demo instructor."""
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
    ensure_federation_data_provider(runtime)
    ensure_portal_federation_client(runtime)
    if not demo:
        credentials = settings.data_dir.resolve() / "demo" / "credentials.json"
        return InitReport(pki, credentials, seeded, False, "")
    credentials, created = ensure_demo(runtime, pki)
    ensure_franceconnect_demo(runtime, pki)
    instructor, _ = ensure_instructor(runtime)
    return InitReport(pki, credentials, seeded, created, instructor)


def ensure_federation_data_provider(runtime: Runtime) -> Path:
    """The gateway's data-provider client at the embedded federation (for /checktoken).

    Its secret lives only in ``DATA_DIR/federation/data-provider.json`` (0600), read by
    ``guichet.federation.checktoken.from_settings`` when no credentials are configured.
    Its decryption key (EC P-256, ``ECDH-ES`` + ``A256GCM``) lives only in
    ``DATA_DIR/federation/data-provider-key.pem`` (0600); the public part is registered
    on the client, so the federation encrypts its answers as FranceConnect does. A data
    provider registered before it had a key gets one on the next start.
    """
    directory = runtime.settings.data_dir.resolve() / "federation"
    path = directory / "data-provider.json"
    key_path = directory / DECRYPTION_KEY_FILE
    directory.mkdir(parents=True, exist_ok=True)
    if key_path.exists():
        private = load_decryption_key(key_path)
    else:
        private = ECKey.generate_key("P-256", private=True)
        _write_private(key_path, private.as_pem(private=True))
    public = public_jwk_of(private.as_pem(private=False))
    with transaction(runtime.session_factory) as session:
        if path.exists():
            client_id = json.loads(path.read_text(encoding="utf-8"))["client_id"]
            row = session.get(FederationClient, client_id)
            if row is not None and row.encryption_jwk != public:
                set_encryption_key(session, client_id, public)
            return path
        registered = register_client(
            session,
            kind=ClientKind.DATA_PROVIDER,
            name="DGFiP — passerelle guichet",
            now=runtime.clock.now(),
            encryption_jwk=public,
        )
        document = {"client_id": registered.client_id, "client_secret": registered.client_secret}
    _write_private(path, (json.dumps(document, indent=2) + "\n").encode())
    return path


PORTAL_CLIENT_NAME = "guichet — Qui a consulté mes données ?"
PORTAL_SCOPES = (
    "openid",
    "given_name",
    "family_name",
    "birthdate",
    "gender",
    "birthplace",
    "birthcountry",
)


def ensure_portal_federation_client(runtime: Runtime) -> Path | None:
    """The portal as a service provider of the embedded federation (the citizen's page).

    Redirect URI ``{portal URL}/mes-donnees/retour``, identity scopes only. Its secret lives
    only in ``DATA_DIR/federation/portal.json`` (0600), read by
    ``guichet.portal.citizen.relying_party``.
    A later start whose portal URL changed updates the registered URIs. It is guichet's own
    client (``internal``): no partner's request can bind it, and a start unbinds it (with
    its identity scopes only) if an older version let one. None (and the page
    says it is not configured) when the portal URL cannot be a redirect URI (http on a
    host that is not loopback).
    """
    settings = runtime.settings
    path = settings.data_dir.resolve() / "federation" / "portal.json"
    portal = settings.resolved_portal_url
    redirect_uris = [f"{portal}/mes-donnees/retour"]
    logout_uris = [f"{portal}/mes-donnees"]
    with transaction(runtime.session_factory) as session:
        if path.exists():
            try:
                client_id = json.loads(path.read_text(encoding="utf-8")).get("client_id")
            except (OSError, ValueError, AttributeError):
                client_id = None
            row = session.get(FederationClient, client_id) if isinstance(client_id, str) else None
            if row is not None:
                if list(row.redirect_uris) != redirect_uris:
                    row.redirect_uris = redirect_uris
                    row.post_logout_redirect_uris = logout_uris
                if not row.internal or row.habilitation_id or row.organisation_id:
                    # Guichet's own client: no partner's habilitation or data scope, ever.
                    row.internal = True
                    row.habilitation_id = None
                    row.organisation_id = None
                    row.scopes = list(PORTAL_SCOPES)
                return path
        try:
            registered = register_client(
                session,
                kind=ClientKind.SERVICE_PROVIDER,
                name=PORTAL_CLIENT_NAME,
                now=runtime.clock.now(),
                redirect_uris=redirect_uris,
                post_logout_redirect_uris=logout_uris,
                scopes=list(PORTAL_SCOPES),
                internal=True,  # never bindable to a partner's habilitation
            )
        except ValueError:
            return None
        document = {"client_id": registered.client_id, "client_secret": registered.client_secret}
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_private(path, (json.dumps(document, indent=2) + "\n").encode())
    return path


def demo_perimeter() -> HabilitationSpec:
    """The demo partner's sandbox perimeter: the whole sandbox's, so it can exercise every
    operation it is shown — every data scope, every revenue year, SPI and état-civil modes,
    and every one of API FICOBA's eleven search types (``FICOBA_DATA_SCOPES``, one data
    scope a type). Certificates and addresses are the caller's (left empty here)."""
    return HabilitationSpec(
        demarche=DEMO_DEMARCHE,
        environment=Environment.SANDBOX,
        apis=list(DEMO_APIS),
        access_modes=[AccessMode.SPI.value, AccessMode.ETAT_CIVIL.value],
        data_scopes=sorted(IR_DATA_SCOPES | FICOBA_DATA_SCOPES),
        year_scopes=sorted(YEAR_SCOPES),
        ip_ranges=["127.0.0.1/32", "::1/128"],
        certificates_pem=[],
        quotas={api: PRODUCTS[api].default_quota_per_minute for api in DEMO_APIS},
    )


def demo_resource_scopes() -> list[str]:
    """Every resource scope of the demo partner's APIs: its OAuth client holds them all."""
    return sorted(frozenset().union(*(PRODUCTS[api].resource_scopes for api in DEMO_APIS)))


def ensure_demo(runtime: Runtime, pki: LocalPki) -> tuple[Path, bool]:
    """The demo partner: a validated sandbox habilitation for Impôt Particulier (SPI), R2P
    and FICOBA (its ``apis.ficoba`` in ``credentials.json``).

    On a later start, the habilitation of ``credentials.json`` is brought to the whole
    sandbox perimeter (``demo_perimeter``) through ``update_habilitation`` — an event
    ``habilitation:updated`` when something changed, nothing otherwise — and its client to
    every resource scope; no new credentials. The file's URLs and ``apis`` are refreshed
    from the settings each time (they follow the configured ports).
    """
    settings = runtime.settings
    demo_dir = settings.data_dir.resolve() / "demo"
    credentials = demo_dir / "credentials.json"
    now = runtime.clock.now()
    origin = settings.public_url("sandbox")
    document = _read_json(credentials)
    with transaction(runtime.session_factory) as session:
        hab = _demo_habilitation(session, document)
        if hab is not None:
            document["scopes"] = _bring_to_perimeter(session, hab, document, now)
            apis = _demo_apis(session)
    if hab is not None:
        _write_credentials(credentials, _refreshed(document, origin, apis))
        return credentials, False
    cert_pem, key_pem = issue_client_certificate(pki, "demo.demoville.example", DEMO_NAME, 365, now)
    with transaction(runtime.session_factory) as session:
        org = get_or_create_organisation(session, DEMO_SIRET, DEMO_NAME, now)
        spec = replace(demo_perimeter(), certificates_pem=[cert_pem.decode()])
        created = create_habilitation(session, org, spec, actor="guichet init", now=now)
        scopes = demo_resource_scopes()
        client, secret = create_client(
            session,
            habilitation=created,
            scopes=scopes,
            auth_methods=["client_secret_basic", "client_secret_post", "tls_client_auth"],
            now=now,
        )
        hab_id, client_id = str(created.id), client.client_id
        apis = _demo_apis(session)
    demo_dir.mkdir(parents=True, exist_ok=True)
    _write_private(demo_dir / "client.key", key_pem)
    (demo_dir / "client.crt").write_bytes(cert_pem)
    (demo_dir / "ca.crt").write_bytes(pki.ca_cert_pem)
    document = {
        "environment": "sandbox",
        "token_url": "",
        "api_base_url": "",
        "r2p_base_url": "",
        "client_id": client_id,
        "client_secret": secret,
        "scopes": scopes,
        "habilitation_id": hab_id,
        "cert_file": str(demo_dir / "client.crt"),
        "key_file": str(demo_dir / "client.key"),
        "ca_file": str(demo_dir / "ca.crt"),
    }
    _write_credentials(credentials, _refreshed(document, origin, apis))
    return credentials, True


def _demo_habilitation(session: Session, document: dict[str, Any]) -> Habilitation | None:
    """The demo partner's sandbox habilitation that ``credentials.json`` names, if any."""
    try:
        hab_id = uuid.UUID(str(document["habilitation_id"]))
    except (KeyError, ValueError):
        return None
    hab = session.get(Habilitation, hab_id)
    if (
        hab is None
        or hab.environment is not Environment.SANDBOX
        or hab.organisation.siret != DEMO_SIRET
    ):
        return None
    return hab


def _bring_to_perimeter(
    session: Session, hab: Habilitation, document: dict[str, Any], now: dt.datetime
) -> list[str]:
    """A demo habilitation of an older data directory gains what the sandbox has added
    since (a year, a data scope; one the catalogue dropped goes) by the domain's update,
    its addresses, certificates, labels and quotas kept; its client gains every resource
    scope. Idempotent; a terminated habilitation is left as it is. Returns the client's
    scopes."""
    client = session.scalar(
        select(Client).where(
            Client.client_id == str(document.get("client_id")), Client.habilitation_id == hab.id
        )
    )
    if hab.status is HabilitationStatus.TERMINATED:
        return list(client.scopes) if client is not None else list(document.get("scopes", []))
    full = demo_perimeter()
    if (
        sorted(hab.apis) != sorted(full.apis)
        or sorted(hab.access_modes) != sorted(full.access_modes)
        or sorted(hab.data_scopes) != sorted(full.data_scopes)
        or sorted(hab.year_scopes) != sorted(full.year_scopes)
    ):
        kept_quotas = {api: int(q) for api, q in hab.quotas.items() if api in full.apis}
        spec = replace(
            full,
            demarche=hab.demarche,
            ip_ranges=list(hab.ip_ranges),
            certificates_pem=[c.pem for c in hab.certificates],
            quotas={**(full.quotas or {}), **kept_quotas},
            data_labels={k: v for k, v in hab.data_labels.items() if k in full.data_scopes},
        )
        try:
            update_habilitation(session, hab, spec, actor="guichet init", now=now)
            event(log, "demo:perimeter_updated", habilitation_id=str(hab.id))
        except HabilitationError as exc:  # e.g. its certificates were all withdrawn
            event(log, "demo:perimeter_not_updated", level=logging.WARNING, reason=str(exc))
    scopes = demo_resource_scopes()
    if client is None:
        return list(document.get("scopes", []))
    if list(client.scopes) != scopes:
        client.scopes = scopes
        bump_generation(session)
    return scopes


def _demo_apis(session: Session) -> list[str]:
    """Every API of the demo partner's sandbox habilitations (those still in force)."""
    rows = session.scalars(
        select(Habilitation.apis)
        .join(Organisation)
        .where(
            Organisation.siret == DEMO_SIRET,
            Habilitation.environment == Environment.SANDBOX,
            Habilitation.status != HabilitationStatus.TERMINATED,
        )
    )
    return sorted({api for apis in rows for api in apis})


def api_endpoints(origin: str, apis: Sequence[str]) -> dict[str, dict[str, str]]:
    """Where a partner finds each published document of ``apis`` at the gateway ``origin``:
    ``{document key: {"base_url", "openapi_url"}}``, from the registry of the documents the
    gateways serve (``guichet.apis.DOCUMENTS``) — so an API, or a second contract of one
    (``impot_particulier_os``), added later is found the same way."""
    origin = origin.rstrip("/")
    return {
        d.key: {"base_url": origin + d.base_path, "openapi_url": d.url(origin, "json")}
        for d in DOCUMENTS.values()
        if d.product in apis
    }


def _refreshed(document: dict[str, Any], origin: str, apis: Sequence[str]) -> dict[str, Any]:
    """``credentials.json`` with its URLs from the current settings (its secrets kept)."""
    return {
        **document,
        "token_url": f"{origin}/token",
        "api_base_url": f"{origin}/impotparticulier/1.0",
        "r2p_base_url": f"{origin}/r2p/v1",
        "openapi": {
            "impot_particulier": f"{origin}/openapi/impotparticulier.yaml",
            "r2p": f"{origin}/openapi/r2p.yaml",
        },
        "apis": api_endpoints(origin, apis),
    }


def _write_credentials(path: Path, document: dict[str, Any]) -> None:
    """Written (0600) only when it changes: a start that changes nothing leaves it as is."""
    data = (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode()
    try:
        if path.read_bytes() == data:
            return
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_private(path, data)


def ensure_franceconnect_demo(
    runtime: Runtime, pki: LocalPki, *, partner_url: str = EXAMPLE_URL
) -> Path:
    """The demo partner's FranceConnect-mode side, for ``examples/quotient_familial``.

    A second sandbox habilitation (access mode ``franceconnect``, RFR and parts with the
    partner's literal labels, years N-1 and N-2, 127.0.0.1), its client certificate and
    gateway OAuth client, and a federation service provider bound to it whose redirect URI
    is ``partner_url`` + ``/retour``; written to ``DATA_DIR/demo/franceconnect.json``
    (0600). Idempotent: a later call keeps the credentials, refreshes the URLs from the
    settings, and adds ``partner_url``'s URIs to the client when they are new.
    """
    settings = runtime.settings
    demo_dir = settings.data_dir.resolve() / "demo"
    path = demo_dir / "franceconnect.json"
    partner_url = partner_url.rstrip("/")
    redirect_uri = partner_url + EXAMPLE_CALLBACK
    logout_uri = partner_url + "/"
    document = _read_json(path)
    with transaction(runtime.session_factory) as session:
        fed_client = _live_federation_client(session, document)
        if fed_client is None:
            document = _new_franceconnect_demo(
                session, runtime, pki, demo_dir, redirect_uri, logout_uri
            )
        else:
            # The registered URIs are compared exactly: a new port is a new URI.
            if redirect_uri not in fed_client.redirect_uris:
                fed_client.redirect_uris = [*fed_client.redirect_uris, redirect_uri]
            if logout_uri not in fed_client.post_logout_redirect_uris:
                fed_client.post_logout_redirect_uris = [
                    *fed_client.post_logout_redirect_uris,
                    logout_uri,
                ]
            document["federation"]["redirect_uris"] = list(fed_client.redirect_uris)
    sandbox = settings.public_url("sandbox")
    issuer = settings.embedded_federation_url
    document["partner_url"] = partner_url
    document["gateway"].update(
        token_url=f"{sandbox}/token",
        api_base_url=f"{sandbox}/impotparticulier/1.0",
        ca_file=str(demo_dir / "ca.crt"),
    )
    document["federation"].update(
        issuer=issuer,
        discovery_url=f"{issuer}/.well-known/openid-configuration",
        redirect_uri=redirect_uri,
        post_logout_redirect_uri=logout_uri,
    )
    demo_dir.mkdir(parents=True, exist_ok=True)
    (demo_dir / "ca.crt").write_bytes(pki.ca_cert_pem)
    _write_private(path, (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode())
    return path


def _read_json(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; an empty one when it is missing or unreadable."""
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _live_federation_client(session: Session, document: dict[str, Any]) -> FederationClient | None:
    """The federation client a previous run wrote, if it and its habilitation still hold."""
    try:
        client_id = str(document["federation"]["client_id"])
        hab_id = uuid.UUID(str(document["habilitation_id"]))
    except (KeyError, TypeError, ValueError):
        return None
    client = session.get(FederationClient, client_id)
    hab = session.get(Habilitation, hab_id)
    if client is None or client.disabled or hab is None or client.habilitation_id != hab.id:
        return None
    return client


def _new_franceconnect_demo(
    session: Session,
    runtime: Runtime,
    pki: LocalPki,
    demo_dir: Path,
    redirect_uri: str,
    logout_uri: str,
) -> dict[str, Any]:
    """Credentials for the FranceConnect-mode demo; the habilitation is reused if present
    (a suspended one stays suspended: new credentials do not lift a suspension)."""
    now = runtime.clock.now()
    cert_pem, key_pem = issue_client_certificate(
        pki, "quotient-familial.demoville.example", DEMO_NAME, 365, now
    )
    org = get_or_create_organisation(session, DEMO_SIRET, DEMO_NAME, now)
    hab = session.scalar(
        select(Habilitation).where(
            Habilitation.organisation_id == org.id,
            Habilitation.environment == Environment.SANDBOX,
            Habilitation.demarche == FC_DEMARCHE,
            Habilitation.status != HabilitationStatus.TERMINATED,
        )
    )
    if hab is None:
        spec = HabilitationSpec(
            demarche=FC_DEMARCHE,
            environment=Environment.SANDBOX,
            apis=["impot_particulier"],
            access_modes=[AccessMode.FRANCECONNECT.value],
            data_scopes=list(FC_DATA_SCOPES),
            year_scopes=list(FC_YEAR_SCOPES),
            ip_ranges=["127.0.0.1/32"],
            certificates_pem=[cert_pem.decode()],
            quotas={"impot_particulier": 120},
            data_labels=FC_DATA_LABELS,
        )
        hab = create_habilitation(session, org, spec, actor="guichet init", now=now)
    else:
        add_certificate(session, hab, cert_pem.decode(), now=now)
    resource_scopes = sorted(PRODUCTS["impot_particulier"].resource_scopes)
    gateway_client, gateway_secret = create_client(
        session,
        habilitation=hab,
        scopes=resource_scopes,
        auth_methods=["client_secret_basic", "client_secret_post", "tls_client_auth"],
        now=now,
    )
    scopes = [OPENID, *IDENTITY_SCOPES, *FC_DATA_SCOPES, *FC_YEAR_SCOPES]
    registered = register_client(
        session,
        kind=ClientKind.SERVICE_PROVIDER,
        name=f"{DEMO_NAME} — quotient familial",
        now=now,
        redirect_uris=[redirect_uri],
        post_logout_redirect_uris=[logout_uri],
        scopes=scopes,
        habilitation_id=hab.id,
        organisation_id=org.id,  # the demo organisation owns it
    )
    demo_dir.mkdir(parents=True, exist_ok=True)
    cert_file = demo_dir / "franceconnect-client.crt"
    key_file = demo_dir / "franceconnect-client.key"
    _write_private(key_file, key_pem)
    cert_file.write_bytes(cert_pem)
    return {
        "environment": "sandbox",
        "organisation": DEMO_NAME,
        "demarche": FC_DEMARCHE,
        "habilitation_id": str(hab.id),
        "data_labels": dict(FC_DATA_LABELS),
        "gateway": {
            "client_id": gateway_client.client_id,
            "client_secret": gateway_secret,
            "scopes": resource_scopes,
            "cert_file": str(cert_file),
            "key_file": str(key_file),
        },
        "federation": {
            "client_id": registered.client_id,
            "client_secret": registered.client_secret,
            "scopes": scopes,
            "redirect_uris": [redirect_uri],
        },
    }


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


def demo_remnants(session: Session) -> list[str]:
    """What the embedded default's demo left in this database: its instructor account
    (enabled), its partner organisation with a habilitation in force."""
    found: list[str] = []
    user = session.scalar(select(User).where(User.email_key == email_key(INSTRUCTOR_EMAIL)))
    if user is not None and user.disabled_at is None:
        found.append(
            f"le compte de démonstration {INSTRUCTOR_EMAIL} "
            f"(`guichet user remove {INSTRUCTOR_EMAIL}`)"
        )
    habilitations = session.scalar(
        select(func.count())
        .select_from(Habilitation)
        .join(Organisation)
        .where(
            Organisation.siret == DEMO_SIRET,
            Habilitation.status != HabilitationStatus.TERMINATED,
        )
    )
    if habilitations:
        found.append(
            f"le partenaire de démonstration « {DEMO_NAME} » (SIRET {DEMO_SIRET}) et ses "
            f"{habilitations} habilitation(s) (`guichet habilitation revoke`)"
        )
    return found
