"""The portal as a relying party of the sandbox federation (OpenID Connect Core §3.1, the
authorization code flow with PKCE, over an injectable HTTP transport): its credentials, the
pending sign-in, and the verification of the ID token and the signed UserInfo."""

from __future__ import annotations

import hmac
import json
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlencode

import httpx
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from authlib.oidc.core.util import create_half_hash
from joserfc.jwk import KeySet

from guichet import jose
from guichet.clock import Clock
from guichet.logs import event
from guichet.portal.oauth_client import AsyncOAuth2Client, OAuthError

log = logging.getLogger(__name__)

PORTAL_CLIENT_FILE: Final = Path("federation") / "portal.json"
# Identity scopes only: the portal asks for the identity pivot, never for tax data.
SCOPES: Final = (
    "openid",
    "given_name",
    "family_name",
    "birthdate",
    "gender",
    "birthplace",
    "birthcountry",
)
ACR: Final = "eidas1"
ACCEPTED_ACR: Final = frozenset({"eidas1", "eidas2", "eidas3"})
# FranceConnect signs with ES256 or RS256; never ``none``, never an HMAC keyed with a
# public key (key confusion).
ALLOWED_ALGS: Final = ("ES256", "RS256")
SIGNATURE: Final = jose.SignaturePolicy(ALLOWED_ALGS)
CLOCK_LEEWAY: Final = 30  # seconds of skew tolerated on ``exp`` and ``iat``
ID_TOKEN_CLAIMS: Final = jose.ClaimRules(
    checked=("iss", "aud", "exp", "iat"), required=("iss", "aud", "exp", "iat"), leeway=CLOCK_LEEWAY
)
USERINFO_CLAIMS: Final = jose.ClaimRules(checked=("iss", "aud"), required=("iss", "aud"))


# --- configuration ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PortalClient:
    """The portal's service-provider credentials at the federation."""

    client_id: str
    client_secret: str


def load_portal_client(data_dir: Path) -> PortalClient | None:
    """``DATA_DIR/federation/portal.json`` (written by ``guichet init``), or None."""
    path = data_dir / PORTAL_CLIENT_FILE
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(document, dict):
        return None
    client_id, secret = document.get("client_id"), document.get("client_secret")
    if not (isinstance(client_id, str) and client_id and isinstance(secret, str) and secret):
        return None
    return PortalClient(client_id, secret)


class SignInRefused(Exception):
    """A sign-in that must not go on; ``code`` is stable, ``message`` is for the citizen."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(code)
        self.code = code
        self.message = message
        self.status = status


@dataclass(frozen=True, slots=True)
class PendingSignIn:
    """What the portal remembers between the redirect and the return."""

    state: str
    nonce: str
    verifier: str

    def as_dict(self) -> dict[str, str]:
        return {"state": self.state, "nonce": self.nonce, "verifier": self.verifier}

    @classmethod
    def of(cls, data: object) -> PendingSignIn | None:
        if not isinstance(data, dict):
            return None
        values = [data.get(k) for k in ("state", "nonce", "verifier")]
        if not all(isinstance(v, str) and v for v in values):
            return None
        return cls(*(str(v) for v in values))


def _refused(code: str, message: str = "", status: int = 400) -> SignInRefused:
    return SignInRefused(
        code,
        message
        or "La réponse de FranceConnect n'a pas pu être vérifiée : par prudence, vous n'êtes "
        "pas connecté. Recommencez ; si cela se reproduit, signalez-le à l'assistance.",
        status,
    )


class FederationRelyingParty:
    """The portal as a service provider of the federation (authorization code flow, PKCE
    S256, ``client_secret_post``); ``transport`` is the seam tests use to reach the
    federation's app in process."""

    def __init__(
        self,
        issuer: str,
        client: PortalClient,
        redirect_uri: str,
        clock: Clock,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 5.0,
    ) -> None:
        self.issuer = issuer.rstrip("/")
        self.client = client
        self.redirect_uri = redirect_uri
        self.clock = clock
        self.transport = transport
        self.timeout = timeout
        self._metadata: dict[str, Any] | None = None

    def _http(self) -> AsyncOAuth2Client:
        return AsyncOAuth2Client(
            client_id=self.client.client_id,
            client_secret=self.client.client_secret,
            token_endpoint_auth_method="client_secret_post",  # noqa: S106 (a method's name)
            redirect_uri=self.redirect_uri,
            transport=self.transport,
            timeout=self.timeout,
        )

    async def metadata(self, http: AsyncOAuth2Client) -> dict[str, Any]:
        """OpenID Connect Discovery 1.0 §4: the configuration, whose ``issuer`` "MUST be
        identical to the Issuer URL that was used as the prefix" (§4.3)."""
        if self._metadata is None:
            try:
                answer = await http.request(
                    "GET", f"{self.issuer}/.well-known/openid-configuration", withhold_token=True
                )
                answer.raise_for_status()
                document = answer.json()
            except (httpx.HTTPError, ValueError) as exc:
                raise _unavailable() from exc
            if not isinstance(document, dict) or document.get("issuer") != self.issuer:
                raise _refused("discovery_issuer_mismatch")
            for name in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint"):
                if not isinstance(document.get(name), str):
                    raise _refused("discovery_incomplete")
            if not isinstance(document.get("jwks_uri"), str):
                raise _refused("discovery_incomplete")
            self._metadata = document
        return self._metadata

    async def start(self) -> tuple[str, PendingSignIn]:
        """OpenID Connect Core §3.1.2.1 with FranceConnect v2's rules: ``state`` and
        ``nonce`` of at least 32 characters, ``acr_values=eidas1``; RFC 7636 §4.2 S256."""
        pending = PendingSignIn(
            state=secrets.token_urlsafe(32),
            nonce=secrets.token_urlsafe(32),
            verifier=secrets.token_urlsafe(48),
        )
        async with self._http() as http:
            endpoint = str((await self.metadata(http))["authorization_endpoint"])
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.client.client_id,
                "redirect_uri": self.redirect_uri,
                "scope": " ".join(SCOPES),
                "state": pending.state,
                "nonce": pending.nonce,
                "acr_values": ACR,
                "code_challenge": create_s256_code_challenge(pending.verifier),
                "code_challenge_method": "S256",
            }
        )
        return f"{endpoint}?{query}", pending

    async def finish(self, pending: PendingSignIn, code: str) -> dict[str, Any]:
        """RFC 6749 §4.1.3 (the code for tokens), OpenID Connect Core §3.1.3.7 (the ID
        token's validation) and §5.3.2 (the signed UserInfo, whose ``sub`` must be the ID
        token's). Returns the verified UserInfo claims."""
        async with self._http() as http:
            meta = await self.metadata(http)
            try:
                token = await http.fetch_token(
                    str(meta["token_endpoint"]),
                    grant_type="authorization_code",
                    code=code,
                    code_verifier=pending.verifier,
                    redirect_uri=self.redirect_uri,
                )
            except OAuthError as exc:
                event(log, "portal.citizen:token_refused", error=str(exc.error)[:64])
                raise _refused(
                    "token_refused",
                    "FranceConnect n'a pas accepté de terminer cette connexion : elle a "
                    "peut-être expiré (elle ne vaut que quelques secondes) ou a déjà servi. "
                    "Recommencez la connexion.",
                ) from exc
            except (httpx.HTTPError, ValueError) as exc:
                raise _unavailable() from exc
            id_token, access_token = token.get("id_token"), token.get("access_token")
            if not isinstance(id_token, str) or not isinstance(access_token, str):
                raise _refused("token_incomplete")
            keys = await self._keys(http, str(meta["jwks_uri"]))
            verified = _verify_jws(id_token, keys)
            claims = verified.claims
            self._check_id_token(claims, pending, access_token, str(verified.header["alg"]))
            try:
                answer = await http.request(
                    "GET",
                    str(meta["userinfo_endpoint"]),
                    headers={"Authorization": f"Bearer {access_token}"},
                    withhold_token=True,
                )
            except httpx.HTTPError as exc:
                raise _unavailable() from exc
            if answer.status_code != 200:
                raise _refused("userinfo_refused")
            info = _verify_jws(answer.text, keys).claims
        self._check_userinfo(info, claims)
        return info

    async def _keys(self, http: AsyncOAuth2Client, jwks_uri: str) -> KeySet:
        """RFC 7517 §5: the federation's published signing keys, by ``kid``."""
        try:
            answer = await http.request("GET", jwks_uri, withhold_token=True)
            answer.raise_for_status()
            document = answer.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise _unavailable() from exc
        published = document.get("keys", []) if isinstance(document, dict) else []
        return jose.signing_keys(published, SIGNATURE)

    def _check_id_token(
        self, claims: Mapping[str, Any], pending: PendingSignIn, access_token: str, alg: str
    ) -> None:
        """OpenID Connect Core §3.1.3.7: ``iss`` "MUST exactly match", ``aud`` "MUST
        contain" our client id (and ``azp`` be it when there are several), "The current
        time MUST be before" ``exp``, ``nonce`` "MUST" equal the one sent; §3.1.3.8:
        ``at_hash`` matches the access token."""
        try:
            jose.check_claims(
                claims,
                ID_TOKEN_CLAIMS,
                now=self.clock.now(),
                issuer=self.issuer,
                audience=self.client.client_id,
            )
        except jose.JoseRefused as exc:
            raise _refused(f"id_token_{_ID_TOKEN_CLAIM_CODES[str(exc.claim)]}") from exc
        several = isinstance(claims["aud"], list) and len(claims["aud"]) > 1
        if several and not _same(claims.get("azp"), self.client.client_id):
            raise _refused("id_token_audience")
        if not _same(claims.get("nonce"), pending.nonce):
            raise _refused("id_token_nonce")
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise _refused("id_token_sub")
        if claims.get("acr") not in ACCEPTED_ACR:
            raise _refused("id_token_acr")
        at_hash = claims.get("at_hash")
        if at_hash is not None and not _same(
            at_hash, (create_half_hash(access_token, alg) or b"").decode("ascii")
        ):
            raise _refused("id_token_at_hash")

    def _check_userinfo(self, info: Mapping[str, Any], id_claims: Mapping[str, Any]) -> None:
        """OpenID Connect Core §5.3.2: a signed UserInfo "SHOULD contain" ``iss`` and
        ``aud`` (FranceConnect sends both: we require them), and "The sub Claim in the
        UserInfo Response MUST be verified to exactly match the sub Claim in the ID Token"."""
        try:
            jose.check_claims(
                info,
                USERINFO_CLAIMS,
                now=self.clock.now(),
                issuer=self.issuer,
                audience=self.client.client_id,
            )
        except jose.JoseRefused as exc:
            raise _refused(f"userinfo_{_USERINFO_CLAIM_CODES[str(exc.claim)]}") from exc
        if not _same(info.get("sub"), id_claims.get("sub")):
            raise _refused("userinfo_sub")


def _unavailable() -> SignInRefused:
    return SignInRefused(
        "federation_unavailable",
        "FranceConnect (bac à sable) ne répond pas pour le moment. Réessayez dans quelques "
        "minutes.",
        503,
    )


def _same(value: object, expected: object) -> bool:
    return (
        isinstance(value, str)
        and isinstance(expected, str)
        and hmac.compare_digest(value.encode(), expected.encode())
    )


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# The stable codes of a claim refused (``jose.check_claims``), after the ``id_token_`` or
# ``userinfo_`` prefix.
_ID_TOKEN_CLAIM_CODES: Final = {"iss": "issuer", "aud": "audience", "exp": "expired", "iat": "iat"}
_USERINFO_CLAIM_CODES: Final = {"iss": "issuer", "aud": "audience"}
_JWT_CODES: Final = {
    jose.Refusal.MALFORMED: "jwt_malformed",
    jose.Refusal.PAYLOAD: "jwt_malformed",
    jose.Refusal.ALGORITHM: "jwt_alg",
    jose.Refusal.TYPE: "jwt_typ",
    jose.Refusal.MISSING_KEY_ID: "jwt_key",
    jose.Refusal.UNKNOWN_KEY: "jwt_key",
    jose.Refusal.KEY_MISMATCH: "jwt_key",
    jose.Refusal.SIGNATURE: "jwt_signature",
}
_LOGGED: Final = {"jwt_alg": "alg", "jwt_key": "key", "jwt_signature": "signature"}


def _verify_jws(token: str, keys: KeySet) -> jose.VerifiedJWS:
    """RFC 7515 §5.2 with RFC 8725 §3.1–3.2 (``guichet.jose``): the algorithm is one we allow
    and the key's own (no ``none``, no key confusion), the key is the federation's, by
    ``kid``."""
    try:
        return jose.verify_jws(token.strip(), keys, SIGNATURE)
    except jose.JoseRefused as exc:
        code = _JWT_CODES.get(exc.refusal, "jwt_malformed")
        if code in _LOGGED:
            event(log, "portal.citizen:jwt_refused", reason=_LOGGED[code])
        raise _refused(code) from exc
