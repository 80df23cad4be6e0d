"""Issue 11 §5: telling from the sign-up answer whether an address or a SIRET is registered."""

from __future__ import annotations

from pathlib import Path

import httpx
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette
from starlette.testclient import TestClient

from guichet.accounts.models import User
from guichet.mail.outbox import Outbox
from tests.security.conftest import PortalFactory
from tests.unit.accounts.conftest import SIRET
from tests.unit.portal.conftest import CSRF, csrf_of, sign_up_data

BASE = "http://testserver"
OWNER = "camille@mairie-exemple.fr"
OTHER_SIRET = "21000000610001"


def attempt(portal: Starlette, **fields: str) -> tuple[httpx.Response, httpx.Response]:
    """A fresh visitor signs up: the form's answer, and the page it leads to."""
    with TestClient(portal, base_url=BASE, follow_redirects=False) as visitor:
        data = {**sign_up_data(**fields), "csrf_token": csrf_of(visitor, "/inscription")}
        answer = visitor.post("/inscription", data=data)
        page = visitor.get(answer.headers.get("location", "/inscription"))
    return answer, page


def visible(answer: httpx.Response) -> tuple[int, dict[str, str], str]:
    headers = {k: v for k, v in answer.headers.items() if k not in {"set-cookie", "date"}}
    return answer.status_code, headers, answer.text


def mails_to(outbox: Outbox, address: str) -> list[str]:
    found = []
    for entry in outbox.list():
        message = outbox.get(entry.id)
        assert message is not None
        if entry.to == address:
            found.append(f"{entry.subject}\n{message.text}")
    return found


def test_known_and_unknown_addresses_and_sirets_get_the_same_answer(
    make_portal: PortalFactory, tmp_path: Path, session_factory: sessionmaker[Session]
) -> None:
    portal = make_portal(portal_public_url=BASE)
    outbox = Outbox(tmp_path / "outbox")
    first, _ = attempt(portal, email=OWNER, siret=SIRET)
    assert first.status_code == 303

    probes = {
        # The attacker tries the owner's address (with any SIRET)…
        "known address": attempt(portal, email=OWNER, siret=OTHER_SIRET),
        # …an address nobody has, with a SIRET nobody has…
        "unknown everything": attempt(portal, email="alex@autre.fr", siret="35600000000048"),
        # …and a new address with the owner's organisation's SIRET.
        "known SIRET": attempt(portal, email="intrus@exemple.fr", siret=SIRET),
    }
    answers = {name: visible(answer) for name, (answer, _) in probes.items()}
    pages = {name: visible(page) for name, (_, page) in probes.items()}
    assert answers["known address"] == answers["unknown everything"] == answers["known SIRET"]
    assert answers["known SIRET"][0] == 303
    assert pages["known address"] == pages["unknown everything"] == pages["known SIRET"]
    assert "Un courriel vient de partir" in pages["known SIRET"][2]
    assert "déjà inscrite" not in pages["known SIRET"][2]

    # What differs goes to the mailbox of the address given, never to the screen.
    [owner_warned] = [m for m in mails_to(outbox, OWNER) if "déjà un compte" in m]
    assert "Quelqu'un a demandé à créer un compte guichet avec votre adresse" in owner_warned
    assert "token=" not in owner_warned
    [intruder] = mails_to(outbox, "intrus@exemple.fr")
    assert "déjà inscrite" in intruder
    assert "aucun compte n'a été créé" in intruder
    assert "token=" not in intruder
    [newcomer] = mails_to(outbox, "alex@autre.fr")
    assert "/verification-email?token=" in newcomer
    with session_factory() as s:
        assert s.scalar(select(func.count()).select_from(User)) == 2  # the owner, alex


def test_a_form_error_says_nothing_about_the_address(make_portal: PortalFactory) -> None:
    portal = make_portal(portal_public_url=BASE)
    attempt(portal, email=OWNER, siret=SIRET)
    known, _ = attempt(portal, email=OWNER, siret=SIRET, password="court")
    unknown, _ = attempt(portal, email="alex@autre.fr", siret=SIRET, password="court")
    assert known.status_code == unknown.status_code == 400
    # The same page, but for the address typed in and the form's token.
    assert without_token(known.text.replace(OWNER, "alex@autre.fr")) == without_token(unknown.text)


def without_token(page: str) -> str:
    return CSRF.sub("", page)
