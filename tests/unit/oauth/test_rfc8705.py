"""RFC 8705 by hand: confirmation claim, binding check, and the two mTLS client methods."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from guichet.edge import PresentedCertificate
from guichet.errors import CertificateNotDeclared, CertificateUntrusted, TokenCertificateMismatch
from guichet.oauth import rfc8705
from guichet.pki.verify import ChainVerifier
from tests.unit.oauth.support import NOT_AFTER, NOT_BEFORE, Issued, issue, make_ca, self_signed


def presented(issued: Issued) -> PresentedCertificate:
    return PresentedCertificate(issued.cert, issued.thumbprint)


def test_confirmation_is_x5t_s256() -> None:
    assert rfc8705.confirmation("abc") == {"x5t#S256": "abc"}


def test_check_binding_accepts_the_bound_certificate() -> None:
    rfc8705.check_binding({"cnf": {"x5t#S256": "abc"}}, "abc")


@pytest.mark.parametrize(
    ("claims", "presented_tp"),
    [
        ({"cnf": {"x5t#S256": "abc"}}, "abd"),
        ({"cnf": {"x5t#S256": "abc"}}, None),
        ({}, "abc"),
        ({"cnf": "abc"}, "abc"),
        ({"cnf": {"x5t#S256": ""}}, ""),
    ],
)
def test_check_binding_refuses(claims: dict[str, object], presented_tp: str | None) -> None:
    with pytest.raises(TokenCertificateMismatch):
        rfc8705.check_binding(claims, presented_tp)


def test_is_self_signed() -> None:
    ca = make_ca()
    assert rfc8705.is_self_signed(self_signed("partner").cert)
    assert rfc8705.is_self_signed(ca.cert)
    assert not rfc8705.is_self_signed(issue(ca, "partner").cert)


def test_same_subject_and_issuer_but_foreign_signature_is_not_self_signed() -> None:
    # Issuer name equals subject name, but another key signed it: not self-signed.
    key, other = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "mimic")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOT_BEFORE)
        .not_valid_after(NOT_AFTER)
        .sign(other, hashes.SHA256())
    )
    assert not rfc8705.is_self_signed(cert)


NOW = dt.datetime(2026, 11, 23, tzinfo=dt.UTC)


def test_tls_client_auth_needs_a_declared_ca_issued_certificate() -> None:
    ca = make_ca()
    verifier = ChainVerifier([ca.cert])
    leaf, pinned_self = issue(ca, "partner"), self_signed("partner")
    rfc8705.tls_client_auth(presented(leaf), {leaf.thumbprint}, verifier, NOW)
    with pytest.raises(CertificateNotDeclared):
        rfc8705.tls_client_auth(presented(leaf), {pinned_self.thumbprint}, verifier, NOW)
    with pytest.raises(CertificateUntrusted):
        rfc8705.tls_client_auth(presented(pinned_self), {pinned_self.thumbprint}, verifier, NOW)


def test_tls_client_auth_validates_the_chain() -> None:
    """RFC 8705 §2.1: "relies on a validated certificate chain [RFC5280]"."""
    ca, rogue_ca = make_ca(), make_ca("Rogue CA")
    verifier = ChainVerifier([ca.cert])
    rogue = issue(rogue_ca, "partner")  # declared, but issued by a CA nobody trusts
    with pytest.raises(CertificateUntrusted):
        rfc8705.tls_client_auth(presented(rogue), {rogue.thumbprint}, verifier, NOW)
    # Without a trust store there is no chain to validate: refused, not waved through.
    leaf = issue(ca, "partner")
    with pytest.raises(CertificateUntrusted):
        rfc8705.tls_client_auth(presented(leaf), {leaf.thumbprint}, ChainVerifier([]), NOW)
    # Validated at the call's time: before the CA's validity the chain does not hold.
    early = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)
    with pytest.raises(CertificateUntrusted):
        rfc8705.tls_client_auth(presented(leaf), {leaf.thumbprint}, ChainVerifier([ca.cert]), early)


def test_self_signed_tls_client_auth_needs_a_pinned_self_signed_certificate() -> None:
    ca = make_ca()
    leaf, pinned_self = issue(ca, "partner"), self_signed("partner")
    rfc8705.self_signed_tls_client_auth(presented(pinned_self), [pinned_self.thumbprint])
    with pytest.raises(CertificateNotDeclared):
        rfc8705.self_signed_tls_client_auth(
            presented(self_signed("other")), [pinned_self.thumbprint]
        )
    with pytest.raises(CertificateUntrusted):
        rfc8705.self_signed_tls_client_auth(presented(leaf), [leaf.thumbprint])
