"""Issue 11 §8: the federation's ``/session/end`` refused POST, which RP-Initiated Logout 1.0
§2 requires ("The OP MUST support the use of the HTTP GET and POST methods")."""

from __future__ import annotations

import secrets

import pytest

from tests.unit.federation.support import LOGGED_OUT, Federation
from tests.unit.federation.test_flow import full_flow

pytestmark = pytest.mark.anyio


async def test_logout_by_post_ends_the_session_and_returns_to_the_partner(
    federation: Federation,
) -> None:
    id_token = (await full_flow(federation, "openid"))["token"]["id_token"]
    state = secrets.token_urlsafe(32)
    async with federation.browser() as http:
        response = await http.post(
            "/session/end",
            data={
                "id_token_hint": id_token,
                "post_logout_redirect_uri": LOGGED_OUT,
                "state": state,
            },
        )
    assert response.status_code == 302
    assert response.headers["location"] == f"{LOGGED_OUT}?state={state}"
    cookie = response.headers["set-cookie"]
    assert "guichet_fc_session" in cookie
    assert "Max-Age=0" in cookie or "expires" in cookie.lower()


async def test_a_posted_logout_to_an_unregistered_address_never_redirects(
    federation: Federation,
) -> None:
    id_token = (await full_flow(federation, "openid"))["token"]["id_token"]
    async with federation.browser() as http:
        response = await http.post(
            "/session/end",
            data={"id_token_hint": id_token, "post_logout_redirect_uri": "https://evil.example/"},
        )
        repeated = await http.post(
            "/session/end",
            content=f"state=a&state=b&id_token_hint={id_token}",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    assert response.status_code == 200
    assert "location" not in response.headers
    assert "déconnecté" in response.text
    assert "location" not in repeated.headers
    assert "Déconnexion impossible" in repeated.text
