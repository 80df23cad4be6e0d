"""Resource limits at every origin's edge (issue 11 §4): what one client may hold.

uvicorn bounds the connections of a server (``limit_concurrency``: 503 beyond) and closes a
keep-alive connection left idle (``timeout_keep_alive``), but it waits for a request head
forever and lets one address open as many connections as the process has descriptors: a
client holding thousands of idle or slow ("slowloris") connections stopped every origin of
the process. ``ConnectionGuard`` adds, per server:

- a cap on the connections one peer address holds at once (trusted proxies excepted: they
  relay many clients, and nginx applies the same cap per client in front);
- a deadline for each request head, from the connection's start or from the first byte
  of the next request on a keep-alive connection (nginx's ``client_header_timeout``), and a
  cap on its size;
- a longest silence between two reads of a request body (nginx's ``client_body_timeout``).

``BodyLimit`` refuses a request body beyond a size, on its ``Content-Length`` or as it
streams in, before the application has read it in full.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from guichet.logs import event
from guichet.settings import Network, Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConnectionLimits:
    """One origin's limits; ``from_settings`` reads the ``GUICHET_*`` values."""

    max_connections: int = 2048
    per_client: int = 64
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    keepalive_timeout: float = 5.0
    max_header_bytes: int = 32 * 1024
    exempt: tuple[Network, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> ConnectionLimits:
        return cls(
            max_connections=settings.max_connections,
            per_client=settings.max_connections_per_client,
            header_timeout=settings.header_timeout,
            body_timeout=settings.body_timeout,
            keepalive_timeout=settings.keepalive_timeout,
            max_header_bytes=settings.max_header_bytes,
            exempt=tuple(settings.trusted_proxies),
        )

    def uvicorn_options(self) -> dict[str, Any]:
        """What uvicorn enforces itself: 503 beyond the connections, idle keep-alive."""
        return {
            "limit_concurrency": self.max_connections,
            "timeout_keep_alive": self.keepalive_timeout,
            "h11_max_incomplete_event_size": self.max_header_bytes,
        }


def _answer(status: str, text: str, extra: str = "") -> bytes:
    body = text.encode()
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n{extra}\r\n"
    ).encode("latin-1") + body


TOO_MANY_CONNECTIONS = _answer(
    "429 Too Many Requests",
    "Trop de connexions ouvertes depuis votre adresse : fermez-en avant d'en ouvrir d'autres.\n",
    "Retry-After: 10\r\n",
)
HEADER_TIMEOUT = _answer(
    "408 Request Timeout", "La requête est arrivée trop lentement : la connexion est fermée.\n"
)
HEADER_TOO_LARGE = _answer(
    "431 Request Header Fields Too Large", "Les en-têtes de la requête sont trop volumineux.\n"
)


class _Flow(Protocol):
    @property
    def read_paused(self) -> bool: ...


class _Cycle(Protocol):
    """What is read of uvicorn's ``RequestResponseCycle`` (both protocols have one)."""

    @property
    def response_complete(self) -> bool: ...
    @property
    def more_body(self) -> bool: ...
    @property
    def flow(self) -> _Flow: ...


@dataclass
class ConnectionGuard:
    """One server's connections per peer address (one event loop: no lock needed)."""

    limits: ConnectionLimits
    open: dict[str, int] = field(default_factory=dict)

    def exempt(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.limits.exempt)

    def admit(self, host: str) -> bool:
        count = self.open.get(host, 0)
        if count >= self.limits.per_client:
            return False
        self.open[host] = count + 1
        return True

    def release(self, host: str) -> None:
        count = self.open.get(host, 0) - 1
        if count > 0:
            self.open[host] = count
        else:
            self.open.pop(host, None)

    def watch(self, transport: asyncio.Transport) -> ConnectionWatch:
        return ConnectionWatch(self, transport)


class ConnectionWatch:
    """One connection under its guard: counted against its peer, its request heads and
    bodies timed.

    The protocol calls ``received`` after each ``data_received`` with its current request
    cycle (uvicorn makes a new one when a head is complete) and ``lost`` once closed.
    """

    def __init__(self, guard: ConnectionGuard, transport: asyncio.Transport) -> None:
        self.guard = guard
        self.limits = guard.limits
        self.transport = transport
        peer = transport.get_extra_info("peername")
        # No address (a Unix socket): nothing to count by.
        self.host: str | None = str(peer[0]) if isinstance(peer, tuple) and peer else None
        self.counted = False
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._waiting_after: object = None  # the cycle before the awaited head
        self._head_bytes = 0
        if self.host is not None and not guard.exempt(self.host):
            if not guard.admit(self.host):
                event(log, "edge.connection_refused", reason="per_client_limit", client=self.host)
                self._close(TOO_MANY_CONNECTIONS)
                return
            self.counted = True
        self._await_head(None, 0)

    def _await_head(self, cycle: object, size: int) -> None:
        self._waiting_after = cycle
        self._head_bytes = size
        loop = asyncio.get_running_loop()
        self._head_timer = loop.call_later(self.limits.header_timeout, self._head_expired)

    def _cancel(self) -> None:
        for timer in (self._head_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._body_timer = None

    def received(self, size: int, cycle: _Cycle | None) -> None:
        if self.transport.is_closing():
            return
        if self._head_timer is not None:
            if cycle is not None and cycle is not self._waiting_after:
                # The head is complete: the application has it; its body may follow.
                self._head_timer.cancel()
                self._head_timer = None
                self._await_body(cycle)
                return
            self._head_bytes += size
            if self._head_bytes > self.limits.max_header_bytes:
                event(log, "edge.connection_closed", reason="header_too_large", client=self.host)
                self._close(HEADER_TOO_LARGE)
        elif cycle is not None and cycle.response_complete:
            # The first bytes of the next request on a keep-alive connection (uvicorn has
            # cancelled its idle timer): its head gets the same deadline.
            self._await_head(cycle, size)
        elif cycle is not None:
            self._await_body(cycle)  # more of the body: the delay starts again

    def _await_body(self, cycle: _Cycle) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        if cycle.more_body and not cycle.response_complete:
            loop = asyncio.get_running_loop()
            self._body_timer = loop.call_later(self.limits.body_timeout, self._body_expired, cycle)

    def _head_expired(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        event(log, "edge.connection_closed", reason="header_timeout", client=self.host)
        # A client that sent nothing at all (a browser's preconnect) is closed silently.
        self._close(HEADER_TIMEOUT if self._head_bytes else None)

    def _body_expired(self, cycle: _Cycle) -> None:
        self._body_timer = None
        if self.transport.is_closing() or not cycle.more_body or cycle.response_complete:
            return
        if cycle.flow.read_paused or _awaits_continue(cycle):
            # The application is behind, not the client (it has not read yet, or the
            # client waits for its "100 Continue" before sending the body).
            self._await_body(cycle)
            return
        event(log, "edge.connection_closed", reason="body_timeout", client=self.host)
        self._close(None)  # the application sees the client gone

    def _close(self, answer: bytes | None) -> None:
        self._cancel()
        if answer is not None:
            self.transport.write(answer)
        if self.transport.get_extra_info("ssl_object") is not None:
            # No wait for the peer's close_notify: a slow client would hold the socket
            # through asyncio's 30 s SSL shutdown timeout.
            self.transport.abort()
        else:
            self.transport.close()

    def lost(self) -> None:
        self._cancel()
        if self.counted and self.host is not None:
            self.counted = False
            self.guard.release(self.host)


def _awaits_continue(cycle: object) -> bool:
    """The client waits for "100 Continue", sent when the application first reads the body
    (httptools' cycle says it itself, h11's through its connection)."""
    if getattr(cycle, "expect_100_continue", False):
        return True
    return bool(getattr(getattr(cycle, "conn", None), "they_are_waiting_for_100_continue", False))


# --- request bodies -------------------------------------------------------------------------

TooLarge = Callable[[int], ASGIApp]


class _Refused(Exception):
    """The body went past the limit: the application's reading stops here."""


class BodyLimit:
    """An ASGI middleware: a request body beyond ``max_bytes`` is answered by ``too_large``
    (an ASGI app made for the limit) — on its ``Content-Length`` before anything is read,
    else as soon as the bytes received go past it. The connection is closed after."""

    def __init__(self, app: ASGIApp, max_bytes: int, too_large: TooLarge) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.too_large = too_large

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope["headers"])
        if declared is not None and declared > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        received = 0
        started = False
        refused = False

        async def counting_receive() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    refused = True
                    raise _Refused
            return message

        async def watching_send(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the refusal is answered below; the application's answer is dropped
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, watching_send)
        except Exception:
            if not refused:
                raise
        if refused and not started:
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        event(log, "edge.body_refused", path=scope.get("path", ""), limit=self.max_bytes)

        async def closing(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k != b"connection"]
                message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        await self.too_large(self.max_bytes)(scope, receive, closing)


def _content_length(headers: Iterable[tuple[bytes, bytes]]) -> int | None:
    for key, value in headers:
        if key == b"content-length":
            return int(value) if value.isdigit() else None
    return None
