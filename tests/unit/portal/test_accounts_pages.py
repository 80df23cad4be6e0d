"""The account pages through HTTP: the whole journey, field errors, reset, my account."""

from __future__ import annotations

import re

from starlette.testclient import TestClient

from guichet.mail.outbox import Outbox
from guichet.sandbox.personas import PERSONAS
from tests.unit.accounts.conftest import PASSWORD
from tests.unit.portal.conftest import (
    csrf_of,
    newest_link,
    sign_up_data,
    signed_up_and_verified,
)


def test_sign_up_verify_sign_in_my_account_sign_out(client: TestClient, outbox: Outbox) -> None:
    token = csrf_of(client, "/inscription")
    answer = client.post("/inscription", data={**sign_up_data(), "csrf_token": token})
    assert answer.headers["location"] == "/inscription/envoyee"
    assert "boîte d'envoi" in client.get("/inscription/envoyee").text
    # The outbox page lists the mail and shows its link.
    listing = client.get("/outbox")
    assert "Confirmez votre adresse électronique" in listing.text
    message = client.get(f"/outbox/{outbox.list()[0].id}")
    assert '<a href="http://testserver/verification-email?token=' in message.text
    verified = client.get(newest_link(outbox, "/verification-email"))
    assert "Adresse électronique vérifiée" in verified.text

    token = csrf_of(client, "/connexion")
    answer = client.post(
        "/connexion",
        data={"email": "CAMILLE@mairie-exemple.fr", "password": PASSWORD, "csrf_token": token},
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/mon-compte"
    page = client.get("/mon-compte")
    assert page.status_code == 200
    assert "Commune d&#39;Exemple" in page.text
    assert "73282932000074" in page.text
    assert "Responsable technique" in page.text

    token = csrf_of(client, "/mon-compte")
    assert client.post("/deconnexion", data={"csrf_token": token}).status_code == 303
    assert client.get("/mon-compte").headers["location"] == "/connexion"


def test_field_errors_are_tied_to_their_fields(client: TestClient) -> None:
    token = csrf_of(client, "/inscription")
    answer = client.post(
        "/inscription",
        data={**sign_up_data(siret="12345678901234", password="court"), "csrf_token": token},
    )
    assert answer.status_code == 400
    html = answer.text
    assert 'id="siret" name="siret" type="text" value="12345678901234"' in html
    assert 'aria-invalid="true" aria-describedby="siret-messages"' in html
    assert 'id="siret-messages"' in html
    assert "clé de contrôle" in html
    assert 'aria-describedby="password-messages"' in html
    assert "au moins 12 caractères" in html
    # The password is never sent back.
    assert 'value="court"' not in html
    assert 'href="#siret"' in html


def test_wrong_password_shows_the_generic_error(client: TestClient, outbox: Outbox) -> None:
    signed_up_and_verified(client, outbox)
    token = csrf_of(client, "/connexion")
    answer = client.post(
        "/connexion",
        data={"email": "camille@mairie-exemple.fr", "password": "pas le bon", "csrf_token": token},
    )
    assert answer.status_code == 401
    assert "Adresse électronique ou mot de passe incorrect" in answer.text
    unknown = client.post(
        "/connexion",
        data={"email": "nobody@mairie-exemple.fr", "password": "pas le bon", "csrf_token": token},
    )
    assert unknown.status_code == 401
    assert unknown.text.replace("nobody", "camille") == answer.text


def test_forgot_and_reset_password(client: TestClient, outbox: Outbox) -> None:
    signed_up_and_verified(client, outbox)
    token = csrf_of(client, "/mot-de-passe/oubli")
    known = client.post(
        "/mot-de-passe/oubli", data={"email": "camille@mairie-exemple.fr", "csrf_token": token}
    )
    unknown = client.post(
        "/mot-de-passe/oubli", data={"email": "nobody@mairie-exemple.fr", "csrf_token": token}
    )
    assert known.status_code == unknown.status_code == 200
    assert known.text == unknown.text
    link = newest_link(outbox, "/mot-de-passe/nouveau")
    reset_page = client.get(link)
    assert 'name="token"' in reset_page.text
    reset_token = link.partition("token=")[2]
    token = csrf_of(client, link)
    done = client.post(
        "/mot-de-passe/nouveau",
        data={"token": reset_token, "password": "mon nouveau mot de passe", "csrf_token": token},
    )
    assert done.headers["location"] == "/connexion?reinitialise=1"
    again = client.get(link)
    assert "plus valable" in again.text


def test_verification_link_used_twice(client: TestClient, outbox: Outbox) -> None:
    signed_up_and_verified(client, outbox)
    answer = client.get(newest_link(outbox, "/verification-email"))
    assert answer.status_code == 400
    assert "plus valable" in answer.text


def test_the_sandbox_page_lists_every_persona_in_french(client: TestClient) -> None:
    assert 'href="/bac-a-sable"' in client.get("/").text
    page = client.get("/bac-a-sable")
    assert page.status_code == 200
    rows = re.findall(r"<tr><td><code>(\d{13})</code></td><td>([^<]+)</td>", page.text)
    assert [spi for spi, _ in rows] == [p.spi for p in PERSONAS]
    assert ("3999999930262", "Paul LEROY") in rows
    assert "https://127.0.0.1:8443" in page.text
    assert "trop de réponses" in page.text


def test_home_and_docs_still_work(client: TestClient) -> None:
    home = client.get("/")
    assert home.status_code == 200
    assert "/docs/partner-quickstart" in home.text
    assert "https://127.0.0.1:8443" in home.text
    assert 'class="fr-header"' in home.text
    assert "République<br>française" in home.text
    assert client.get("/docs/architecture").status_code == 200
    assert client.get("/docs/nope").status_code == 404
    assert client.get("/docs/..%2Fsettings").status_code == 404
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/metrics").status_code == 200
    # Pages without forms do not create sessions.
    assert "guichet_session" not in home.headers.get("set-cookie", "")
