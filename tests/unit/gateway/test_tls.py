"""The TLS edge with real handshakes: a uvicorn server from ``make_server`` and httpx."""

from __future__ import annotations

import datetime as dt
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from guichet import edge
from guichet.clock import SystemClock
from guichet.errors import GuichetError
from guichet.gateway.tls import (
    X509_V_FLAG_NO_CHECK_TIME,
    TrustStore,
    build_server_ssl_context,
    make_server,
)
from guichet.pki import LocalPki, certificate_info
from tests.support import certs


async def echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Reports what the gateway's checks would see."""
    if scope["type"] != "http":
        return
    tls = scope.get("extensions", {}).get("tls")
    try:
        presented = edge.client_certificate(scope)
        found = presented.thumbprint if presented else None
    except GuichetError as exc:
        found = f"error:{exc.code}"
    body = json.dumps(
        {
            "tls": tls,
            "thumbprint": found,
            "client_host": scope["client"][0],
            "client_port": scope["client"][1],
            "scheme": scope["scheme"],
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


@contextmanager
def serving(ssl_context: ssl.SSLContext | None, **options: Any) -> Iterator[str]:
    """Run ``echo`` behind ``make_server`` on a free 127.0.0.1 port; yield its origin."""
    server = make_server(echo, host="127.0.0.1", port=0, ssl_context=ssl_context, **options)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"{'https' if ssl_context else 'http'}://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(60)


@pytest.fixture
def now() -> dt.datetime:
    """Real time: the handshakes check the server certificate against the system clock."""
    return SystemClock().now()


@pytest.fixture
def pki(tmp_path: Path, now: dt.datetime) -> LocalPki:
    return certs.make_ca(tmp_path / "pki", now)


@pytest.fixture
def server_context(pki: LocalPki) -> ssl.SSLContext:
    return build_server_ssl_context(pki.server_cert_file, pki.server_key_file, [pki.ca_cert_file])


@pytest.fixture
def origin(server_context: ssl.SSLContext) -> Iterator[str]:
    with serving(server_context) as url:
        yield url


ClientFactory = Callable[[certs.Credential | None], httpx.Client]


@pytest.fixture
def client_for(pki: LocalPki, tmp_path: Path) -> Iterator[ClientFactory]:
    opened: list[httpx.Client] = []

    def make(credential: certs.Credential | None) -> httpx.Client:
        context = certs.client_context(pki.ca_cert_file, credential, tmp_path / "client")
        client = httpx.Client(verify=context, timeout=5)
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.close()


@pytest.mark.parametrize("http", ["httptools", "h11"])
@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_ca_issued_certificate_reaches_the_scope(
    pki: LocalPki,
    server_context: ssl.SSLContext,
    client_for: ClientFactory,
    now: dt.datetime,
    http: str,
    loop: str,
) -> None:
    credential = certs.client_cert(pki, now)

    with serving(server_context, http=http, loop=loop) as url:
        body = client_for(credential).get(url + "/").json()

    assert body["scheme"] == "https"
    chain = body["tls"]["client_cert_chain"]
    assert len(chain) == 1
    assert certificate_info(chain[0]) == certificate_info(credential.cert_pem)
    assert body["thumbprint"] == credential.thumbprint
    assert body["tls"]["client_cert_name"] == "O=Mairie de Test,CN=Partenaire de test"
    assert body["tls"]["client_cert_error"] is None
    assert body["tls"]["tls_version"] == 0x0304
    assert body["tls"]["cipher_suite"] in {0x1301, 0x1302, 0x1303}


def test_no_certificate_is_still_served(origin: str, client_for: ClientFactory) -> None:
    response = client_for(None).get(origin + "/healthz")

    assert response.status_code == 200
    assert response.json()["tls"]["client_cert_chain"] == []
    assert response.json()["tls"]["client_cert_name"] is None
    assert response.json()["thumbprint"] is None


@pytest.mark.parametrize("make", [certs.expired_client_cert, certs.future_client_cert])
def test_certificate_outside_its_dates_reaches_the_application(
    pki: LocalPki,
    origin: str,
    client_for: ClientFactory,
    now: dt.datetime,
    make: Callable[[LocalPki, Any], certs.Credential],
) -> None:
    """The handshake completes so that the control chain can answer 401 certificate_expired."""
    credential = make(pki, now)

    body = client_for(credential).get(origin + "/").json()

    assert body["thumbprint"] == credential.thumbprint


def test_without_no_check_time_an_expired_certificate_fails_the_handshake(
    pki: LocalPki, server_context: ssl.SSLContext, client_for: ClientFactory, now: dt.datetime
) -> None:
    """Control: the flag, not luck, is what lets expired certificates through."""
    assert server_context.verify_flags & X509_V_FLAG_NO_CHECK_TIME
    server_context.verify_flags = ssl.VerifyFlags(
        int(server_context.verify_flags) & ~X509_V_FLAG_NO_CHECK_TIME
    )
    credential = certs.expired_client_cert(pki, now)

    with serving(server_context) as url, pytest.raises(httpx.TransportError):
        client_for(credential).get(url + "/")


def test_untrusted_self_signed_certificate_is_refused(
    origin: str, client_for: ClientFactory, now: dt.datetime
) -> None:
    with pytest.raises(httpx.TransportError):
        client_for(certs.self_signed(now)).get(origin + "/")


def test_certificate_from_another_ca_is_refused(
    tmp_path: Path, origin: str, client_for: ClientFactory, now: dt.datetime
) -> None:
    other = certs.make_ca(tmp_path / "other-ca", now)
    with pytest.raises(httpx.TransportError):
        client_for(certs.client_cert(other, now)).get(origin + "/")


def test_registered_self_signed_certificate_is_accepted_without_restart(
    server_context: ssl.SSLContext, origin: str, client_for: ClientFactory, now: dt.datetime
) -> None:
    credential = certs.self_signed(now)
    with pytest.raises(httpx.TransportError):
        client_for(credential).get(origin + "/")

    store = TrustStore(server_context)
    assert store.add(credential.cert_text) is True
    assert store.add(credential.cert_pem) is False  # idempotent
    assert credential.thumbprint in store
    assert len(store) == 1

    body = client_for(credential).get(origin + "/").json()
    assert body["thumbprint"] == credential.thumbprint
    # Another unregistered one is still refused.
    with pytest.raises(httpx.TransportError):
        client_for(certs.self_signed(now, "Autre")).get(origin + "/")


def test_pinned_certificate_from_an_untrusted_ca_is_accepted_once_added(
    tmp_path: Path,
    server_context: ssl.SSLContext,
    origin: str,
    client_for: ClientFactory,
    now: dt.datetime,
) -> None:
    """Any registered certificate is a trust anchor as itself (partial chain)."""
    other = certs.make_ca(tmp_path / "other-ca", now)
    credential = certs.client_cert(other, now)

    TrustStore(server_context).add(credential.cert_pem)

    assert client_for(credential).get(origin + "/").json()["thumbprint"] == credential.thumbprint


def test_trust_store_rejects_garbage(server_context: ssl.SSLContext) -> None:
    with pytest.raises(ValueError, match="PEM certificate"):
        TrustStore(server_context).add("not a certificate")


def test_keep_alive_requests_all_carry_the_certificate(
    pki: LocalPki, origin: str, client_for: ClientFactory, now: dt.datetime
) -> None:
    credential = certs.client_cert(pki, now)
    client = client_for(credential)

    first = client.get(origin + "/one").json()
    second = client.get(origin + "/two").json()

    assert first["client_port"] == second["client_port"]  # one TCP connection
    assert first["thumbprint"] == second["thumbprint"] == credential.thumbprint


def test_plain_http_has_no_tls_extension() -> None:
    with serving(None) as url:
        body = httpx.get(url + "/", timeout=5).json()
    assert body["scheme"] == "http"
    assert body["tls"] is None
    assert body["thumbprint"] is None


def test_uvicorn_does_not_rewrite_the_client_from_proxy_headers() -> None:
    """Only guichet.edge decides whom to believe (uvicorn trusts 127.0.0.1 by default)."""
    with serving(None) as url:
        headers = {"X-Forwarded-For": "10.9.9.9", "X-Forwarded-Proto": "https"}
        body = httpx.get(url + "/", headers=headers, timeout=5).json()
    assert body["client_host"] == "127.0.0.1"
    assert body["client_port"] != 0
    assert body["scheme"] == "http"


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_shutdown_does_not_wait_for_idle_keep_alive_clients(
    pki: LocalPki, server_context: ssl.SSLContext, now: dt.datetime, loop: str
) -> None:
    client = httpx.Client(verify=certs.client_context(pki.ca_cert_file), timeout=5)
    with serving(server_context, loop=loop) as url:
        assert client.get(url + "/").status_code == 200
        stopping = time.monotonic()
    try:
        assert time.monotonic() - stopping < 5  # not asyncio's 30 s TLS shutdown wait
    finally:
        client.close()


def test_context_refuses_old_protocols(server_context: ssl.SSLContext) -> None:
    assert server_context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert server_context.verify_mode == ssl.CERT_OPTIONAL


def _raw_call(url: str, context: ssl.SSLContext, session: ssl.SSLSession | None) -> Any:
    host, port = url.removeprefix("https://").rsplit(":", 1)
    with (
        socket.create_connection((host, int(port)), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=host, session=session) as tls,
    ):
        tls.sendall(b"GET / HTTP/1.0\r\nHost: gateway\r\n\r\n")
        data = b""
        while chunk := tls.recv(65536):
            data += chunk
        return tls.session, tls.session_reused, json.loads(data.split(b"\r\n\r\n", 1)[1])


def test_resumed_tls_session_still_carries_the_certificate(
    pki: LocalPki, origin: str, now: dt.datetime, tmp_path: Path
) -> None:
    """curl and others resume sessions; the certificate comes back from the session."""
    credential = certs.client_cert(pki, now)
    context = certs.client_context(pki.ca_cert_file, credential, tmp_path / "client")

    session, _, first = _raw_call(origin, context, None)
    _, reused, second = _raw_call(origin, context, session)

    assert reused
    assert first["thumbprint"] == second["thumbprint"] == credential.thumbprint
