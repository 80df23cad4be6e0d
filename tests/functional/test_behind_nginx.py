"""The gateway behind real nginx terminating mutual TLS (issue 3 §4), on the Unix socket only
nginx's user may use (issue 12): the certificate and the client's address are believed on that
channel only, and the journal records what the gateway decided from them."""

from __future__ import annotations

import datetime as dt
import grp
import json
import os
import shutil
import stat
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from guichet.db.models import read_generation
from guichet.pki import LocalPki, certificate_info, ensure_local_pki, issue_client_certificate
from tests.conftest import BACKENDS
from tests.functional.conftest import Product, api_headers
from tests.support.factories import make_partner
from tests.support.gateway_process import GatewayProcess, guichet_env, run_guichet
from tests.support.nginx import NginxServer
from tests.support.postgres import PostgresServer

pytestmark = pytest.mark.nginx

PERSONA = "3999999930262"
NOW = dt.datetime.now(dt.UTC)
IR = f"/impotparticulier/1.0/spi/{PERSONA}/situations/ir/assiettes/annrev/{NOW.year - 1}"
OUTSIDER = "127.0.0.2"  # a loopback source address the demo habilitation does not declare
AS_ROOT = os.geteuid() == 0
# nginx's workers and the group of the gateway's socket: www-data as on a Debian host when
# the tests run as root, else the tests' own user (nginx then keeps it).
PROXY_USER = "www-data" if AS_ROOT else grp.getgrgid(os.getegid()).gr_name


@dataclass
class Stack:
    product: Product  # its ``sandbox_url`` is nginx's origin
    gateway: GatewayProcess  # plain HTTP on 127.0.0.1, behind nginx


@pytest.fixture(scope="module", params=BACKENDS)
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """nginx (mutual TLS, the data directory's server certificate) in front of
    ``guichet serve gateway --socket``, whose socket only root and www-data may use."""
    data_dir = tmp_path_factory.mktemp("guichet-nginx")
    db_url = None
    if request.param == "postgres":
        server: PostgresServer = request.getfixturevalue("postgres_server")
        db_url = server.create_database(f"nginx_{uuid.uuid4().hex[:8]}")
    env = guichet_env(data_dir, db_url, GUICHET_PROXY_SOCKET_GROUP=PROXY_USER)
    run_guichet(env, "init", "--households", "200")
    pki = data_dir / "pki"
    # pytest's temporary directories are 0700: nginx's workers could not reach the socket.
    run = Path(tempfile.mkdtemp(prefix="guichet-run-"))
    run.chmod(0o755)
    socket_path = run / "gateway.sock"
    nginx = NginxServer(
        None,
        pki / "server.crt",
        pki / "server.key",
        upstream_socket=socket_path,
        user=PROXY_USER if AS_ROOT else None,
    )
    env["GUICHET_SANDBOX_PUBLIC_URL"] = nginx.url  # the token issuer and audience
    gateway = GatewayProcess(env, data_dir.parent / f"{data_dir.name}.log", unix_socket=socket_path)
    with gateway, nginx:
        assert gateway.proc is not None
        product = Product(
            data_dir=data_dir,
            env=env,
            portal_url="",
            sandbox_url=nginx.url,
            production_url="",
            db_url=db_url or f"sqlite:///{data_dir / 'guichet.db'}",
            proc=gateway.proc,
            log_file=gateway.log_file,
        )
        product.credentials = json.loads((data_dir / "demo" / "credentials.json").read_text())
        yield Stack(product, gateway)
    shutil.rmtree(run, ignore_errors=True)


@pytest.fixture
def product(stack: Stack) -> Product:
    return stack.product


@pytest.fixture
def gateway(stack: Stack) -> GatewayProcess:
    return stack.gateway


def _journal(product: Product, correlation_id: str) -> dict[str, Any]:
    """The record of one call, as ``guichet journal export --format jsonl`` gives it."""
    out = product.guichet("journal", "export", "--format", "jsonl").stdout
    for line in out.splitlines():
        record: dict[str, Any] = json.loads(line)
        if record["correlation_id"] == correlation_id:
            return record
    raise AssertionError(f"no journal record for {correlation_id}")


def _demo_token(product: Product) -> str:
    with product.http(cert=product.demo_cert()) as c:
        return product.token(c)


def _demo_thumbprint(product: Product) -> str:
    return certificate_info(Path(product.credentials["cert_file"]).read_bytes()).thumbprint


def _refused(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == code


def test_demo_partner_through_nginx(product: Product) -> None:
    with product.http(cert=product.demo_cert()) as c:
        token = product.token(c)
        r = c.get(IR, headers=api_headers(token))
    assert r.status_code == 200, r.text
    assert "rfr" in r.json()
    record = _journal(product, r.headers["x-correlation-id"])
    assert record["outcome"] == "ok"
    assert record["source_ip"] == "127.0.0.1"
    assert record["cert_thumbprint"] == _demo_thumbprint(product)


def test_no_client_certificate(product: Product) -> None:
    token = _demo_token(product)
    with product.http() as c:
        r = c.get(IR, headers=api_headers(token))
    _refused(r, 401, "certificate_missing")


def test_expired_certificate_reaches_the_gateway_and_is_refused(
    product: Product, gateway: GatewayProcess, tmp_path: Path
) -> None:
    pki: LocalPki = ensure_local_pki(product.data_dir / "pki", NOW, hosts=["127.0.0.1"])
    expired = issue_client_certificate(
        pki, "expire", "Commune expirée", 30, NOW - dt.timedelta(days=400)
    )
    partner = make_partner(
        product.session_factory, pki, tmp_path, NOW, name="Commune expirée", certificate=expired
    )
    with product.session_factory() as session:
        generation = read_generation(session)
    gateway.wait_all_workers(lambda r: r.json()["policyGeneration"] >= generation, timeout=10)
    cert = (str(partner.cert_file), str(partner.key_file))
    with product.http(cert=cert) as c:
        r = c.post(
            "/token",
            data={"grant_type": "client_credentials"},
            auth=(partner.client_id, partner.client_secret),
        )
        assert r.status_code == 401, r.text  # RFC 6749 §5.2, from the gateway, not nginx
        assert r.json()["error"] == "invalid_client"
        r = c.get(IR, headers=api_headers(_demo_token(product)))
    _refused(r, 401, "certificate_expired")
    record = _journal(product, r.headers["x-correlation-id"])
    assert record["outcome"] == "certificate_expired"
    assert record["cert_thumbprint"] == certificate_info(expired[0]).thumbprint


def test_forwarded_for_from_the_client_is_not_believed(product: Product) -> None:
    """nginx appends the address it saw; the gateway takes that one, not the caller's claim."""
    token = _demo_token(product)
    with product.http(cert=product.demo_cert()) as c:
        r = c.get(IR, headers=api_headers(token) | {"X-Forwarded-For": "10.0.0.1"})
    assert r.status_code == 200, r.text
    assert _journal(product, r.headers["x-correlation-id"])["source_ip"] == "127.0.0.1"


def test_forwarded_for_cannot_borrow_a_declared_address(product: Product) -> None:
    """From 127.0.0.2 through nginx, claiming the declared 127.0.0.1 does not help."""
    token = _demo_token(product)
    with product.http(cert=product.demo_cert(), local_address=OUTSIDER) as c:
        r = c.get(IR, headers=api_headers(token) | {"X-Forwarded-For": "127.0.0.1"})
    _refused(r, 403, "ip_not_allowed")
    record = _journal(product, r.headers["x-correlation-id"])
    assert record["outcome"] == "ip_not_allowed"
    assert record["source_ip"] == OUTSIDER


@pytest.mark.skipif(not AS_ROOT, reason="runs a process as another account (nobody): root only")
def test_a_local_user_cannot_reach_the_gateway_socket(gateway: GatewayProcess) -> None:
    """The forgery of issue 12 (``Client-Cert`` holding the partner's public certificate,
    sent straight to the gateway) needs the socket: another account cannot connect to it."""
    assert gateway.unix_socket is not None
    info = gateway.unix_socket.stat()
    assert stat.S_IMODE(info.st_mode) == 0o660
    assert info.st_gid == grp.getgrnam(PROXY_USER).gr_gid
    connect = (
        "import socket\n"
        "try:\n"
        f"    socket.socket(socket.AF_UNIX).connect({str(gateway.unix_socket)!r})\n"
        "except PermissionError:\n"
        "    print('EACCES')\n"
    )

    done = subprocess.run(
        ["/usr/bin/python3", "-c", connect],
        user=65534,  # nobody
        group=65534,
        extra_groups=[],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        cwd="/",
    )

    assert done.stdout.strip() == "EACCES", done.stderr


def test_the_journal_verifies(product: Product) -> None:
    assert product.guichet("journal", "verify").returncode == 0
