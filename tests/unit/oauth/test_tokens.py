"""RFC 9068 access tokens: what is issued, and every way verification refuses."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import time
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from guichet.errors import TokenExpired, TokenInvalid, TokenWrongAudience
from guichet.oauth.tokens import issue_access_token, verify_access_token

ISS = "https://sandbox.guichet.test"
AUD = "https://sandbox.guichet.test"
NOW = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC)


def _key() -> tuple[ECKey, str, dict[str, Any]]:
    key = ECKey.generate_key("P-256", private=True)
    kid = key.thumbprint()
    return key, kid, {**key.as_dict(private=False), "kid": kid, "alg": "ES256", "use": "sig"}


@pytest.fixture
def signing() -> tuple[ECKey, str, dict[str, Any]]:
    return _key()


def _issue(key: ECKey, kid: str, **over: Any) -> str:
    args: dict[str, Any] = {
        "key": key,
        "kid": kid,
        "issuer": ISS,
        "audience": AUD,
        "client_id": "sandbox-abc",
        "scopes": ["RessourceIR", "RessourceR2P"],
        "cert_thumbprint": "tp",
        "now": NOW,
        "lifetime": 3600,
    }
    args.update(over)
    return issue_access_token(**args)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _forge(header: dict[str, Any], claims: dict[str, Any], sign: Any = None) -> str:
    head = _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(claims).encode())
    sig = sign(head.encode()) if sign else b""
    return head + "." + _b64(sig)


def _verify(token: str, keys: dict[str, dict[str, Any]], **over: Any) -> dict[str, Any]:
    args: dict[str, Any] = {"issuer": ISS, "audience": AUD, "keys": keys, "now": NOW}
    args.update(over)
    return verify_access_token(token, **args)


def test_issued_token_follows_rfc9068(signing: tuple[ECKey, str, dict[str, Any]]) -> None:
    key, kid, jwk = signing
    token = _issue(key, kid)
    decoded = jwt.decode(token, ECKey.import_key(jwk), algorithms=["ES256"])
    assert decoded.header == {"alg": "ES256", "typ": "at+jwt", "kid": kid}
    c = decoded.claims
    assert c["iss"] == ISS
    assert c["aud"] == AUD
    assert c["sub"] == c["client_id"] == "sandbox-abc"
    assert c["scope"] == "RessourceIR RessourceR2P"
    assert c["iat"] == c["nbf"] == int(NOW.timestamp())
    assert c["exp"] == c["iat"] + 3600
    assert c["cnf"] == {"x5t#S256": "tp"}
    assert len(c["jti"]) >= 32
    assert _issue(key, kid) != token  # a fresh jti each time
    assert _verify(token, {kid: jwk}) == c


def test_expired(signing: tuple[ECKey, str, dict[str, Any]]) -> None:
    key, kid, jwk = signing
    token = _issue(key, kid, lifetime=60)
    _verify(token, {kid: jwk}, now=NOW + dt.timedelta(seconds=59))
    with pytest.raises(TokenExpired):
        _verify(token, {kid: jwk}, now=NOW + dt.timedelta(seconds=60))


def test_wrong_audience_and_issuer(signing: tuple[ECKey, str, dict[str, Any]]) -> None:
    key, kid, jwk = signing
    token = _issue(key, kid)
    with pytest.raises(TokenWrongAudience):
        _verify(token, {kid: jwk}, audience="https://production.guichet.test")
    with pytest.raises(TokenWrongAudience):
        _verify(token, {kid: jwk}, issuer="https://production.guichet.test")


def test_not_yet_valid(signing: tuple[ECKey, str, dict[str, Any]]) -> None:
    key, kid, jwk = signing
    token = _issue(key, kid, now=NOW + dt.timedelta(minutes=5))
    with pytest.raises(TokenInvalid):
        _verify(token, {kid: jwk})


def test_alg_none_is_refused(signing: tuple[ECKey, str, dict[str, Any]]) -> None:
    _, kid, jwk = signing
    claims = jwt.decode(_issue(*signing[:2]), ECKey.import_key(jwk)).claims
    for alg in ("none", "None", "NONE"):
        forged = _forge({"alg": alg, "typ": "at+jwt", "kid": kid}, claims)
        with pytest.raises(TokenInvalid):
            _verify(forged, {kid: jwk})


def test_hs256_keyed_with_the_public_key_is_refused(
    signing: tuple[ECKey, str, dict[str, Any]],
) -> None:
    key, kid, jwk = signing
    claims = jwt.decode(_issue(key, kid), ECKey.import_key(jwk)).claims
    public = ECKey.import_key(jwk)
    for secret in (public.as_pem(private=False), json.dumps(jwk).encode()):
        forged = _forge(
            {"alg": "HS256", "typ": "at+jwt", "kid": kid},
            {**claims, "client_id": "attacker"},
            lambda data, s=secret: hmac.new(s, data, hashlib.sha256).digest(),
        )
        with pytest.raises(TokenInvalid):
            _verify(forged, {kid: jwk})


def test_rs256_is_refused(signing: tuple[ECKey, str, dict[str, Any]]) -> None:
    _, kid, jwk = signing
    rsa = RSAKey.generate_key(2048, private=True)
    token = jwt.encode(
        {"alg": "RS256", "typ": "at+jwt", "kid": kid},
        {"iss": ISS, "aud": AUD, "exp": int(NOW.timestamp()) + 60},
        rsa,
        algorithms=["RS256"],
    )
    with pytest.raises(TokenInvalid):
        _verify(token, {kid: jwk, "rsa": {**rsa.as_dict(private=False), "kid": "rsa"}})


def test_tampered_payload_is_refused(signing: tuple[ECKey, str, dict[str, Any]]) -> None:
    key, kid, jwk = signing
    head, payload, sig = _issue(key, kid).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["scope"] = "RessourceIR RessourceIRFacture"
    tampered = ".".join([head, _b64(json.dumps(claims).encode()), sig])
    with pytest.raises(TokenInvalid):
        _verify(tampered, {kid: jwk})


def test_signature_from_another_key_is_refused(signing: tuple[ECKey, str, dict[str, Any]]) -> None:
    _, kid, jwk = signing
    other, _, _ = _key()
    with pytest.raises(TokenInvalid):
        _verify(_issue(other, kid), {kid: jwk})


def test_unknown_kid_is_refused(signing: tuple[ECKey, str, dict[str, Any]]) -> None:
    key, kid, _jwk = signing
    _other_key, other_kid, other_jwk = _key()
    with pytest.raises(TokenInvalid):
        _verify(_issue(key, kid), {other_kid: other_jwk})


def test_plain_jwt_typ_is_refused(signing: tuple[ECKey, str, dict[str, Any]]) -> None:
    key, kid, jwk = signing
    token = jwt.encode(
        {"alg": "ES256", "kid": kid},
        {"iss": ISS, "aud": AUD, "exp": int(NOW.timestamp()) + 60},
        key,
        algorithms=["ES256"],
    )  # typ defaults to "JWT": an ID token or any other JWT, not an access token
    with pytest.raises(TokenInvalid):
        _verify(token, {kid: jwk})


def test_missing_claims_are_refused(signing: tuple[ECKey, str, dict[str, Any]]) -> None:
    key, kid, jwk = signing
    token = jwt.encode(
        {"alg": "ES256", "typ": "at+jwt", "kid": kid},
        {"iss": ISS, "aud": AUD, "exp": int(NOW.timestamp()) + 60},
        key,
        algorithms=["ES256"],
    )
    with pytest.raises(TokenInvalid):
        _verify(token, {kid: jwk})


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "a.b", "é.é.é", "e30.e30.e30"])
def test_garbage_is_invalid(signing: tuple[ECKey, str, dict[str, Any]], garbage: str) -> None:
    _, kid, jwk = signing
    with pytest.raises(TokenInvalid):
        _verify(garbage, {kid: jwk})


def test_cached_verification_still_checks_expiry_and_key(
    signing: tuple[ECKey, str, dict[str, Any]],
) -> None:
    key, kid, jwk = signing
    token = _issue(key, kid, lifetime=60)
    _verify(token, {kid: jwk})  # now cached
    with pytest.raises(TokenExpired):
        _verify(token, {kid: jwk}, now=NOW + dt.timedelta(seconds=61))
    with pytest.raises(TokenWrongAudience):
        _verify(token, {kid: jwk}, audience="https://production.guichet.test")
    with pytest.raises(TokenInvalid):
        _verify(token, {})  # the key left the trusted set
    _, _, replaced = _key()
    with pytest.raises(TokenInvalid):
        _verify(token, {kid: {**replaced, "kid": kid}})  # same kid, other material
    claims = _verify(token, {kid: jwk})
    claims["scope"] = "changed"
    assert _verify(token, {kid: jwk})["scope"] == "RessourceIR RessourceR2P"


def test_verify_speed(signing: tuple[ECKey, str, dict[str, Any]]) -> None:
    """Prints µs per verification: first sight of a token (signature checked) and repeat."""
    key, kid, jwk = signing
    keys = {kid: jwk}
    tokens = [_issue(key, kid) for _ in range(300)]
    start = time.perf_counter()
    for t in tokens:
        _verify(t, keys)
    cold = (time.perf_counter() - start) / len(tokens) * 1e6
    start = time.perf_counter()
    for _ in range(10):
        for t in tokens:
            _verify(t, keys)
    warm = (time.perf_counter() - start) / (10 * len(tokens)) * 1e6
    print(f"\nverify_access_token: {cold:.0f} µs first sight, {warm:.1f} µs repeat")
    assert warm < cold
