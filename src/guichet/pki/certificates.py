"""X.509 building blocks: EC P-256 keys, PEM files, self-signed certificates, certificate facts."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from guichet.edge import thumbprint

PrivateKey = ec.EllipticCurvePrivateKey


@dataclass(frozen=True, slots=True)
class CertificateInfo:
    """What an operator or a partner needs to know about a certificate, without the key."""

    thumbprint: str  # RFC 8705 §3.1 x5t#S256
    subject: str  # RFC 4514
    issuer: str  # RFC 4514
    not_before: dt.datetime  # aware, UTC
    not_after: dt.datetime  # aware, UTC
    self_signed: bool


def new_private_key() -> PrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def load_certificate(pem: str | bytes) -> x509.Certificate:
    """Parse one PEM certificate; a clear ``ValueError`` for anything else."""
    data = pem.encode() if isinstance(pem, str) else pem
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise ValueError("Not a PEM certificate: no '-----BEGIN CERTIFICATE-----' block.")
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError as exc:
        raise ValueError(f"Unreadable PEM certificate: {exc}") from exc


def load_private_key(pem: bytes) -> PrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("Expected an EC private key.")
    return key


def write_private(path: Path, data: bytes) -> None:
    """Write a secret file readable by its owner only (0600), atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def write_public(path: Path, data: bytes) -> None:
    """Write a public file (certificate) atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def name(common_name: str, organisation: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organisation:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation))
    return x509.Name(attrs)


def self_signed_certificate(common_name: str, days: int, now: dt.datetime) -> tuple[bytes, bytes]:
    """A self-signed client certificate, as partners register for RFC 8705 §2.2
    ``self_signed_tls_client_auth``; returns ``(cert_pem, key_pem)``."""
    key = new_private_key()
    subject = name(common_name)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert_pem(cert), key_pem(key)


def is_self_signed(cert: x509.Certificate) -> bool:
    """True when the certificate is its own issuer and its signature verifies with its own key."""
    if cert.subject != cert.issuer:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def certificate_info(pem: str | bytes) -> CertificateInfo:
    """Thumbprint (RFC 8705 §3.1), names, validity dates and whether it signs itself."""
    cert = load_certificate(pem)
    return CertificateInfo(
        thumbprint=thumbprint(cert),
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        self_signed=is_self_signed(cert),
    )
