"""Issuing a FICOBA habilitation (issue 14, C4) signs out, at once, the organisation's members
whose session was opened without a second factor: they sign in again and enrol one. Other
organisations, other APIs, sessions with a second factor and the instructor's are kept."""

from __future__ import annotations

from cryptography import x509
from sqlalchemy.orm import Session, sessionmaker

from guichet.accounts.sessions import SessionData, SessionStore
from guichet.clock import FrozenClock
from guichet.db import transaction
from guichet.pki import LocalPki
from guichet.secrets import MasterSecret
from tests.unit.habilitation.support import (
    World,
    make_world,
    new_complete_request,
    new_ficoba_request,
    validated,
)


def _live(store: SessionStore, session: SessionData) -> bool:
    return store.load(session.token) is not None


def test_issuing_ficoba_signs_out_members_without_a_second_factor(
    session_factory: sessionmaker[Session],
    clock: FrozenClock,
    master_secret: MasterSecret,
    pki: LocalPki,
    cert_pem: str,
) -> None:
    trust = x509.load_pem_x509_certificates(pki.ca_cert_pem)
    with transaction(session_factory) as s:
        world: World = make_world(s, clock.now())
    store = SessionStore(session_factory, clock)
    applicant = store.create(world.applicant, "password")  # member of A, no second factor
    technical = store.create(world.technical, "password+totp")  # member of A, with one
    pending = store.await_second_factor(None, world.technical, "password")
    stranger = store.create(world.stranger, "password")  # member of B
    instructor = store.create(world.instructor, "password+webauthn")

    # Another API for A: nobody is signed out.
    with transaction(session_factory) as s:
        validated(
            s,
            world,
            new_complete_request(s, world, cert_pem, clock.now()),
            clock.now(),
            master_secret,
        )
    assert _live(store, applicant)

    with transaction(session_factory) as s:
        request = new_ficoba_request(s, world, cert_pem, clock.now(), trust)
        validated(s, world, request, clock.now(), master_secret)
    assert not _live(store, applicant)
    assert _live(store, technical)
    assert _live(store, pending)
    assert _live(store, stranger)
    assert _live(store, instructor)
