"""Who is on the other end of a request: its client certificate, its client IP, and the
correlation id it carries.

Directly connected, the certificate and the IP come from the TLS connection (the ASGI TLS
extension that ``guichet.gateway.tls`` fills). Behind a reverse proxy, they come from RFC 9440
``Client-Cert`` and ``X-Forwarded-For`` — believed only when the TCP peer is a configured
trusted proxy. Downstream checks read one value and do not care where it came from. Shared
by the gateway, the authorization server's endpoints, the portal and the PKI.
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


def client_ip(scope: Mapping[str, Any], trusted: Sequence[Network]) -> str:
    """The caller's address: the TCP peer, or — from trusted proxies only — the last
    ``X-Forwarded-For`` hop that is not itself a trusted proxy."""
    peer = _peer_host(scope)
    if not is_trusted_proxy(peer, trusted):
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
    return peer


def client_certificate(
    scope: Mapping[str, Any], trusted: Sequence[Network], header: str = "client-cert"
) -> PresentedCertificate | None:
    """The certificate the caller presented, from the TLS handshake or a trusted proxy."""
    peer = _peer_host(scope)
    if is_trusted_proxy(peer, trusted):
        value = _header(scope, header.lower().encode("latin-1"))
        if value:
            return parse_client_cert_header(value)
        return None
    tls = scope.get("extensions", {}).get("tls") or {}
    chain = tls.get("client_cert_chain") or []
    if not chain:
        return None
    return _from_pem(chain[0])


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
