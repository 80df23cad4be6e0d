"""Issue 11 §4: no 429 was ever answered on sign-in, and 300 concurrent sign-ins (argon2
each) starved the process.

Sign-in and password reset count each attempt against the client's address and against the
account named; beyond either limit, 429 with a French page and ``Retry-After``, before any
password is checked. Password hashing runs in a bounded number of worker threads.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette
from starlette.testclient import TestClient

from guichet.clock import FrozenClock
from guichet.portal.app import build_portal_app
from guichet.quota import QuotaService
from guichet.runtime import Runtime
from guichet.secrets import MasterSecret
from guichet.settings import Settings
from tests.security.conftest import PEOPLE, PortalFactory
from tests.unit.accounts.conftest import PASSWORD
from tests.unit.portal.conftest import csrf_of

LIMIT = 3
THROTTLED = {
    "portal_public_url": "http://testserver",
    "sign_in_attempts_per_address": LIMIT,
    "sign_in_attempts_per_account": LIMIT,
    "password_resets_per_address": LIMIT,
    "password_resets_per_account": LIMIT,
}


@pytest.fixture
def portal(make_portal: PortalFactory, peopled_portal: Starlette) -> Starlette:
    """The portal with ``PEOPLE`` (their passwords set by ``peopled_portal``), small limits."""
    return make_portal(**THROTTLED)


@pytest.fixture
def browser_at(portal: Starlette) -> Iterator[Any]:
    opened: list[TestClient] = []

    def make(address: str) -> TestClient:
        client = TestClient(portal, client=(address, 50000), follow_redirects=False)
        opened.append(client.__enter__())
        return client

    yield make
    for client in opened:
        client.__exit__(None, None, None)


WRONG = "pas le bon mot de passe"


def sign_in(browser: TestClient, email: str, password: str = WRONG) -> Any:
    return browser.post(
        "/connexion",
        data={"email": email, "password": password, "csrf_token": csrf_of(browser, "/connexion")},
    )


def forgot(browser: TestClient, email: str) -> Any:
    return browser.post(
        "/mot-de-passe/oubli",
        data={"email": email, "csrf_token": csrf_of(browser, "/mot-de-passe/oubli")},
    )


def assert_throttled(answer: Any) -> None:
    assert answer.status_code == 429, answer.text
    assert int(answer.headers["retry-after"]) >= 1
    assert answer.headers["content-type"].startswith("text/html")
    assert "Trop de tentatives" in answer.text
    assert "Réessayez dans" in answer.text


def test_sign_in_per_address_across_accounts(browser_at: Any) -> None:
    guesser = browser_at("203.0.113.7")
    for n in range(LIMIT):
        assert sign_in(guesser, f"personne{n}@ville-a.fr").status_code == 401
    # The next guess, even with the right password of a real account, is not checked.
    assert_throttled(sign_in(guesser, PEOPLE["partner"], PASSWORD))
    # Someone else, elsewhere, signs in as usual.
    assert sign_in(browser_at("198.51.100.20"), PEOPLE["partner"], PASSWORD).status_code == 303


def test_sign_in_per_account_across_addresses(browser_at: Any) -> None:
    victim = PEOPLE["instructor"]
    for n in range(LIMIT):
        assert sign_in(browser_at(f"203.0.113.{10 + n}"), victim).status_code == 401
    assert_throttled(sign_in(browser_at("203.0.113.99"), victim, PASSWORD))
    # Another account from that same fresh address is not concerned.
    assert sign_in(browser_at("203.0.113.99"), PEOPLE["operator"], PASSWORD).status_code == 303


def test_password_reset_requests_per_address_across_accounts(browser_at: Any) -> None:
    flooder = browser_at("203.0.113.7")
    for n in range(LIMIT):
        assert forgot(flooder, f"personne{n}@ville-a.fr").status_code == 200
    assert_throttled(forgot(flooder, PEOPLE["partner"]))
    assert forgot(browser_at("198.51.100.20"), PEOPLE["partner"]).status_code == 200


def test_password_reset_requests_per_account_across_addresses(browser_at: Any) -> None:
    victim = PEOPLE["security_officer"]
    for n in range(LIMIT):
        assert forgot(browser_at(f"203.0.113.{10 + n}"), victim).status_code == 200
    # No more reset mails to that mailbox for now, whoever asks.
    assert_throttled(forgot(browser_at("203.0.113.99"), victim.upper()))


def test_new_password_forms_per_address(browser_at: Any) -> None:
    """Guessing reset links: each try is a new-password form with another token."""
    guesser = browser_at("203.0.113.7")
    csrf = csrf_of(guesser, "/connexion")  # the session's token, for every form

    def try_token(n: int) -> Any:
        return guesser.post(
            "/mot-de-passe/nouveau",
            data={"token": f"jeton{n}", "password": PASSWORD + "!", "csrf_token": csrf},
        )

    for n in range(LIMIT):
        assert try_token(n).status_code == 400
    assert_throttled(try_token(LIMIT))


# --- argon2, bounded ------------------------------------------------------------------------


class WatchedHasher(PasswordHasher):
    """A cheap argon2 that records how many checks run at once, each taking 50 ms."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=1024, parallelism=1)
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            time.sleep(0.05)
            return super().verify(hash, password)
        finally:
            with self.lock:
                self.running -= 1


@pytest.mark.anyio
async def test_concurrent_sign_ins_hash_a_bounded_number_at_once(
    engine: Engine,
    session_factory: sessionmaker[Session],
    clock: FrozenClock,
    master_secret: MasterSecret,
    tmp_path: Path,
) -> None:
    hasher = WatchedHasher()
    settings = Settings(
        data_dir=tmp_path,
        smtp_url=None,
        portal_public_url="http://testserver",
        password_hashing_slots=2,
    )
    runtime = Runtime(settings, engine, session_factory, master_secret, clock)
    portal = build_portal_app(runtime, QuotaService(None), password_hasher=hasher)

    async def attempt(n: int) -> int:
        transport = httpx.ASGITransport(app=portal, client=(f"203.0.113.{n}", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as web:
            page = await web.get("/connexion")
            found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
            assert found
            answer = await web.post(
                "/connexion",
                data={"email": f"p{n}@ville-a.fr", "password": "x", "csrf_token": found[1]},
            )
            return answer.status_code

    statuses = await asyncio.gather(*(attempt(n) for n in range(12)))
    assert statuses == [401] * 12
    assert hasher.most == 2


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
