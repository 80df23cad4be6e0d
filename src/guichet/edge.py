"""Who is on the other end of a request: its client certificate, its client IP, and the
correlation id it carries.

Directly connected, the certificate and the IP come from the TLS connection (the ASGI TLS
extension that ``guichet.gateway.tls`` fills). Behind nginx, they come from RFC 9440
``Client-Cert`` and ``X-Forwarded-For`` — believed only on the proxy channel: a Unix domain
socket that the proxy alone may connect to (``ProxyChannel`` marks its requests; issue 12).
A TCP peer is never believed for a certificate, whatever its address: any local user can
speak from loopback. A certificate from a direct TLS handshake always wins over a header.
Downstream checks read one value and do not care where it came from. Shared by the gateway,
the authorization server's endpoints, the portal and the PKI.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import unquote

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from guichet.errors import CertificateInvalid

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


@dataclass(frozen=True, slots=True)
class PresentedCertificate:
    certificate: x509.Certificate
    thumbprint: str  # base64url(SHA-256(DER)), RFC 8705 §3.1 x5t#S256


def thumbprint(cert: x509.Certificate) -> str:
    """RFC 8705 §3.1: base64url-encoded SHA-256 hash of the DER encoding of the certificate."""
    digest = hashlib.sha256(cert.public_bytes(Encoding.DER)).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@lru_cache(maxsize=4096)
def _from_pem(pem: str) -> PresentedCertificate:
    cert = x509.load_pem_x509_certificate(pem.encode())
    return PresentedCertificate(cert, thumbprint(cert))


@lru_cache(maxsize=4096)
def _from_der(der: bytes) -> PresentedCertificate:
    cert = x509.load_der_x509_certificate(der)
    return PresentedCertificate(cert, thumbprint(cert))


def parse_client_cert_header(value: str) -> PresentedCertificate:
    """RFC 9440 §2.2: ``Client-Cert`` is a byte sequence (``:base64(DER):``).

    nginx cannot emit that form, so a URL-encoded PEM (``$ssl_client_escaped_cert``)
    is accepted too; both carry the same certificate.
    """
    value = value.strip()
    try:
        if value.startswith(":") and value.endswith(":") and len(value) > 2:
            return _from_der(base64.b64decode(value[1:-1], validate=True))
        pem = unquote(value)
        if "-----BEGIN CERTIFICATE-----" in pem:
            return _from_pem(pem)
    except ValueError as exc:
        raise CertificateInvalid("Le certificat transmis par le mandataire est illisible.") from exc
    raise CertificateInvalid("Le certificat transmis par le mandataire est illisible.")


# The ASGI scope extension a proxy-channel listener sets on each of its requests.
PROXY_CHANNEL = "guichet.proxy_channel"


class ProxyChannel:
    """ASGI middleware of a listener only the proxy can reach (a Unix socket whose mode and
    group keep other local users out): its requests may carry forwarded headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            extensions = {**(scope.get("extensions") or {}), PROXY_CHANNEL: True}
            scope = {**scope, "extensions": extensions}
        await self.app(scope, receive, send)


def on_proxy_channel(scope: Mapping[str, Any]) -> bool:
    """The request came through the proxy channel (``ProxyChannel``), not a TCP socket."""
    return bool((scope.get("extensions") or {}).get(PROXY_CHANNEL))


def _peer_host(scope: Mapping[str, Any]) -> str:
    """The TCP peer; an IPv4 client of a dual-stack socket (``::ffff:a.b.c.d``) as IPv4,
    so that declared IPv4 ranges and trusted proxies match it."""
    client = scope.get("client")
    if not client:
        return ""
    return _unmapped(str(client[0]))


@lru_cache(maxsize=4096)
def _unmapped(host: str) -> str:
    # Cached: the same few peers call again and again, and parsing is most of the cost.
    try:
        mapped = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(mapped, ipaddress.IPv6Address) and mapped.ipv4_mapped is not None:
        return str(mapped.ipv4_mapped)
    return host


def is_trusted_proxy(host: str, trusted: Sequence[Network]) -> bool:
    if not trusted or not host:
        return False
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(addr in net for net in trusted)


def _header(scope: Mapping[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _believes_forwarded_for(
    scope: Mapping[str, Any], peer: str, trusted: Sequence[Network]
) -> bool:
    """On the proxy channel; over TCP, from a trusted proxy on another host only (a loopback
    peer may be any local user)."""
    if on_proxy_channel(scope):
        return True
    if not is_trusted_proxy(peer, trusted):
        return False
    return not ipaddress.ip_address(peer).is_loopback


def client_ip(scope: Mapping[str, Any], trusted: Sequence[Network]) -> str:
    """The caller's address: the TCP peer, or — on the proxy channel, or from a trusted proxy
    of another host — the last ``X-Forwarded-For`` hop that is not itself a trusted proxy."""
    peer = _peer_host(scope)
    if not _believes_forwarded_for(scope, peer, trusted):
        return peer
    forwarded = _header(scope, b"x-forwarded-for")
    if not forwarded:
        return peer
    hops = [h.strip() for h in forwarded.split(",") if h.strip()]
    for hop in reversed(hops):
        if not is_trusted_proxy(hop, trusted):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer  # garbage from upstream: fall back to what we can prove
    if hops and on_proxy_channel(scope):
        # Every hop a trusted proxy: the first is the client (a caller on the proxy's host).
        try:
            return str(ipaddress.ip_address(hops[0]))
        except ValueError:
            return peer
    return peer


def client_certificate(
    scope: Mapping[str, Any], header: str = "client-cert"
) -> PresentedCertificate | None:
    """The certificate the caller presented: from the TLS handshake if there was one (it
    always wins), else RFC 9440 ``Client-Cert`` on the proxy channel only."""
    tls = (scope.get("extensions") or {}).get("tls") or {}
    chain = tls.get("client_cert_chain") or []
    if chain:
        return _from_pem(chain[0])
    if not on_proxy_channel(scope):
        return None
    value = _header(scope, header.lower().encode("latin-1"))
    if value:
        return parse_client_cert_header(value)
    return None


def correlation_id(request: Request) -> tuple[str, bool]:
    """The caller's ``X-Correlation-ID`` if it is a UUID; else a fresh one and ``False``
    (the gateway and the authorization server's endpoints read it the same way)."""
    return checked_correlation_id(request.headers.get("x-correlation-id"))


def checked_correlation_id(raw: str | None) -> tuple[str, bool]:
    """``raw`` (lower-cased) when it is a UUID; else a fresh one and ``False``."""
    # The canonical 8-4-4-4-12 form only: uuid.UUID() would also take braces, URNs…
    if raw and _UUID.fullmatch(raw.strip()):
        return raw.strip().lower(), True
    return str(uuid.uuid4()), False
