"""Whether a partner's client certificate chains to the trust store (RFC 5280 path validation),
shared by the gateway's control chain and the authorization server's ``tls_client_auth``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from cryptography import x509
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)


def client_policy(store: Store) -> PolicyBuilder:
    """RFC 5280 path validation against the trust store; partner certificates (RGS) often
    carry no subjectAltName, so WebPKI's end-entity rules minus that one."""
    end_entity = ExtensionPolicy.webpki_defaults_ee().may_be_present(
        x509.SubjectAlternativeName, Criticality.AGNOSTIC, None
    )
    return (
        PolicyBuilder()
        .store(store)
        .extension_policies(ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=end_entity)
    )


class ChainVerifier:
    """Validates client certificates against a trust store, at the call's time, with a cache
    by thumbprint (a certificate's own dates are checked per call by the caller)."""

    def __init__(self, trust_store: Sequence[x509.Certificate]) -> None:
        self._policy = client_policy(Store(list(trust_store))) if trust_store else None
        # Thumbprint → whether it chains to the trust store.
        self._chained: dict[str, bool] = {}

    @property
    def configured(self) -> bool:
        """Whether there is a trust store to validate against."""
        return self._policy is not None

    def chains(self, cert: x509.Certificate, thumbprint: str, now: dt.datetime) -> bool:
        assert self._policy is not None, "no trust store: check ``configured`` first"
        if thumbprint not in self._chained:
            # A verifier validates at the time it is built with: build it for this call, or
            # a certificate issued after start-up is "not valid at validation time".
            verifier = self._policy.time(now).build_client_verifier()
            try:
                verifier.verify(cert, [])
                self._chained[thumbprint] = True
            except VerificationError:
                self._chained[thumbprint] = False
        return self._chained[thumbprint]
