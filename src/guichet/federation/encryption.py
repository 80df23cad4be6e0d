"""Encrypting a ``/checktoken`` answer to the data provider's key: RFC 9701 §5's nested JWT.

FranceConnect v2 signs its answer to a data provider, then encrypts it to the public key
the data provider registered (its ``checktoken_encrypted_response_alg`` / ``_enc``). The
sandbox federation does the same with the key registered on the client: EC P-256 keys get
``ECDH-ES``, RSA keys (2048 bits or more) ``RSA-OAEP-256``; the content is always
``A256GCM``. Those are the only pairs, on both sides (``guichet.federation.checktoken``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from joserfc import jwe
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey

# RFC 7518 §4.6 (ECDH-ES, direct key agreement) and §4.3 (RSAES OAEP with SHA-256).
KEY_ALGORITHMS: Final = {"EC": "ECDH-ES", "RSA": "RSA-OAEP-256"}
CONTENT_ENCRYPTION: Final = "A256GCM"  # RFC 7518 §5.3
MIN_RSA_BITS: Final = 2048
# RFC 7519 §5.2: "cty" is "JWT" when the plaintext of a JWE is itself a JWT (nested JWT).
NESTED_CTY: Final = "JWT"
INTROSPECTION_TYP: Final = "token-introspection+jwt"  # RFC 9701 §5, explicit typing


def encryption_key(jwk: Mapping[str, Any]) -> ECKey | RSAKey:
    """A data provider's public encryption key, or ``ValueError``: EC P-256 or RSA ≥ 2048
    bits, public only, ``use`` (if given) ``enc``, ``alg`` (if given) the one of its family."""
    if not isinstance(jwk, Mapping):
        raise ValueError("an encryption key is a JWK object")
    kty = jwk.get("kty")
    if kty not in KEY_ALGORITHMS:
        raise ValueError("an encryption key is EC (P-256) or RSA")
    if jwk.get("use", "enc") != "enc":
        raise ValueError("an encryption key has use 'enc'")
    if jwk.get("alg", KEY_ALGORITHMS[str(kty)]) != KEY_ALGORITHMS[str(kty)]:
        raise ValueError(f"an {kty} encryption key is for {KEY_ALGORITHMS[str(kty)]}")
    if "d" in jwk:
        raise ValueError("register the public key only, not the private one")
    try:
        if kty == "EC":
            if jwk.get("crv") != "P-256":
                raise ValueError("an EC encryption key is on P-256")
            return ECKey.import_key(dict(jwk))
        rsa = RSAKey.import_key(dict(jwk))
    except (JoseError, TypeError, KeyError) as exc:
        raise ValueError(f"not a valid {kty} key: {exc}") from exc
    if rsa.raw_value.key_size < MIN_RSA_BITS:
        raise ValueError(f"an RSA encryption key has at least {MIN_RSA_BITS} bits")
    return rsa


def public_jwk_of(data: bytes) -> dict[str, Any]:
    """A public encryption key given as a JWK (JSON) or a PEM public key, as a JWK."""
    text = data.strip()
    if text.startswith(b"{"):
        try:
            loaded = json.loads(text)
        except ValueError as exc:
            raise ValueError("not a JSON JWK") from exc
        if not isinstance(loaded, dict):
            raise ValueError("not a JSON JWK")
        return stored_jwk(loaded)
    if b"PRIVATE KEY" in text:
        raise ValueError("give the public key, not the private one")
    for family in (ECKey, RSAKey):
        try:
            key = family.import_key(text)
        except (JoseError, ValueError, TypeError):
            continue
        return stored_jwk(key.as_dict(private=False))
    raise ValueError("neither a JWK nor a PEM public key (EC P-256 or RSA)")


def key_algorithm(key: ECKey | RSAKey) -> str:
    """The key management algorithm of a key's family."""
    return KEY_ALGORITHMS["EC" if isinstance(key, ECKey) else "RSA"]


def stored_jwk(jwk: Mapping[str, Any]) -> dict[str, Any]:
    """The public JWK as registered: its public members, ``use``, ``alg`` and a ``kid``
    (the given one, else its RFC 7638 thumbprint)."""
    key = encryption_key(jwk)
    kid = jwk.get("kid")
    return {
        **key.as_dict(private=False),
        "kid": kid if isinstance(kid, str) and kid else key.thumbprint(),
        "use": "enc",
        "alg": key_algorithm(key),
    }


def encrypt_answer(signed: str, jwk: Mapping[str, Any]) -> str:
    """RFC 9701 §5: "If the JWT is signed and encrypted, it MUST be a Nested JWT" — the
    signed answer as the plaintext of a compact JWE (RFC 7516 §7.1) to the data provider's
    key, with ``cty: JWT`` (RFC 7519 §5.2) and the answer's ``typ``."""
    key = encryption_key(jwk)
    alg = key_algorithm(key)
    header: dict[str, Any] = {
        "alg": alg,
        "enc": CONTENT_ENCRYPTION,
        "cty": NESTED_CTY,
        "typ": INTROSPECTION_TYP,
    }
    if isinstance(jwk.get("kid"), str):
        header["kid"] = jwk["kid"]
    return jwe.encrypt_compact(
        header, signed.encode("ascii"), key, algorithms=[alg, CONTENT_ENCRYPTION]
    )
