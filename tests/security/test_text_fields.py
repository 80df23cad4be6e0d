"""Issue 11 §7: control characters and U+2028/U+2029 in the portal's text fields (a U+2028 in
a démarche made every decision mail fail, and blocked the request)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette
from starlette.testclient import TestClient

from guichet.accounts.models import User
from guichet.clock import FrozenClock
from guichet.habilitation.request_models import HabilitationRequest
from guichet.mail import Mail
from guichet.mail.mailer import build_message
from tests.security.conftest import PortalFactory, sign_in
from tests.unit.portal.conftest import csrf_of, sign_up_data

INVISIBLE = ["\u2028", "\u2029", "\x00", "\x1b[31m", "\x85", "\x7f"]
REFUSED = "caractère invisible non autorisé"


@pytest.fixture
def partner(peopled_portal: Starlette) -> Iterator[TestClient]:
    with TestClient(peopled_portal, follow_redirects=False) as client:
        sign_in(client, "partner")
        yield client


def new_request(client: TestClient) -> str:
    created = client.post(
        "/demandes", data={"api": "impot_particulier", "csrf_token": csrf_of(client, "/demandes")}
    )
    assert created.status_code == 303, created.text
    # The request's first step: its page is the summary.
    return str(created.headers["location"]).removesuffix("/etapes/1")


def save_basics(client: TestClient, page: str, **values: str) -> tuple[int, str]:
    answer = client.post(
        f"{page}/blocs/basics", data={**values, "csrf_token": csrf_of(client, page)}
    )
    return answer.status_code, answer.text


def demarche_of(session_factory: sessionmaker[Session], page: str) -> object:
    with session_factory() as s:
        found = s.get_one(HabilitationRequest, uuid.UUID(page.rsplit("/", 1)[1]))
        return found.data.get("basics", {}).get("demarche")


@pytest.mark.parametrize("char", [*INVISIBLE, "\n", "\t"])
def test_a_demarche_with_an_invisible_character_is_refused_next_to_its_field(
    partner: TestClient, session_factory: sessionmaker[Session], char: str
) -> None:
    page = new_request(partner)
    status, html = save_basics(partner, page, demarche=f"Cantine{char}scolaire")
    assert status == 400
    # The error sits next to the field, tied by aria-describedby, in French.
    assert 'aria-invalid="true" aria-describedby="f-basics-demarche-messages"' in html
    assert re.search(r'id="f-basics-demarche-messages"[^>]*>\s*<p class="fr-message', html)
    assert REFUSED in html
    assert demarche_of(session_factory, page) is None


def test_a_multiline_field_keeps_its_lines_but_not_the_separators(
    partner: TestClient, session_factory: sessionmaker[Session]
) -> None:
    page = new_request(partner)
    status, _ = save_basics(
        partner, page, demarche="Cantine", description="Première ligne\r\nSeconde\tligne"
    )
    assert status == 303
    assert demarche_of(session_factory, page) == "Cantine"
    status, html = save_basics(partner, page, demarche="Cantine", description="a\u2028b")
    assert status == 400
    assert 'aria-describedby="f-basics-description-messages"' in html


def test_sign_up_refuses_a_line_separator_in_a_name(
    make_portal: PortalFactory, session_factory: sessionmaker[Session]
) -> None:
    portal = make_portal(portal_public_url="http://testserver")
    with TestClient(portal, follow_redirects=False) as visitor:
        answer = visitor.post(
            "/inscription",
            data={
                **sign_up_data(display_name="Camille\u2028Bcc: autre@exemple.fr"),
                "csrf_token": csrf_of(visitor, "/inscription"),
            },
        )
    assert answer.status_code == 400
    assert REFUSED in answer.text
    assert 'aria-describedby="display_name-messages"' in answer.text
    with session_factory() as s:
        assert s.scalar(select(func.count()).select_from(User)) == 0


@pytest.mark.parametrize("char", INVISIBLE)
def test_staff_texts_are_checked_too(peopled_portal: Starlette, char: str) -> None:
    """The instructor's comment goes through the same helper (any route answers 400)."""
    with TestClient(peopled_portal, follow_redirects=False) as instructor:
        sign_in(instructor, "instructor")
        answer = instructor.post(
            "/instruction/demandes/12345678-1234-1234-1234-1234567890ab/commentaires",
            data={
                "block": "basics",
                "text": f"a{char}b",
                "csrf_token": csrf_of(instructor, "/instruction"),
            },
        )
    assert answer.status_code == 400
    assert REFUSED in answer.text


def test_a_demarche_stored_before_still_gives_a_mail(clock: FrozenClock) -> None:
    """Older rows may hold a separator: the decision's mail puts the subject on one line."""
    mail = Mail(
        to="a@exemple.fr",
        subject="Demande « Cantine\u2028\r\nBcc: x@y » validée",
        text="t",
        kind="habilitation:decision",
    )
    message = build_message(mail, "guichet <ne-pas-repondre@guichet.example>", clock)
    assert message["Subject"] == "Demande « Cantine Bcc: x@y » validée"
    assert "Bcc" not in {k for k, _ in message.items()}
