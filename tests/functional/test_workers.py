"""Two gateway workers behind one port (issue 3 §4, §5): one shared quota through a real Redis,
degraded mode when Redis goes away and recovery when it returns, and a suspension that every
worker applies to the very next call."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from guichet.db.models import read_generation
from guichet.pki import LocalPki, ensure_local_pki
from tests.conftest import BACKENDS
from tests.functional.conftest import Product, api_headers
from tests.support.factories import Partner, make_partner
from tests.support.gateway_process import GatewayProcess, guichet_env, run_guichet
from tests.support.postgres import PostgresServer
from tests.support.redis import RedisServer

pytestmark = pytest.mark.redis

WORKERS = 2
PERSONA = "3999999930262"
NOW = dt.datetime.now(dt.UTC)
IR = f"/impotparticulier/1.0/spi/{PERSONA}/situations/ir/assiettes/annrev/{NOW.year - 1}"


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module", params=BACKENDS)
def gateway(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, redis: RedisServer
) -> Iterator[GatewayProcess]:
    """``guichet init``, then ``guichet serve gateway --workers 2`` sharing ``redis``."""
    data_dir = tmp_path_factory.mktemp("guichet-workers")
    db_url = None
    if request.param == "postgres":
        server: PostgresServer = request.getfixturevalue("postgres_server")
        db_url = server.create_database(f"workers_{uuid.uuid4().hex[:8]}")
    # A loaded test machine can stall an event loop for longer than the production Redis
    # timeout: the exact counts below are not about that (tests/faults/ are).
    env = guichet_env(data_dir, db_url, GUICHET_REDIS_URL=redis.url, GUICHET_REDIS_TIMEOUT="2")
    run_guichet(env, "init", "--households", "200")
    process = GatewayProcess(
        env,
        data_dir.parent / f"{data_dir.name}.log",
        workers=WORKERS,
        ca_file=data_dir / "demo" / "ca.crt",
    )
    # The token issuer and audience are the origin's public URL: this port.
    env["GUICHET_SANDBOX_PUBLIC_URL"] = process.url
    with process:
        yield process


@pytest.fixture(scope="module")
def product(gateway: GatewayProcess) -> Product:
    """The gateway seen through the functional suite's helpers (token, CLI, database)."""
    env = gateway.env
    data_dir = Path(env["GUICHET_DATA_DIR"])
    db_url = env.get("GUICHET_DATABASE_URL", f"sqlite:///{data_dir / 'guichet.db'}")
    assert gateway.proc is not None
    result = Product(
        data_dir=data_dir,
        env=env,
        portal_url="",
        sandbox_url=gateway.url,
        production_url="",
        db_url=db_url,
        proc=gateway.proc,
        log_file=gateway.log_file,
    )
    result.credentials = json.loads((data_dir / "demo" / "credentials.json").read_text())
    return result


def _pki(product: Product) -> LocalPki:
    return ensure_local_pki(product.data_dir / "pki", NOW, hosts=["127.0.0.1"])


def _new_partner(
    product: Product, gateway: GatewayProcess, directory: Path, name: str, quota: int
) -> Partner:
    """A partner whose habilitation every worker already knows when this returns."""
    partner = make_partner(
        product.session_factory,
        _pki(product),
        directory,
        NOW,
        name=name,
        quotas={"impot_particulier": quota},
    )
    with product.session_factory() as session:
        generation = read_generation(session)
    gateway.wait_all_workers(lambda r: r.json()["policyGeneration"] >= generation, timeout=10)
    return partner


def _cert(partner: Partner) -> tuple[str, str]:
    return str(partner.cert_file), str(partner.key_file)


def _token(product: Product, partner: Partner) -> str:
    with product.http(cert=_cert(partner)) as c:
        return product.token(c, partner.client_id, partner.client_secret)


def _fresh_call(
    gateway: GatewayProcess, partner: Partner, token: str
) -> tuple[httpx.Response, int]:
    """One call on a new connection; the response (read) and the worker that served it."""
    with gateway.client(cert=_cert(partner), timeout=10) as c:
        r = c.get(IR, headers=api_headers(token))
        return r, gateway.serving_pid(r)


def _on_every_worker(
    gateway: GatewayProcess, partner: Partner, token: str, at_least: int = 6, at_most: int = 60
) -> list[httpx.Response]:
    """Calls on new connections until every worker has served some (``at_least`` in all)."""
    responses: list[httpx.Response] = []
    pids: set[int] = set()
    workers = gateway.worker_pids()
    while len(responses) < at_least or pids != workers:
        assert len(responses) < at_most, f"workers reached: {pids} of {workers}"
        r, pid = _fresh_call(gateway, partner, token)
        responses.append(r)
        pids.add(pid)
    return responses


def test_fifty_callers_on_two_workers_get_exactly_the_limit(
    product: Product, gateway: GatewayProcess, tmp_path: Path
) -> None:
    limit, callers, calls_each = 20, 50, 2
    partner = _new_partner(product, gateway, tmp_path, "Commune du Quota partagé", limit)
    token = _token(product, partner)
    barrier = threading.Barrier(callers, timeout=30)
    lock = threading.Lock()
    seen: list[tuple[httpx.Response, int]] = []

    def caller() -> None:
        with gateway.client(cert=_cert(partner), timeout=30) as c:
            c.get("/healthz")  # connection and TLS handshake before the burst
            barrier.wait()
            for _ in range(calls_each):
                r = c.get(IR, headers=api_headers(token))
                pid = gateway.serving_pid(r)
                with lock:
                    seen.append((r, pid))

    with ThreadPoolExecutor(callers) as pool:
        for future in [pool.submit(caller) for _ in range(callers)]:
            future.result(timeout=90)

    statuses = Counter(r.status_code for r, _ in seen)
    assert statuses == {200: limit, 429: callers * calls_each - limit}
    assert {pid for _, pid in seen} == gateway.worker_pids()
    assert len(gateway.worker_pids()) == WORKERS
    for r, _ in seen:
        assert r.headers["RateLimit-Policy"] == f'"minute";q={limit};w=60'
        assert r.headers["RateLimit"].startswith('"minute";r=')
        if r.status_code == 429:
            assert r.json()["code"] == "quota_exceeded"
            assert 1 <= int(r.headers["Retry-After"]) <= 61


def test_without_redis_no_call_is_admitted_blind_then_counting_is_shared_again(
    product: Product, gateway: GatewayProcess, redis: RedisServer, tmp_path: Path
) -> None:
    """Redis gone: what the other worker admitted through it may fill the window, so each
    worker answers 503 quota_unavailable with Retry-After (its share only after a whole
    window, docs/architecture.md); Redis back, empty: every worker replays its ledger and
    the count is shared again (issue 13)."""
    limit = 10
    partner = _new_partner(product, gateway, tmp_path, "Commune du Redis absent", limit)
    token = _token(product, partner)
    redis.stop()
    try:
        seen = [_fresh_call(gateway, partner, token) for _ in range(16)]
        assert {pid for _, pid in seen} == gateway.worker_pids()
        for r, _ in seen:
            assert r.status_code == 503, r.text
            assert r.json()["code"] == "quota_unavailable"
            assert int(r.headers["Retry-After"]) >= 1
            assert "RateLimit" not in r.headers
        gateway.wait_all_workers(lambda r: r.json()["quota"] == "degraded", timeout=5)
        # Once per worker (a loaded machine may flap once more: still logged).
        assert gateway.log().count("quota.degraded") >= WORKERS
    finally:
        redis.start()  # same port, empty dataset
    started = time.monotonic()
    gateway.wait_all_workers(lambda r: r.json()["quota"] == "ok", timeout=10)
    assert time.monotonic() - started < 5
    assert gateway.log().count("quota.recovered") >= WORKERS
    # Counting is shared again: the whole limit is left, nothing was admitted meanwhile.
    r, _ = _fresh_call(gateway, partner, token)
    assert r.status_code == 200
    assert r.headers["RateLimit"].startswith(f'"minute";r={limit - 1};')
    assert r.headers["RateLimit-Policy"] == f'"minute";q={limit};w=60'


def test_suspension_reaches_every_worker_on_the_next_call(
    product: Product, gateway: GatewayProcess, tmp_path: Path
) -> None:
    partner = _new_partner(product, gateway, tmp_path, "Commune suspendue", 1000)
    token = _token(product, partner)
    with gateway.client(cert=_cert(partner)) as kept:
        assert kept.get(IR, headers=api_headers(token)).status_code == 200

        product.guichet(
            "habilitation", "suspend", partner.habilitation_id, "--reason", "incident de sécurité"
        )
        refused = [
            *_on_every_worker(gateway, partner, token),
            kept.get(IR, headers=api_headers(token)),
        ]
        for r in refused:
            assert r.status_code == 403, r.text
            assert r.json()["code"] == "habilitation_suspended"

        product.guichet(
            "habilitation", "resume", partner.habilitation_id, "--reason", "incident clos"
        )
        resumed = [
            *_on_every_worker(gateway, partner, token),
            kept.get(IR, headers=api_headers(token)),
        ]
        for r in resumed:
            assert r.status_code == 200, r.text


def test_revocation_reaches_every_worker_on_the_next_call(
    product: Product, gateway: GatewayProcess, tmp_path: Path
) -> None:
    partner = _new_partner(product, gateway, tmp_path, "Commune résiliée", 1000)
    token = _token(product, partner)
    with gateway.client(cert=_cert(partner)) as kept:
        assert kept.get(IR, headers=api_headers(token)).status_code == 200

        product.guichet(
            "habilitation",
            "revoke",
            partner.habilitation_id,
            "--reason",
            "résiliation immédiate pour raison de sécurité",
        )
        refused = [
            *_on_every_worker(gateway, partner, token),
            kept.get(IR, headers=api_headers(token)),
        ]
        for r in refused:
            assert r.status_code == 403, r.text
            assert r.json()["code"] == "habilitation_terminated"
    # No new token either, and revocation is final: it cannot be resumed.
    with product.http(cert=_cert(partner)) as c:
        r = c.post(
            "/token",
            data={"grant_type": "client_credentials"},
            auth=(partner.client_id, partner.client_secret),
        )
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "unauthorized_client"
    again = product.guichet(
        "habilitation", "resume", partner.habilitation_id, "--reason", "erreur", check=False
    )
    assert again.returncode != 0
    r, _ = _fresh_call(gateway, partner, token)
    assert r.status_code == 403
    assert r.json()["code"] == "habilitation_terminated"
