"""``guichet.edge`` on ASGI scopes (issue 12): the forwarded certificate and address are
believed on the proxy channel only; a direct TLS certificate always wins."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from guichet import edge
from guichet.pki import certificate_info
from tests.support import certs

TRUSTED = [ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("10.0.0.0/8")]
NOW = dt.datetime.now(dt.UTC)


@pytest.fixture(scope="module")
def pems(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    pki = certs.make_ca(Path(tmp_path_factory.mktemp("pki")), NOW)
    return certs.client_cert(pki, NOW).cert_text, certs.client_cert(pki, NOW, "Autre").cert_text


def scope(
    peer: str | None,
    headers: dict[str, str],
    *,
    channel: bool = False,
    tls_pem: str | None = None,
) -> dict[str, Any]:
    """A request's scope as uvicorn makes it (a Unix socket: no client address), through
    ``ProxyChannel`` when ``channel``."""
    raw: dict[str, Any] = {
        "type": "http",
        "client": (peer, 40000) if peer else None,
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "extensions": {"tls": {"client_cert_chain": [tls_pem]}} if tls_pem else {},
    }
    if not channel:
        return raw
    seen: dict[str, Any] = {}

    async def app(s: Any, _receive: Any, _send: Any) -> None:
        seen.update(s)

    asyncio.run(edge.ProxyChannel(app)(raw, None, None))  # type: ignore[arg-type]
    return seen


def forwarded(pem: str, address: str = "192.0.2.7") -> dict[str, str]:
    return {"Client-Cert": quote(pem, safe=""), "X-Forwarded-For": address}


@pytest.mark.parametrize("peer", ["127.0.0.1", "10.0.0.2", "192.0.2.1"])
def test_over_tcp_a_client_cert_header_is_never_believed(pems: tuple[str, str], peer: str) -> None:
    assert edge.client_certificate(scope(peer, forwarded(pems[0]))) is None


def test_on_the_proxy_channel_the_header_is_the_certificate(pems: tuple[str, str]) -> None:
    presented = edge.client_certificate(scope(None, forwarded(pems[0]), channel=True))
    assert presented is not None
    assert presented.thumbprint == certificate_info(pems[0].encode()).thumbprint


def test_a_direct_tls_certificate_wins_over_the_header(pems: tuple[str, str]) -> None:
    request = scope("127.0.0.1", forwarded(pems[1]), channel=True, tls_pem=pems[0])
    presented = edge.client_certificate(request)
    assert presented is not None
    assert presented.thumbprint == certificate_info(pems[0].encode()).thumbprint


def test_forwarded_address(pems: tuple[str, str]) -> None:
    headers = forwarded(pems[0])
    # a loopback peer may be any local user, trusted or not
    assert edge.client_ip(scope("127.0.0.1", headers), TRUSTED) == "127.0.0.1"
    # a trusted proxy of another host
    assert edge.client_ip(scope("10.0.0.2", headers), TRUSTED) == "192.0.2.7"
    # anyone else
    assert edge.client_ip(scope("192.0.2.1", headers), TRUSTED) == "192.0.2.1"
    # the proxy channel: nginx's $remote_addr
    assert edge.client_ip(scope(None, headers, channel=True), TRUSTED) == "192.0.2.7"
    # … even when that client is itself in the trusted ranges (a caller on nginx's host)
    local = forwarded(pems[0], "127.0.0.1")
    assert edge.client_ip(scope(None, local, channel=True), TRUSTED) == "127.0.0.1"
