"""The local CA: created once, reused after, keys private, certificates fit for their use."""

from __future__ import annotations

import datetime as dt
import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from guichet.clock import FrozenClock
from guichet.pki import certificate_info, ensure_local_pki, issue_client_certificate


def _san(path: Path) -> x509.SubjectAlternativeName:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value


def test_creates_ca_and_server_certificate_with_private_keys(
    tmp_path: Path, clock: FrozenClock
) -> None:
    pki = ensure_local_pki(tmp_path / "pki", clock.now(), ["gateway.example.test", "10.0.0.5"])

    for name in ("ca.crt", "ca.key", "server.crt", "server.key"):
        assert (tmp_path / "pki" / name).is_file()
    assert stat.S_IMODE(pki.ca_key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(pki.server_key_file.stat().st_mode) == 0o600

    ca = x509.load_pem_x509_certificate(pki.ca_cert_file.read_bytes())
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    server = x509.load_pem_x509_certificate(pki.server_cert_file.read_bytes())
    server.verify_directly_issued_by(ca)
    eku = server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku

    san = _san(pki.server_cert_file)
    assert set(san.get_values_for_type(x509.DNSName)) == {"localhost", "gateway.example.test"}
    assert set(san.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("10.0.0.5"),
    }


def test_second_call_reuses_everything(tmp_path: Path, clock: FrozenClock) -> None:
    first = ensure_local_pki(tmp_path, clock.now(), [])
    files = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    clock.advance(86400)

    second = ensure_local_pki(tmp_path, clock.now(), [])

    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == files
    assert second.ca_certificate == first.ca_certificate


def test_new_host_reissues_server_certificate_but_keeps_the_ca(
    tmp_path: Path, clock: FrozenClock
) -> None:
    ensure_local_pki(tmp_path, clock.now(), [])
    ca_before = (tmp_path / "ca.crt").read_bytes()
    server_before = (tmp_path / "server.crt").read_bytes()

    ensure_local_pki(tmp_path, clock.now(), ["guichet.local"])

    assert (tmp_path / "ca.crt").read_bytes() == ca_before
    assert (tmp_path / "server.crt").read_bytes() != server_before
    assert "guichet.local" in _san(tmp_path / "server.crt").get_values_for_type(x509.DNSName)


def test_server_certificate_near_its_end_is_renewed(tmp_path: Path, clock: FrozenClock) -> None:
    ensure_local_pki(tmp_path, clock.now(), [])
    before = certificate_info((tmp_path / "server.crt").read_bytes())
    clock.set(before.not_after - dt.timedelta(days=10))

    ensure_local_pki(tmp_path, clock.now(), [])

    after = certificate_info((tmp_path / "server.crt").read_bytes())
    assert after.thumbprint != before.thumbprint
    assert after.not_after > clock.now() + dt.timedelta(days=365)


def test_unspecified_bind_address_is_not_a_name(tmp_path: Path, clock: FrozenClock) -> None:
    pki = ensure_local_pki(tmp_path, clock.now(), ["0.0.0.0", "::"])
    assert set(_san(pki.server_cert_file).get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("127.0.0.1")
    }


def test_client_certificate_for_the_demo_partner(tmp_path: Path, clock: FrozenClock) -> None:
    pki = ensure_local_pki(tmp_path, clock.now(), [])

    cert_pem, key_pem = issue_client_certificate(
        pki, "Démo partenaire", "Commune de Démo", 365, clock.now()
    )

    cert = x509.load_pem_x509_certificate(cert_pem)
    cert.verify_directly_issued_by(pki.ca_certificate)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "Démo partenaire"
    assert (
        cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "Commune de Démo"
    )
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert cert.not_valid_before_utc == clock.now()
    assert cert.not_valid_after_utc == clock.now() + dt.timedelta(days=365)
    assert b"BEGIN PRIVATE KEY" in key_pem


def test_client_certificate_needs_a_positive_lifetime(tmp_path: Path, clock: FrozenClock) -> None:
    pki = ensure_local_pki(tmp_path, clock.now(), [])
    with pytest.raises(ValueError, match="at least one day"):
        issue_client_certificate(pki, "x", "y", 0, clock.now())
