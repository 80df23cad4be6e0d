"""The portal app over the test database, with a real outbox, driven through HTTP."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette
from starlette.testclient import TestClient

from guichet.clock import FrozenClock
from guichet.mail.outbox import Outbox
from guichet.portal.app import build_portal_app
from guichet.quota import QuotaService
from guichet.runtime import Runtime
from guichet.sandbox.personas import PERSONAS
from guichet.secrets import MasterSecret
from guichet.settings import Settings
from tests.unit.accounts.conftest import FAST_HASHER, PASSWORD, SIRET

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def portal(
    engine: Engine,
    session_factory: sessionmaker[Session],
    clock: FrozenClock,
    master_secret: MasterSecret,
    tmp_path: Path,
) -> Starlette:
    settings = Settings(data_dir=tmp_path, smtp_url=None, portal_public_url="http://testserver")
    runtime = Runtime(settings, engine, session_factory, master_secret, clock)
    return build_portal_app(
        runtime, QuotaService(None), password_hasher=FAST_HASHER, personas=PERSONAS
    )


@pytest.fixture
def client(portal: Starlette) -> Iterator[TestClient]:
    # The person running the embedded default, on this machine (the outbox is theirs).
    with TestClient(portal, follow_redirects=False, client=("127.0.0.1", 50000)) as c:
        yield c


@pytest.fixture
def outbox(tmp_path: Path) -> Outbox:
    return Outbox(tmp_path / "outbox")


def csrf_of(client: TestClient, path: str) -> str:
    page = client.get(path)
    assert page.status_code == 200, page.text
    found = CSRF.search(page.text)
    assert found, f"no CSRF token on {path}"
    return found.group(1)


def sign_up_data(**overrides: str) -> dict[str, str]:
    data = {
        "email": "camille@mairie-exemple.fr",
        "display_name": "Camille Martin",
        "password": PASSWORD,
        "siret": SIRET,
        "organisation_name": "Commune d'Exemple",
        "role": "technical_contact",
    }
    data.update(overrides)
    return data


def newest_link(outbox: Outbox, path: str) -> str:
    message = outbox.get(outbox.list()[0].id)
    assert message is not None
    found = re.search(rf"http://testserver({re.escape(path)}\?token=\S+)", message.text)
    assert found, message.text
    return found.group(1)


def signed_up_and_verified(client: TestClient, outbox: Outbox) -> None:
    token = csrf_of(client, "/inscription")
    answer = client.post("/inscription", data={**sign_up_data(), "csrf_token": token})
    assert answer.status_code == 303, answer.text
    assert client.get(newest_link(outbox, "/verification-email")).status_code == 200
