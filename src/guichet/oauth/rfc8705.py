"""RFC 8705: mutual-TLS client authentication and certificate-bound access tokens, by hand.

Guichet pins every client certificate on the habilitation by its SHA-256 thumbprint, so
both client authentication methods check the presented certificate against that pinned
set; they differ in where trust comes from (a PKI chain validated here against the trust
store, or the pin alone).
"""

from __future__ import annotations

import datetime as dt
import hmac
from collections.abc import Collection, Mapping
from typing import Any, Final

from guichet.edge import PresentedCertificate
from guichet.errors import (
    CertificateNotDeclared,
    CertificateUntrusted,
    TokenCertificateMismatch,
)
from guichet.pki.certificates import is_self_signed
from guichet.pki.verify import ChainVerifier

X5T_S256: Final = "x5t#S256"


def confirmation(thumbprint: str) -> dict[str, str]:
    """RFC 8705 §3.1: "the certificate hash information SHOULD be represented using the
    "x5t#S256" confirmation method member" inside the JWT "cnf" claim — the base64url
    SHA-256 of the certificate's DER (``guichet.edge.thumbprint``)."""
    return {X5T_S256: thumbprint}


def check_binding(claims: Mapping[str, Any], presented_thumbprint: str | None) -> None:
    """RFC 8705 §3: the protected resource "MUST verify that the certificate matches the
    certificate associated with the access token. If they do not match, the resource
    access attempt MUST be rejected" (401, raised as ``TokenCertificateMismatch``).

    A token without ``cnf.x5t#S256`` is not bound; guichet issues none, so it is refused.
    """
    cnf = claims.get("cnf")
    bound = cnf.get(X5T_S256) if isinstance(cnf, Mapping) else None
    if not isinstance(bound, str) or not bound:
        raise TokenCertificateMismatch("Le jeton d'accès n'est lié à aucun certificat.")
    if presented_thumbprint is None or not hmac.compare_digest(
        bound.encode(), presented_thumbprint.encode()
    ):
        raise TokenCertificateMismatch(
            "Le jeton d'accès a été délivré pour un autre certificat client."
        )


def _declared(presented: PresentedCertificate, declared_thumbprints: Collection[str]) -> None:
    if not any(
        hmac.compare_digest(presented.thumbprint.encode(), t.encode()) for t in declared_thumbprints
    ):
        raise CertificateNotDeclared(
            "Le certificat présenté n'est pas déclaré dans l'habilitation du client."
        )


def tls_client_auth(
    presented: PresentedCertificate,
    declared_thumbprints: Collection[str],
    verifier: ChainVerifier,
    now: dt.datetime,
) -> None:
    """RFC 8705 §2.1, PKI method: it "relies on a validated certificate chain [RFC5280] and a
    single subject distinguished name (DN) or a single subject alternative name (SAN) to
    authenticate the client".

    The certificate must not be self-signed (that is §2.2's method), must be one declared on
    the habilitation — a pin on the whole certificate, stricter than matching its subject DN
    alone — and must chain to the trust store at ``now``. The chain is validated here, not
    left to the TLS layer: pinned certificates complete the handshake as themselves (so that
    §2.2 works), and a proxy passes on whatever it received. Without a trust store there is
    no chain to validate, so the method is refused.
    """
    if is_self_signed(presented.certificate):
        raise CertificateUntrusted(
            "La méthode tls_client_auth exige un certificat émis par une autorité de confiance, "
            "pas un certificat autosigné."
        )
    _declared(presented, declared_thumbprints)
    if not verifier.configured or not verifier.chains(
        presented.certificate, presented.thumbprint, now
    ):
        raise CertificateUntrusted(
            "Le certificat client n'est pas émis par une autorité de confiance."
        )


def self_signed_tls_client_auth(
    presented: PresentedCertificate, declared_thumbprints: Collection[str]
) -> None:
    """RFC 8705 §2.2, self-signed method: "the client's certificate chain is not validated by
    the server in this case. The client is successfully authenticated if the certificate that
    it presented during the handshake matches one of the certificates configured or
    registered for that particular client."

    Trust is the pin alone, so the certificate must really be self-signed: a CA-issued
    certificate belongs to §2.1.
    """
    if not is_self_signed(presented.certificate):
        raise CertificateUntrusted(
            "La méthode self_signed_tls_client_auth exige un certificat autosigné."
        )
    _declared(presented, declared_thumbprints)
