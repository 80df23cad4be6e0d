"""A relying party's real flow with Authlib's client: ID token, signed userinfo, checktoken."""

from __future__ import annotations

import secrets
from typing import Any

import httpx
import pytest
from authlib.integrations.httpx_client import AsyncOAuth2Client
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwe, jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet

from guichet.federation.clients import set_encryption_key
from guichet.federation.scopes import PIVOT_CLAIMS
from guichet.sandbox import personas
from tests.unit.federation.support import (
    ISSUER,
    LOGGED_OUT,
    REDIRECT,
    Federation,
    query_of,
    sign_in,
)

pytestmark = pytest.mark.anyio

ANGELA: dict[str, Any] = {
    "given_name": "Angela Claire Louise",
    "given_name_array": ["Angela", "Claire", "Louise"],
    "family_name": "DUBOIS",
    "birthdate": "1962-08-24",
    "gender": "female",
    "birthplace": "75107",
    "birthcountry": "99100",
}


def rp_client(fed: Federation, scope: str) -> AsyncOAuth2Client:
    return AsyncOAuth2Client(
        client_id=fed.sp.client_id,
        client_secret=fed.sp.client_secret,
        scope=scope,
        redirect_uri=REDIRECT,
        token_endpoint_auth_method="client_secret_post",
        code_challenge_method="S256",
        leeway=5,  # Authlib's default (60 s) would treat a 60-second token as expired
        transport=httpx.ASGITransport(app=fed.app),
    )


async def verify(fed: Federation, token: str, typ: str = "JWT") -> dict[str, Any]:
    """Check a JWT of the federation against its published JWKS (ES256 only)."""
    async with fed.browser() as http:
        keys = KeySet.import_key_set((await http.get("/jwks")).json())
    decoded = jwt.decode(token, keys, algorithms=["ES256"])
    assert decoded.header["typ"] == typ
    return dict(decoded.claims)


async def test_discovery(federation: Federation) -> None:
    async with federation.browser() as http:
        doc = (await http.get("/.well-known/openid-configuration")).json()
        jwks = (await http.get(doc["jwks_uri"].removeprefix(ISSUER))).json()
    assert doc["issuer"] == ISSUER
    assert doc["authorization_endpoint"] == f"{ISSUER}/authorize"
    assert doc["end_session_endpoint"] == f"{ISSUER}/session/end"
    assert doc["subject_types_supported"] == ["pairwise"]
    assert doc["acr_values_supported"] == ["eidas1"]
    assert doc["id_token_signing_alg_values_supported"] == ["ES256"]
    # RFC 9701 §7: how /checktoken answers are signed, and encrypted to a data provider's key.
    assert doc["introspection_signing_alg_values_supported"] == ["ES256"]
    assert doc["introspection_encryption_alg_values_supported"] == ["ECDH-ES", "RSA-OAEP-256"]
    assert doc["introspection_encryption_enc_values_supported"] == ["A256GCM"]
    assert "dgfip_rfr" in doc["scopes_supported"]
    assert [k["alg"] for k in jwks["keys"]] == ["ES256"]


async def full_flow(fed: Federation, scope: str, spi: str = personas.DUBOIS.spi) -> dict[str, Any]:
    nonce = secrets.token_urlsafe(32)
    verifier = secrets.token_urlsafe(48)
    async with rp_client(fed, scope) as rp, fed.browser() as browser:
        url, state = rp.create_authorization_url(
            f"{ISSUER}/authorize",
            state=secrets.token_urlsafe(32),
            nonce=nonce,
            acr_values="eidas1",
            code_verifier=verifier,
        )
        assert query_of(url)["code_challenge"] == create_s256_code_challenge(verifier)
        callback = await sign_in(browser, url, spi)
        assert callback.startswith(REDIRECT + "?")
        assert query_of(callback)["state"] == state
        token = await rp.fetch_token(
            f"{ISSUER}/token", authorization_response=callback, code_verifier=verifier, state=state
        )
        userinfo = await rp.get(f"{ISSUER}/userinfo")
    return {"token": dict(token), "nonce": nonce, "userinfo": userinfo, "cookies": browser}


async def test_relying_party_flow(federation: Federation) -> None:
    fed = federation
    result = await full_flow(fed, " ".join(["openid", *PIVOT_CLAIMS[:1], *PIVOT_CLAIMS[2:]]))
    token = result["token"]
    assert token["token_type"] == "Bearer"
    assert token["expires_in"] == 60
    assert "refresh_token" not in token

    id_claims = await verify(fed, token["id_token"])
    assert id_claims["iss"] == ISSUER
    assert id_claims["aud"] == fed.sp.client_id
    assert id_claims["nonce"] == result["nonce"]
    assert id_claims["acr"] == "eidas1"
    assert id_claims["amr"] == ["pwd"]
    assert id_claims["idp"] == "impots-gouv"
    assert id_claims["exp"] - id_claims["iat"] == 60
    assert len(id_claims["sub"]) == 66
    assert id_claims["sub"].endswith("v1")
    assert "at_hash" in id_claims
    assert "family_name" not in id_claims  # identity claims come from /userinfo

    response = result["userinfo"]
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/jwt"
    info = await verify(fed, response.text)
    assert info["iss"] == ISSUER
    assert info["aud"] == fed.sp.client_id
    assert info["sub"] == id_claims["sub"]
    assert {k: info[k] for k in ANGELA} == ANGELA


async def test_userinfo_is_limited_to_granted_scopes(federation: Federation) -> None:
    result = await full_flow(federation, "openid family_name email")
    info = await verify(federation, result["userinfo"].text)
    assert info["family_name"] == "DUBOIS"
    assert info["email"] == "angela.dubois@impots.bac-a-sable.test"
    assert not set(info) & {"given_name", "birthdate", "gender", "birthplace", "birthcountry"}


async def test_pairwise_sub(federation: Federation) -> None:
    first = await verify(federation, (await full_flow(federation, "openid"))["token"]["id_token"])
    again = await verify(federation, (await full_flow(federation, "openid"))["token"]["id_token"])
    other = await verify(
        federation,
        (await full_flow(federation, "openid", personas.SHARED_30262.spi))["token"]["id_token"],
    )
    assert first["sub"] == again["sub"]
    assert first["sub"] != other["sub"]


async def checktoken(fed: Federation, token: str, creds: Any = None) -> httpx.Response:
    creds = creds or fed.dp
    async with fed.browser() as http:
        return await http.post(
            "/checktoken",
            data={
                "token": token,
                "client_id": creds.client_id,
                "client_secret": creds.client_secret,
            },
        )


async def test_checktoken_active_then_expired(federation: Federation) -> None:
    fed = federation
    scope = "openid given_name family_name birthdate dgfip_rfr dgfip_nbpart"
    result = await full_flow(fed, scope)
    access_token = result["token"]["access_token"]
    id_claims = await verify(fed, result["token"]["id_token"])

    answer = await checktoken(fed, access_token)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/token-introspection+jwt"
    claims = await verify(fed, answer.text, typ="token-introspection+jwt")
    assert claims["iss"] == ISSUER
    assert claims["aud"] == fed.dp.client_id
    intro = claims["token_introspection"]
    assert intro["active"] is True
    assert intro["client_id"] == fed.sp.client_id
    assert intro["client"]["name"] == "Ville de Quimper — quotient familial"
    assert intro["scope"] == scope
    assert intro["acr"] == "eidas1"
    assert intro["exp"] == int(fed.clock.now().timestamp()) + 60
    assert intro["sub"] != id_claims["sub"]  # pairwise: the data provider's own identifier
    assert {k: intro[k] for k in ANGELA} == ANGELA  # the full pivot, to find the tax record

    fed.clock.advance(60)
    claims = await verify(
        fed, (await checktoken(fed, access_token)).text, "token-introspection+jwt"
    )
    assert claims["token_introspection"] == {"active": False}
    async with fed.browser() as http:
        late = await http.get("/userinfo", headers={"Authorization": f"Bearer {access_token}"})
    assert late.status_code == 401
    assert 'error="invalid_token"' in late.headers["www-authenticate"]


async def test_checktoken_encrypted_to_a_registered_key(federation: Federation) -> None:
    """RFC 9701 §5: with a key registered, the answer is the same signed JWT, encrypted to
    that key (a Nested JWT): a compact JWE with ``cty: JWT``."""
    fed = federation
    key = ECKey.generate_key("P-256", private=True)
    with fed.deps.session_factory() as s, s.begin():
        set_encryption_key(s, fed.dp.client_id, key.as_dict(private=False))
    access_token = (await full_flow(fed, "openid given_name family_name birthdate"))["token"][
        "access_token"
    ]
    answer = await checktoken(fed, access_token)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/token-introspection+jwt"
    assert answer.text.count(".") == 4
    decrypted = jwe.decrypt_compact(answer.text, key, algorithms=["ECDH-ES", "A256GCM"])
    assert decrypted.protected["cty"] == "JWT"
    assert decrypted.protected["typ"] == "token-introspection+jwt"
    assert decrypted.plaintext is not None
    claims = await verify(fed, decrypted.plaintext.decode(), typ="token-introspection+jwt")
    assert claims["aud"] == fed.dp.client_id
    assert claims["token_introspection"]["family_name"] == "DUBOIS"
    # Another key cannot open it.
    other = ECKey.generate_key("P-256", private=True)
    with pytest.raises(JoseError):
        jwe.decrypt_compact(answer.text, other, algorithms=["ECDH-ES", "A256GCM"])


async def test_checktoken_errors(federation: Federation) -> None:
    fed = federation
    async with fed.browser() as http:
        missing = await http.post("/checktoken", data={"token": "x", "client_id": fed.dp.client_id})
    assert missing.status_code == 400
    assert missing.json()["error"] == "invalid_request"
    unknown = await checktoken(fed, "not-a-token")
    assert unknown.status_code == 200
    claims = await verify(fed, unknown.text, "token-introspection+jwt")
    assert claims["token_introspection"] == {"active": False}


async def test_session_end(federation: Federation) -> None:
    fed = federation
    result = await full_flow(fed, "openid")
    id_token = result["token"]["id_token"]
    state = secrets.token_urlsafe(32)
    async with fed.browser() as http:
        response = await http.get(
            "/session/end",
            params={
                "id_token_hint": id_token,
                "post_logout_redirect_uri": LOGGED_OUT,
                "state": state,
            },
        )
        assert response.status_code == 302
        assert response.headers["location"] == f"{LOGGED_OUT}?state={state}"
        assert "guichet_fc_session" in response.headers["set-cookie"]
        assert "Max-Age=0" in response.headers["set-cookie"] or "expires" in (
            response.headers["set-cookie"].lower()
        )

        unregistered = await http.get(
            "/session/end",
            params={"id_token_hint": id_token, "post_logout_redirect_uri": f"{RP_OTHER}/x"},
        )
    assert unregistered.status_code == 200
    assert "location" not in unregistered.headers
    assert "déconnecté" in unregistered.text


RP_OTHER = "https://evil.example"
