"""Portal sessions: hashed ids, idle and absolute expiry, a new id on sign-in."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from guichet.accounts.models import PortalSession
from guichet.accounts.service import create_user
from guichet.accounts.sessions import SessionStore, purge_expired
from guichet.clock import FrozenClock
from guichet.db import transaction
from guichet.secrets import hash_secret


@pytest.fixture
def user_id(session_factory: sessionmaker[Session], clock: FrozenClock) -> uuid.UUID:
    with transaction(session_factory) as s:
        return create_user(s, "camille@mairie-exemple.fr", "Camille", clock.now()).id


@pytest.fixture
def store(session_factory: sessionmaker[Session], clock: FrozenClock) -> SessionStore:
    return SessionStore(session_factory, clock)


def test_only_the_hash_of_the_id_is_stored(
    store: SessionStore, session_factory: sessionmaker[Session]
) -> None:
    data = store.create()
    with session_factory() as s:
        row = s.scalars(select(PortalSession)).one()
    assert row.id_hash == hash_secret(data.token) != data.token
    loaded = store.load(data.token)
    assert loaded is not None
    assert loaded.csrf_token == data.csrf_token


def test_sign_in_replaces_the_session(store: SessionStore, user_id: uuid.UUID) -> None:
    anonymous = store.create()
    signed_in = store.sign_in(anonymous, user_id, "password")
    assert signed_in.token != anonymous.token
    assert signed_in.csrf_token != anonymous.csrf_token
    assert store.load(anonymous.token) is None
    loaded = store.load(signed_in.token)
    assert loaded is not None
    assert loaded.user_id == user_id


def test_anonymous_sessions_last_two_hours(store: SessionStore, clock: FrozenClock) -> None:
    data = store.create()
    clock.advance(2 * 3600 - 1)
    assert store.load(data.token) is not None
    clock.advance(1)
    assert store.load(data.token) is None


def test_signed_in_sessions_expire_after_two_idle_hours(
    store: SessionStore, clock: FrozenClock, user_id: uuid.UUID
) -> None:
    data = store.create(user_id, "password")
    clock.advance(2 * 3600 - 1)
    assert store.load(data.token) is not None
    # That load counted as activity: two more hours from there.
    clock.advance(2 * 3600 - 1)
    assert store.load(data.token) is not None
    clock.advance(2 * 3600)
    assert store.load(data.token) is None


def test_signed_in_sessions_end_after_twelve_hours_however_active(
    store: SessionStore, clock: FrozenClock, user_id: uuid.UUID
) -> None:
    data = store.create(user_id, "password")
    for _ in range(12):
        clock.advance(3600 - 1)
        assert store.load(data.token) is not None
    clock.advance(12)
    assert store.load(data.token) is None


def test_csrf_comparison(store: SessionStore) -> None:
    data = store.create()
    assert data.csrf_matches(data.csrf_token)
    assert not data.csrf_matches(None)
    assert not data.csrf_matches("")
    assert not data.csrf_matches(data.csrf_token[:-1] + "x")


def test_destroy_and_purge(store: SessionStore, clock: FrozenClock) -> None:
    kept = store.create()
    gone = store.create()
    store.destroy(gone.token)
    assert store.load(gone.token) is None
    clock.advance(3 * 3600)
    with transaction(store.session_factory) as session:
        assert purge_expired(session, clock.now()) == 1
    assert store.load(kept.token) is None
