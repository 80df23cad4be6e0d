"""RFC 9068 JWT access tokens: issued at ``/token``, verified on every gateway call.

Verification is on the hot path, and ``guichet.jose``'s: the key set is parsed once per
``keys`` mapping, the signature policy (and its JWS registry) is built once, a token's
signature is checked once (later calls with the same token only re-check its claims, with
joserfc's claims registry against the injected clock). Measured on the development machine
(``tests/unit/oauth/test_tokens.py::test_verify_speed``, run with ``-s``): about 150–250 µs
the first time a token is seen (the ECDSA P-256 signature check is ~90 µs of it) and about
10–15 µs on later calls, most of it the claims registry (the hand-written comparisons it
replaced took ~4 µs).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import secrets
from collections.abc import Mapping
from typing import Any, Final

from joserfc import jwt
from joserfc.jwk import ECKey, KeySet

from guichet import jose
from guichet.errors import GuichetError, TokenExpired, TokenInvalid, TokenWrongAudience
from guichet.oauth.rfc8705 import confirmation

ALG: Final = "ES256"
TYP: Final = "at+jwt"
# RFC 9068 §4: "Resource servers MUST verify that the typ header value is at+jwt or
# application/at+jwt and reject tokens carrying any other value."
SIGNATURE: Final = jose.SignaturePolicy((ALG,), frozenset({"at+jwt", "application/at+jwt"}))
CLAIMS: Final = jose.ClaimRules(
    checked=("iss", "aud", "exp", "nbf", "iat"),
    required=("iss", "aud", "sub", "client_id", "scope", "jti", "iat", "exp"),
)


def issue_access_token(
    *,
    key: ECKey,
    kid: str,
    issuer: str,
    audience: str,
    client_id: str,
    scopes: list[str],
    cert_thumbprint: str,
    now: dt.datetime,
    lifetime: int,
) -> str:
    """RFC 9068 §2: a JWT access token, header ``typ: at+jwt``; ``sub`` is the client itself
    (§2.2: "where no resource owner is involved … the client application"); RFC 8705 §3.1
    binds it to the certificate presented at the token endpoint (``cnf.x5t#S256``)."""
    iat = int(now.timestamp())
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": audience,
        "sub": client_id,
        "client_id": client_id,
        "scope": " ".join(scopes),
        "jti": secrets.token_urlsafe(24),
        "iat": iat,
        "nbf": iat,
        "exp": iat + lifetime,
        "cnf": confirmation(cert_thumbprint),
    }
    return jwt.encode(
        {"alg": ALG, "typ": TYP, "kid": kid}, claims, key, algorithms=[ALG], default_type=None
    )


# The key set of the last ``keys`` mapping seen: the gateway passes the same mapping until
# its policy changes (``ControlChain._verification_keys``), so the JWKs are parsed once per
# generation. Compared by identity, then by value: other material under a kid is re-parsed.
_key_set: tuple[Mapping[str, Mapping[str, Any]], KeySet] | None = None


def _keys(keys: Mapping[str, Mapping[str, Any]]) -> KeySet:
    global _key_set
    cached = _key_set
    if cached is not None and (cached[0] is keys or cached[0] == keys):
        return cached[1]
    key_set = jose.signing_keys(({**jwk, "kid": kid} for kid, jwk in keys.items()), SIGNATURE)
    _key_set = (keys, key_set)
    return key_set


# token → (the kid and JWK that verified its signature, its claims). A gateway sees the same
# token for up to its lifetime, so the signature of those exact bytes is checked once; the
# claims (expiry, audience…) are re-checked on every call, and a key that left ``keys`` stops
# matching. Bounded; the oldest entries go first.
_VERIFIED_MAX: Final = 16384
_verified: dict[str, tuple[str, Mapping[str, Any], dict[str, Any]]] = {}


def _remember(token: str, kid: str, jwk: Mapping[str, Any], claims: dict[str, Any]) -> None:
    if len(_verified) >= _VERIFIED_MAX:
        # Another thread may evict at the same moment; either way one entry goes.
        with contextlib.suppress(KeyError, StopIteration, RuntimeError):
            del _verified[next(iter(_verified))]
    _verified[token] = (kid, jwk, claims)


def _same_key(current: Mapping[str, Any] | None, verified_with: Mapping[str, Any]) -> bool:
    """The key that verified these bytes is still trusted under the same kid."""
    return current is not None and (current is verified_with or current == verified_with)


_SIGNATURE_REFUSED: Final = {
    jose.Refusal.MALFORMED: "Jeton d'accès mal formé.",
    jose.Refusal.ALGORITHM: "Algorithme de signature du jeton refusé (ES256 attendu).",
    jose.Refusal.TYPE: "Le jeton n'est pas un jeton d'accès (typ at+jwt attendu).",
    jose.Refusal.MISSING_KEY_ID: "Jeton signé par une clé inconnue.",
    jose.Refusal.UNKNOWN_KEY: "Jeton signé par une clé inconnue.",
    jose.Refusal.KEY_MISMATCH: "Clé de signature inutilisable.",
    jose.Refusal.PAYLOAD: "Contenu du jeton illisible.",
}


def _verified_claims(token: str, keys: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The claims of a token whose signature verifies with one of ``keys``."""
    try:
        verified = jose.verify_jws(token, _keys(keys), SIGNATURE)
    except jose.JoseRefused as exc:
        raise TokenInvalid(
            _SIGNATURE_REFUSED.get(exc.refusal, "Signature du jeton invalide.")
        ) from exc
    kid = str(verified.header["kid"])
    _remember(token, kid, keys[kid], verified.claims)
    return verified.claims


def _claims_refused(exc: jose.JoseRefused) -> GuichetError:
    """RFC 9068 §4's refusals, as the gateway has always named them."""
    if exc.refusal is jose.Refusal.CLAIM_MISSING:
        return TokenInvalid(f"Revendication « {exc.claim} » absente du jeton.")
    if exc.claim == "iss":
        return TokenWrongAudience("Jeton émis par un autre serveur d'autorisation.")
    if exc.claim == "aud":
        return TokenWrongAudience("Jeton émis pour un autre environnement.")
    if exc.refusal is jose.Refusal.EXPIRED:
        return TokenExpired()
    if exc.refusal is jose.Refusal.NOT_YET_VALID:
        return TokenInvalid("Jeton pas encore valide.")
    if exc.refusal is jose.Refusal.ISSUED_IN_FUTURE:
        return TokenInvalid("Jeton émis dans le futur.")
    return TokenInvalid(f"Revendication « {exc.claim} » absente ou invalide.")


def verify_access_token(
    token: str,
    *,
    issuer: str,
    audience: str,
    keys: Mapping[str, Mapping[str, Any]],
    now: dt.datetime,
) -> dict[str, Any]:
    """RFC 9068 §4, validating a JWT access token; returns (a copy of) its claims.

    Refusals, in the order they are checked:

    - ``TokenInvalid``: not a compact JWS; a header whose ``alg`` is not ES256 (so ``none``,
      HS256 keyed with the public key, RS256… are refused before any key is looked at);
      ``typ`` other than ``at+jwt``; unknown ``kid``; bad signature; a payload that is not a
      JSON object or lacks a required claim.
    - ``TokenWrongAudience``: ``iss`` is not ``issuer`` or ``aud`` does not hold
      ``audience`` — a token from another authorization server is, for this gateway, one
      issued for another environment.
    - ``TokenExpired``: ``exp`` is at or before ``now``.
    - ``TokenInvalid``: ``nbf`` or ``iat`` after ``now``.

    ``keys`` maps ``kid`` → public JWK (see ``guichet.oauth.keys.verification_keys``).
    Revocation and the certificate binding (``rfc8705.check_binding``) are the caller's.
    The checks are ``guichet.jose``'s, with no leeway.
    """
    hit = _verified.get(token)
    if hit is not None and _same_key(keys.get(hit[0]), hit[1]):
        claims = hit[2]
    else:
        claims = _verified_claims(token, keys)
    try:
        jose.check_claims(claims, CLAIMS, now=now, issuer=issuer, audience=audience)
    except jose.JoseRefused as exc:
        raise _claims_refused(exc) from exc
    if not isinstance(claims["scope"], str) or not isinstance(claims["client_id"], str):
        raise TokenInvalid("Revendications « scope » ou « client_id » invalides.")
    return dict(claims)
