"""Certificates for tests: a local CA, client certificates (valid, expired, not yet valid),
self-signed ones, and client TLS contexts to present them — all from ``guichet.pki``.

For a real handshake, issue them at the real time (``SystemClock().now()``): clients and
nginx check the dates against the system clock, not against a test's ``FrozenClock``.
"""

from __future__ import annotations

import datetime as dt
import ssl
from dataclasses import dataclass
from pathlib import Path

from guichet.pki import (
    LocalPki,
    certificate_info,
    ensure_local_pki,
    issue_client_certificate,
    self_signed_certificate,
)


@dataclass(frozen=True)
class Credential:
    """A certificate and its private key, as PEM."""

    cert_pem: bytes
    key_pem: bytes

    @property
    def thumbprint(self) -> str:
        return certificate_info(self.cert_pem).thumbprint

    @property
    def cert_text(self) -> str:
        return self.cert_pem.decode()

    def write(self, directory: Path, stem: str) -> tuple[Path, Path]:
        """Write ``stem.crt`` and ``stem.key`` (0600) into ``directory``."""
        directory.mkdir(parents=True, exist_ok=True)
        cert_file, key_file = directory / f"{stem}.crt", directory / f"{stem}.key"
        cert_file.write_bytes(self.cert_pem)
        key_file.write_bytes(self.key_pem)
        key_file.chmod(0o600)
        return cert_file, key_file


def make_ca(directory: Path, now: dt.datetime, hosts: list[str] | None = None) -> LocalPki:
    """A local CA with a server certificate for 127.0.0.1/localhost (and ``hosts``)."""
    return ensure_local_pki(directory, now, hosts or [])


def client_cert(
    pki: LocalPki,
    now: dt.datetime,
    common_name: str = "Partenaire de test",
    organisation: str = "Mairie de Test",
    days: int = 365,
) -> Credential:
    """A CA-issued client certificate valid from ``now`` for ``days`` days."""
    cert, key = issue_client_certificate(pki, common_name, organisation, days, now)
    return Credential(cert, key)


def expired_client_cert(pki: LocalPki, now: dt.datetime, common_name: str = "Expiré") -> Credential:
    """Issued 400 days before ``now`` for 30 days: expired for a month short of a year."""
    return client_cert(pki, now - dt.timedelta(days=400), common_name, days=30)


def future_client_cert(pki: LocalPki, now: dt.datetime, common_name: str = "Futur") -> Credential:
    """Valid only from ten days after ``now``."""
    return client_cert(pki, now + dt.timedelta(days=10), common_name, days=365)


def self_signed(
    now: dt.datetime, common_name: str = "Partenaire auto-signé", days: int = 365
) -> Credential:
    cert, key = self_signed_certificate(common_name, days, now)
    return Credential(cert, key)


def client_context(
    ca_file: Path, credential: Credential | None = None, directory: Path | None = None
) -> ssl.SSLContext:
    """A client TLS context trusting ``ca_file`` and presenting ``credential`` if given
    (its files are written to ``directory``, which ``load_cert_chain`` needs)."""
    context = ssl.create_default_context(cafile=str(ca_file))
    if credential is not None:
        if directory is None:
            raise ValueError("client_context needs a directory to write the credential to")
        cert_file, key_file = credential.write(directory, f"client-{credential.thumbprint[:12]}")
        context.load_cert_chain(str(cert_file), str(key_file))
    return context
