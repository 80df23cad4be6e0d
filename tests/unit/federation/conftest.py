"""Fixtures: a sandbox federation on each database, its clock at the real now."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session, sessionmaker

from guichet.clock import FrozenClock
from guichet.secrets import MasterSecret
from tests.unit.federation.support import Federation, make_federation, real_now


@pytest.fixture
def fed_clock() -> FrozenClock:
    return FrozenClock(real_now())


@pytest.fixture
def federation(
    session_factory: sessionmaker[Session], master_secret: MasterSecret, fed_clock: FrozenClock
) -> Federation:
    return make_federation(session_factory, master_secret, fed_clock)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
