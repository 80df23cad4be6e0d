"""Fault injection (issue 13): one PostgreSQL and one Redis of this suite's own, which the
tests stop, pause, kill and restart; ``guichet serve gateway --workers 2`` on them, under a
bounded load of a few client threads on loopback.

The quota window is 10 seconds here (``GUICHET_QUOTA_WINDOW``), so that the rule "never more
than the limit in any window" is exercised across several windows in seconds, not minutes.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from guichet.db.models import read_generation
from guichet.pki import ensure_local_pki
from tests.functional.conftest import Product, api_headers
from tests.support.factories import Partner, make_partner
from tests.support.gateway_process import GatewayProcess, guichet_env, run_guichet
from tests.support.postgres import PostgresServer, free_port
from tests.support.redis import RedisServer

WORKERS = 2
WINDOW = 10
PERSONA = "3999999930262"
NOW = dt.datetime.now(dt.UTC)
IR = f"/impotparticulier/1.0/spi/{PERSONA}/situations/ir/assiettes/annrev/{NOW.year - 1}"
# The stable codes a fault may be answered with (never internal_error).
FAULT_CODES = {"quota_unavailable", "database_unavailable", "journal_unavailable"}


@pytest.fixture(scope="package")
def pg() -> Iterator[PostgresServer]:
    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="package")
def redis() -> Iterator[RedisServer]:
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class Faults:
    """The gateway under test, its services and the functional suite's helpers."""

    gateway: GatewayProcess
    product: Product
    pg: PostgresServer
    redis: RedisServer
    metrics_port: int
    tmp: Path

    def partner(self, name: str, quota: int) -> tuple[Partner, str]:
        """A new partner every worker already knows, and its access token."""
        partner = make_partner(
            self.product.session_factory,
            ensure_local_pki(self.product.data_dir / "pki", NOW, hosts=["127.0.0.1"]),
            self.tmp / uuid.uuid4().hex[:8],
            NOW,
            name=name,
            quotas={"impot_particulier": quota},
        )
        with self.product.session_factory() as session:
            generation = read_generation(session)
        self.gateway.wait_all_workers(
            lambda r: r.status_code == 200 and r.json()["policyGeneration"] >= generation,
            timeout=20,
        )
        with self.product.http(cert=cert(partner)) as c:
            token = self.product.token(c, partner.client_id, partner.client_secret)
        return partner, token

    def records(self, partner: Partner) -> dict[str, tuple[float, str, int]]:
        """The partner's journal records: correlation id → (time, outcome, HTTP status)."""
        with self.product.session_factory() as session:
            rows = session.execute(
                text(
                    "SELECT correlation_id, at, outcome, http_status FROM journal_record "
                    "WHERE habilitation_id = :h"
                ),
                {"h": uuid.UUID(partner.habilitation_id)},
            ).all()
        return {
            cid: ((at if at.tzinfo else at.replace(tzinfo=dt.UTC)).timestamp(), outcome, status)
            for cid, at, outcome, status in rows
        }

    def metrics(self) -> str:
        return httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text

    def health(self) -> httpx.Response:
        with self.gateway.client(timeout=5) as c:
            return c.get("/healthz")


def cert(partner: Partner) -> tuple[str, str]:
    return str(partner.cert_file), str(partner.key_file)


@pytest.fixture(scope="package")
def faults(
    tmp_path_factory: pytest.TempPathFactory, pg: PostgresServer, redis: RedisServer
) -> Iterator[Faults]:
    data_dir = tmp_path_factory.mktemp("guichet-faults")
    db_url = pg.create_database(f"faults_{uuid.uuid4().hex[:8]}")
    metrics_port = free_port()
    env = guichet_env(
        data_dir,
        db_url,
        GUICHET_REDIS_URL=redis.url,
        GUICHET_QUOTA_WINDOW=str(WINDOW),
        GUICHET_REDIS_TIMEOUT="0.25",
    )
    run_guichet(env, "init", "--households", "50")
    gateway = GatewayProcess(
        env,
        data_dir.parent / f"{data_dir.name}.log",
        workers=WORKERS,
        ca_file=data_dir / "demo" / "ca.crt",
        extra_args=("--metrics-port", str(metrics_port)),
    )
    env["GUICHET_SANDBOX_PUBLIC_URL"] = gateway.url
    product = Product(
        data_dir=data_dir,
        env=env,
        portal_url="",
        sandbox_url=gateway.url,
        production_url="",
        db_url=db_url,
        proc=None,  # type: ignore[arg-type]
        log_file=gateway.log_file,
    )
    product.credentials = json.loads((data_dir / "demo" / "credentials.json").read_text())
    gateway.start(timeout=180)  # a loaded machine may take a while to import everything
    try:
        product.proc = gateway.proc  # type: ignore[assignment]
        yield Faults(gateway, product, pg, redis, metrics_port, data_dir.parent / "partners")
    finally:
        gateway.stop()


@dataclass
class Answer:
    started: float
    elapsed: float
    status: int  # 0: no answer (connection lost)
    correlation_id: str
    code: str = ""
    retry_after: str | None = None
    ratelimit: str | None = None
    policy: str | None = None


@dataclass
class Load:
    """``threads`` callers, each on its own connection (renewed every ``reconnect`` calls, so
    that both workers get calls), a short pause between calls: a bounded load."""

    faults: Faults
    partner: Partner
    token: str
    threads: int = 4
    pause: float = 0.01
    reconnect: int = 15
    answers: list[Answer] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> Load:
        for _ in range(self.threads):
            thread = threading.Thread(target=self._run, daemon=True)
            thread.start()
            self._workers.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._workers:
            thread.join(30)

    def _run(self) -> None:
        gateway = self.faults.gateway
        while not self._stop.is_set():
            with gateway.client(cert=cert(self.partner), timeout=10) as client:
                for _ in range(self.reconnect):
                    if self._stop.is_set():
                        return
                    self._call(client)
                    time.sleep(self.pause)

    def _call(self, client: httpx.Client) -> None:
        headers = api_headers(self.token)
        started = time.time()
        try:
            r = client.get(IR, headers=headers)
        except httpx.HTTPError:
            answer = Answer(started, time.time() - started, 0, headers["X-Correlation-ID"])
        else:
            code = ""
            if r.status_code != 200 and "json" in r.headers.get("content-type", ""):
                code = r.json().get("code", "")
            answer = Answer(
                started,
                time.time() - started,
                r.status_code,
                headers["X-Correlation-ID"],
                code,
                r.headers.get("Retry-After"),
                r.headers.get("RateLimit"),
                r.headers.get("RateLimit-Policy"),
            )
        with self._lock:
            self.answers.append(answer)

    def since(self, moment: float) -> list[Answer]:
        with self._lock:
            return [a for a in self.answers if a.started >= moment]
