"""The local certificate authority of the embedded default: its CA, the gateways' server
certificate and the demo partner's client certificates."""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID

from guichet.logs import event
from guichet.pki.certificates import (
    PrivateKey,
    cert_pem,
    key_pem,
    load_certificate,
    load_private_key,
    name,
    new_private_key,
    write_private,
    write_public,
)

log = logging.getLogger(__name__)

CA_DAYS = 3650
SERVER_DAYS = 825
# A server certificate this close to its end is replaced at the next start.
SERVER_RENEW_BEFORE = dt.timedelta(days=30)
DEFAULT_HOSTS = ("127.0.0.1", "localhost")
_UNSPECIFIED = {"0.0.0.0", "::", ""}  # noqa: S104 - names, not a bind

_NO_KEY_USAGE = {
    "digital_signature": False,
    "content_commitment": False,
    "key_encipherment": False,
    "data_encipherment": False,
    "key_agreement": False,
    "key_cert_sign": False,
    "crl_sign": False,
    "encipher_only": False,
    "decipher_only": False,
}


@dataclass(frozen=True, slots=True)
class LocalPki:
    """The files of the local CA in ``directory`` and the CA itself, ready to sign."""

    directory: Path
    ca_certificate: x509.Certificate
    ca_key: PrivateKey

    @property
    def ca_cert_file(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def ca_key_file(self) -> Path:
        return self.directory / "ca.key"

    @property
    def server_cert_file(self) -> Path:
        return self.directory / "server.crt"

    @property
    def server_key_file(self) -> Path:
        return self.directory / "server.key"

    @property
    def ca_cert_pem(self) -> bytes:
        return cert_pem(self.ca_certificate)


def _key_usage(**enabled: bool) -> x509.KeyUsage:
    return x509.KeyUsage(**{**_NO_KEY_USAGE, **enabled})


def _new_ca(now: dt.datetime) -> tuple[x509.Certificate, PrivateKey]:
    key = new_private_key()
    subject = name("guichet local CA", "guichet")
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _issue(
    pki: LocalPki,
    subject: x509.Name,
    usage: x509.ObjectIdentifier,
    not_before: dt.datetime,
    not_after: dt.datetime,
    san: x509.SubjectAlternativeName | None = None,
) -> tuple[x509.Certificate, PrivateKey]:
    key = new_private_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(pki.ca_certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(pki.ca_key.public_key()),
            critical=False,
        )
    )
    if san is not None:
        builder = builder.add_extension(san, critical=False)
    return builder.sign(pki.ca_key, hashes.SHA256()), key


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _server_names(hosts: Iterable[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in (*DEFAULT_HOSTS, *hosts):
        host = host.strip().strip("[]")
        if host in _UNSPECIFIED:
            continue
        general = _general_name(host)
        if general not in names:
            names.append(general)
    return names


def _server_certificate_fits(
    path: Path, pki: LocalPki, wanted: list[x509.GeneralName], now: dt.datetime
) -> bool:
    try:
        cert = load_certificate(path.read_bytes())
    except (OSError, ValueError):
        return False
    if cert.issuer != pki.ca_certificate.subject:
        return False
    if cert.not_valid_after_utc - SERVER_RENEW_BEFORE < now or cert.not_valid_before_utc > now:
        return False
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    return all(general in san for general in wanted)


def ensure_local_pki(directory: Path, now: dt.datetime, hosts: list[str]) -> LocalPki:
    """Create the CA and the gateways' server certificate in ``directory`` once; reuse them
    after. The server certificate (never the CA) is reissued when it no longer names every
    host or comes within 30 days of its end."""
    if now.tzinfo is None:
        raise ValueError("ensure_local_pki needs an aware datetime")
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    ca_cert_file, ca_key_file = directory / "ca.crt", directory / "ca.key"
    if ca_cert_file.exists() and ca_key_file.exists():
        pki = LocalPki(
            directory,
            load_certificate(ca_cert_file.read_bytes()),
            load_private_key(ca_key_file.read_bytes()),
        )
    else:
        ca_cert, ca_key = _new_ca(now)
        write_private(ca_key_file, key_pem(ca_key))
        write_public(ca_cert_file, cert_pem(ca_cert))
        pki = LocalPki(directory, ca_cert, ca_key)
        event(log, "pki:ca:created", directory=str(directory))

    wanted = _server_names(hosts)
    if not (
        pki.server_key_file.exists()
        and _server_certificate_fits(pki.server_cert_file, pki, wanted, now)
    ):
        cert, key = _issue(
            pki,
            name("guichet gateway", "guichet"),
            ExtendedKeyUsageOID.SERVER_AUTH,
            now,
            now + dt.timedelta(days=SERVER_DAYS),
            x509.SubjectAlternativeName(wanted),
        )
        write_private(pki.server_key_file, key_pem(key))
        write_public(pki.server_cert_file, cert_pem(cert))
        event(log, "pki:server_certificate:issued", hosts=len(wanted))
    return pki


def issue_client_certificate(
    pki: LocalPki, common_name: str, organisation: str, days: int, now: dt.datetime
) -> tuple[bytes, bytes]:
    """A client certificate signed by the local CA (EKU clientAuth, RFC 5280 §4.2.1.12),
    valid from ``now`` for ``days`` days; returns ``(cert_pem, key_pem)``."""
    if days < 1:
        raise ValueError("A client certificate is valid for at least one day.")
    cert, key = _issue(
        pki,
        name(common_name, organisation),
        ExtendedKeyUsageOID.CLIENT_AUTH,
        now,
        now + dt.timedelta(days=days),
    )
    return cert_pem(cert), key_pem(key)
