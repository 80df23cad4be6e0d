"""Behind real nginx terminating mutual TLS: the certificate and client IP reach the app on
the proxy channel (a Unix socket, issue 12), and the same headers over TCP are ignored — from
anyone, a trusted proxy's address included (issue 3 §4)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from guichet import edge
from guichet.clock import SystemClock
from guichet.errors import GuichetError
from guichet.gateway.tls import make_server
from guichet.pki import LocalPki
from tests.support import certs
from tests.support.nginx import NginxServer

pytestmark = pytest.mark.nginx

TRUSTED = [ipaddress.ip_network("127.0.0.1/32")]
OUTSIDER = "127.0.0.2"  # a loopback source address that is not a trusted proxy


async def whoami(scope: Scope, receive: Receive, send: Send) -> None:
    """Reports what ``guichet.edge`` makes of the request."""
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    try:
        presented = edge.client_certificate(scope)
        found = presented.thumbprint if presented else None
    except GuichetError as exc:
        found = f"error:{exc.code}"
    report = {"thumbprint": found, "client_ip": edge.client_ip(scope, TRUSTED)}
    if body or scope["query_string"]:
        report["request"] = f"{scope['method']} {scope['query_string'].decode()} {body.decode()}"
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": json.dumps(report).encode()})


@pytest.fixture
def now() -> dt.datetime:
    """Real time: the handshakes check the server certificate against the system clock."""
    return SystemClock().now()


@pytest.fixture
def pki(tmp_path: Path, now: dt.datetime) -> LocalPki:
    return certs.make_ca(tmp_path / "pki", now)


@pytest.fixture
def app_port() -> Iterator[int]:
    """The app, plain HTTP on 127.0.0.1, as the gateway runs behind a proxy."""
    server = make_server(whoami, host="127.0.0.1", port=0, ssl_context=None)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    yield int(server.servers[0].sockets[0].getsockname()[1])
    server.should_exit = True
    thread.join(30)


@pytest.fixture
def app_socket() -> Iterator[Path]:
    """The same app on a Unix socket, the proxy channel (``edge.ProxyChannel``)."""
    run = Path(tempfile.mkdtemp(prefix="guichet-edge-"))
    run.chmod(0o755)  # nginx's workers run as nobody
    path = run / "app.sock"
    server = make_server(
        edge.ProxyChannel(whoami), host="127.0.0.1", port=0, ssl_context=None, uds=str(path)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    yield path
    server.should_exit = True
    thread.join(30)
    shutil.rmtree(run, ignore_errors=True)


@pytest.fixture
def nginx(app_socket: Path, pki: LocalPki) -> Iterator[NginxServer]:
    with NginxServer(
        None, pki.server_cert_file, pki.server_key_file, upstream_socket=app_socket
    ) as server:
        yield server


def _via_nginx(
    nginx: NginxServer,
    pki: LocalPki,
    tmp_path: Path,
    credential: certs.Credential | None = None,
    *,
    source: str | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    context = certs.client_context(pki.ca_cert_file, credential, tmp_path / "client")
    transport = httpx.HTTPTransport(verify=context, local_address=source)
    with httpx.Client(transport=transport, timeout=5) as client:
        response = client.get(nginx.url + "/", headers=headers)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def _direct(app_port: int, source: str, headers: dict[str, str]) -> dict[str, Any]:
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(transport=transport, timeout=5) as client:
        response = client.get(f"http://127.0.0.1:{app_port}/", headers=headers)
    result: dict[str, Any] = response.json()
    return result


def test_certificate_presented_to_nginx_arrives_with_its_thumbprint(
    nginx: NginxServer, pki: LocalPki, tmp_path: Path, now: dt.datetime
) -> None:
    credential = certs.client_cert(pki, now)

    seen = _via_nginx(nginx, pki, tmp_path, credential)

    assert seen == {"thumbprint": credential.thumbprint, "client_ip": "127.0.0.1"}


@pytest.mark.parametrize("kind", ["self_signed", "expired", "not_yet_valid"])
def test_nginx_hands_over_certificates_the_gateway_judges(
    nginx: NginxServer, pki: LocalPki, tmp_path: Path, now: dt.datetime, kind: str
) -> None:
    """``optional_no_ca``: a self-signed or out-of-date certificate is the gateway's to refuse."""
    credential = {
        "self_signed": lambda: certs.self_signed(now),
        "expired": lambda: certs.expired_client_cert(pki, now),
        "not_yet_valid": lambda: certs.future_client_cert(pki, now),
    }[kind]()

    seen = _via_nginx(nginx, pki, tmp_path, credential)

    assert seen["thumbprint"] == credential.thumbprint


def test_client_ip_is_the_one_nginx_saw(nginx: NginxServer, pki: LocalPki, tmp_path: Path) -> None:
    forged = {"X-Forwarded-For": "10.9.9.9"}

    seen = _via_nginx(nginx, pki, tmp_path, source=OUTSIDER, headers=forged)

    assert seen == {"thumbprint": None, "client_ip": OUTSIDER}


def test_forged_client_cert_through_nginx_is_replaced(
    nginx: NginxServer, pki: LocalPki, tmp_path: Path, now: dt.datetime
) -> None:
    """nginx overwrites ``Client-Cert`` with what the handshake showed — here, nothing."""
    stolen = certs.client_cert(pki, now)

    seen = _via_nginx(
        nginx, pki, tmp_path, headers={"Client-Cert": quote(stolen.cert_text, safe="")}
    )

    assert seen["thumbprint"] is None


def test_headers_from_an_untrusted_peer_are_ignored(
    app_port: int, pki: LocalPki, now: dt.datetime
) -> None:
    stolen = certs.client_cert(pki, now)
    forged = {"Client-Cert": quote(stolen.cert_text, safe=""), "X-Forwarded-For": "10.9.9.9"}

    seen = _direct(app_port, OUTSIDER, forged)

    assert seen == {"thumbprint": None, "client_ip": OUTSIDER}


def test_same_headers_from_a_trusted_proxy_address_over_tcp_are_ignored(
    app_port: int, pki: LocalPki, now: dt.datetime
) -> None:
    """Issue 12: 127.0.0.1 is in the trusted proxies, but any local user speaks from there."""
    stolen = certs.client_cert(pki, now)
    forged = {"Client-Cert": quote(stolen.cert_text, safe=""), "X-Forwarded-For": "10.9.9.9"}

    seen = _direct(app_port, "127.0.0.1", forged)

    assert seen == {"thumbprint": None, "client_ip": "127.0.0.1"}


def test_same_headers_on_the_proxy_channel_are_believed(
    app_socket: Path, pki: LocalPki, now: dt.datetime
) -> None:
    """Control for the tests above: what makes the difference is the channel."""
    stolen = certs.client_cert(pki, now)
    forged = {"Client-Cert": quote(stolen.cert_text, safe=""), "X-Forwarded-For": "10.9.9.9"}

    with httpx.Client(transport=httpx.HTTPTransport(uds=str(app_socket)), timeout=5) as client:
        seen = client.get("http://app/", headers=forged).json()

    assert seen == {"thumbprint": stolen.thumbprint, "client_ip": "10.9.9.9"}


def test_certificate_error_path_keeps_method_query_and_body(
    nginx: NginxServer, pki: LocalPki, tmp_path: Path, now: dt.datetime
) -> None:
    """An expired certificate at ``POST /token`` must still reach the token endpoint whole."""
    credential = certs.expired_client_cert(pki, now)
    context = certs.client_context(pki.ca_cert_file, credential, tmp_path / "client")

    with httpx.Client(verify=context, timeout=5) as client:
        response = client.post(
            nginx.url + "/token?audience=sandbox", content=b"grant_type=client_credentials"
        )

    assert response.json() == {
        "thumbprint": credential.thumbprint,
        "client_ip": "127.0.0.1",
        "request": "POST audience=sandbox grant_type=client_credentials",
    }


def test_without_pass_through_nginx_refuses_expired_certificates_itself(
    app_port: int, pki: LocalPki, tmp_path: Path, now: dt.datetime
) -> None:
    """Control for the tests above: nginx's own answer is a bare 400 the gateway never sees."""
    credential = certs.expired_client_cert(pki, now)
    context = certs.client_context(pki.ca_cert_file, credential, tmp_path / "client")
    server = NginxServer(
        app_port, pki.server_cert_file, pki.server_key_file, pass_certificate_errors=False
    )

    with server, httpx.Client(verify=context, timeout=5) as client:
        response = client.get(server.url + "/")

    assert response.status_code == 400
    assert "SSL certificate error" in response.text
