"""Issue 11 §8: the example partner app's forms had no CSRF protection, and its pending
sign-ins were kept in memory without bound (a flood of sign-in starts grew it)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from examples.quotient_familial import franceconnect
from examples.quotient_familial.app import CSRF_COOKIE, FLOW_COOKIE, build_app
from examples.quotient_familial.config import Config
from examples.quotient_familial.franceconnect import Flows
from starlette.applications import Starlette
from starlette.testclient import TestClient

from guichet.clock import SystemClock
from tests.support import certs

PARTNER = "http://127.0.0.1:8700"
ISSUER = "http://127.0.0.1:8600"
CSRF = re.compile(r'name="csrf" value="([0-9a-f]{64})"')
DISCOVERY = {
    "issuer": ISSUER,
    "authorization_endpoint": f"{ISSUER}/authorize",
    "token_endpoint": f"{ISSUER}/token",
    "jwks_uri": f"{ISSUER}/jwks",
    "userinfo_endpoint": f"{ISSUER}/userinfo",
    "end_session_endpoint": f"{ISSUER}/session/end",
}


def federation(request: httpx.Request) -> httpx.Response:
    """Enough of a federation for the start of a sign-in: its discovery document."""
    if request.url.path == "/.well-known/openid-configuration":
        return httpx.Response(200, json=DISCOVERY)
    return httpx.Response(404)


@pytest.fixture
def config(tmp_path: Path) -> Config:
    pki = certs.make_ca(tmp_path / "pki", SystemClock().now())
    doc = {
        "partner_url": PARTNER,
        "federation": {
            "issuer": ISSUER,
            "discovery_url": f"{ISSUER}/.well-known/openid-configuration",
            "client_id": "ville",
            "client_secret": "secret-de-test",
            "redirect_uri": f"{PARTNER}/retour",
            "post_logout_redirect_uri": f"{PARTNER}/",
        },
        "gateway": {
            "token_url": "https://127.0.0.1:8443/token",
            "api_base_url": "https://127.0.0.1:8443",
            "client_id": "ville-gw",
            "client_secret": "secret-gw",
            "cert_file": str(pki.server_cert_file),
            "key_file": str(pki.server_key_file),
            "ca_file": str(pki.ca_cert_file),
        },
    }
    path = tmp_path / "franceconnect.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return Config.load(path)


def make_app(config: Config, **options: Any) -> Starlette:
    return build_app(config, federation_transport=httpx.MockTransport(federation), **options)


@pytest.fixture
def app(config: Config) -> Starlette:
    return make_app(config)


@pytest.fixture
def browser(app: Starlette) -> Iterator[TestClient]:
    with TestClient(app, base_url=PARTNER, follow_redirects=False) as client:
        yield client


def token_of(browser: TestClient) -> str:
    found = CSRF.search(browser.get("/").text)
    assert found, "the home page's form has no CSRF token"
    return found.group(1)


def pending(app: Starlette) -> int:
    flows = app.state.flows
    assert isinstance(flows, Flows)
    return len(flows)


def test_the_sign_in_form_works_with_its_token(app: Starlette, browser: TestClient) -> None:
    answer = browser.post("/connexion", data={"csrf": token_of(browser)})
    assert answer.status_code == 303
    location = urlsplit(answer.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == f"{ISSUER}/authorize"
    assert parse_qs(location.query)["client_id"] == ["ville"]
    assert pending(app) == 1


@pytest.mark.parametrize(
    "form",
    [{}, {"csrf": ""}, {"csrf": "0" * 64}],
    ids=["no-token", "empty-token", "forged-token"],
)
def test_a_cross_site_sign_in_post_is_refused(
    app: Starlette, browser: TestClient, form: dict[str, str]
) -> None:
    token_of(browser)  # the victim's browser has its session cookie
    answer = browser.post("/connexion", data=form)
    assert answer.status_code == 403
    assert "Ce formulaire a expiré" in answer.text
    assert pending(app) == 0


def test_another_browsers_token_is_refused(app: Starlette, config: Config) -> None:
    """The attacker's own valid token does not work with the victim's session cookie."""
    with TestClient(app, base_url=PARTNER) as attacker:
        stolen = token_of(attacker)
    with TestClient(app, base_url=PARTNER, follow_redirects=False) as victim:
        token_of(victim)
        assert victim.post("/connexion", data={"csrf": stolen}).status_code == 403
    assert pending(app) == 0


def test_a_token_without_its_session_cookie_is_refused(app: Starlette) -> None:
    with TestClient(app, base_url=PARTNER) as first:
        token = token_of(first)
    with TestClient(app, base_url=PARTNER, follow_redirects=False) as cookieless:
        assert cookieless.post("/connexion", data={"csrf": token}).status_code == 403


def test_a_cross_site_sign_out_is_refused(app: Starlette, browser: TestClient) -> None:
    token = token_of(browser)
    assert browser.post("/connexion", data={"csrf": token}).status_code == 303
    flow_key = browser.cookies[FLOW_COOKIE]
    assert browser.post("/deconnexion", data={}).status_code == 403
    assert app.state.flows.get(flow_key) is not None  # the sign-in was not touched
    answer = browser.post("/deconnexion", data={"csrf": token})
    assert answer.status_code == 303
    assert app.state.flows.get(flow_key) is None


def test_the_session_cookie_is_http_only(browser: TestClient) -> None:
    cookie = browser.get("/").headers["set-cookie"]
    assert cookie.startswith(f"{CSRF_COOKIE}=")
    assert "httponly" in cookie.lower()
    assert "samesite=lax" in cookie.lower()


def test_a_huge_form_is_not_read(app: Starlette, browser: TestClient) -> None:
    token = token_of(browser)
    answer = browser.post("/connexion", data={"csrf": token, "x": "a" * 100_000})
    assert answer.status_code == 403
    assert pending(app) == 0


def test_a_flood_of_sign_in_starts_stays_bounded(config: Config) -> None:
    app = make_app(config, max_flows=50)
    with TestClient(app, base_url=PARTNER, follow_redirects=False) as flooder:
        token = token_of(flooder)
        for _ in range(300):
            # A fresh browser each time, as a script would be (no flow cookie kept).
            flooder.cookies.delete(FLOW_COOKIE)
            assert flooder.post("/connexion", data={"csrf": token}).status_code == 303
    assert pending(app) == 50


def test_one_browser_holds_one_sign_in_at_a_time(app: Starlette, browser: TestClient) -> None:
    token = token_of(browser)
    for _ in range(20):
        assert browser.post("/connexion", data={"csrf": token}).status_code == 303
    assert pending(app) == 1


def test_pending_sign_ins_expire(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(franceconnect.time, "monotonic", lambda: now[0])
    flows = Flows(max_flows=10)
    keys = [flows.start()[0] for _ in range(5)]
    now[0] += franceconnect.FLOW_LIFETIME + 1
    assert flows.get(keys[0]) is None
    assert len(flows) == 0


def test_the_oldest_pending_sign_in_gives_way(monkeypatch: pytest.MonkeyPatch) -> None:
    flows = Flows(max_flows=3)
    first = flows.start()[0]
    later = [flows.start()[0] for _ in range(3)]
    assert len(flows) == 3
    assert flows.get(first) is None
    assert all(flows.get(k) is not None for k in later)
