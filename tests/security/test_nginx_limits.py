"""Issue 11 §4, the production layout: nginx in front of every origin applies the same
limits as guichet (``tests/support/nginx.py``, ``LIMIT_DIRECTIVES``) — per-client connections,
request head and body timeouts, body size — before anything reaches guichet."""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from guichet.clock import SystemClock
from guichet.connections import ConnectionLimits
from guichet.gateway.tls import make_server
from guichet.pki import LocalPki
from tests.support import certs
from tests.support.nginx import NginxServer

pytestmark = pytest.mark.nginx

PER_CLIENT = 3
LIMITS = ConnectionLimits(per_client=PER_CLIENT, header_timeout=1, body_timeout=1)
MAX_BODY = 16 * 1024


async def slow(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An upstream that takes its time on ``/lent`` (the request stays in progress)."""
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    if scope["path"] == "/lent":
        await asyncio.sleep(1.5)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture
def pki(tmp_path: Path) -> LocalPki:
    return certs.make_ca(tmp_path / "pki", SystemClock().now())


@pytest.fixture
def nginx(pki: LocalPki) -> Iterator[NginxServer]:
    server = make_server(slow, host="127.0.0.1", port=0, ssl_context=None)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive(), "uvicorn stopped"
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    port = int(server.servers[0].sockets[0].getsockname()[1])
    try:
        with NginxServer(
            port, pki.server_cert_file, pki.server_key_file, limits=LIMITS, max_body_bytes=MAX_BODY
        ) as front:
            yield front
    finally:
        server.should_exit = True
        thread.join(30)


def client(pki: LocalPki, source: str) -> httpx.Client:
    context = ssl.create_default_context(cafile=str(pki.ca_cert_file))
    transport = httpx.HTTPTransport(verify=context, local_address=source)
    return httpx.Client(transport=transport, timeout=10)


def test_nginx_caps_the_requests_one_client_holds(nginx: NginxServer, pki: LocalPki) -> None:
    def call(source: str) -> int:
        with client(pki, source) as http:
            return http.get(nginx.url + "/lent").status_code

    with ThreadPoolExecutor(max_workers=3 * PER_CLIENT + 1) as pool:
        flood = [pool.submit(call, "127.0.0.1") for _ in range(3 * PER_CLIENT)]
        time.sleep(0.3)
        other = pool.submit(call, "127.0.0.2")
        statuses = [f.result() for f in flood]
    assert statuses.count(200) <= PER_CLIENT
    assert statuses.count(429) >= 2 * PER_CLIENT
    assert other.result() == 200


def test_nginx_cuts_a_slowloris_header(nginx: NginxServer, pki: LocalPki) -> None:
    context = ssl.create_default_context(cafile=str(pki.ca_cert_file))
    raw = socket.create_connection((nginx.host, nginx.port), timeout=5)
    with context.wrap_socket(raw, server_hostname=nginx.host) as tls:
        tls.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        tls.settimeout(0.2)
        closed = False
        while time.monotonic() - started < 5:
            try:
                tls.sendall(b"X-Lent: a\r\n")
                if not tls.recv(4096):
                    closed = True
                    break
            except TimeoutError:
                continue
            except OSError:
                closed = True
                break
    assert closed, "nginx kept a slow request head open"
    assert time.monotonic() - started < 4


def test_nginx_refuses_a_body_beyond_the_limit(nginx: NginxServer, pki: LocalPki) -> None:
    with client(pki, "127.0.0.1") as http:
        assert http.post(nginx.url + "/", content=b"a" * MAX_BODY).status_code == 200
        assert http.post(nginx.url + "/", content=b"a" * (MAX_BODY + 1)).status_code == 413


def test_the_directives_are_guichets_defaults(pki: LocalPki) -> None:
    config = NginxServer(1, pki.server_cert_file, pki.server_key_file)._settings["limits"]
    assert "client_header_timeout 10s;" in config
    assert "client_body_timeout 30s;" in config
    assert "keepalive_timeout 5s;" in config
    assert "limit_conn per_client 64;" in config
    assert "client_max_body_size 65536;" in config
