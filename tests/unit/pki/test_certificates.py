"""Certificate facts and self-signed certificates."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from guichet.clock import FrozenClock
from guichet.edge import thumbprint
from guichet.pki import (
    certificate_info,
    ensure_local_pki,
    issue_client_certificate,
    self_signed_certificate,
)


def test_self_signed_certificate_facts(clock: FrozenClock) -> None:
    cert_pem, key_pem = self_signed_certificate("Partenaire auto-signé", 90, clock.now())

    info = certificate_info(cert_pem)

    assert info.self_signed
    assert info.subject == info.issuer == "CN=Partenaire auto-signé"
    assert info.not_before == clock.now()
    assert info.not_after == clock.now() + dt.timedelta(days=90)
    assert info.thumbprint == thumbprint(x509.load_pem_x509_certificate(cert_pem))
    assert b"PRIVATE KEY" in key_pem


def test_ca_issued_certificate_is_not_self_signed(tmp_path: Path, clock: FrozenClock) -> None:
    pki = ensure_local_pki(tmp_path, clock.now(), [])
    cert_pem, _ = issue_client_certificate(pki, "Client", "Org", 30, clock.now())

    info = certificate_info(cert_pem.decode())

    assert not info.self_signed
    assert info.subject == "O=Org,CN=Client"
    assert info.issuer == "O=guichet,CN=guichet local CA"
    assert certificate_info(pki.ca_cert_pem).self_signed


def test_same_name_but_other_signer_is_not_self_signed(clock: FrozenClock) -> None:
    """Subject == issuer is not enough: the signature must verify with its own key."""
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Homonyme")])
    own, other = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    forged = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(own.public_key())
        .serial_number(1)
        .not_valid_before(clock.now())
        .not_valid_after(clock.now() + dt.timedelta(days=1))
        .sign(other, hashes.SHA256())
    )

    info = certificate_info(forged.public_bytes(serialization.Encoding.PEM))

    assert info.subject == info.issuer
    assert not info.self_signed


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "bonjour",
        b"\x00\x01\x02",
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    ],
)
def test_garbage_is_a_clear_value_error(garbage: str | bytes) -> None:
    with pytest.raises(ValueError, match="certificate"):
        certificate_info(garbage)
