"""JOSE verification for every caller: a compact JWS or JWT (RFC 7515, RFC 7519), and the
nested JWT that RFC 9701 answers with (RFC 7516 around RFC 7515), on joserfc's key sets and
claims registry.

Each caller states what it accepts — its algorithms (``SignaturePolicy``), its claims
(``ClaimRules``) — and maps a ``JoseRefused`` (its ``refusal``, and the ``claim`` at fault)
to its own stable error codes. The rules of RFC 8725 hold for all of them: only asymmetric
signature algorithms can be allowed (never ``none``, never an HMAC a public key could key),
the key is found by ``kid`` and must be of the algorithm's own family, and time comes from
the caller's clock.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from joserfc import jwe, jws
from joserfc.errors import (
    ExpiredTokenError,
    InvalidClaimError,
    InvalidKeyCurveError,
    InvalidKeyIdError,
    JoseError,
    KeyParameterError,
    MissingClaimError,
)
from joserfc.jwk import ECKey, Key, KeySet, RSAKey
from joserfc.jwt import ClaimsOption, JWTClaimsRegistry
from joserfc.util import json_b64decode

# RFC 7518 §3.1: the signature algorithms a caller may allow, with the key each one needs
# (kty, crv). Only asymmetric ones: RFC 8725 §2.1 ("none") and §3.1 (an HMAC "keyed" with
# a public key, the algorithm confusion) cannot be configured at all.
SIGNATURE_KEYS: Final[Mapping[str, tuple[str, str | None]]] = {
    "ES256": ("EC", "P-256"),
    "RS256": ("RSA", None),
}
MIN_RSA_BITS: Final = 2048  # RFC 7518 §3.3: "A key of size 2048 bits or larger MUST be used"


class Refusal(enum.StrEnum):
    """Why a JOSE object was refused; each caller maps these to its own codes."""

    MALFORMED = "malformed"  # not a compact JWS or JWE
    PAYLOAD = "payload"  # a verified payload that is not a JSON object
    ALGORITHM = "algorithm"  # the header's ``alg`` is not one the caller allows
    TYPE = "type"  # the header's ``typ`` is not one the caller accepts
    MISSING_KEY_ID = "missing_key_id"  # no ``kid`` in the header
    UNKNOWN_KEY = "unknown_key"  # no key of the caller's set under that ``kid``
    KEY_MISMATCH = "key_mismatch"  # that key is not the algorithm's family, curve or ``alg``
    SIGNATURE = "signature"
    ENCRYPTION_ALGORITHM = "encryption_algorithm"  # JWE ``alg``
    CONTENT_ENCRYPTION = "content_encryption"  # JWE ``enc``
    COMPRESSION = "compression"  # JWE ``zip``
    CONTENT_TYPE = "content_type"  # JWE ``cty`` other than JWT
    DECRYPTION = "decryption"
    CLAIM_MISSING = "claim_missing"
    CLAIM_INVALID = "claim_invalid"  # of the wrong type, or not the expected value
    EXPIRED = "expired"  # ``exp``
    NOT_YET_VALID = "not_yet_valid"  # ``nbf``
    ISSUED_IN_FUTURE = "issued_in_future"  # ``iat``


class JoseRefused(Exception):
    """A JWS, JWE or JWT that must not be trusted. ``claim`` names the claim at fault (claims
    refusals), ``value`` the header value refused (algorithms), for the caller's message."""

    def __init__(self, refusal: Refusal, *, claim: str | None = None, value: object = None) -> None:
        super().__init__(refusal.value if claim is None else f"{refusal.value}: {claim}")
        self.refusal = refusal
        self.claim = claim
        self.value = value


# --- signatures (RFC 7515) ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SignaturePolicy:
    """What a caller accepts of a JWS: its algorithms, explicitly (RFC 8725 §3.1: "libraries
    MUST enable the caller to specify a supported set of algorithms"), and, when ``types`` is
    set, the ``typ`` header values it requires (RFC 8725 §3.11, explicit typing), compared
    without regard to case (RFC 7515 §4.1.9)."""

    algorithms: tuple[str, ...]
    types: frozenset[str] | None = None
    registry: jws.JWSRegistry = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        refused = [alg for alg in self.algorithms if alg not in SIGNATURE_KEYS]
        if not self.algorithms or refused:
            raise ValueError(f"signature algorithms not allowed: {refused or 'none given'}")
        if self.types is not None:
            object.__setattr__(self, "types", frozenset(t.lower() for t in self.types))
        object.__setattr__(self, "registry", jws.JWSRegistry(algorithms=list(self.algorithms)))


@dataclass(frozen=True, slots=True)
class UnverifiedJWS:
    """A compact JWS whose header the policy accepts; its signature is not checked yet."""

    header: Mapping[str, Any]
    alg: str
    kid: str
    policy: SignaturePolicy
    _compact: jws.CompactSignature = field(repr=False)


@dataclass(frozen=True, slots=True)
class VerifiedJWS:
    """A JWS whose signature verified: its header and its payload, a JSON object."""

    header: dict[str, Any]
    claims: dict[str, Any]


def read_jws(token: str | bytes, policy: SignaturePolicy) -> UnverifiedJWS:
    """RFC 7515 §5.2 steps 1–5, before any key: a compact JWS, an ``alg`` the caller allows,
    its ``typ`` (when the policy requires one) and a ``kid`` (RFC 7515 §4.1.4) to find the key
    by. Split from ``verify_signature`` so a caller may fetch that key first."""
    try:
        raw = token.encode("ascii") if isinstance(token, str) else token
        compact = jws.extract_compact(raw, registry=policy.registry)
        header = compact.headers()
    except (JoseError, ValueError, TypeError, UnicodeError) as exc:
        raise JoseRefused(Refusal.MALFORMED) from exc
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in policy.algorithms:
        raise JoseRefused(Refusal.ALGORITHM, value=alg)
    if policy.types is not None:
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower() not in policy.types:
            raise JoseRefused(Refusal.TYPE, value=typ)
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise JoseRefused(Refusal.MISSING_KEY_ID)
    return UnverifiedJWS(dict(header), alg, kid, policy, compact)


def verify_signature(unverified: UnverifiedJWS, keys: KeySet) -> VerifiedJWS:
    """RFC 7515 §5.2 steps 6–8 with RFC 8725 §3.1: the key of ``keys`` under the header's
    ``kid``, which must be of the algorithm's own family (an EC P-256 key for ES256, an RSA
    key for RS256, and its ``alg``, if it declares one, the header's), verifies the signature;
    then the payload must be a JSON object (RFC 7519 §7.2 step 10)."""
    try:
        key = keys.get_by_kid(unverified.kid)
    except InvalidKeyIdError as exc:
        raise JoseRefused(Refusal.UNKNOWN_KEY) from exc
    compact = unverified._compact
    try:
        valid = jws.validate_compact(compact, key, registry=unverified.policy.registry)
    except (KeyParameterError, InvalidKeyCurveError) as exc:
        raise JoseRefused(Refusal.KEY_MISMATCH, value=unverified.alg) from exc
    except (JoseError, ValueError, TypeError) as exc:
        raise JoseRefused(Refusal.SIGNATURE) from exc
    if not valid:
        raise JoseRefused(Refusal.SIGNATURE)
    try:
        claims = json.loads(compact.payload)
    except (TypeError, ValueError) as exc:
        raise JoseRefused(Refusal.PAYLOAD) from exc
    if not isinstance(claims, dict):
        raise JoseRefused(Refusal.PAYLOAD)
    return VerifiedJWS(dict(unverified.header), claims)


def verify_jws(token: str | bytes, keys: KeySet, policy: SignaturePolicy) -> VerifiedJWS:
    """``read_jws`` then ``verify_signature``: a compact JWS verified with ``keys``."""
    return verify_signature(read_jws(token, policy), keys)


def signing_keys(jwks: Iterable[object], policy: SignaturePolicy) -> KeySet:
    """RFC 7517 §5, a JWK Set's ``keys``: those a signature under ``policy`` may use — a
    ``kid``, ``use`` (if any) ``sig``, ``alg`` (if any) one the policy allows, an EC key on the
    algorithm's curve or an RSA key of at least 2048 bits, public. The others are ignored
    (§5: "implementations SHOULD ignore JWKs within a JWK Set that use ... [what] they do not
    understand"); a ``kid`` seen twice keeps its last key."""
    families = {SIGNATURE_KEYS[alg] for alg in policy.algorithms}
    found: dict[str, Key] = {}
    for jwk in jwks:
        if not isinstance(jwk, dict) or not isinstance(jwk.get("kid"), str):
            continue
        if jwk.get("use", "sig") != "sig" or ("alg" in jwk and jwk["alg"] not in policy.algorithms):
            continue
        key = _public_key(jwk, families)
        if key is not None:
            found[str(jwk["kid"])] = key
    return KeySet(list(found.values()))


def _public_key(jwk: dict[str, Any], families: set[tuple[str, str | None]]) -> Key | None:
    try:
        if jwk.get("kty") == "EC" and ("EC", jwk.get("crv")) in families:
            ec = ECKey.import_key(dict(jwk))
            return None if ec.is_private else ec
        if jwk.get("kty") == "RSA" and ("RSA", None) in families:
            rsa = RSAKey.import_key(dict(jwk))
            return None if rsa.is_private or rsa.raw_value.key_size < MIN_RSA_BITS else rsa
    except (JoseError, ValueError, TypeError):
        return None
    return None


def has_key(keys: KeySet, kid: str) -> bool:
    """Whether ``keys`` holds a key under ``kid`` (a caller may refetch its JWKS otherwise)."""
    return any(key.kid == kid for key in keys)


# --- encryption (RFC 7516), the outer layer of a nested JWT --------------------------------


def decrypt_jwe(
    token: str,
    key: ECKey | RSAKey,
    *,
    algorithm: str,
    encryption: str,
    types: frozenset[str] | None = None,
) -> str:
    """RFC 7516 §5.2, with RFC 8725 §3.1 (the caller's one ``alg`` and one ``enc``, no
    compression, §3.6), of the outer JWE of a nested JWT: ``cty``, when present, ``JWT`` (RFC
    7519 §5.2) and ``typ``, when present, one of ``types``. Returns the inner compact JWS."""
    try:
        header = json_b64decode(token.split(".", 1)[0].encode("ascii"))
    except (ValueError, TypeError, UnicodeError) as exc:
        raise JoseRefused(Refusal.MALFORMED) from exc
    if not isinstance(header, dict):
        raise JoseRefused(Refusal.MALFORMED)
    if header.get("alg") != algorithm:
        raise JoseRefused(Refusal.ENCRYPTION_ALGORITHM, value=header.get("alg"))
    if header.get("enc") != encryption:
        raise JoseRefused(Refusal.CONTENT_ENCRYPTION, value=header.get("enc"))
    if "zip" in header:
        raise JoseRefused(Refusal.COMPRESSION, value=header["zip"])
    if str(header.get("cty", "JWT")).upper() != "JWT":
        raise JoseRefused(Refusal.CONTENT_TYPE, value=header.get("cty"))
    typ = header.get("typ")
    if types is not None and typ is not None and str(typ).lower() not in types:
        raise JoseRefused(Refusal.TYPE, value=typ)
    try:
        decrypted = jwe.decrypt_compact(token, key, algorithms=[algorithm, encryption])
        return decrypted.plaintext.decode("ascii") if decrypted.plaintext else ""
    except (JoseError, ValueError, TypeError, UnicodeError) as exc:
        raise JoseRefused(Refusal.DECRYPTION) from exc


# --- claims (RFC 7519 §4.1) -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClaimRules:
    """Which registered claims a caller checks, in what order, which must be present, and the
    clock skew (seconds) tolerated on ``exp``, ``nbf`` and ``iat``."""

    checked: tuple[str, ...] = ("iss", "aud", "exp", "nbf", "iat")
    required: tuple[str, ...] = ()
    leeway: int = 0


def check_claims(
    claims: Mapping[str, Any],
    rules: ClaimRules,
    *,
    now: dt.datetime,
    issuer: str | None = None,
    audience: str | None = None,
) -> None:
    """RFC 7519 §7.2 step 10, with joserfc's claims registry: every ``required`` claim is
    present (the first missing one, in that order, is named); then, in ``checked`` order and
    when present: ``iss`` is ``issuer`` (§4.1.1), ``aud`` is or contains ``audience``
    (§4.1.3), ``now`` is before ``exp`` (§4.1.4), not before ``nbf`` (§4.1.5), not before
    ``iat`` (§4.1.6), each within ``rules.leeway`` seconds. ``issuer`` or ``audience`` given
    makes ``iss`` or ``aud`` required; ``now`` is the caller's injected clock, to the second."""
    options: dict[str, ClaimsOption] = {}
    required = list(rules.required)
    for name, expected in (("iss", issuer), ("aud", audience)):
        if expected is not None:
            if name not in rules.checked:
                raise ValueError(f"{name} is to be checked against {expected!r}")
            options[name] = {"essential": True, "value": expected}
            if name not in required:
                required.append(name)
    for name in required:
        if claims.get(name) is None:
            raise JoseRefused(Refusal.CLAIM_MISSING, claim=name)
    registry = JWTClaimsRegistry(now=math.floor(now.timestamp()), leeway=rules.leeway, **options)
    try:
        registry.validate({name: claims[name] for name in rules.checked if name in claims})
    except ExpiredTokenError as exc:
        raise JoseRefused(Refusal.EXPIRED, claim="exp") from exc
    except MissingClaimError as exc:  # not reached: required claims were looked at above
        raise JoseRefused(Refusal.CLAIM_MISSING, claim=exc.claim) from exc
    except InvalidClaimError as exc:
        raise _claim_refused(exc.claim, claims.get(exc.claim)) from exc


def _claim_refused(claim: str, value: object) -> JoseRefused:
    """An ``InvalidClaimError``: of the wrong type or value, or, for a time claim that is a
    NumericDate, one outside the window (``nbf`` or ``iat`` after now)."""
    # joserfc's NumericDate: a JSON number, not a boolean, not NaN nor an infinity.
    numeric = not isinstance(value, bool) and (
        isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))
    )
    if numeric:
        if claim == "nbf":
            return JoseRefused(Refusal.NOT_YET_VALID, claim=claim)
        if claim == "iat":
            return JoseRefused(Refusal.ISSUED_IN_FUTURE, claim=claim)
    return JoseRefused(Refusal.CLAIM_INVALID, claim=claim)
