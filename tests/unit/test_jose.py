"""guichet.jose: JWS and nested JWT verification, key sets and claims, and every refusal."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
from typing import Any

import pytest
from joserfc import jwe, jws, jwt
from joserfc.jwk import ECKey, KeySet, OctKey, RSAKey

from guichet import jose
from guichet.jose import ClaimRules, JoseRefused, Refusal, SignaturePolicy

ISS = "https://federation.example"
AUD = "client-42"
NOW = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC)
T = int(NOW.timestamp())
TYP = "token-introspection+jwt"
BOTH = SignaturePolicy(("ES256", "RS256"))
TYPED = SignaturePolicy(("ES256", "RS256"), frozenset({TYP, f"application/{TYP}"}))
ES256_ONLY = SignaturePolicy(("ES256",))
RULES = ClaimRules(required=("iss", "aud", "exp", "iat"))


def _ec(kid: str = "ec-1") -> ECKey:
    return ECKey.generate_key("P-256", private=True, parameters={"kid": kid})


def _rsa(kid: str = "rsa-1") -> RSAKey:
    return RSAKey.generate_key(2048, private=True, parameters={"kid": kid})


def _public(key: ECKey | RSAKey, **extra: Any) -> dict[str, Any]:
    return {**key.as_dict(private=False), "kid": key.kid, **extra}


def _claims(**over: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {"iss": ISS, "aud": AUD, "sub": "s", "iat": T, "exp": T + 60}
    claims.update(over)
    return {k: v for k, v in claims.items() if v is not None}


def _sign(key: ECKey | RSAKey, claims: dict[str, Any] | None = None, **header: Any) -> str:
    alg = "ES256" if isinstance(key, ECKey) else "RS256"
    head = {"alg": alg, "kid": key.kid, "typ": TYP, **header}
    return jwt.encode(head, claims or _claims(), key, algorithms=[head["alg"]])


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _forge(header: dict[str, Any], claims: dict[str, Any], secret: bytes | None) -> str:
    """A compact JWS built by hand: unsigned, or "signed" with HMAC-SHA256 under ``secret``."""
    head = _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(claims).encode())
    sig = hmac.new(secret, head.encode(), hashlib.sha256).digest() if secret else b""
    return head + "." + _b64(sig)


def _refusal(call: Any) -> JoseRefused:
    with pytest.raises(JoseRefused) as caught:
        call()
    return caught.value


# --- signatures ------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [_ec, _rsa])
def test_a_valid_token_verifies_and_its_claims_pass(make: Any) -> None:
    key = make()
    keys = jose.signing_keys([_public(key)], TYPED)
    verified = jose.verify_jws(_sign(key), keys, TYPED)
    assert verified.header["kid"] == key.kid
    assert verified.claims == _claims()
    jose.check_claims(verified.claims, RULES, now=NOW, issuer=ISS, audience=AUD)


def test_the_typ_is_compared_without_case_and_required_when_the_policy_names_it() -> None:
    key = _ec()
    keys = jose.signing_keys([_public(key)], TYPED)
    jose.verify_jws(_sign(key, typ="Application/Token-Introspection+JWT"), keys, TYPED)
    assert _refusal(lambda: jose.verify_jws(_sign(key, typ="JWT"), keys, TYPED)).refusal is (
        Refusal.TYPE
    )
    untyped = jwt.encode({"alg": "ES256", "kid": key.kid}, _claims(), key, default_type=None)
    assert _refusal(lambda: jose.verify_jws(untyped, keys, TYPED)).refusal is Refusal.TYPE
    jose.verify_jws(untyped, keys, BOTH)  # a policy without types does not look


def test_a_bad_signature_is_refused() -> None:
    key, other = _ec(), _ec()  # the same kid, other material
    keys = jose.signing_keys([_public(key)], BOTH)
    refused = _refusal(lambda: jose.verify_jws(_sign(other), keys, BOTH))
    assert refused.refusal is Refusal.SIGNATURE
    head, _, sig = _sign(key).split(".")
    tampered = f"{head}.{_b64(json.dumps(_claims(sub='attacker')).encode())}.{sig}"
    assert _refusal(lambda: jose.verify_jws(tampered, keys, BOTH)).refusal is Refusal.SIGNATURE


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_alg_none_is_refused(alg: str) -> None:
    key = _ec()
    keys = jose.signing_keys([_public(key)], BOTH)
    forged = _forge({"alg": alg, "kid": key.kid, "typ": TYP}, _claims(), None)
    refused = _refusal(lambda: jose.verify_jws(forged, keys, TYPED))
    assert (refused.refusal, refused.value) == (Refusal.ALGORITHM, alg)


@pytest.mark.parametrize("make", [_ec, _rsa])
def test_hs256_keyed_with_the_public_key_is_refused(make: Any) -> None:
    """Algorithm confusion (RFC 8725 §2.1): an HMAC whose secret is the verifier's public
    key — as PEM, as the JWK's JSON — must never verify, whatever the key's family."""
    key = make()
    public = _public(key)
    keys = jose.signing_keys([public], BOTH)
    secrets = [
        key.as_pem(private=False),
        json.dumps(public).encode(),
        json.dumps(public, sort_keys=True).encode(),
    ]
    for secret in secrets:
        forged = _forge({"alg": "HS256", "kid": key.kid, "typ": TYP}, _claims(), secret)
        refused = _refusal(lambda f=forged: jose.verify_jws(f, keys, TYPED))
        assert (refused.refusal, refused.value) == (Refusal.ALGORITHM, "HS256")
    # The same attack through joserfc itself, with the JWK as an octet key.
    forged = jwt.encode(
        {"alg": "HS256", "kid": key.kid},
        _claims(),
        OctKey.import_key(json.dumps(public).encode()),
        algorithms=["HS256"],
    )
    assert _refusal(lambda: jose.verify_jws(forged, keys, BOTH)).refusal is Refusal.ALGORITHM


def test_an_algorithm_of_another_family_than_the_key_is_refused() -> None:
    """RS256 claimed under an EC key's kid (and ES256 under an RSA one): the key decides."""
    ec, rsa = _ec("shared"), _rsa("shared-rsa")
    keys = jose.signing_keys([_public(ec), _public(rsa)], BOTH)
    rs_under_ec = jwt.encode(
        {"alg": "RS256", "kid": ec.kid}, _claims(), _rsa(), algorithms=["RS256"]
    )
    refused = _refusal(lambda: jose.verify_jws(rs_under_ec, keys, BOTH))
    assert (refused.refusal, refused.value) == (Refusal.KEY_MISMATCH, "RS256")
    es_under_rsa = jwt.encode(
        {"alg": "ES256", "kid": rsa.kid}, _claims(), _ec(), algorithms=["ES256"]
    )
    assert _refusal(lambda: jose.verify_jws(es_under_rsa, keys, BOTH)).refusal is (
        Refusal.KEY_MISMATCH
    )
    # A key that declares its algorithm is used with that one only.
    declared = jose.signing_keys([_public(rsa, alg="RS256")], BOTH)
    assert jose.verify_jws(_sign(rsa), declared, BOTH).claims == _claims()


def test_an_algorithm_outside_the_policy_is_refused_before_any_key() -> None:
    rsa = _rsa()
    keys = jose.signing_keys([_public(rsa)], BOTH)
    refused = _refusal(lambda: jose.verify_jws(_sign(rsa), keys, ES256_ONLY))
    assert (refused.refusal, refused.value) == (Refusal.ALGORITHM, "RS256")


@pytest.mark.parametrize("algorithms", [(), ("none",), ("HS256",), ("ES256", "HS512")])
def test_a_policy_cannot_allow_none_or_an_hmac(algorithms: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="not allowed"):
        SignaturePolicy(algorithms)


def test_an_unknown_or_missing_kid_is_refused() -> None:
    key = _ec()
    keys = jose.signing_keys([_public(_ec("other"))], BOTH)
    assert _refusal(lambda: jose.verify_jws(_sign(key), keys, BOTH)).refusal is (
        Refusal.UNKNOWN_KEY
    )
    single = jose.signing_keys([_public(key)], BOTH)
    no_kid = jwt.encode({"alg": "ES256"}, _claims(), key)
    # Even with a one-key set, a token must name its key (joserfc would pick the only one).
    assert _refusal(lambda: jose.verify_jws(no_kid, single, BOTH)).refusal is (
        Refusal.MISSING_KEY_ID
    )
    assert jose.has_key(single, str(key.kid))
    assert not jose.has_key(single, "other")


@pytest.mark.parametrize("garbage", ["", "abc", "a.b", "a.b.c", "é.é.é", "a.b.c.d"])
def test_garbage_is_malformed(garbage: str) -> None:
    keys = jose.signing_keys([_public(_ec())], BOTH)
    assert _refusal(lambda: jose.verify_jws(garbage, keys, BOTH)).refusal is Refusal.MALFORMED


def test_a_payload_that_is_not_a_json_object_is_refused() -> None:
    key = _ec()
    keys = jose.signing_keys([_public(key)], BOTH)
    for payload in (b"[1, 2]", b"not json", b'"text"'):
        token = jws.serialize_compact({"alg": "ES256", "kid": key.kid}, payload, key)
        assert _refusal(lambda t=token: jose.verify_jws(t, keys, BOTH)).refusal is (Refusal.PAYLOAD)


def test_read_then_verify_lets_the_caller_fetch_the_key_in_between() -> None:
    key = _ec("rotated")
    unverified = jose.read_jws(_sign(key), TYPED)
    assert (unverified.alg, unverified.kid) == ("ES256", "rotated")
    with pytest.raises(JoseRefused):
        jose.verify_signature(unverified, KeySet([]))
    fetched = jose.signing_keys([_public(key)], TYPED)
    assert jose.verify_signature(unverified, fetched).claims["iss"] == ISS


@pytest.mark.filterwarnings("ignore:Key size should be:joserfc.errors.SecurityWarning")
def test_signing_keys_keeps_only_public_signature_keys_the_policy_can_use() -> None:
    ec, rsa = _ec("ec"), _rsa("rsa")
    small = RSAKey.generate_key(1024, private=True, parameters={"kid": "small"})
    p384 = ECKey.generate_key("P-384", private=True, parameters={"kid": "p384"})
    published: list[object] = [
        _public(ec),
        _public(rsa),
        {**ec.as_dict(private=True), "kid": "private"},  # never trust a published secret
        _public(small),
        _public(p384),
        _public(_ec("enc"), use="enc"),
        _public(_ec("hs"), alg="HS256"),
        {k: v for k, v in _public(_ec()).items() if k != "kid"},
        {"kty": "oct", "k": "c2VjcmV0", "kid": "oct"},
        {"kty": "EC", "kid": "broken", "crv": "P-256", "x": "AA", "y": "AA"},
        "not a key",
    ]
    assert {k.kid for k in jose.signing_keys(published, BOTH)} == {"ec", "rsa"}
    assert {k.kid for k in jose.signing_keys(published, ES256_ONLY)} == {"ec"}


# --- claims --------------------------------------------------------------------------------


def _check(claims: dict[str, Any], rules: ClaimRules = RULES, **over: Any) -> None:
    args: dict[str, Any] = {"now": NOW, "issuer": ISS, "audience": AUD}
    args.update(over)
    jose.check_claims(claims, rules, **args)


def test_expired_at_exp_and_within_the_leeway() -> None:
    _check(_claims(exp=T + 1))
    refused = _refusal(lambda: _check(_claims(exp=T)))
    assert (refused.refusal, refused.claim) == (Refusal.EXPIRED, "exp")
    lenient = ClaimRules(required=("exp",), leeway=30)
    _check(_claims(exp=T - 29), lenient)
    assert _refusal(lambda: _check(_claims(exp=T - 30), lenient)).refusal is Refusal.EXPIRED
    # The injected clock, not the machine's: a second later is a second later.
    assert _refusal(lambda: _check(_claims(exp=T + 1), now=NOW + dt.timedelta(seconds=1)))


def test_wrong_audience() -> None:
    _check(_claims(aud=["another", AUD]))
    for aud in ("another", ["another"], [], "", 42, [AUD, 42]):
        refused = _refusal(lambda a=aud: _check(_claims(aud=a)))
        assert (refused.refusal, refused.claim) == (Refusal.CLAIM_INVALID, "aud")


def test_wrong_issuer() -> None:
    for iss in ("https://elsewhere.example", ISS + "/", ISS.upper(), ["x"], 1):
        refused = _refusal(lambda i=iss: _check(_claims(iss=i)))
        assert (refused.refusal, refused.claim) == (Refusal.CLAIM_INVALID, "iss")


def test_missing_claims_are_named_in_the_callers_order() -> None:
    refused = _refusal(lambda: _check(_claims(iat=None, exp=None)))
    assert (refused.refusal, refused.claim) == (Refusal.CLAIM_MISSING, "exp")
    # An issuer or an audience to check makes the claim required.
    refused = _refusal(lambda: _check(_claims(aud=None), ClaimRules()))
    assert (refused.refusal, refused.claim) == (Refusal.CLAIM_MISSING, "aud")
    with pytest.raises(ValueError, match="iss"):
        _check(_claims(), ClaimRules(checked=("aud",)))


def test_not_yet_valid_and_issued_in_the_future() -> None:
    _check(_claims(nbf=T))
    refused = _refusal(lambda: _check(_claims(nbf=T + 1)))
    assert (refused.refusal, refused.claim) == (Refusal.NOT_YET_VALID, "nbf")
    refused = _refusal(lambda: _check(_claims(iat=T + 1)))
    assert (refused.refusal, refused.claim) == (Refusal.ISSUED_IN_FUTURE, "iat")
    _check(_claims(iat=T + 60), ClaimRules(leeway=60))
    # Only the claims the caller checks: an nbf it does not look at is not refused.
    _check(_claims(nbf=T + 1), ClaimRules(checked=("iss", "aud", "exp", "iat")))


@pytest.mark.parametrize("value", ["soon", True, float("nan"), float("inf"), [T]])
@pytest.mark.parametrize("name", ["exp", "nbf", "iat"])
def test_a_time_claim_that_is_no_number_is_invalid(name: str, value: Any) -> None:
    refused = _refusal(lambda: _check({**_claims(), name: value}))
    assert (refused.refusal, refused.claim) == (Refusal.CLAIM_INVALID, name)


# --- a nested JWT, signed then encrypted (RFC 9701 §5) --------------------------------------


def _seal(signed: str, key: ECKey | RSAKey, **header: Any) -> str:
    alg = "ECDH-ES" if isinstance(key, ECKey) else "RSA-OAEP-256"
    head = {"alg": alg, "enc": "A256GCM", "cty": "JWT", "typ": TYP, **header}
    head = {k: v for k, v in head.items() if v is not None}
    algorithms = [head["alg"], head["enc"], *(["DEF"] if "zip" in head else [])]
    public = key.as_dict(private=False)
    recipient = (ECKey if isinstance(key, ECKey) else RSAKey).import_key(public)
    return jwe.encrypt_compact(head, signed, recipient, algorithms=algorithms)


def _open(token: str, key: ECKey | RSAKey) -> str:
    alg = "ECDH-ES" if isinstance(key, ECKey) else "RSA-OAEP-256"
    return jose.decrypt_jwe(token, key, algorithm=alg, encryption="A256GCM", types=TYPED.types)


@pytest.mark.parametrize("make_recipient", [_ec, _rsa])
def test_encrypted_then_signed_answer_decrypts_then_verifies(make_recipient: Any) -> None:
    signer, recipient = _ec("federation"), make_recipient()
    keys = jose.signing_keys([_public(signer)], TYPED)
    sealed = _seal(_sign(signer), recipient)
    assert sealed.count(".") == 4
    inner = _open(sealed, recipient)
    verified = jose.verify_jws(inner, keys, TYPED)
    jose.check_claims(verified.claims, RULES, now=NOW, issuer=ISS, audience=AUD)
    # What anyone can do with the recipient's public key — seal a forgery — still needs the
    # federation's signature inside.
    forged = _seal(_sign(_ec("federation")), recipient)
    assert _refusal(lambda: jose.verify_jws(_open(forged, recipient), keys, TYPED)).refusal is (
        Refusal.SIGNATURE
    )


def test_only_the_callers_encryption_algorithms_are_accepted() -> None:
    recipient = _ec()
    signed = _sign(_ec("federation"))
    direct = jwe.encrypt_compact(
        {"alg": "dir", "enc": "A256GCM"},
        signed,
        OctKey.generate_key(256),
        algorithms=["dir", "A256GCM"],
    )
    cases = [
        (direct, Refusal.ENCRYPTION_ALGORITHM, "dir"),
        (_seal(signed, recipient, alg="ECDH-ES+A256KW"), Refusal.ENCRYPTION_ALGORITHM, None),
        (_seal(signed, recipient, enc="A128CBC-HS256"), Refusal.CONTENT_ENCRYPTION, None),
        (_seal(signed, recipient, zip="DEF"), Refusal.COMPRESSION, None),
        (_seal(signed, recipient, cty="json"), Refusal.CONTENT_TYPE, None),
        (_seal(signed, recipient, typ="JWT"), Refusal.TYPE, None),
        (_seal(signed, _ec()), Refusal.DECRYPTION, None),  # for another key
        ("a.b.c.d.e", Refusal.MALFORMED, None),
    ]
    for token, refusal, value in cases:
        refused = _refusal(lambda t=token: _open(t, recipient))
        assert refused.refusal is refusal
        if value is not None:
            assert refused.value == value
    # typ and cty are optional; when absent the answer still opens.
    assert _open(_seal(signed, recipient, typ=None, cty=None), recipient).count(".") == 2


def test_a_tampered_ciphertext_or_header_is_refused() -> None:
    recipient = _ec()
    parts = _seal(_sign(_ec("federation")), recipient).split(".")
    for index in (2, 3, 4):  # IV, ciphertext, tag
        raw = bytearray(base64.urlsafe_b64decode(parts[index] + "=" * (-len(parts[index]) % 4)))
        raw[len(raw) // 2] ^= 0x01
        tampered = ".".join(_b64(bytes(raw)) if i == index else p for i, p in enumerate(parts))
        assert _refusal(lambda t=tampered: _open(t, recipient)).refusal is Refusal.DECRYPTION
    header = json.loads(base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4)))
    added = ".".join([_b64(json.dumps({**header, "kid": "x"}).encode()), *parts[1:]])
    assert _refusal(lambda: _open(added, recipient)).refusal is Refusal.DECRYPTION
