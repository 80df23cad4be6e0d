"""An in-process gateway for unit tests: one database, platform and partners per module, called
over ASGI the way the TLS edge calls it (peer address and client certificate in the scope)."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime as dt
import threading
import uuid
from collections.abc import Coroutine, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import select
from starlette.types import ASGIApp, Receive, Scope, Send

from guichet.apis.impot_particulier.years import current_year
from guichet.clock import FrozenClock
from guichet.db import make_engine, make_sessionmaker, transaction
from guichet.db.models import bump_generation
from guichet.edge import thumbprint
from guichet.habilitation.models import Environment, Habilitation
from guichet.habilitation.service import Action, add_certificate, transition
from guichet.journal.models import JournalRecord
from guichet.oauth.keys import ensure_signing_key
from guichet.pki import LocalPki, ensure_local_pki, issue_client_certificate
from guichet.platform import Platform
from guichet.runtime import Runtime
from guichet.sandbox.population import seed
from guichet.schema import metadata
from guichet.secrets import MasterSecret
from guichet.settings import Settings
from tests.support.factories import Partner, make_partner
from tests.support.postgres import PostgresServer

T = TypeVar("T")

BASE_URL = "https://127.0.0.1:8443"
PERSONA = "3999999930262"  # the provider's shared test SPI, present in every seed
OTHER_PERSONA = "3000000001250"
IR_MEDIA = "application/prs.dgfip.part.situations.ir.assiettes.v1+json"
PROBLEM_MEMBERS = frozenset(
    {"type", "title", "status", "detail", "code", "correlationId", "instance", "field", "codeapp"}
)


def ir_path(year: int, spi: str = PERSONA) -> str:
    return f"/impotparticulier/1.0/spi/{spi}/situations/ir/assiettes/annrev/{year}"


def client_cert_header(cert_pem: bytes) -> str:
    """RFC 9440 §2.2: the certificate's DER as a structured-field byte sequence."""
    der = x509.load_pem_x509_certificate(cert_pem).public_bytes(Encoding.DER)
    return ":" + base64.b64encode(der).decode() + ":"


def cert_thumbprint(cert_pem: bytes) -> str:
    return thumbprint(x509.load_pem_x509_certificate(cert_pem))


class LoopThread:
    """One event loop for the whole module: the platform's quota and journal live on it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="gateway-tests-loop", daemon=True
        )
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


def at_the_edge(app: ASGIApp, ip: str, cert_pem: bytes | None, port: int = 50443) -> ASGIApp:
    """What ``guichet.gateway.tls`` gives the app: the TCP peer and the ASGI TLS extension."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        scope = dict(scope)
        scope["client"] = (ip, port)
        scope["extensions"] = {
            **(scope.get("extensions") or {}),
            "tls": {
                "server_cert": None,
                "client_cert_chain": [cert_pem.decode()] if cert_pem else [],
                "client_cert_name": None,
                "client_cert_error": None,
                "tls_version": 0x0304,
                "cipher_suite": None,
            },
        }
        await app(scope, receive, send)

    return wrapped


@dataclass
class World:
    """A database with a small sandbox population, a local PKI and a running platform."""

    runtime: Runtime
    clock: FrozenClock
    start: dt.datetime
    pki: LocalPki
    directory: Path
    loop: LoopThread
    platforms: list[Platform] = field(default_factory=list)
    apps: dict[Environment, ASGIApp] = field(default_factory=dict)
    default: Partner | None = None

    # --- assembly ---------------------------------------------------------------------

    def new_platform(self, **settings: Any) -> Platform:
        """A started platform on this world's database, with some settings replaced."""
        values = {**self.runtime.settings.model_dump(), **settings}
        runtime = dataclasses.replace(self.runtime, settings=Settings.model_validate(values))
        platform = Platform(runtime)
        self.loop.run(platform.start())
        self.platforms.append(platform)
        return platform

    @contextmanager
    def scoped(self) -> Iterator[None]:
        """One test's use: the clock goes back to the start and the platforms it added stop."""
        before = len(self.platforms)
        try:
            yield
        finally:
            self.clock.set(self.start)
            while len(self.platforms) > before:
                self.loop.run(self.platforms.pop().stop())

    def reload(self) -> None:
        """What each worker's poller does after a database change, done now."""
        for platform in self.platforms:
            platform.cache.reload()

    @property
    def year(self) -> int:
        """Year N, as the gateway counts it."""
        return current_year(self.clock.now())

    @property
    def master(self) -> MasterSecret:
        return self.runtime.master

    # --- data -------------------------------------------------------------------------

    def certificate(
        self, *, days: int = 30, not_before: dt.datetime | None = None, pki: LocalPki | None = None
    ) -> tuple[bytes, bytes]:
        return issue_client_certificate(
            pki or self.pki, "Partenaire de test", "Mairie de Test", days, not_before or self.start
        )

    def partner(self, **options: Any) -> Partner:
        directory = self.directory / "partners" / uuid.uuid4().hex
        partner = make_partner(
            self.runtime.session_factory, self.pki, directory, self.clock.now(), **options
        )
        self.reload()
        return partner

    def add_certificate(self, partner: Partner, cert_pem: bytes) -> None:
        with transaction(self.runtime.session_factory) as session:
            hab = session.get(Habilitation, uuid.UUID(partner.habilitation_id))
            assert hab is not None
            add_certificate(session, hab, cert_pem.decode(), now=self.clock.now())
        self.reload()

    def change_habilitation(self, partner: Partner, **values: Any) -> None:
        with transaction(self.runtime.session_factory) as session:
            hab = session.get(Habilitation, uuid.UUID(partner.habilitation_id))
            assert hab is not None
            for name, value in values.items():
                setattr(hab, name, value)
            bump_generation(session)
        self.reload()

    def transition(self, partner: Partner, action: Action) -> None:
        with transaction(self.runtime.session_factory) as session:
            hab = session.get(Habilitation, uuid.UUID(partner.habilitation_id))
            assert hab is not None
            transition(session, hab, action, reason="test", actor="tests", now=self.clock.now())
        self.reload()

    # --- calls ------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        cert: bytes | None,
        ip: str = "127.0.0.1",
        app: ASGIApp | None = None,
        headers: Mapping[str, str] | None = None,
        data: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
    ) -> httpx.Response:
        target = at_the_edge(app or self.apps[Environment.SANDBOX], ip, cert)

        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=target)
            async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
                return await client.request(
                    method, path, headers=dict(headers or {}), data=data, auth=auth
                )

        return self.loop.run(send())

    def token(
        self,
        partner: Partner,
        *,
        cert: bytes | None = None,
        scope: str | None = None,
        app: ASGIApp | None = None,
        ip: str = "127.0.0.1",
        headers: Mapping[str, str] | None = None,
    ) -> str:
        """An access token from the app's own ``POST /token`` (client_secret_basic + mTLS);
        ``cert`` defaults to the partner's, ``b""`` presents none (a proxy passes it on)."""
        data = {"grant_type": "client_credentials"}
        if scope is not None:
            data["scope"] = scope
        r = self.request(
            "POST",
            "/token",
            cert=partner.cert_pem if cert is None else cert,
            ip=ip,
            app=app,
            headers=headers,
            data=data,
            auth=(partner.client_id, partner.client_secret),
        )
        assert r.status_code == 200, r.text
        return str(r.json()["access_token"])

    def get(
        self,
        path: str,
        *,
        token: str | None,
        cert: bytes | None,
        ip: str = "127.0.0.1",
        app: ASGIApp | None = None,
        headers: Mapping[str, str] | None = None,
        method: str = "GET",
    ) -> httpx.Response:
        """An API call with a fresh ``X-Correlation-ID`` (unless ``headers`` sets one)."""
        h = {"X-Correlation-ID": str(uuid.uuid4())}
        if token is not None:
            h["Authorization"] = f"Bearer {token}"
        h.update(headers or {})
        return self.request(method, path, cert=cert, ip=ip, app=app, headers=h)

    # --- the journal ------------------------------------------------------------------

    def journal(self, correlation_id: str) -> list[dict[str, Any]]:
        with self.runtime.session_factory() as session:
            rows = session.scalars(
                select(JournalRecord).where(JournalRecord.correlation_id == correlation_id)
            ).all()
            return [
                {c.name: getattr(row, c.name) for c in JournalRecord.__table__.columns}
                for row in rows
            ]

    def record(self, correlation_id: str) -> dict[str, Any]:
        records = self.journal(correlation_id)
        assert len(records) == 1, records
        return records[0]


# --- assertions ---------------------------------------------------------------------------


def _sent_correlation_id(response: httpx.Response) -> str | None:
    sent: str | None = response.request.headers.get("x-correlation-id")
    return sent


def _no_spi_in(record: Mapping[str, Any], world: World, spi: str | None) -> None:
    """The subject is the keyed pseudonym, and no field holds an SPI in clear."""
    flat = " ".join(str(v) for v in record.values())
    for clear in (PERSONA, OTHER_PERSONA, spi):
        assert clear is None or clear not in flat
    if spi is None:
        assert record["subject"] is None
    else:
        assert record["subject"] == world.master.pseudonym(spi)


def refused(
    world: World,
    response: httpx.Response,
    status: int,
    code: str,
    *,
    spi: str | None = None,
    source_ip: str | None = None,
    cert: bytes | None = None,
    api: str | None = "impot_particulier",
) -> dict[str, Any]:
    """A problem+json refusal, no data, correlation id echoed, journaled with ``code``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) <= PROBLEM_MEMBERS, body
    assert body["code"] == code
    assert body["status"] == status
    assert all(isinstance(v, str | int) for v in body.values())
    echoed = response.headers["x-correlation-id"]
    assert body["correlationId"] == echoed
    sent = _sent_correlation_id(response)
    if code != "correlation_id_invalid":
        assert echoed == sent
    if status == 401:
        assert response.headers["www-authenticate"].startswith("Bearer")
    record = world.record(echoed)
    assert record["outcome"] == code
    assert record["http_status"] == status
    assert record["data_scopes"] == []
    assert record["environment"] == "sandbox"
    assert record["api"] == api
    if source_ip is not None:
        assert record["source_ip"] == source_ip
    if cert is not None:
        assert record["cert_thumbprint"] == cert_thumbprint(cert)
    _no_spi_in(record, world, spi)
    return record


def served(
    world: World, response: httpx.Response, partner: Partner, *, spi: str = PERSONA
) -> dict[str, Any]:
    """A 200 with data, journaled ``ok`` against the partner's habilitation and client."""
    assert response.status_code == 200, response.text
    assert response.headers["x-correlation-id"] == _sent_correlation_id(response)
    record = world.record(response.headers["x-correlation-id"])
    assert record["outcome"] == "ok"
    assert record["http_status"] == 200
    assert str(record["habilitation_id"]) == partner.habilitation_id
    assert record["client_id"] == partner.client_id
    assert record["data_scopes"]
    _no_spi_in(record, world, spi)
    return record


# --- the module's world -------------------------------------------------------------------


@contextmanager
def open_world(
    backend: str, directory: Path, postgres: PostgresServer | None = None
) -> Iterator[World]:
    """A fresh database (SQLite file, or a new PostgreSQL database) made ready to serve."""
    if backend == "postgres":
        assert postgres is not None
        url = postgres.create_database(f"gw_{uuid.uuid4().hex[:12]}")
    else:
        url = f"sqlite:///{directory / 'guichet.db'}"
    engine = make_engine(url)
    metadata.create_all(engine)
    session_factory = make_sessionmaker(engine)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    clock = FrozenClock(now)
    master = MasterSecret(b"k" * 48)
    settings = Settings(
        data_dir=directory,
        database_url=url,
        redis_url=None,
        trusted_proxies=[],
        client_ca_file=None,
        maintenance=False,
        token_lifetime=3600,
        workers=1,
        cache_poll_interval=5,
    )
    runtime = Runtime(settings, engine, session_factory, master, clock)
    seed(session_factory, households=20, reference_year=current_year(now))
    with transaction(session_factory) as session:
        for environment in Environment:
            ensure_signing_key(session, environment, master, now)
    pki = ensure_local_pki(directory / "pki", now, ["127.0.0.1"])
    loop = LoopThread()
    world = World(runtime, clock, now, pki, directory, loop)
    try:
        platform = world.new_platform()
        world.apps = {env: platform.gateway_app(env) for env in Environment}
        world.default = world.partner()
        yield world
    finally:
        for platform in world.platforms:
            loop.run(platform.stop())
        loop.close()
        # A PostgreSQL database is left to the session's throwaway server (a DROP checkpoints).
        engine.dispose()


__all__ = [
    "BASE_URL",
    "IR_MEDIA",
    "OTHER_PERSONA",
    "PERSONA",
    "Action",
    "LoopThread",
    "World",
    "at_the_edge",
    "cert_thumbprint",
    "client_cert_header",
    "ir_path",
    "open_world",
    "refused",
    "served",
]
