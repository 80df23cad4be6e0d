"""The gateways' TLS edge: the server context, its live trust store, and a uvicorn protocol
that puts the client certificate into the ASGI scope (ASGI TLS extension)."""

from __future__ import annotations

import asyncio
import logging
import ssl
import threading
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any, Literal

import uvicorn
from cryptography import x509
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from guichet.connections import ConnectionGuard, ConnectionLimits, ConnectionWatch
from guichet.edge import thumbprint
from guichet.logs import event

log = logging.getLogger(__name__)

# OpenSSL's X509_V_FLAG_NO_CHECK_TIME (x509_vfy.h): skip the validity-date checks, so an
# expired but otherwise trusted certificate completes the handshake and the control chain
# refuses it with a journaled 401 ``certificate_expired`` instead of a bare TLS alert.
X509_V_FLAG_NO_CHECK_TIME = 0x200000
# X509_V_FLAG_PARTIAL_CHAIN: any certificate in the trust store is a trust anchor, so a
# registered partner certificate is trusted as itself even when it is not a CA.
X509_V_FLAG_PARTIAL_CHAIN = 0x80000

# TLS 1.2 suites offered, all AEAD with forward secrecy (ANSSI-PG-083, Mozilla
# "intermediate"): no CBC suite, whose MAC-then-encrypt design gave Lucky13 and POODLE-style
# padding oracles. TLS 1.3 suites are AEAD by construction and set apart by OpenSSL.
TLS12_CIPHERS = ":".join(
    [
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
    ]
)

_TLS_VERSIONS = {"TLSv1": 0x0301, "TLSv1.1": 0x0302, "TLSv1.2": 0x0303, "TLSv1.3": 0x0304}

ASGIApp = Any  # an ASGI 3 application; uvicorn and Starlette type it each their own way
Scope = dict[str, Any]


def build_server_ssl_context(
    cert_file: Path, key_file: Path, client_ca_files: list[Path]
) -> ssl.SSLContext:
    """A TLS ≥ 1.2 server context that requests a client certificate without requiring one
    (``/healthz`` needs none), trusts the partner CAs, and leaves validity dates to the
    control chain (SPEC §5: certificate "within its validity dates" is checked per call)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(TLS12_CIPHERS)
    context.load_cert_chain(certfile=str(cert_file), keyfile=str(key_file))
    context.verify_mode = ssl.CERT_OPTIONAL
    for ca_file in client_ca_files:
        context.load_verify_locations(cafile=str(ca_file))
    wanted = X509_V_FLAG_NO_CHECK_TIME | X509_V_FLAG_PARTIAL_CHAIN
    context.verify_flags = ssl.VerifyFlags(int(context.verify_flags) | wanted)
    if int(context.verify_flags) & wanted != wanted:
        raise RuntimeError(
            "This Python/OpenSSL drops X509_V_FLAG_NO_CHECK_TIME or X509_V_FLAG_PARTIAL_CHAIN."
        )
    context.set_alpn_protocols(["http/1.1"])
    return context


class TrustStore:
    """The certificates the live server context trusts beyond the partner CAs.

    DESIGN "Two technical notes for the TLS edge": a pinned self-signed certificate
    (RFC 8705 §2.2 ``self_signed_tls_client_auth``) must be in the context's trust store;
    it is added to the live context, so new handshakes accept it without a restart.
    OpenSSL cannot forget a certificate: a revoked one still completes the handshake and
    is refused by the control chain, which checks the habilitation's pinned thumbprints.
    """

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context
        self._thumbprints: set[str] = set()
        self._lock = threading.Lock()

    def add(self, pem: str | bytes) -> bool:
        """Trust this certificate from the next handshake on; ``False`` if it already was."""
        text = pem.decode() if isinstance(pem, bytes) else pem
        try:
            cert = x509.load_pem_x509_certificate(text.encode())
        except ValueError as exc:
            raise ValueError(f"Not a PEM certificate: {exc}") from exc
        key = thumbprint(cert)
        with self._lock:
            if key in self._thumbprints:
                return False
            self.context.load_verify_locations(cadata=text)
            self._thumbprints.add(key)
        event(log, "gateway:trust_store:certificate_added", thumbprint=key)
        return True

    def __contains__(self, thumbprint_: object) -> bool:
        return thumbprint_ in self._thumbprints

    def __len__(self) -> int:
        return len(self._thumbprints)


@cache
def _cipher_ids() -> Mapping[str, int]:
    """OpenSSL cipher names → IANA 16-bit cipher suite numbers (the ASGI ``cipher_suite``)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.set_ciphers("ALL:@SECLEVEL=0")
    return {c["name"]: c["id"] & 0xFFFF for c in context.get_ciphers()}


def tls_extension(ssl_object: ssl.SSLObject) -> dict[str, Any]:
    """The ASGI TLS extension (asgiref ``specs/tls.rst``) for one established connection."""
    der = ssl_object.getpeercert(binary_form=True)
    chain: list[str] = []
    name: str | None = None
    if der:
        chain.append(ssl.DER_cert_to_PEM_cert(der))
        try:
            name = x509.load_der_x509_certificate(der).subject.rfc4514_string()
        except ValueError:
            name = None  # the control chain reports it as certificate_invalid
    cipher = ssl_object.cipher()
    version = ssl_object.version()
    return {
        "server_cert": None,
        "client_cert_chain": chain,
        "client_cert_name": name,
        "client_cert_error": None,  # verification failures never complete the handshake
        "tls_version": _TLS_VERSIONS.get(version) if version else None,
        "cipher_suite": _cipher_ids().get(cipher[0]) if cipher else None,
    }


class _WithTls:
    """Per-connection wrapper: every request of the connection carries the extension."""

    __slots__ = ("app", "tls")

    def __init__(self, app: ASGIApp, tls: dict[str, Any]) -> None:
        self.app = app
        self.tls = tls

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            scope["extensions"] = {**(scope.get("extensions") or {}), "tls": dict(self.tls)}
        await self.app(scope, receive, send)


def _wrap_for_connection(app: ASGIApp, transport: asyncio.BaseTransport) -> ASGIApp:
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return app  # plain HTTP: the extension must be absent
    return _WithTls(app, tls_extension(ssl_object))


def _drop_if_tls(transport: asyncio.Transport) -> None:
    # An idle TLS connection being closed waits for the peer's close_notify, up to
    # asyncio's 30 s ssl_shutdown_timeout, and holds up the server's shutdown meanwhile;
    # a client that sits on a keep-alive connection never sends it.
    if transport.get_extra_info("ssl_object") is not None:
        transport.abort()


def _watch(config: uvicorn.Config, transport: asyncio.Transport) -> ConnectionWatch | None:
    guard: ConnectionGuard | None = getattr(config, "connection_guard", None)
    return guard.watch(transport) if guard is not None else None


class HttpToolsTlsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, filling the ASGI TLS extension once per connection,
    under the server's ``ConnectionGuard`` (``make_server(limits=…)``)."""

    _guard_watch: ConnectionWatch | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.app = _wrap_for_connection(self.app, transport)
        self._guard_watch = _watch(self.config, transport)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._guard_watch is not None:
            self._guard_watch.received(len(data), self.cycle)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self._guard_watch is not None:
            self._guard_watch.lost()

    def shutdown(self) -> None:
        idle = self.cycle is None or self.cycle.response_complete
        super().shutdown()
        if idle:
            _drop_if_tls(self.transport)


class H11TlsProtocol(H11Protocol):
    """uvicorn's h11 protocol, filling the ASGI TLS extension once per connection,
    under the server's ``ConnectionGuard`` (``make_server(limits=…)``)."""

    _guard_watch: ConnectionWatch | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.app = _wrap_for_connection(self.app, transport)
        self._guard_watch = _watch(self.config, transport)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._guard_watch is not None:
            self._guard_watch.received(len(data), self.cycle)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self._guard_watch is not None:
            self._guard_watch.lost()

    def shutdown(self) -> None:
        idle = self.cycle is None or self.cycle.response_complete
        super().shutdown()
        if idle:
            _drop_if_tls(self.transport)


_PROTOCOLS: dict[str, type[asyncio.Protocol]] = {
    "httptools": HttpToolsTlsProtocol,
    "h11": H11TlsProtocol,
}


def make_server(
    app: ASGIApp,
    *,
    host: str,
    port: int,
    ssl_context: ssl.SSLContext | None,
    log_level: str = "warning",
    http: Literal["httptools", "h11"] = "httptools",
    limits: ConnectionLimits | None = None,
    **options: Any,
) -> uvicorn.Server:
    """A uvicorn server on ``host:port`` that uses this very ``ssl_context`` (so a
    ``TrustStore`` on it acts on live handshakes), or plain HTTP when it is ``None``.

    uvicorn's own proxy-header rewriting is off: the client IP and certificate are read
    from trusted proxies by ``guichet.edge`` only. ``limits``: connections in all
    and per client, request head deadline and size, keep-alive (``guichet.connections``).
    ``options`` go to ``uvicorn.Config`` (``log_config``, ``lifespan``…).
    """
    if limits is not None:
        options = {**limits.uvicorn_options(), **options}
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        http=_PROTOCOLS[http],
        log_level=log_level,
        proxy_headers=False,
        server_header=False,
        **options,
    )
    if limits is not None:
        # Read by the protocols above: one guard, hence one count per address, per server.
        config.connection_guard = ConnectionGuard(limits)  # type: ignore[attr-defined]
    config.load()
    # Config.load() built no context (no files given); Server.serve() sees ``loaded`` and
    # does not load again, so this object is the one every handshake uses.
    config.ssl = ssl_context
    return uvicorn.Server(config)
