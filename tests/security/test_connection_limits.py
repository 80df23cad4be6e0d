"""Issue 11 §4: one client holding idle or slow connections stopped every origin (no header
timeout, no per-client cap), and request bodies were read without bound.

Each origin is served here as ``guichet run`` and ``guichet serve`` serve it
(``guichet.platform.server_for``), on loopback, with small limits; the attacker is
127.0.0.1 and another client 127.0.0.2.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from starlette.types import Message

from guichet.connections import ConnectionGuard, ConnectionLimits
from guichet.federation.clients import register_client
from guichet.federation.models import ClientKind
from guichet.federation.providers import PROVIDERS
from guichet.gateway.tls import build_server_ssl_context
from guichet.habilitation.models import Environment
from guichet.platform import Listener, Platform, bind, server_for
from guichet.settings import Settings
from tests.unit.gateway.support import World, open_world

FEDERATION = "http://127.0.0.1:8600"  # the embedded federation's issuer (default settings)
ATTACKER = "127.0.0.1"
VISITOR = "127.0.0.2"
PER_CLIENT = 8
HEADER_TIMEOUT = 1.0
LIMITS = ConnectionLimits.from_settings(
    Settings(
        max_connections=256,
        max_connections_per_client=PER_CLIENT,
        header_timeout=HEADER_TIMEOUT,
        body_timeout=HEADER_TIMEOUT,
        keepalive_timeout=HEADER_TIMEOUT,
        max_header_bytes=8192,
    )
)
# What each origin answers a client that is served.
PROBES = {
    "portal": "/healthz",
    "sandbox": "/healthz",
    "federation": "/.well-known/openid-configuration",
}


@dataclass
class Origin:
    name: str
    host: str
    port: int
    tls: ssl.SSLContext | None  # the client's context, for the TLS gateway
    guard: ConnectionGuard  # the server's count of open connections per address

    def connect(self, source: str) -> socket.socket:
        raw = socket.create_connection(
            (self.host, self.port), timeout=5, source_address=(source, 0)
        )
        if self.tls is None:
            return raw
        return self.tls.wrap_socket(raw, server_hostname=self.host)

    def request(self, path: str) -> bytes:
        """The whole request head, as a browser sends it."""
        # The portal checks Host against its public origin (http://HOST:PORTAL_PORT here).
        host = "127.0.0.1:8000" if self.name == "portal" else f"{self.host}:{self.port}"
        return f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()

    def served(self, source: str) -> int:
        """The status another client gets, start to end of its answer."""
        with self.connect(source) as sock:
            sock.sendall(self.request(PROBES[self.name]))
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        return int(answer.split(b" ", 2)[1])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with open_world("sqlite", tmp_path_factory.mktemp("limits")) as world:
        yield world


def _apps(platform: Platform, name: str) -> object:
    if name == "portal":
        return platform.portal_app()
    if name == "federation":
        return platform.federation_app()
    return platform.gateway_app(Environment.SANDBOX)


@pytest.fixture(scope="module", params=list(PROBES))
def origin(world: World, request: pytest.FixtureRequest) -> Iterator[Origin]:
    """One origin served by uvicorn in a thread, under ``LIMITS``."""
    name: str = request.param
    platform = world.platforms[0]
    pki = world.pki
    server_tls = client_tls = None
    if name == "sandbox":
        server_tls = build_server_ssl_context(
            pki.server_cert_file, pki.server_key_file, [pki.ca_cert_file]
        )
        client_tls = ssl.create_default_context(cafile=str(pki.ca_cert_file))
    sock = bind("127.0.0.1", 0)
    server = server_for(Listener(name, _apps(platform, name), sock, server_tls), LIMITS)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive(), "uvicorn stopped"
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        guard = server.config.connection_guard  # type: ignore[attr-defined]
        yield Origin(name, "127.0.0.1", sock.getsockname()[1], client_tls, guard)
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


@pytest.fixture(autouse=True)
def attacker_share_free(request: pytest.FixtureRequest) -> None:
    """Each test starts with the attacker's whole share: a connection a previous test closed
    is released when the server notices, a moment after the client closed it."""
    if "origin" not in request.fixturenames:
        return
    origin: Origin = request.getfixturevalue("origin")
    deadline = time.monotonic() + 10
    while origin.guard.open.get(ATTACKER):
        assert time.monotonic() < deadline, "the attacker's connections were never released"
        time.sleep(0.02)


def is_open(sock: socket.socket) -> bool:
    """Still open and silent; a connection the server answered and closed is not."""
    sock.setblocking(False)
    try:
        sock.recv(1)  # EOF, or what it answered before closing (a 429)
        return False
    except (BlockingIOError, ssl.SSLWantReadError):
        return True
    except OSError:
        return False  # reset
    finally:
        sock.setblocking(True)


def wait_closed(sock: socket.socket, timeout: float) -> float | None:
    """Seconds until the server closed ``sock`` (whatever it sent before), or None."""
    started = time.monotonic()
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return None
    except OSError:
        pass  # reset: closed too
    return time.monotonic() - started


def test_a_client_holding_many_idle_connections_cannot_exhaust_the_origin(
    origin: Origin,
) -> None:
    held = [origin.connect(ATTACKER) for _ in range(5 * PER_CLIENT)]
    try:
        time.sleep(0.2)
        still_open = [s for s in held if is_open(s)]
        # Bounded in count: beyond its share, each new connection is refused at once.
        assert len(still_open) == PER_CLIENT
        # Meanwhile another client is served, and promptly.
        started = time.monotonic()
        assert origin.served(VISITOR) == 200
        assert time.monotonic() - started < 2
        # Bounded in time: the idle ones are closed once the head deadline has passed.
        for sock in still_open:
            waited = wait_closed(sock, 3 * HEADER_TIMEOUT)
            assert waited is not None, "an idle connection was kept past the header timeout"
        # The attacker's share is free again: it is served like anyone once it behaves.
        assert origin.served(ATTACKER) == 200
    finally:
        for sock in held:
            sock.close()


def test_the_refusal_beyond_the_share_is_a_french_429(origin: Origin) -> None:
    if origin.tls is not None:
        pytest.skip("over TLS the refused connection is reset, not answered")
    held = [origin.connect(ATTACKER) for _ in range(PER_CLIENT)]
    try:
        with origin.connect(ATTACKER) as extra:
            extra.settimeout(2)
            answer = extra.recv(4096)
        assert answer.startswith(b"HTTP/1.1 429 ")
        assert b"Retry-After: " in answer
        assert "Trop de connexions" in answer.decode()
    finally:
        for sock in held:
            sock.close()


def test_a_slowloris_header_is_cut_after_the_timeout(origin: Origin) -> None:
    """A request head sent a few bytes at a time, never finished: the connection goes at the
    deadline, though bytes keep coming."""
    with origin.connect(ATTACKER) as sock:
        head = origin.request(PROBES[origin.name]).split(b"\r\n\r\n")[0] + b"\r\n"
        sock.sendall(head)
        started = time.monotonic()
        answer = b""
        sock.settimeout(0.2)
        while time.monotonic() - started < 5 * HEADER_TIMEOUT:
            try:
                sock.sendall(b"X-Lent: a\r\n")
                chunk = sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                break
            if not chunk:
                break
            answer += chunk
        elapsed = time.monotonic() - started
    assert elapsed < 3 * HEADER_TIMEOUT, "the slow head was never cut"
    assert elapsed >= 0.8 * HEADER_TIMEOUT
    if origin.tls is None:
        assert answer.startswith(b"HTTP/1.1 408 ")


def test_an_oversized_head_is_refused(origin: Origin) -> None:
    with origin.connect(ATTACKER) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        try:
            for _ in range(64):
                sock.sendall(b"X-Gros: " + b"a" * 1000 + b"\r\n")
        except OSError:
            pass  # closed while sending: refused
        assert wait_closed(sock, 2) is not None


def test_a_body_that_stops_arriving_is_cut(origin: Origin) -> None:
    """A slow POST body ("R.U.D.Y."): the head is complete, the body never finishes."""
    host = "127.0.0.1:8000" if origin.name == "portal" else f"{origin.host}:{origin.port}"
    path = {"portal": "/connexion", "sandbox": "/token", "federation": "/token"}[origin.name]
    with origin.connect(ATTACKER) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            "Content-Length: 4000\r\n\r\ngrant_type=".encode()
        )
        waited = wait_closed(sock, 4 * HEADER_TIMEOUT)
    assert waited is not None, "a body that stopped arriving held the connection"


def test_an_idle_keep_alive_connection_is_closed(origin: Origin) -> None:
    with origin.connect(ATTACKER) as sock:
        sock.sendall(origin.request(PROBES[origin.name]).replace(b"close", b"keep-alive"))
        sock.settimeout(2)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
        assert wait_closed(sock, 3 * HEADER_TIMEOUT) is not None


# --- request bodies, refused while they stream ---------------------------------------------

KIB = 1024


class Sender:
    """A chunked body of ``total`` bytes, 4 KiB at a time; counts what the app pulled."""

    def __init__(self, total: int, path: str, *, declare: bool = False) -> None:
        self.total = total
        self.path = path
        self.declare = declare
        self.pulled = 0
        self.extra_headers: list[tuple[bytes, bytes]] = []
        self.status: int | None = None
        self.headers: dict[bytes, bytes] = {}
        self.body = b""

    def scope(self) -> dict[str, object]:
        headers = [
            (b"host", b"127.0.0.1"),
            (b"content-type", b"application/x-www-form-urlencoded"),
        ]
        if self.declare:
            headers.append((b"content-length", str(self.total).encode()))
        headers += self.extra_headers
        return {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": self.path,
            "raw_path": self.path.encode(),
            "query_string": b"",
            "headers": headers,
            "client": ("203.0.113.7", 50000),
            "server": ("127.0.0.1", 443),
        }

    async def receive(self) -> Message:
        chunk = b"a=" + b"x" * (4 * KIB - 2)
        self.pulled += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": self.pulled < self.total}

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = dict(message["headers"])
        elif message["type"] == "http.response.body":
            self.body += message.get("body", b"")


@pytest.fixture(scope="module")
def small_body_platform(world: World) -> Platform:
    return world.new_platform(max_body_bytes=16 * KIB)


def run(world: World, app: object, sender: Sender) -> Sender:
    world.loop.run(app(sender.scope(), sender.receive, sender.send))  # type: ignore[operator]
    return sender


def assert_refused_while_streaming(sender: Sender) -> None:
    assert sender.status == 413
    assert sender.headers[b"connection"] == b"close"
    assert sender.pulled <= 16 * KIB + 4 * KIB


@pytest.mark.parametrize("declare", [False, True], ids=["chunked", "content-length"])
def test_a_huge_body_to_the_gateway_is_refused_while_it_streams(
    world: World, small_body_platform: Platform, declare: bool
) -> None:
    app = small_body_platform.gateway_app(Environment.SANDBOX)
    sender = run(world, app, Sender(64 * 1024 * KIB, "/token", declare=declare))
    assert_refused_while_streaming(sender)
    assert sender.headers[b"content-type"] == b"application/problem+json"
    assert "Corps de requête trop volumineux" in sender.body.decode()
    if declare:
        assert sender.pulled == 0  # refused on its Content-Length alone


def test_an_api_call_declaring_a_huge_body_is_refused_unread(
    world: World, small_body_platform: Platform
) -> None:
    app = small_body_platform.gateway_app(Environment.SANDBOX)
    path = "/impotparticulier/1.0/spi/3999999930262/situations/ir/assiettes/annrev/2025"
    sender = run(world, app, Sender(64 * 1024 * KIB, path, declare=True))
    assert_refused_while_streaming(sender)
    assert sender.pulled == 0


@pytest.mark.parametrize("declare", [False, True], ids=["chunked", "content-length"])
def test_a_huge_sign_in_form_to_the_federation_is_refused_while_it_streams(
    world: World, small_body_platform: Platform, declare: bool
) -> None:
    """The sandbox citizen's sign-in form, with a pending sign-in (the page reads it)."""
    app = small_body_platform.federation_app()
    with world.runtime.session_factory() as session, session.begin():
        client = register_client(
            session,
            kind=ClientKind.SERVICE_PROVIDER,
            name="Ville de test",
            now=world.clock.now(),
            redirect_uris=["http://127.0.0.1:5000/callback"],
            scopes=["openid", "given_name"],
        )
    query = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": "http://127.0.0.1:5000/callback",
        "scope": "openid given_name",
        "state": "s" * 32,
        "nonce": "n" * 32,
        "acr_values": "eidas1",
    }

    async def start() -> tuple[str, str]:
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url=FEDERATION) as browser:
            answer = await browser.get("/authorize", params=query)
            assert answer.status_code == 302, answer.text
            cookie = "; ".join(f"{k}={v}" for k, v in browser.cookies.items())
            return answer.headers["location"].removeprefix(FEDERATION), cookie

    interaction, cookie = world.loop.run(start())
    sender = Sender(64 * 1024 * KIB, f"{interaction}/fi/{PROVIDERS[0].slug}", declare=declare)
    sender.extra_headers.append((b"cookie", cookie.encode()))
    run(world, app, sender)
    assert_refused_while_streaming(sender)
    assert "Envoi trop volumineux" in sender.body.decode()


def test_the_settings_reach_the_limits(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        max_connections_per_client=3,
        header_timeout=2.5,
        trusted_proxies="10.0.0.0/8",  # type: ignore[arg-type]
    )
    limits = ConnectionLimits.from_settings(settings)
    assert (limits.per_client, limits.header_timeout) == (3, 2.5)
    assert [str(n) for n in limits.exempt] == ["10.0.0.0/8"]
    assert limits.uvicorn_options()["limit_concurrency"] == settings.max_connections
