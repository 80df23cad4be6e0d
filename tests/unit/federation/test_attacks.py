"""RFC 6819 / OpenID Connect Core §16 attacks on the provider (issue 5 §6)."""

from __future__ import annotations

import base64
import json
import secrets
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey
from sqlalchemy.orm import Session, sessionmaker

from guichet.federation.citizens import SANDBOX_PASSWORD
from guichet.records.models import Person
from guichet.sandbox import personas
from tests.unit.federation.support import (
    ISSUER,
    LOGGED_OUT,
    REDIRECT,
    RP,
    Credentials,
    Federation,
    csrf_of,
    query_of,
    sign_in,
)

pytestmark = pytest.mark.anyio


def params(fed: Federation, **overrides: str | None) -> dict[str, str]:
    base: dict[str, str | None] = {
        "response_type": "code",
        "client_id": fed.sp.client_id,
        "redirect_uri": REDIRECT,
        "scope": "openid given_name family_name",
        "state": secrets.token_urlsafe(32),
        "nonce": secrets.token_urlsafe(32),
        "acr_values": "eidas1",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def authorize_url(query: dict[str, str]) -> str:
    return f"{ISSUER}/authorize?{urlencode(query)}"


async def get_code(fed: Federation, query: dict[str, str]) -> str:
    async with fed.browser() as browser:
        callback = await sign_in(browser, authorize_url(query))
    assert callback.startswith(REDIRECT + "?")
    return query_of(callback)["code"]


async def redeem(
    fed: Federation,
    code: str,
    creds: Credentials | None = None,
    redirect_uri: str = REDIRECT,
    **extra: str,
) -> httpx.Response:
    creds = creds or fed.sp
    async with fed.browser() as http:
        return await http.post(
            "/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "client_id": creds.client_id,
                "client_secret": creds.client_secret,
                **extra,
            },
        )


async def introspect(fed: Federation, token: str) -> dict[str, Any]:
    async with fed.browser() as http:
        answer = await http.post(
            "/checktoken",
            data={
                "token": token,
                "client_id": fed.dp.client_id,
                "client_secret": fed.dp.client_secret,
            },
        )
    assert answer.status_code == 200
    payload = answer.text.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return dict(claims["token_introspection"])


# --- codes -----------------------------------------------------------------------------


async def test_code_replay_is_refused_and_revokes_its_tokens(federation: Federation) -> None:
    fed = federation
    code = await get_code(fed, params(fed))
    first = await redeem(fed, code)
    assert first.status_code == 200
    access_token = first.json()["access_token"]
    assert (await introspect(fed, access_token))["active"] is True

    replay = await redeem(fed, code)
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
    assert (await introspect(fed, access_token)) == {"active": False}
    async with fed.browser() as http:
        info = await http.get("/userinfo", headers={"Authorization": f"Bearer {access_token}"})
    assert info.status_code == 401


async def test_expired_code(federation: Federation) -> None:
    fed = federation
    code = await get_code(fed, params(fed))
    fed.clock.advance(30)
    late = await redeem(fed, code)
    assert late.status_code == 400
    assert late.json()["error"] == "invalid_grant"


async def test_code_of_another_client(federation: Federation) -> None:
    fed = federation
    code = await get_code(fed, params(fed))
    stolen = await redeem(fed, code, fed.sp_b, "http://127.0.0.1:5002/callback")
    assert stolen.status_code == 400
    assert stolen.json()["error"] == "invalid_grant"
    assert (await redeem(fed, code)).status_code == 200  # the thief did not burn it


async def test_redirect_uri_must_match_at_token(federation: Federation) -> None:
    fed = federation
    code = await get_code(fed, params(fed))
    wrong = await redeem(fed, code, redirect_uri=f"{RP}/other")
    assert wrong.status_code == 400
    assert wrong.json()["error"] == "invalid_grant"


async def test_wrong_client_secret(federation: Federation) -> None:
    fed = federation
    code = await get_code(fed, params(fed))
    bad = await redeem(fed, code, Credentials(fed.sp.client_id, "not-the-secret"))
    assert bad.status_code == 401
    assert bad.json()["error"] == "invalid_client"
    async with fed.browser() as http:
        basic = await http.post(
            "/token",
            data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT},
            auth=(fed.sp.client_id, "not-the-secret"),
        )
        assert basic.status_code == 401
        ok = await http.post(
            "/token",
            data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT},
            auth=(fed.sp.client_id, fed.sp.client_secret),
        )
    assert ok.status_code == 200  # client_secret_basic works too


# --- PKCE ------------------------------------------------------------------------------


async def test_pkce_verifier_mismatch(federation: Federation) -> None:
    fed = federation
    verifier = secrets.token_urlsafe(48)
    query = params(
        fed, code_challenge=create_s256_code_challenge(verifier), code_challenge_method="S256"
    )
    code = await get_code(fed, query)
    missing = await redeem(fed, code)
    assert missing.status_code == 400
    assert missing.json()["error"] == "invalid_request"

    code = await get_code(fed, {**query, "nonce": secrets.token_urlsafe(32)})
    wrong = await redeem(fed, code, code_verifier=secrets.token_urlsafe(48))
    assert wrong.status_code == 400
    assert wrong.json()["error"] == "invalid_grant"

    code = await get_code(fed, {**query, "nonce": secrets.token_urlsafe(32)})
    assert (await redeem(fed, code, code_verifier=verifier)).status_code == 200


async def test_pkce_plain_is_refused(federation: Federation) -> None:
    fed = federation
    query = params(fed, code_challenge="a" * 43, code_challenge_method="plain")
    async with fed.browser() as browser:
        response = await browser.get(authorize_url(query))
    assert response.status_code == 302
    assert query_of(response.headers["location"])["error"] == "invalid_request"


# --- the authorization request ----------------------------------------------------------


@pytest.mark.parametrize(
    "redirect_uri",
    [
        f"{RP}/callbackx",  # suffix
        f"{RP}/callback/",  # suffix
        f"{RP}/call",  # prefix
        f"{RP}/callback/../evil",  # path traversal
        "http://127.0.0.1:5001/callback",  # other port
        f"{RP}/callback?next=https://evil.example/",  # open redirect through a parameter
        "https://evil.example/callback",  # another host
        "HTTP://127.0.0.1:5000/callback",  # case variation
        "",  # absent
    ],
)
async def test_redirect_uri_manipulation_never_redirects(
    federation: Federation, redirect_uri: str
) -> None:
    fed = federation
    async with fed.browser() as browser:
        response = await browser.get(authorize_url(params(fed, redirect_uri=redirect_uri or None)))
    assert response.status_code == 400
    assert "location" not in response.headers
    assert response.headers["content-type"].startswith("text/html")
    assert "invalid_request" in response.text


async def test_unknown_client_never_redirects(federation: Federation) -> None:
    fed = federation
    async with fed.browser() as browser:
        response = await browser.get(authorize_url(params(fed, client_id="0" * 64)))
    assert response.status_code == 400
    assert "location" not in response.headers


@pytest.mark.parametrize(
    ("overrides", "description"),
    [
        ({"state": None}, "'state' is required"),
        ({"state": "x" * 31}, "'state' is required"),
        ({"nonce": None}, "'nonce'"),
        ({"nonce": "n" * 31}, "'nonce' is required"),
        ({"acr_values": None}, "'acr_values' must be 'eidas1'"),
        ({"acr_values": "eidas3"}, "'acr_values' must be 'eidas1'"),
        ({"scope": "given_name family_name"}, "must include 'openid'"),
        ({"scope": "openid dgfip_aft"}, "not granted to this client: dgfip_aft"),
    ],
)
async def test_bad_authorization_request_goes_back_with_an_error(
    federation: Federation, overrides: dict[str, str | None], description: str
) -> None:
    fed = federation
    query = params(fed, **overrides)
    async with fed.browser() as browser:
        response = await browser.get(authorize_url(query))
    assert response.status_code == 302
    back = query_of(response.headers["location"])
    assert response.headers["location"].startswith(REDIRECT + "?")
    assert back["error"] in ("invalid_request", "invalid_scope")
    assert description in back["error_description"]
    assert "code" not in back
    assert back.get("state") == query.get("state")


async def test_response_type_token_is_refused(federation: Federation) -> None:
    fed = federation
    async with fed.browser() as browser:
        response = await browser.get(authorize_url(params(fed, response_type="token")))
    assert "code=" not in response.headers.get("location", "")
    assert "access_token" not in response.headers.get("location", "")


async def test_repeated_parameter(federation: Federation) -> None:
    fed = federation
    url = authorize_url(params(fed)) + "&redirect_uri=" + "https%3A%2F%2Fevil.example%2F"
    async with fed.browser() as browser:
        response = await browser.get(url)
    assert response.status_code == 400
    assert "location" not in response.headers


async def test_replayed_nonce(federation: Federation) -> None:
    fed = federation
    query = params(fed)
    await get_code(fed, query)
    async with fed.browser() as browser:
        response = await browser.get(authorize_url({**query, "state": secrets.token_urlsafe(32)}))
    assert response.status_code == 302
    assert query_of(response.headers["location"])["error"] == "invalid_request"


# --- the citizen's pages ------------------------------------------------------------------


async def test_sign_in_needs_csrf_and_the_password(federation: Federation) -> None:
    fed = federation
    async with fed.browser() as browser:
        chooser_url = (await browser.get(authorize_url(params(fed)))).headers["location"]
        login = await browser.get(f"{chooser_url}/fi/ameli")
        assert login.status_code == 200
        assert 'lang="fr"' in login.text
        assert '<label for="spi">' in login.text
        set_cookie = login.headers["set-cookie"].lower()
        assert "httponly" in set_cookie
        assert "samesite=lax" in set_cookie

        no_csrf = await browser.post(
            f"{chooser_url}/fi/ameli",
            data={"spi": personas.DUBOIS.spi, "password": SANDBOX_PASSWORD},
        )
        assert no_csrf.status_code == 403
        wrong = await browser.post(
            f"{chooser_url}/fi/ameli",
            data={"csrf": csrf_of(login), "spi": personas.DUBOIS.spi, "password": "wrong"},
        )
        assert wrong.status_code == 401
        assert "incorrect" in wrong.text
        unknown = await browser.post(
            f"{chooser_url}/fi/ameli",
            data={"csrf": csrf_of(wrong), "spi": "3999999999999", "password": SANDBOX_PASSWORD},
        )
        assert unknown.status_code == 401
        # Skipping sign-in does not reach the partner.
        skipped = await browser.get(f"{chooser_url}/consent")
        assert skipped.status_code == 400
        assert "location" not in skipped.headers


async def test_cancel_returns_access_denied(federation: Federation) -> None:
    fed = federation
    query = params(fed)
    async with fed.browser() as browser:
        chooser_url = (await browser.get(authorize_url(query))).headers["location"]
        chooser = await browser.get(chooser_url)
        cancelled = await browser.post(f"{chooser_url}/cancel", data={"csrf": csrf_of(chooser)})
    assert cancelled.status_code == 302
    back = query_of(cancelled.headers["location"])
    assert back["error"] == "access_denied"
    assert back["state"] == query["state"]


async def test_another_browser_cannot_continue_the_interaction(federation: Federation) -> None:
    fed = federation
    async with fed.browser() as victim, fed.browser() as attacker:
        chooser_url = (await victim.get(authorize_url(params(fed)))).headers["location"]
        page = await attacker.get(chooser_url)
    assert page.status_code == 400
    assert "expiré" in page.text


# --- checktoken -------------------------------------------------------------------------


async def test_checktoken_only_for_data_providers(federation: Federation) -> None:
    fed = federation
    code = await get_code(fed, params(fed))
    token = (await redeem(fed, code)).json()["access_token"]
    async with fed.browser() as http:
        for creds in (fed.sp_b, fed.sp, Credentials(fed.dp.client_id, "wrong")):
            answer = await http.post(
                "/checktoken",
                data={
                    "token": token,
                    "client_id": creds.client_id,
                    "client_secret": creds.client_secret,
                },
            )
            assert answer.status_code == 401
            assert answer.json()["error"] == "invalid_client"
    intro = await introspect(fed, token)
    assert intro["active"] is True
    assert intro["client_id"] == fed.sp.client_id  # the gateway sees whose token it is


# --- id_token_hint ------------------------------------------------------------------------


async def _hint_claims(fed: Federation) -> dict[str, Any]:
    code = await get_code(fed, params(fed))
    id_token = (await redeem(fed, code)).json()["id_token"]
    payload = id_token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def test_forged_id_token_hints_are_refused(federation: Federation) -> None:
    fed = federation
    claims = await _hint_claims(fed)
    async with fed.browser() as http:
        jwks = (await http.get("/jwks")).json()
    public = jwks["keys"][0]
    alg_none = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."
    # Key confusion: HS256 keyed with the public key's bytes, as a naive verifier would use it.
    confused = [
        jwt.encode({"alg": "HS256", "kid": public["kid"]}, claims, OctKey.import_key(secret))
        for secret in (json.dumps(public).encode(), public["x"].encode())
    ]
    # Another key's valid ES256 signature under the federation's own kid: the right family
    # and kid, the wrong key.
    other_key = jwt.encode(
        {"alg": "ES256", "typ": "JWT", "kid": public["kid"]},
        claims,
        ECKey.generate_key("P-256", private=True),
    )
    for hint in (alg_none, *confused, other_key):
        async with fed.browser() as http:
            response = await http.get(
                "/session/end",
                params={
                    "id_token_hint": hint,
                    "post_logout_redirect_uri": LOGGED_OUT,
                    "state": "s" * 32,
                },
            )
        assert response.status_code == 400, hint
        assert "location" not in response.headers
    async with fed.browser() as http:
        missing = await http.get("/session/end", params={"post_logout_redirect_uri": LOGGED_OUT})
    assert missing.status_code == 400
    assert "location" not in missing.headers
    # The control: a hint under the federation's real signature is accepted.
    code = await get_code(fed, params(fed))
    real = (await redeem(fed, code)).json()["id_token"]
    async with fed.browser() as http:
        accepted = await http.get(
            "/session/end",
            params={
                "id_token_hint": real,
                "post_logout_redirect_uri": LOGGED_OUT,
                "state": "s" * 32,
            },
        )
    assert accepted.status_code in (302, 303), accepted.text
    assert accepted.headers["location"].startswith(LOGGED_OUT)


async def test_production_persons_never_sign_in(
    federation: Federation, session_factory: sessionmaker[Session]
) -> None:
    fed = federation
    with session_factory() as s, s.begin():
        real = s.get(Person, ("sandbox", personas.SHARED_30262.spi))
        assert real is not None
        row = {c.name: getattr(real, c.name) for c in Person.__table__.columns}
        s.add(Person(**{**row, "store": "production", "spi": "1234567890123"}))
    async with fed.browser() as browser:
        chooser_url = (await browser.get(authorize_url(params(fed)))).headers["location"]
        login = await browser.get(f"{chooser_url}/fi/impots-gouv")
        refused = await browser.post(
            f"{chooser_url}/fi/impots-gouv",
            data={"csrf": csrf_of(login), "spi": "1234567890123", "password": SANDBOX_PASSWORD},
        )
    assert refused.status_code == 401
