"""CSRF on every form, session fixation, cookie flags, security headers, the outbox's scope."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.testclient import TestClient

from guichet.clock import FrozenClock
from guichet.mail.outbox import Outbox
from guichet.portal.app import build_portal_app
from guichet.portal.security import CONTENT_SECURITY_POLICY
from guichet.quota import QuotaService
from guichet.runtime import Runtime
from guichet.secrets import MasterSecret
from guichet.settings import Settings
from tests.unit.accounts.conftest import FAST_HASHER, PASSWORD
from tests.unit.portal.conftest import csrf_of, sign_up_data, signed_up_and_verified


def post_paths(app: Starlette) -> list[str]:
    return sorted(
        {r.path for r in app.routes if isinstance(r, Route) and "POST" in (r.methods or set())}
    )


def test_every_form_route_is_known() -> None:
    """If a POST route is added, this list (and the CSRF tests below) must follow."""
    from guichet.portal import accounts

    paths = {r.path for r in accounts.ROUTES if "POST" in (r.methods or set())}
    assert paths == {
        "/inscription",
        "/connexion",
        "/deconnexion",
        "/mot-de-passe/oubli",
        "/mot-de-passe/nouveau",
        "/mon-organisation/invitations",
        "/mon-organisation/invitations/{invitation_id}/annuler",
        "/mon-organisation/membres/retirer",
        "/invitation",
        "/invitation/accepter",
        # The second factor (issue 14, C4).
        "/connexion/second-facteur/code",
        "/connexion/second-facteur/cle",
        "/connexion/second-facteur/secours",
        "/second-facteur/ajout/code",
        "/second-facteur/ajout/cle",
        "/mon-compte/second-facteur/retrait",
        "/mon-compte/second-facteur/codes-de-secours",
    }


@pytest.mark.parametrize("with_token", ["missing", "wrong", "other_session"])
def test_every_post_refuses_a_bad_csrf_token(
    portal: Starlette, client: TestClient, with_token: str
) -> None:
    paths = post_paths(portal)
    assert len(paths) == 35  # 25, the second factor's seven, the Agents page's three
    csrf = csrf_of(client, "/connexion")
    with TestClient(portal) as other:
        other_csrf = csrf_of(other, "/connexion")
    data = {**sign_up_data(), "password": PASSWORD, "token": "x"}
    if with_token == "wrong":
        data["csrf_token"] = csrf[:-2] + "xx"
    elif with_token == "other_session":
        data["csrf_token"] = other_csrf
    for path in paths:
        answer = client.post(path, data=data)
        assert answer.status_code == 403, path
        assert "Formulaire expiré" in answer.text


def test_post_without_any_session_is_refused(client: TestClient) -> None:
    answer = client.post("/connexion", data={"email": "a@b.fr", "password": "x", "csrf_token": "x"})
    assert answer.status_code == 403


def test_cross_site_post_is_refused_even_with_the_token(client: TestClient) -> None:
    csrf = csrf_of(client, "/connexion")
    data = {"email": "a@b.fr", "password": "x", "csrf_token": csrf}
    evil = client.post("/connexion", data=data, headers={"Origin": "https://evil.example"})
    assert evil.status_code == 403
    fetch = client.post("/connexion", data=data, headers={"Sec-Fetch-Site": "cross-site"})
    assert fetch.status_code == 403
    sibling = client.post("/connexion", data=data, headers={"Sec-Fetch-Site": "same-site"})
    assert sibling.status_code == 403
    same = client.post("/connexion", data=data, headers={"Origin": "http://testserver"})
    assert same.status_code == 401
    # What a browser sends under Referrer-Policy: no-referrer.
    null = client.post(
        "/connexion", data=data, headers={"Origin": "null", "Sec-Fetch-Site": "same-origin"}
    )
    assert null.status_code == 401


def test_sign_in_gives_a_new_session_id(client: TestClient, outbox: Outbox) -> None:
    signed_up_and_verified(client, outbox)
    csrf = csrf_of(client, "/connexion")
    before = client.cookies.get("guichet_session")
    assert before
    answer = client.post(
        "/connexion",
        data={"email": "camille@mairie-exemple.fr", "password": PASSWORD, "csrf_token": csrf},
    )
    after = client.cookies.get("guichet_session")
    assert answer.status_code == 303
    assert after
    assert after != before
    # The old id (which an attacker might have planted) is dead.
    client.cookies.set("guichet_session", before)
    assert client.get("/mon-compte").headers["location"] == "/connexion"
    # And the old CSRF token no longer works with the new session.
    client.cookies.set("guichet_session", after)
    assert client.post("/deconnexion", data={"csrf_token": csrf}).status_code == 403


def test_cookie_flags_over_http(client: TestClient) -> None:
    answer = client.get("/connexion")
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith("guichet_session=")
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Path=/" in cookie
    assert "Secure" not in cookie


def test_cookie_flags_over_https(portal: Starlette) -> None:
    with TestClient(portal, base_url="https://testserver") as https:
        cookie = https.get("/connexion").headers["set-cookie"]
    assert cookie.startswith("__Host-guichet_session=")
    assert "Secure" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Domain" not in cookie


@pytest.mark.parametrize("path", ["/", "/connexion", "/inscription", "/docs/architecture"])
def test_security_headers(client: TestClient, path: str) -> None:
    headers = client.get(path).headers
    assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in CONTENT_SECURITY_POLICY
    assert "unsafe-inline" not in CONTENT_SECURITY_POLICY
    assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["cache-control"] == "no-store"
    assert "strict-transport-security" not in headers


def test_hsts_over_https(portal: Starlette) -> None:
    with TestClient(portal, base_url="https://testserver") as https:
        assert https.get("/").headers["strict-transport-security"] == "max-age=31536000"


def test_pages_have_no_inline_script_or_style(client: TestClient) -> None:
    for path in ["/", "/connexion", "/inscription", "/mot-de-passe/oubli", "/outbox"]:
        html = client.get(path).text
        assert "<script>" not in html
        assert "<style" not in html
        assert " style=" not in html
        assert " on" + "click=" not in html


def test_outbox_is_hidden_when_smtp_is_configured(
    engine: Engine,
    session_factory: sessionmaker[Session],
    clock: FrozenClock,
    master_secret: MasterSecret,
    tmp_path: Path,
) -> None:
    settings = Settings(
        data_dir=tmp_path, smtp_url="smtp://127.0.0.1:1", portal_public_url="http://testserver"
    )
    runtime = Runtime(settings, engine, session_factory, master_secret, clock)
    app = build_portal_app(runtime, QuotaService(None), password_hasher=FAST_HASHER)
    with TestClient(app, client=("127.0.0.1", 50000)) as c:
        assert c.get("/outbox").status_code == 404
        assert 'href="/outbox"' not in c.get("/").text


def test_outbox_message_names_are_checked(client: TestClient) -> None:
    assert client.get("/outbox/..%2F..%2Fsecret.key").status_code == 404
    assert client.get("/outbox/nope").status_code == 404
