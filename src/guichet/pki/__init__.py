"""The local PKI: a certificate authority for the embedded default and certificate facts."""

from guichet.pki.authority import LocalPki, ensure_local_pki, issue_client_certificate
from guichet.pki.certificates import CertificateInfo, certificate_info, self_signed_certificate

__all__ = [
    "CertificateInfo",
    "LocalPki",
    "certificate_info",
    "ensure_local_pki",
    "issue_client_certificate",
    "self_signed_certificate",
]
