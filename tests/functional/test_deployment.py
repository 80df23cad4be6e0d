"""The production deployment of docs/operator-guide.md, run as written (issue 12): real nginx
with ``deploy/nginx/guichet.conf``, the gateways, the portal and the sandbox federation each
on the Unix socket only nginx's user may use, ``guichet init --production``.

A local user forging ``Client-Cert`` cannot reach the sockets, and over TCP the header is
ignored even from a ``GUICHET_TRUSTED_PROXIES`` address; the nginx path works end to end with
no SPI in nginx's logs; a backup restored on a fresh directory and a fresh database passes
``journal verify`` (its signed checkpoint included) and serves a production call.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import signal
import ssl
import stat
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from guichet.db import make_engine, make_sessionmaker
from guichet.habilitation.models import Environment
from guichet.pki import LocalPki, certificate_info
from tests.conftest import BACKENDS
from tests.functional.conftest import api_headers
from tests.support import certs
from tests.support.factories import Partner, make_partner
from tests.support.gateway_process import GatewayProcess, guichet_env, run_guichet
from tests.support.nginx import NGINX
from tests.support.postgres import PostgresServer, free_port

pytestmark = [
    pytest.mark.nginx,
    pytest.mark.skipif(
        os.geteuid() != 0,
        reason="as on a host: nginx's workers as www-data, a forger as nobody (root only)",
    ),
]

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "deploy" / "nginx" / "guichet.conf"
PROXY_USER = "www-data"  # Debian's nginx user, the group of guichet's sockets
LOCAL_USER = 65534  # nobody: any other local account
SPI = "3999999930262"
NOW = dt.datetime.now(dt.UTC)
YEAR = NOW.year - 1
IR = f"/impotparticulier/1.0/spi/{SPI}/situations/ir/assiettes/annrev/{YEAR}"
ORIGINS = (
    "portail.guichet.example",
    "sandbox.api.guichet.example",
    "api.guichet.example",
    "federation.sandbox.guichet.example",
)
WRAPPER = """\
user {user};
worker_processes 1;
error_log {dir}/nginx-main.log info;
pid {dir}/nginx.pid;
events {{
    worker_connections 256;
}}
http {{
    access_log {dir}/nginx-access.log;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    include {dir}/guichet.conf;
}}
"""


def _production_line(spi: str) -> str:
    """One line of the provider's extract (``guichet data import impot-particulier``)."""
    record = {
        "rfr": 31_250,
        "nbPart": 1.5,
        "sitFam": "D",
        "pac": {"nbPac": 1, "nbPacF": 0, "nbPacH": 1},
        "nmNaiDec1": "LEROY",
        "dateNaisDec1": {"jour": "15", "mois": "01", "annee": "1985"},
        "aftDetail": {"voie": "30 RUE ORDENER", "getcodePostal": "75018 PARIS"},
        "sitParIso": None,
        "indDeficit": "0",
        "rev": {"tspr": [{"code": "1AJ", "valeur": "34722"}]},
        "sitParDeclaree": {"sitPartP": "0", "sitPartF": "0", "indNonSeul": "0"},
        "indOptionImpotSepar": "0",
        "dateDebutPeriode": f"{YEAR}-01-01",
        "dateFinPeriode": f"{YEAR}-12-31",
        "typeAvis": 1,
        "spiDec1": spi,
    }
    line = {"spi": spi, "annrev": YEAR, "rang": 1, "foyer": f"F-{spi}", "record": record}
    return json.dumps(line)


@dataclass
class Nginx:
    """nginx running ``deploy/nginx/guichet.conf`` with its paths moved into ``dir`` and each
    origin on a loopback port of its own."""

    dir: Path
    run: Path
    tls: Path
    ports: dict[str, int] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    def url(self, origin: str) -> str:
        return f"https://127.0.0.1:{self.ports[origin]}"

    def start(self) -> Nginx:
        site = SITE.read_text()
        site = site.replace("/run/guichet/", f"{self.run}/")
        site = site.replace("/etc/guichet/tls/", f"{self.tls}/")
        site = site.replace("/var/log/nginx/", f"{self.dir}/")
        site = site.replace("listen 80;", f"listen 127.0.0.1:{free_port()};")

        def one_port(match: re.Match[str]) -> str:
            port = self.ports[match.group(2)]
            return f"listen 127.0.0.1:{port} ssl;{match.group(1)}server_name {match.group(2)};"

        site, count = re.subn(r"listen 443 ssl;(\s+)server_name (\S+);", one_port, site)
        assert count == len(ORIGINS)
        (self.dir / "guichet.conf").write_text(site)
        conf = self.dir / "nginx.conf"
        conf.write_text(WRAPPER.format(dir=self.dir, user=PROXY_USER))
        cmd = [NGINX, "-p", str(self.dir), "-c", str(conf), "-e", str(self.dir / "nginx-main.log")]
        check = subprocess.run([*cmd, "-t"], capture_output=True, text=True, check=False)
        assert check.returncode == 0, f"nginx refuses deploy/nginx/guichet.conf:\n{check.stderr}"
        self.proc = subprocess.Popen([*cmd, "-g", "daemon off;"], stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                with httpx.Client(verify=False, timeout=1) as c:  # noqa: S501 - reachability only
                    c.get(self.url("portail.guichet.example") + "/nginx-probe")
                return self
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("nginx did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def logs(self) -> str:
        return "".join(
            p.read_text(errors="replace") for p in sorted(self.dir.glob("guichet-*.log"))
        )


@dataclass
class Origin:
    """``guichet serve portal|federation --socket …``, up once its socket answers ``path``."""

    env: dict[str, str]
    args: list[str]
    socket: Path
    log_file: Path
    path: str = "/healthz"
    proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 90) -> Origin:
        with self.log_file.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "guichet",
                    "serve",
                    *self.args,
                    "--socket",
                    str(self.socket),
                ],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    def wait(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.args[0]} exited:\n{self.log_file.read_text()}")
            try:
                with httpx.Client(transport=httpx.HTTPTransport(uds=str(self.socket))) as c:
                    if c.get(f"http://origin{self.path}").status_code == 200:
                        return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.args[0]} not ready:\n{self.log_file.read_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


@dataclass
class Deployment:
    data_dir: Path
    env: dict[str, str]  # the production gateway's, as /etc/guichet/production.env gives it
    db_url: str
    nginx: Nginx
    partner: Partner
    ca_file: Path  # the local CA, which signs the servers' certificates here
    run: Path
    backend: str
    scratch: Path

    def guichet(self, *args: str, env: dict[str, str] | None = None) -> str:
        done = run_guichet(env or self.env, *args)
        return done.stdout + done.stderr

    def client(self, origin: str, cert: tuple[str, str] | None = None) -> httpx.Client:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        if cert:
            context.load_cert_chain(*cert)
        return httpx.Client(
            base_url=self.nginx.url(origin), verify=context, timeout=30, trust_env=False
        )

    @property
    def partner_cert(self) -> tuple[str, str]:
        return str(self.partner.cert_file), str(self.partner.key_file)

    def token(self, client: httpx.Client) -> str:
        r = client.post(
            "/token",
            data={"grant_type": "client_credentials"},
            auth=(self.partner.client_id, self.partner.client_secret),
        )
        assert r.status_code == 200, r.text
        return str(r.json()["access_token"])

    def record(self, correlation_id: str, env: dict[str, str] | None = None) -> dict[str, Any]:
        out = run_guichet(env or self.env, "journal", "export", "--format", "jsonl").stdout
        for line in out.splitlines():
            record: dict[str, Any] = json.loads(line)
            if record["correlation_id"] == correlation_id:
                return record
        raise AssertionError(f"no journal record for {correlation_id}")


def _traversable_dir(prefix: str) -> Path:
    """A directory nginx's workers (www-data) may enter; pytest's own are 0700."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


@pytest.fixture(scope="module", params=BACKENDS)
def deployment(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    scratch = tmp_path_factory.mktemp("deployment")
    data_dir = scratch / "var"
    db_url = None
    if request.param == "postgres":
        server: PostgresServer = request.getfixturevalue("postgres_server")
        db_url = server.create_database(f"deploy_{uuid.uuid4().hex[:8]}")
    run = _traversable_dir("guichet-run-")
    nginx = Nginx(_traversable_dir("guichet-nginx-"), run, scratch / "tls")
    # The ports first: the public origins are in every service's settings, init's included.
    nginx.ports = {origin: free_port() for origin in ORIGINS}
    common = guichet_env(
        data_dir,
        db_url,
        GUICHET_PROXY_SOCKET_GROUP=PROXY_USER,
        # The old layout's setting, left in on purpose: over TCP it must not matter.
        GUICHET_TRUSTED_PROXIES="127.0.0.1/32",
        GUICHET_OUTBOX_WEB="false",
        GUICHET_PORTAL_PUBLIC_URL=nginx.url("portail.guichet.example"),
        GUICHET_SANDBOX_PUBLIC_URL=nginx.url("sandbox.api.guichet.example"),
        GUICHET_PRODUCTION_PUBLIC_URL=nginx.url("api.guichet.example"),
        GUICHET_FEDERATION_PUBLIC_URL=nginx.url("federation.sandbox.guichet.example"),
        GUICHET_FEDERATION_ISSUER=nginx.url("federation.sandbox.guichet.example"),
    )
    run_guichet(common, "init", "--production", "--households", "200", timeout=300)
    pki = data_dir / "pki"
    nginx.tls.mkdir()
    for name in ("portal", "sandbox", "production", "federation"):
        shutil.copy(pki / "server.crt", nginx.tls / f"{name}.crt")
        shutil.copy(pki / "server.key", nginx.tls / f"{name}.key")
    nginx.start()
    # Production partners' certificates chain to the operator's authority, not the local CA.
    operator: LocalPki = certs.make_ca(scratch / "operator-ca", NOW)
    production_env = common | {"GUICHET_CLIENT_CA_FILE": str(operator.ca_cert_file)}
    database = db_url or f"sqlite:///{data_dir / 'guichet.db'}"
    engine = make_engine(database)
    partner = make_partner(
        make_sessionmaker(engine),
        operator,
        scratch / "partner",
        NOW,
        name="Commune de Prodville",
        siret="21690123100011",
        environment=Environment.PRODUCTION,
    )
    engine.dispose()
    extract = scratch / "extract.jsonl"
    extract.write_text(_production_line(SPI) + "\n", encoding="utf-8")
    run_guichet(production_env, "data", "import", "impot-particulier", str(extract))
    gateway = GatewayProcess(
        production_env,
        scratch / "production.log",
        workers=2,
        unix_socket=run / "production" / "gateway.sock",
        environment="production",
    )
    # The portal asks the federation's public origin for its discovery document: here its
    # certificate is the local CA's (a real deployment's is publicly trusted).
    portal_env = common | {"SSL_CERT_FILE": str(pki / "ca.crt")}
    portal = Origin(portal_env, ["portal"], run / "portal" / "portal.sock", scratch / "portal.log")
    federation = Origin(
        common,
        ["federation"],
        run / "federation" / "federation.sock",
        scratch / "federation.log",
        path="/.well-known/openid-configuration",
    )
    try:
        portal.start()
        federation.start()
        gateway.start(timeout=120)
        portal.wait()
        federation.wait()
        yield Deployment(
            data_dir,
            production_env,
            database,
            nginx,
            partner,
            pki / "ca.crt",
            run,
            request.param,
            scratch,
        )
    finally:
        gateway.stop()
        portal.stop()
        federation.stop()
        nginx.stop()
        shutil.rmtree(run, ignore_errors=True)
        shutil.rmtree(nginx.dir, ignore_errors=True)


def _refused(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    assert r.json()["code"] == code


# --- the proxy channel --------------------------------------------------------------------


def test_production_call_through_nginx(deployment: Deployment) -> None:
    with deployment.client("api.guichet.example", deployment.partner_cert) as c:
        r = c.get(IR, headers=api_headers(deployment.token(c)))

    assert r.status_code == 200, r.text
    assert r.json()["rfr"] == 31_250
    record = deployment.record(r.headers["x-correlation-id"])
    assert record["environment"] == "production"
    assert record["source_ip"] == "127.0.0.1"  # nginx's X-Forwarded-For, on the socket
    assert record["cert_thumbprint"] == certificate_info(deployment.partner.cert_pem).thumbprint


def test_sockets_are_nginx_s_only(deployment: Deployment) -> None:
    for name in ("production/gateway.sock", "portal/portal.sock", "federation/federation.sock"):
        info = (deployment.run / name).stat()
        assert stat.S_ISSOCK(info.st_mode)
        assert stat.S_IMODE(info.st_mode) == 0o660, name
        assert info.st_gid == _gid(PROXY_USER), name


def _gid(group: str) -> int:
    import grp

    return grp.getgrnam(group).gr_gid


FORGER = """
import socket, sys
request = (
    "GET {path} HTTP/1.1\\r\\nHost: api\\r\\nAuthorization: Bearer {token}\\r\\n"
    "Client-Cert: {cert}\\r\\nX-Forwarded-For: 127.0.0.1\\r\\nConnection: close\\r\\n\\r\\n"
)
try:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect({socket!r})
except PermissionError:
    print("EACCES")
    sys.exit(0)
s.sendall(request.encode())
print(s.recv(65536).decode(errors="replace"))
"""


def test_a_local_user_forging_client_cert_cannot_reach_the_gateway(
    deployment: Deployment,
) -> None:
    """Issue 12 §1: another account of the host, holding the partner's public certificate,
    its client id and secret (hence a token), cannot speak on the proxy's channel."""
    with deployment.client("api.guichet.example", deployment.partner_cert) as c:
        token = deployment.token(c)
    script = FORGER.format(
        path=IR,
        token=token,
        cert=quote(deployment.partner.cert_pem.decode(), safe=""),
        socket=str(deployment.run / "production" / "gateway.sock"),
    )

    done = subprocess.run(
        ["/usr/bin/python3", "-c", script],
        user=LOCAL_USER,
        group=LOCAL_USER,
        extra_groups=[],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        cwd="/",
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "EACCES"


def test_client_cert_over_tcp_is_ignored_even_from_a_trusted_proxy_address(
    deployment: Deployment,
) -> None:
    """The layout the issue found: a gateway on plain HTTP on loopback with
    GUICHET_TRUSTED_PROXIES=127.0.0.1/32. The forged header no longer counts."""
    with deployment.client("api.guichet.example", deployment.partner_cert) as c:
        token = deployment.token(c)
    log = deployment.scratch / "tcp-gateway.log"
    tcp = GatewayProcess(deployment.env, log, tls=False, environment="production")
    forged = api_headers(token) | {
        "Client-Cert": quote(deployment.partner.cert_pem.decode(), safe=""),
        "X-Forwarded-For": "127.0.0.1",
    }
    with tcp, tcp.client() as c:
        r = c.get(IR, headers=forged)

    _refused(r, 401, "certificate_missing")
    record = deployment.record(r.headers["x-correlation-id"])
    assert record["cert_thumbprint"] is None


def test_client_cert_sent_to_nginx_is_replaced(deployment: Deployment) -> None:
    """Without a certificate in the handshake, nginx forwards none: the caller's header is gone."""
    with deployment.client("api.guichet.example", deployment.partner_cert) as c:
        token = deployment.token(c)
    forged = api_headers(token) | {
        "Client-Cert": quote(deployment.partner.cert_pem.decode(), safe="")
    }
    with deployment.client("api.guichet.example") as c:
        r = c.get(IR, headers=forged)

    _refused(r, 401, "certificate_missing")


def test_portal_and_federation_through_nginx(deployment: Deployment) -> None:
    federation = deployment.nginx.url("federation.sandbox.guichet.example")
    with deployment.client("portail.guichet.example") as c:
        assert c.get("/").status_code == 200
    with deployment.client("federation.sandbox.guichet.example") as c:
        r = c.get("/.well-known/openid-configuration")
    assert r.status_code == 200, r.text
    assert r.json()["issuer"] == federation


def test_who_read_my_data_signs_in_at_the_served_federation(deployment: Deployment) -> None:
    """Issue 12 §5: outside ``guichet run``, the citizen's space reaches the federation."""
    federation = deployment.nginx.url("federation.sandbox.guichet.example")
    with deployment.client("portail.guichet.example") as c:
        start = c.get("/mes-donnees/connexion")
    assert start.status_code == 302, start.text
    assert start.headers["location"].startswith(federation + "/")
    with deployment.client("federation.sandbox.guichet.example") as c:
        page = c.get(start.headers["location"], follow_redirects=True)
    assert page.status_code == 200, page.text
    assert str(page.url).startswith(federation + "/")  # its sign-in page, fictive citizens'
    assert "Qui a consulté mes données" in page.text  # the portal, named as the client


def test_nginx_logs_hold_no_spi(deployment: Deployment) -> None:
    with deployment.client("api.guichet.example", deployment.partner_cert) as c:
        c.get(IR + "?trace=1", headers=api_headers(deployment.token(c)))
    with deployment.client("api.guichet.example") as c:
        c.get(IR)  # refused: no certificate

    logs = deployment.nginx.logs()
    assert "/impotparticulier/1.0" in logs
    assert SPI not in logs
    assert "trace=1" not in logs


# --- backup and restore -------------------------------------------------------------------


def test_backup_restored_on_a_fresh_directory(
    deployment: Deployment, request: pytest.FixtureRequest
) -> None:
    """``guichet backup`` while the gateways run; ``guichet restore`` on a fresh data
    directory and database; ``journal verify`` passes (the checkpoint written before the
    backup included) and the restored production gateway serves the partner."""
    with deployment.client("api.guichet.example", deployment.partner_cert) as c:
        assert c.get(IR, headers=api_headers(deployment.token(c))).status_code == 200
    deployment.guichet("journal", "checkpoint")
    target = deployment.scratch / "backup"
    deployment.guichet("backup", str(target))
    assert stat.S_IMODE(target.stat().st_mode) == 0o700

    fresh_dir = deployment.scratch / "fresh"
    fresh_db = None
    if deployment.backend == "postgres":
        server: PostgresServer = request.getfixturevalue("postgres_server")
        fresh_db = server.create_database(f"restored_{uuid.uuid4().hex[:8]}")
    fresh = guichet_env(fresh_dir, fresh_db) | {
        k: v
        for k, v in deployment.env.items()
        if k in ("GUICHET_CLIENT_CA_FILE", "GUICHET_PROXY_SOCKET_GROUP")
    }
    out = deployment.guichet("restore", str(target), env=fresh)
    assert "restaurée" in out

    verified = deployment.guichet("journal", "verify", env=fresh)
    assert "Journal intègre" in verified
    assert "1 concordent" in verified

    again = subprocess.run(
        [sys.executable, "-m", "guichet", "restore", str(target)],
        env=fresh,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert again.returncode == 1
    assert "n'est pas vide" in again.stderr

    # The restored host serves the partner (TLS here: the server certificate came back too).
    gateway = GatewayProcess(
        fresh,
        deployment.scratch / "restored.log",
        environment="production",
        ca_file=fresh_dir / "pki" / "ca.crt",
    )
    with gateway, gateway.client(cert=deployment.partner_cert) as c:
        r = c.post(
            "/token",
            data={"grant_type": "client_credentials"},
            auth=(deployment.partner.client_id, deployment.partner.client_secret),
        )
        assert r.status_code == 200, r.text
        call = c.get(IR, headers=api_headers(r.json()["access_token"]))
    assert call.status_code == 200, call.text
    assert call.json()["rfr"] == 31_250
    assert deployment.record(call.headers["x-correlation-id"], env=fresh)["outcome"] == "ok"


def test_guichet_serve_refuses_both_or_neither_listener(tmp_path: Path) -> None:
    env = guichet_env(tmp_path / "var", None)
    done = subprocess.run(
        [sys.executable, "-m", "guichet", "serve", "federation"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "--port ou --socket" in done.stdout + done.stderr
