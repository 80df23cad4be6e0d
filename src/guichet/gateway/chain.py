"""The per-call control chain of SPEC §5, in its one and only order.

certificate → source IP → token → identity → rights. Each check is ``check(ctx) -> None``
and raises one domain error; quota, backend and journal follow in ``gateway.app``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509

from guichet import errors
from guichet.apis.context import CallContext
from guichet.habilitation.models import HabilitationStatus
from guichet.oauth.keys import verification_keys
from guichet.oauth.policy import HabilitationPolicy, PolicyCache, Snapshot
from guichet.oauth.rfc8705 import check_binding
from guichet.oauth.tokens import verify_access_token
from guichet.pki.verify import ChainVerifier


@dataclass
class ChainConfig:
    issuer: str
    audience: str
    # When set, certificates that are not self-signed must chain to one of these CAs.
    trust_store: Sequence[x509.Certificate] = ()


class ControlChain:
    """Runs the checks against the current policy snapshot."""

    def __init__(self, cache: PolicyCache, config: ChainConfig) -> None:
        self.cache = cache
        self.config = config
        self._verifier = ChainVerifier(config.trust_store)
        self._keys: tuple[int, dict[str, dict[str, Any]]] = (-1, {})

    def _verification_keys(self, snapshot: Snapshot) -> dict[str, dict[str, Any]]:
        """Every environment's keys, so a sibling's token is refused for its audience."""
        if self._keys[0] != snapshot.generation:
            self._keys = (snapshot.generation, verification_keys(snapshot))
        return self._keys[1]

    def run(self, ctx: CallContext) -> None:
        candidates = self.check_certificate(ctx)
        self.check_source_ip(ctx, candidates)
        self.check_token(ctx)
        self.check_identity(ctx)
        self.check_rights(ctx)

    # 1. certificate [000 §4 (1)]
    def check_certificate(self, ctx: CallContext) -> tuple[HabilitationPolicy, ...]:
        cert = ctx.certificate
        if cert is None or ctx.cert_thumbprint is None:
            raise errors.CertificateMissing(
                "Présentez le certificat client déclaré dans votre habilitation (TLS mutuel)."
            )
        if not (cert.not_valid_before_utc <= ctx.now <= cert.not_valid_after_utc):
            raise errors.CertificateExpired(
                f"Le certificat client est valide du {cert.not_valid_before_utc:%Y-%m-%d} "
                f"au {cert.not_valid_after_utc:%Y-%m-%d}."
            )
        candidates = self.cache.snapshot.by_thumbprint.get(
            (ctx.environment, ctx.cert_thumbprint), ()
        )
        if not candidates:
            raise errors.CertificateNotDeclared(
                "Ce certificat n'est déclaré dans aucune habilitation de cet environnement."
            )
        # Pinned certificates complete the TLS handshake as themselves (partial chain), so
        # the trust store is checked here, for direct and proxied calls alike (cached).
        self_signed = all(c.certificates[ctx.cert_thumbprint].self_signed for c in candidates)
        if self_signed and ctx.product is not None and ctx.product.authority_certificate_required:
            raise errors.CertificateUntrusted(
                f"{ctx.product.name} exige un certificat client émis par une autorité de "
                "confiance, jamais autosigné."
            )
        if (
            self._verifier.configured
            and not self_signed
            and not self._verifier.chains(cert, ctx.cert_thumbprint, ctx.now)
        ):
            raise errors.CertificateUntrusted(
                "Le certificat client n'est pas émis par une autorité de confiance."
            )
        return candidates

    # 2. source IP [000 §4 (2)]
    def check_source_ip(self, ctx: CallContext, candidates: Sequence[HabilitationPolicy]) -> None:
        if not any(h.allows_ip(ctx.source_ip) for h in candidates):
            raise errors.IpNotAllowed(
                f"L'adresse {ctx.source_ip} n'est pas une adresse sortante déclarée."
            )

    # 3. technical identifier: the access token [000 §4 (3)]
    def check_token(self, ctx: CallContext) -> None:
        auth = ctx.authorization
        if not auth:
            raise errors.TokenMissing("En-tête Authorization: Bearer <jeton> attendu.")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise errors.TokenMissing("En-tête Authorization: Bearer <jeton> attendu.")
        snapshot = self.cache.snapshot
        claims = verify_access_token(
            token.strip(),
            issuer=self.config.issuer,
            audience=self.config.audience,
            keys=self._verification_keys(snapshot),
            now=ctx.now,
        )
        if claims.get("jti") in snapshot.revoked_jtis:
            raise errors.TokenRevoked("Ce jeton a été révoqué.")
        assert ctx.cert_thumbprint is not None
        check_binding(claims, ctx.cert_thumbprint)
        client = snapshot.clients.get(str(claims.get("client_id")))
        if client is None or client.disabled or client.environment != ctx.environment:
            raise errors.TokenInvalid("Client inconnu ou désactivé.")
        ctx.token_claims = claims
        ctx.client = client

    # 4. identity: an active habilitation in this environment [000 §4 (4)]
    def check_identity(self, ctx: CallContext) -> None:
        assert ctx.client is not None
        assert ctx.cert_thumbprint is not None
        hab = self.cache.snapshot.habilitations.get(ctx.client.habilitation_id)
        if hab is None:
            raise errors.HabilitationUnknown()
        ctx.habilitation = hab
        if hab.environment != ctx.environment:
            raise errors.HabilitationWrongEnvironment()
        if hab.status is HabilitationStatus.SUSPENDED:
            raise errors.HabilitationSuspended(
                "L'habilitation est suspendue : aucun échange possible."
            )
        if hab.status is HabilitationStatus.TERMINATED:
            raise errors.HabilitationTerminated("L'habilitation a pris fin.")
        if ctx.now < hab.valid_from or (hab.valid_until is not None and ctx.now >= hab.valid_until):
            raise errors.HabilitationOutOfDates()
        if ctx.cert_thumbprint not in hab.certificates:
            raise errors.CertificateNotDeclared(
                "Ce certificat n'est pas déclaré dans l'habilitation de ce client."
            )
        if not hab.allows_ip(ctx.source_ip):
            raise errors.IpNotAllowed(
                f"L'adresse {ctx.source_ip} n'est pas déclarée dans l'habilitation de ce client."
            )

    # 5. rights: API subscribed, resource scope in the token [000 §4 (5)]
    def check_rights(self, ctx: CallContext) -> None:
        assert ctx.habilitation is not None
        assert ctx.token_claims is not None
        if ctx.product is None or ctx.operation is None:
            return
        if ctx.product.key not in ctx.habilitation.apis:
            raise errors.ApiNotSubscribed(f"L'habilitation ne couvre pas {ctx.product.name}.")
        scopes = str(ctx.token_claims.get("scope", "")).split()
        if ctx.operation.resource_scope not in scopes:
            raise errors.ScopeNotGranted(
                f"Le jeton ne porte pas la portée {ctx.operation.resource_scope}."
            )


def load_trust_store(path: Path | None) -> list[x509.Certificate]:
    if path is None:
        return []
    return x509.load_pem_x509_certificates(path.read_bytes())
