"""The attacks of issue 11 run against the real portal over the test database."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette
from starlette.testclient import TestClient

from guichet.accounts.models import User
from guichet.accounts.passwords import Passwords
from guichet.clock import FrozenClock
from guichet.db import transaction
from guichet.portal.app import build_portal_app
from guichet.quota import QuotaService
from guichet.runtime import Runtime
from guichet.secrets import MasterSecret
from guichet.settings import Settings
from tests.support.second_factor import finish_sign_in
from tests.unit.accounts.conftest import FAST_HASHER, PASSWORD

# The sandbox federation in process, and the citizen's space over it (their fixtures, shared).
from tests.unit.federation.conftest import fed_clock, federation  # noqa: F401
from tests.unit.habilitation.support import make_world
from tests.unit.portal.conftest import csrf_of
from tests.unit.portal.test_citizen import anyio_backend, world  # noqa: F401

# A peer on the network, not this machine (TEST-NET-3, RFC 5737).
REMOTE_PEER = ("203.0.113.7", 50000)
LOOPBACK_PEER = ("127.0.0.1", 50000)

PortalFactory = Callable[..., Starlette]
# The people of ``tests.unit.habilitation.support``: a partner of "Ville A" and the staff.
PEOPLE = {
    "partner": "demandeur@ville-a.fr",
    "instructor": "instructeur@dgfip.test",
    "operator": "exploitant@dgfip.test",
    "security_officer": "rssi@dgfip.test",
}


@pytest.fixture
def make_portal(
    engine: Engine,
    session_factory: sessionmaker[Session],
    clock: FrozenClock,
    master_secret: MasterSecret,
    tmp_path: Path,
) -> PortalFactory:
    """A portal with these settings (the embedded default otherwise: outbox, no SMTP)."""

    def build(**values: Any) -> Starlette:
        settings = Settings(data_dir=tmp_path, **{"smtp_url": None, **values})
        runtime = Runtime(settings, engine, session_factory, master_secret, clock)
        return build_portal_app(runtime, QuotaService(None), password_hasher=FAST_HASHER)

    return build


@pytest.fixture
def peopled_portal(
    make_portal: PortalFactory, session_factory: sessionmaker[Session], clock: FrozenClock
) -> Starlette:
    """The portal at http://testserver, with ``PEOPLE`` able to sign in with ``PASSWORD``."""
    hashed = Passwords(FAST_HASHER).hash(PASSWORD)
    with transaction(session_factory) as session:
        make_world(session, clock.now())
        for person in session.scalars(select(User)):
            person.password_hash = hashed
    return make_portal(portal_public_url="http://testserver")


def sign_in(client: TestClient, who: str) -> None:
    answer = client.post(
        "/connexion",
        data={
            "email": PEOPLE[who],
            "password": PASSWORD,
            "csrf_token": csrf_of(client, "/connexion"),
        },
    )
    assert answer.status_code == 303, answer.text
    # Staff give their second factor (issue 14, C4), enrolled on their first sign-in.
    finish_sign_in(client, answer, PEOPLE[who])
