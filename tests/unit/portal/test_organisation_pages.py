"""The organisation pages over HTTP: "Mon organisation", inviting, the invitee's link (new or
existing account), cancelling, readable pages for dead links, CSRF, the contact's
confirmation page and the contacts' status on the request page."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette
from starlette.testclient import TestClient

from guichet.accounts.models import OrganisationInvitation
from guichet.clock import FrozenClock
from guichet.mail.outbox import Outbox
from tests.support.second_factor import finish_sign_in
from tests.unit.accounts.conftest import PASSWORD
from tests.unit.portal.conftest import csrf_of, newest_link, sign_up_data


@pytest.fixture
def other(portal: Starlette) -> Iterator[TestClient]:
    """A second browser (the invitee)."""
    with TestClient(portal, follow_redirects=False) as c:
        yield c


def signed_up(client: TestClient, outbox: Outbox, **overrides: str) -> None:
    data = sign_up_data(**{"role": "applicant", **overrides})
    token = csrf_of(client, "/inscription")
    answer = client.post("/inscription", data={**data, "csrf_token": token})
    assert answer.status_code == 303, answer.text
    assert client.get(newest_link(outbox, "/verification-email")).status_code == 200


def sign_in(client: TestClient, email: str, suite: str = "") -> str:
    page = "/connexion" + (f"?suite={suite}" if suite else "")
    answer = client.post(
        "/connexion",
        data={
            "email": email,
            "password": PASSWORD,
            "suite": suite,
            "csrf_token": csrf_of(client, page),
        },
    )
    assert answer.status_code == 303, answer.text
    # Staff give their second factor (issue 14, C4), enrolled on their first sign-in.
    finish_sign_in(client, answer, email)
    return str(answer.headers["location"])


def invite(client: TestClient, email: str, role: str) -> httpx.Response:
    page = client.get("/mon-organisation").text
    found = re.search(r'name="organisation_id" value="([^"]+)"', page)
    assert found, page
    answer: httpx.Response = client.post(
        "/mon-organisation/invitations",
        data={
            "organisation_id": found.group(1),
            "email": email,
            "role": role,
            "csrf_token": csrf_of(client, "/mon-organisation"),
        },
    )
    return answer


def test_a_member_invites_and_the_invitee_joins_with_a_new_account(
    client: TestClient, other: TestClient, outbox: Outbox
) -> None:
    signed_up(client, outbox)
    sign_in(client, "camille@mairie-exemple.fr")
    page = client.get("/mon-organisation")
    assert page.status_code == 200
    assert 'href="/mon-organisation" aria-current="page"' in page.text  # the menu entry
    assert "Camille Martin" in page.text
    assert "Demandeur" in page.text
    sent = invite(client, "dominique@mairie-exemple.fr", "dpo")
    assert sent.status_code == 303
    page = client.get("/mon-organisation?fait=invitee").text
    assert "invitation est partie" in page
    assert "dominique@mairie-exemple.fr" in page

    link = newest_link(outbox, "/invitation")
    landing = other.get(link)
    assert landing.status_code == 200
    assert "Commune d&#39;Exemple" in landing.text
    assert "délégué à la protection des données" in landing.text
    token = link.split("token=")[1]
    joined = other.post(
        "/invitation",
        data={
            "token": token,
            "display_name": "Dominique Petit",
            "password": PASSWORD,
            "csrf_token": csrf_of(other, link),
        },
    )
    assert joined.status_code == 303, joined.text
    assert joined.headers["location"] == "/mon-organisation?fait=bienvenue"
    mine = other.get("/mon-organisation?fait=bienvenue").text
    assert "Bienvenue" in mine
    assert "Dominique Petit" in mine
    assert "Camille Martin" in mine
    # Neither inviting form nor cancel buttons for a DPO.
    assert "Envoyer l'invitation" not in mine
    # The link is spent: a readable page, not an error trace.
    again = TestClient(other.app).get(link)
    assert again.status_code == 400
    assert "Invitation non valable" in again.text
    # The invitee signs in with the new password (the address is verified).
    other.cookies.clear()
    sign_in(other, "dominique@mairie-exemple.fr")


def test_an_existing_account_signs_in_and_accepts(
    client: TestClient, other: TestClient, outbox: Outbox
) -> None:
    signed_up(client, outbox)
    signed_up(other, outbox, email="alex@autre.fr", siret="21000000610001")
    sign_in(client, "camille@mairie-exemple.fr")
    invite(client, "alex@autre.fr", "legal_representative")
    link = newest_link(outbox, "/invitation")
    landing = other.get(link).text
    assert "Se connecter pour accepter" in landing
    where = sign_in(other, "alex@autre.fr", suite=link)
    assert where == link  # back to the invitation once signed in
    landing = other.get(link).text
    assert "Rejoindre l'organisation</button>" in landing
    accepted = other.post(
        "/invitation/accepter",
        data={"token": link.split("token=")[1], "csrf_token": csrf_of(other, link)},
    )
    assert accepted.status_code == 303
    mine = other.get("/mon-organisation").text
    assert "Commune d&#39;Exemple" in mine
    assert "Représentant légal" in mine


def test_another_account_cannot_accept(
    client: TestClient, other: TestClient, outbox: Outbox
) -> None:
    signed_up(client, outbox)
    signed_up(other, outbox, email="alex@autre.fr", siret="21000000610001")
    sign_in(client, "camille@mairie-exemple.fr")
    invite(client, "dominique@mairie-exemple.fr", "dpo")
    link = newest_link(outbox, "/invitation")
    sign_in(other, "alex@autre.fr")
    assert "une autre adresse" in other.get(link).text
    refused = other.post(
        "/invitation/accepter",
        data={"token": link.split("token=")[1], "csrf_token": csrf_of(other, link)},
    )
    assert refused.status_code == 403
    assert "une autre adresse" in refused.text


def test_a_pending_invitation_is_listed_and_cancelled(
    client: TestClient,
    outbox: Outbox,
    session_factory: sessionmaker[Session],
    clock: FrozenClock,
) -> None:
    signed_up(client, outbox)
    sign_in(client, "camille@mairie-exemple.fr")
    invite(client, "dominique@mairie-exemple.fr", "dpo")
    link = newest_link(outbox, "/invitation")
    with session_factory() as s:
        invitation_id = s.scalars(select(OrganisationInvitation.id)).one()
    cancelled = client.post(
        f"/mon-organisation/invitations/{invitation_id}/annuler",
        data={"csrf_token": csrf_of(client, "/mon-organisation")},
    )
    assert cancelled.status_code == 303
    page = client.get("/mon-organisation").text
    assert "Aucune invitation en attente" in page
    dead = client.get(link)
    assert dead.status_code == 400
    assert "annulée" in dead.text


def test_an_expired_link_gives_a_readable_page(
    client: TestClient, outbox: Outbox, clock: FrozenClock
) -> None:
    signed_up(client, outbox)
    sign_in(client, "camille@mairie-exemple.fr")
    invite(client, "dominique@mairie-exemple.fr", "dpo")
    link = newest_link(outbox, "/invitation")
    clock.advance(7 * 24 * 3600)
    sign_in(client, "camille@mairie-exemple.fr")  # the session itself has expired
    assert "expirée" in client.get("/mon-organisation").text
    answer = client.get(link)
    assert answer.status_code == 400
    assert "expiré" in answer.text
    assert "Invitation non valable" in answer.text


def test_form_errors_are_shown_at_their_field(client: TestClient, outbox: Outbox) -> None:
    signed_up(client, outbox)
    sign_in(client, "camille@mairie-exemple.fr")
    bad = invite(client, "pas-une-adresse", "administrator")
    assert bad.status_code == 400
    text = bad.text
    assert 'aria-invalid="true" aria-describedby="invite-email-1-messages"' in text
    assert "Choisissez un rôle de la liste" in text
    twice = invite(client, "camille@mairie-exemple.fr", "applicant")
    assert "déjà membre" in twice.text


def test_forms_without_the_csrf_token_are_refused(
    client: TestClient, other: TestClient, outbox: Outbox
) -> None:
    signed_up(client, outbox)
    sign_in(client, "camille@mairie-exemple.fr")
    page = client.get("/mon-organisation").text
    found = re.search(r'name="organisation_id" value="([^"]+)"', page)
    assert found
    forged = client.post(
        "/mon-organisation/invitations",
        data={"organisation_id": found.group(1), "email": "x@y.fr", "role": "dpo"},
    )
    assert forged.status_code == 403
    cross_site = client.post(
        "/mon-organisation/invitations",
        data={
            "organisation_id": found.group(1),
            "email": "x@y.fr",
            "role": "dpo",
            "csrf_token": csrf_of(client, "/mon-organisation"),
        },
        headers={"Sec-Fetch-Site": "cross-site"},
    )
    assert cross_site.status_code == 403
    assert "Aucune invitation en attente" in client.get("/mon-organisation").text
    invite(client, "dominique@mairie-exemple.fr", "dpo")
    token = newest_link(outbox, "/invitation").split("token=")[1]
    for path in ("/invitation", "/invitation/accepter"):
        answer = other.post(path, data={"token": token, "display_name": "D", "password": PASSWORD})
        assert answer.status_code == 403, path


def test_a_stranger_neither_sees_nor_cancels(
    client: TestClient,
    other: TestClient,
    outbox: Outbox,
    session_factory: sessionmaker[Session],
) -> None:
    signed_up(client, outbox)
    signed_up(other, outbox, email="alex@autre.fr", siret="21000000610001")
    sign_in(client, "camille@mairie-exemple.fr")
    invite(client, "dominique@mairie-exemple.fr", "dpo")
    sign_in(other, "alex@autre.fr")
    assert "dominique@mairie-exemple.fr" not in other.get("/mon-organisation").text
    with session_factory() as s:
        invitation_id = s.scalars(select(OrganisationInvitation.id)).one()
    refused = other.post(
        f"/mon-organisation/invitations/{invitation_id}/annuler",
        data={"csrf_token": csrf_of(other, "/mon-organisation")},
    )
    assert refused.status_code == 404
    page = client.get("/mon-organisation").text
    assert "dominique@mairie-exemple.fr" in page  # still pending


def test_anonymous_visitors_go_to_sign_in(client: TestClient) -> None:
    answer = client.get("/mon-organisation")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/connexion"


@pytest.mark.parametrize("suite", ["//evil.example/x", "https://evil.example", "/\\evil"])
def test_sign_in_never_leads_to_another_site(
    client: TestClient, outbox: Outbox, suite: str
) -> None:
    signed_up(client, outbox)
    assert sign_in(client, "camille@mairie-exemple.fr", suite=suite) == "/mon-compte"


def test_the_contact_confirmation_page(client: TestClient) -> None:
    answer = client.get("/contacts/confirmation?token=inconnu")
    assert answer.status_code == 400
    assert "Lien non valable" in answer.text


def test_roles_are_removed_from_the_page(
    client: TestClient, other: TestClient, outbox: Outbox
) -> None:
    signed_up(client, outbox)
    sign_in(client, "camille@mairie-exemple.fr")
    invite(client, "dominique@mairie-exemple.fr", "dpo")
    link = newest_link(outbox, "/invitation")
    other.post(
        "/invitation",
        data={
            "token": link.split("token=")[1],
            "display_name": "Dominique Petit",
            "password": PASSWORD,
            "csrf_token": csrf_of(other, link),
        },
    )
    page = client.get("/mon-organisation").text
    assert "Retirer « Délégué à la protection des données »" in page

    def holder(role: str) -> str:
        found = re.search(
            rf'name="user_id" value="([^"]+)"><input type="hidden" name="role" value="{role}"',
            page,
        )
        assert found, role
        return found.group(1)

    organisation = re.search(r'name="organisation_id" value="([^"]+)"', page)
    assert organisation

    def remove(client: TestClient, user_id: str, role: str) -> httpx.Response:
        answer: httpx.Response = client.post(
            "/mon-organisation/membres/retirer",
            data={
                "organisation_id": organisation.group(1),
                "user_id": user_id,
                "role": role,
                "csrf_token": csrf_of(client, "/mon-organisation"),
            },
        )
        return answer

    applicant, dpo = holder("applicant"), holder("dpo")
    # The DPO may not remove others, and the last applicant may not go.
    assert remove(other, applicant, "applicant").status_code == 403
    last = remove(client, applicant, "applicant")
    assert last.status_code == 409
    assert "garder au moins un demandeur" in last.text
    # The DPO gives up their own role: no longer a member.
    assert remove(other, dpo, "dpo").status_code == 303
    assert "Dominique Petit" not in client.get("/mon-organisation").text
