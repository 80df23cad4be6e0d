"""Issue 11 §6: the session cookie and HSTS when the portal sits behind a TLS proxy."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient
from starlette.types import ASGIApp, Receive, Scope, Send

from guichet.mail.outbox import Outbox
from tests.security.conftest import REMOTE_PEER, PortalFactory
from tests.unit.accounts.conftest import PASSWORD
from tests.unit.portal.conftest import csrf_of, signed_up_and_verified

PROXY = ("10.1.2.3", 40000)
FROM_TLS = {"X-Forwarded-Proto": "https"}
HSTS = "max-age=31536000"


def behind_tls_proxy(app: ASGIApp) -> ASGIApp:
    """What a TLS-terminating proxy does: the browser speaks https (so its cookie jar sends
    Secure cookies), the portal receives plain http from the proxy's address."""

    async def hop(scope: Scope, receive: Receive, send: Send) -> None:
        await app({**scope, "scheme": "http", "client": PROXY}, receive, send)

    return hop


def assert_secure_session_cookie(answer: httpx.Response) -> None:
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith("__Host-guichet_session="), cookie
    attributes = {a.strip().split("=")[0].lower(): a for a in cookie.split(";")[1:]}
    assert "secure" in attributes
    assert "httponly" in attributes
    assert attributes["samesite"].strip().lower() == "samesite=lax"
    assert attributes["path"].strip() == "Path=/"
    assert "domain" not in attributes
    assert answer.headers["strict-transport-security"] == HSTS


def test_behind_a_trusted_proxy_the_cookie_is_secure_and_hsts_is_sent(
    make_portal: PortalFactory, tmp_path: Path
) -> None:
    portal = make_portal(portal_public_url="http://testserver", trusted_proxies="10.0.0.0/8")
    with TestClient(
        behind_tls_proxy(portal),
        base_url="https://testserver",
        headers=FROM_TLS,
        follow_redirects=False,
    ) as browser:
        assert_secure_session_cookie(browser.get("/connexion"))
        # The whole sign-in works over it: the browser's https Origin is ours.
        signed_up_and_verified(browser, Outbox(tmp_path / "outbox"))
        csrf = csrf_of(browser, "/connexion")
        signed_in = browser.post(
            "/connexion",
            data={"email": "camille@mairie-exemple.fr", "password": PASSWORD, "csrf_token": csrf},
            headers={"Origin": "https://testserver"},
        )
        assert signed_in.status_code == 303, signed_in.text
        assert_secure_session_cookie(signed_in)
        assert set(browser.cookies) == {"__Host-guichet_session"}
        assert browser.get("/mon-compte").status_code == 200


def test_a_forwarded_scheme_from_anyone_else_is_ignored(make_portal: PortalFactory) -> None:
    portal = make_portal(portal_public_url="http://testserver", trusted_proxies="10.0.0.0/8")
    with TestClient(portal, client=REMOTE_PEER, headers=FROM_TLS) as direct:
        answer = direct.get("/connexion")
    assert answer.headers["set-cookie"].startswith("guichet_session=")
    assert "strict-transport-security" not in answer.headers


def test_an_https_public_url_makes_the_cookie_secure(make_portal: PortalFactory) -> None:
    portal = make_portal(portal_public_url="https://portail.guichet.example")
    with TestClient(portal, base_url="http://portail.guichet.example") as browser:
        assert_secure_session_cookie(browser.get("/connexion"))


@pytest.mark.parametrize(
    ("method", "path", "headers", "status"),
    [
        ("GET", "/", {}, 200),
        ("GET", "/connexion", {}, 200),
        ("GET", "/docs/architecture", {}, 200),
        ("GET", "/docs/nope", {}, 404),
        ("GET", "/static/nope.css", {}, 404),
        ("GET", "/outbox", {}, 404),
        ("GET", "/healthz", {}, 200),
        ("GET", "/connexion", {"Host": "evil.example"}, 400),
        ("POST", "/connexion", {}, 403),
    ],
)
def test_every_answer_says_nosniff(
    make_portal: PortalFactory, method: str, path: str, headers: dict[str, str], status: int
) -> None:
    portal = make_portal(portal_public_url="http://testserver")
    with TestClient(portal, client=REMOTE_PEER) as client:
        answer = client.request(method, path, headers=headers)
    assert answer.status_code == status
    assert answer.headers["x-content-type-options"] == "nosniff"
