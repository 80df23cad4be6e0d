"""The second factor over HTTP (issue 14, C4): staff and members of FICOBA organisations enrol
one before anything else, then give it at every sign-in (TOTP code, security key verified by
``webauthn`` against a software authenticator, recovery code); "Mon compte" lists, adds and
removes factors; refusals, replays, CSRF and throttling."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from html import unescape
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette
from starlette.testclient import TestClient

from guichet.accounts.models import Membership, PartnerRole, PortalSession, ProviderRole
from guichet.accounts.passwords import Passwords
from guichet.accounts.second_factor import totp_code, totp_step
from guichet.accounts.service import create_user, grant_provider_role
from guichet.clock import FrozenClock
from guichet.db import transaction
from guichet.habilitation.models import Environment, Habilitation
from guichet.habilitation.service import get_or_create_organisation
from guichet.portal.app import build_portal_app
from guichet.quota import QuotaService
from guichet.runtime import Runtime
from guichet.secrets import MasterSecret
from guichet.settings import Settings
from tests.support.second_factor import (
    ADD_PATH,
    TOTP_SECRET,
    VERIFY_PATH,
    SoftwareAuthenticator,
    enrol_totp,
    fresh_code,
    options_of,
)
from tests.unit.accounts.conftest import FAST_HASHER, PASSWORD, SIRET
from tests.unit.portal.conftest import CSRF

STAFF = "instructrice@dgfip.test"
MEMBER = "agent@banque-exemple.fr"
PARTNER = "demandeur@ville.test"
ORIGIN = "http://testserver"


@pytest.fixture
def people(session_factory: sessionmaker[Session], clock: FrozenClock) -> dict[str, uuid.UUID]:
    """An instructor, a member of an organisation holding a FICOBA habilitation, and a
    partner whose organisation holds none."""
    now = clock.now()
    hashed = Passwords(FAST_HASHER).hash(PASSWORD)
    with transaction(session_factory) as session:
        staff = create_user(
            session, STAFF, "Instructrice", now, password_hash=hashed, verified=True
        )
        grant_provider_role(session, staff, ProviderRole.INSTRUCTOR, now)
        bank = get_or_create_organisation(session, SIRET, "Banque d'exemple", now)
        member = create_user(session, MEMBER, "Agent", now, password_hash=hashed, verified=True)
        session.add(
            Membership(
                user_id=member.id,
                organisation_id=bank.id,
                role=PartnerRole.APPLICANT,
                created_at=now,
            )
        )
        session.add(
            Habilitation(
                organisation_id=bank.id,
                environment=Environment.SANDBOX,
                demarche="Saisies administratives",
                apis=["ficoba"],
                access_modes=[],
                data_scopes=[],
                year_scopes=[],
                ip_ranges=[],
                quotas={"ficoba": 200},
                valid_from=now,
                created_at=now,
                updated_at=now,
            )
        )
        town = get_or_create_organisation(session, "21000000610001", "Ville", now)
        partner = create_user(
            session, PARTNER, "Demandeur", now, password_hash=hashed, verified=True
        )
        session.add(
            Membership(
                user_id=partner.id,
                organisation_id=town.id,
                role=PartnerRole.APPLICANT,
                created_at=now,
            )
        )
        return {"staff": staff.id, "member": member.id, "partner": partner.id}


@pytest.fixture
def browser(portal: Starlette) -> Iterator[TestClient]:
    with TestClient(portal, follow_redirects=False) as c:
        yield c


def token_of(client: TestClient, path: str) -> str:
    page = client.get(path)
    assert page.status_code == 200, page.text
    found = CSRF.search(page.text)
    assert found, path
    return found[1]


def password_step(client: TestClient, email: str) -> str:
    client.cookies.clear()
    answer = client.post(
        "/connexion",
        data={"email": email, "password": PASSWORD, "csrf_token": token_of(client, "/connexion")},
    )
    assert answer.status_code == 303, answer.text
    return str(answer.headers["location"])


def test_staff_enrol_a_totp_application_before_anything_else(
    browser: TestClient, people: dict[str, uuid.UUID], clock: FrozenClock
) -> None:
    assert password_step(browser, STAFF) == ADD_PATH
    # Pending: the password was right, but no page of a signed-in person opens.
    for path in ("/mon-compte", "/instruction", "/demandes", "/mon-compte/second-facteur"):
        answer = browser.get(path)
        assert answer.status_code in {302, 303, 307}, (path, answer.status_code)
        assert answer.headers["location"] in {"/connexion", VERIFY_PATH}, path
    assert browser.get("/connexion").headers["location"] == VERIFY_PATH
    assert browser.get(VERIFY_PATH).headers["location"] == ADD_PATH

    page = browser.get(ADD_PATH)
    assert page.status_code == 200
    text = unescape(page.text)
    assert "Authentification forte obligatoire" in text
    assert '<svg role="img" aria-labelledby="qr-titre"' in page.text  # the QR code, inline
    seed = re.search(r'<code id="cle-totp">([A-Z2-7 ]+)</code>', page.text)
    assert seed
    secret = seed[1].replace(" ", "")
    token = CSRF.search(page.text)
    assert token
    wrong = browser.post(ADD_PATH + "/code", data={"code": "12345", "csrf_token": token[1]})
    assert wrong.status_code == 401
    assert "Code ou clé de sécurité refusé" in unescape(wrong.text)
    done = browser.post(
        ADD_PATH + "/code",
        data={"code": fresh_code(secret, clock), "label": "Téléphone", "csrf_token": token[1]},
    )
    assert done.status_code == 200
    codes = re.findall(r"<li><code>([A-Z0-9-]{19})</code></li>", done.text)
    assert len(codes) == 10
    assert 'href="/instruction"' in done.text
    # Signed in now: the queue opens, and "Mon compte" lists the application.
    assert browser.get("/instruction").status_code == 200
    factors = unescape(browser.get("/mon-compte/second-facteur").text)
    assert "Application d'authentification" in factors
    assert "Téléphone" in factors
    assert "Il vous reste 10 codes de secours" in factors

    # The next sign-in asks the code; a wrong one is refused on the page, a right one opens.
    assert password_step(browser, STAFF) == VERIFY_PATH
    token = token_of(browser, VERIFY_PATH)
    refused = browser.post(VERIFY_PATH + "/code", data={"code": "000000", "csrf_token": token})
    assert refused.status_code == 401
    assert browser.get("/mon-compte").headers["location"] == "/connexion"
    code = fresh_code(secret, clock)
    passed = browser.post(VERIFY_PATH + "/code", data={"code": code, "csrf_token": token})
    assert passed.status_code == 303
    assert passed.headers["location"] == "/instruction"
    assert browser.get("/mon-compte").status_code == 200
    # The same code on another sign-in: a replay, refused.
    assert password_step(browser, STAFF) == VERIFY_PATH
    token = token_of(browser, VERIFY_PATH)
    replay = browser.post(VERIFY_PATH + "/code", data={"code": code, "csrf_token": token})
    assert replay.status_code == 401
    # A recovery code instead, once.
    used = browser.post(VERIFY_PATH + "/secours", data={"recovery": codes[0], "csrf_token": token})
    assert used.status_code == 303
    assert password_step(browser, STAFF) == VERIFY_PATH
    token = token_of(browser, VERIFY_PATH)
    again = browser.post(VERIFY_PATH + "/secours", data={"recovery": codes[0], "csrf_token": token})
    assert again.status_code == 401


def test_security_key_enrolled_and_used_through_the_pages(
    browser: TestClient, people: dict[str, uuid.UUID], session_factory: sessionmaker[Session]
) -> None:
    key = SoftwareAuthenticator(ORIGIN)
    assert password_step(browser, MEMBER) == ADD_PATH
    page = browser.get(ADD_PATH)
    options = options_of(page.text)
    assert options["rp"]["id"] == "testserver"
    token = CSRF.search(page.text)
    assert token
    done = browser.post(
        ADD_PATH + "/cle",
        data={"credential": key.create(options), "key-label": "Clé bleue", "csrf_token": token[1]},
    )
    assert done.status_code == 200, done.text
    assert "Vos codes de secours" in done.text
    assert 'href="/mon-compte"' in done.text

    assert password_step(browser, MEMBER) == VERIFY_PATH
    page = browser.get(VERIFY_PATH)
    assert "Utiliser ma clé de sécurité" in page.text
    assert "Valider le code" not in page.text  # no TOTP application enrolled
    options = options_of(page.text)
    token = CSRF.search(page.text)
    assert token
    answer = key.get(options)
    passed = browser.post(VERIFY_PATH + "/cle", data={"credential": answer, "csrf_token": token[1]})
    assert passed.status_code == 303
    assert passed.headers["location"] == "/mon-compte"
    with session_factory() as session:
        methods = session.scalars(select(PortalSession.auth_method)).all()
        assert "password+webauthn" in methods

    # The same answer replayed on a new sign-in: its challenge was spent (and another is due).
    assert password_step(browser, MEMBER) == VERIFY_PATH
    token = token_of(browser, VERIFY_PATH)
    replay = browser.post(VERIFY_PATH + "/cle", data={"credential": answer, "csrf_token": token})
    assert replay.status_code == 401


def test_partners_without_ficoba_sign_in_with_their_password_alone(
    browser: TestClient, people: dict[str, uuid.UUID]
) -> None:
    assert password_step(browser, PARTNER) == "/mon-compte"
    page = unescape(browser.get("/mon-compte/second-facteur").text)
    assert "Aucun second facteur pour l'instant" in page


def test_my_account_lists_adds_and_removes_factors_never_the_last(
    browser: TestClient,
    people: dict[str, uuid.UUID],
    session_factory: sessionmaker[Session],
    master_secret: MasterSecret,
    clock: FrozenClock,
) -> None:
    with transaction(session_factory) as session:
        enrol_totp(session, master_secret, people["staff"], clock.now())
    assert password_step(browser, STAFF) == VERIFY_PATH
    token = token_of(browser, VERIFY_PATH)
    browser.post(
        VERIFY_PATH + "/code", data={"code": fresh_code(TOTP_SECRET, clock), "csrf_token": token}
    )
    page = browser.get("/mon-compte/second-facteur")
    assert page.status_code == 200
    first = re.search(r'name="factor" value="([0-9a-f-]{36})"', page.text)
    assert first
    token = CSRF.search(page.text)
    assert token
    last = browser.post(
        "/mon-compte/second-facteur/retrait", data={"factor": first[1], "csrf_token": token[1]}
    )
    assert last.status_code == 409
    assert "au moins un second facteur" in unescape(last.text)

    # A key added from "Mon compte" (signed in: no new session, back to the list).
    key = SoftwareAuthenticator(ORIGIN)
    page = browser.get(ADD_PATH)
    assert "Authentification forte obligatoire" not in unescape(page.text)
    added = browser.post(
        ADD_PATH + "/cle",
        data={"credential": key.create(options_of(page.text)), "csrf_token": token[1]},
    )
    # Its first recovery codes (the application was enrolled without), then back to the list.
    assert added.status_code == 200
    assert 'href="/mon-compte/second-facteur"' in added.text
    listed = unescape(browser.get("/mon-compte/second-facteur").text)
    assert "Clé de sécurité" in listed
    removed = browser.post(
        "/mon-compte/second-facteur/retrait", data={"factor": first[1], "csrf_token": token[1]}
    )
    assert removed.status_code == 303
    assert "Application d'authentification" not in unescape(
        browser.get("/mon-compte/second-facteur").text
    )
    # New recovery codes, shown once.
    renewed = browser.post(
        "/mon-compte/second-facteur/codes-de-secours", data={"csrf_token": token[1]}
    )
    assert renewed.status_code == 200
    assert len(re.findall(r"<li><code>[A-Z0-9-]{19}</code></li>", renewed.text)) == 10


def test_forms_need_the_session_token(
    browser: TestClient, people: dict[str, uuid.UUID], clock: FrozenClock
) -> None:
    assert password_step(browser, STAFF) == ADD_PATH
    code = totp_code(TOTP_SECRET, totp_step(clock.now()))
    for path in (VERIFY_PATH + "/code", ADD_PATH + "/code", "/mon-compte/second-facteur/retrait"):
        assert browser.post(path, data={"code": code}).status_code == 403, path
    # Without a pending session, the verification pages lead to the password.
    browser.cookies.clear()
    assert browser.get(VERIFY_PATH).headers["location"] == "/connexion"
    assert browser.get(ADD_PATH).headers["location"] == "/connexion"


def test_second_factor_attempts_are_throttled_and_lock_the_account(
    engine: Engine,
    session_factory: sessionmaker[Session],
    clock: FrozenClock,
    master_secret: MasterSecret,
    tmp_path: Path,
    people: dict[str, uuid.UUID],
) -> None:
    settings = Settings(
        data_dir=tmp_path,
        smtp_url=None,
        portal_public_url=ORIGIN,
        sign_in_attempts_per_account=3,
    )
    runtime = Runtime(settings, engine, session_factory, master_secret, clock)
    app = build_portal_app(runtime, QuotaService(None), password_hasher=FAST_HASHER)
    with transaction(session_factory) as session:
        enrol_totp(session, master_secret, people["staff"], clock.now())
    with TestClient(app, follow_redirects=False) as client:
        assert password_step(client, STAFF) == VERIFY_PATH
        token = token_of(client, VERIFY_PATH)
        statuses = [
            client.post(
                VERIFY_PATH + "/code", data={"code": "000000", "csrf_token": token}
            ).status_code
            for _ in range(4)
        ]
        assert statuses == [401, 401, 401, 429]
    # Beyond the throttle (a portal with the default limits), five refusals in a row lock the
    # account and end the pending session: the password comes first again, and is refused
    # during the lock-out.
    settings = Settings(data_dir=tmp_path, smtp_url=None, portal_public_url=ORIGIN)
    runtime = Runtime(settings, engine, session_factory, master_secret, clock)
    app = build_portal_app(runtime, QuotaService(None), password_hasher=FAST_HASHER)
    with TestClient(app, follow_redirects=False) as client:
        assert password_step(client, STAFF) == VERIFY_PATH
        token = token_of(client, VERIFY_PATH)
        fourth = client.post(VERIFY_PATH + "/code", data={"code": "000000", "csrf_token": token})
        assert fourth.status_code == 401
        fifth = client.post(VERIFY_PATH + "/code", data={"code": "000000", "csrf_token": token})
        assert fifth.status_code == 401
        assert "le compte est bloqué quinze minutes" in unescape(fifth.text)
        assert client.get(VERIFY_PATH).headers["location"] == "/connexion"
        client.cookies.clear()
        again = client.post(
            "/connexion",
            data={
                "email": STAFF,
                "password": PASSWORD,
                "csrf_token": token_of(client, "/connexion"),
            },
        )
        assert again.status_code == 401


def test_a_pending_sign_in_can_be_cancelled(
    browser: TestClient, people: dict[str, uuid.UUID]
) -> None:
    assert password_step(browser, STAFF) == ADD_PATH
    page = browser.get(ADD_PATH)
    assert "Annuler la connexion" in page.text
    token = CSRF.search(page.text)
    assert token
    assert browser.post("/deconnexion", data={"csrf_token": token[1]}).status_code == 303
    assert browser.get(ADD_PATH).headers["location"] == "/connexion"
    assert browser.get("/connexion").status_code == 200


def test_the_page_asked_before_the_sign_in_opens_after_the_second_factor(
    browser: TestClient,
    people: dict[str, uuid.UUID],
    session_factory: sessionmaker[Session],
    master_secret: MasterSecret,
    clock: FrozenClock,
) -> None:
    with transaction(session_factory) as session:
        enrol_totp(session, master_secret, people["member"], clock.now())
    browser.cookies.clear()
    answer = browser.post(
        "/connexion",
        data={
            "email": MEMBER,
            "password": PASSWORD,
            "suite": "/mon-organisation",
            "csrf_token": token_of(browser, "/connexion?suite=/mon-organisation"),
        },
    )
    assert answer.headers["location"] == VERIFY_PATH
    token = token_of(browser, VERIFY_PATH)
    code = fresh_code(TOTP_SECRET, clock, MEMBER)
    passed = browser.post(VERIFY_PATH + "/code", data={"code": code, "csrf_token": token})
    assert passed.headers["location"] == "/mon-organisation"
