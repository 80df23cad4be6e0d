"""Signing keys: created once per environment, encrypted at rest, published as a JWKS."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from guichet.clock import FrozenClock
from guichet.db import transaction
from guichet.db.models import read_generation
from guichet.federation.clients import directory
from guichet.habilitation.models import Environment
from guichet.oauth.keys import ensure_signing_key, jwks, load_private_key, verification_keys
from guichet.oauth.models import SigningKey
from guichet.oauth.policy import PolicyCache
from guichet.secrets import MasterSecret


def test_ensure_signing_key_creates_once_and_bumps_generation(
    session_factory: sessionmaker[Session], master_secret: MasterSecret, clock: FrozenClock
) -> None:
    with transaction(session_factory) as s:
        before = read_generation(s)
        key = ensure_signing_key(s, Environment.SANDBOX, master_secret, clock.now())
    with transaction(session_factory) as s:
        assert read_generation(s) == before + 1
        again = ensure_signing_key(s, Environment.SANDBOX, master_secret, clock.now())
        assert again.kid == key.kid
        assert read_generation(s) == before + 1  # nothing changed, nothing bumped
        other = ensure_signing_key(s, Environment.PRODUCTION, master_secret, clock.now())
    assert other.kid != key.kid
    assert key.alg == "ES256"
    jwk = key.public_jwk
    assert jwk["kty"] == "EC"
    assert jwk["crv"] == "P-256"
    assert jwk["kid"] == key.kid
    assert jwk["alg"] == "ES256"
    assert jwk["use"] == "sig"
    assert "d" not in jwk
    assert b"PRIVATE KEY" not in key.private_key_encrypted


def test_private_key_round_trips_through_the_master_secret(
    session_factory: sessionmaker[Session], master_secret: MasterSecret, clock: FrozenClock
) -> None:
    with transaction(session_factory) as s:
        key = ensure_signing_key(s, Environment.SANDBOX, master_secret, clock.now())
    with session_factory() as s:
        stored = s.get(SigningKey, key.kid)
        assert stored is not None
        private = load_private_key(stored, master_secret)
    assert private.is_private
    assert private.thumbprint() == key.kid
    assert private.as_dict(private=False)["x"] == key.public_jwk["x"]


def test_retired_key_is_replaced(
    session_factory: sessionmaker[Session], master_secret: MasterSecret, clock: FrozenClock
) -> None:
    with transaction(session_factory) as s:
        old = ensure_signing_key(s, Environment.SANDBOX, master_secret, clock.now())
        old.retired_at = clock.now()
    clock.advance(60)
    with transaction(session_factory) as s:
        new = ensure_signing_key(s, Environment.SANDBOX, master_secret, clock.now())
    assert new.kid != old.kid
    with session_factory() as s:
        assert len(s.scalars(select(SigningKey)).all()) == 2


def test_jwks_from_the_snapshot_per_environment(
    session_factory: sessionmaker[Session], master_secret: MasterSecret, clock: FrozenClock
) -> None:
    with transaction(session_factory) as s:
        sandbox = ensure_signing_key(s, Environment.SANDBOX, master_secret, clock.now())
        production = ensure_signing_key(
            s, Environment.PRODUCTION, master_secret, clock.now() + dt.timedelta(seconds=1)
        )
    snapshot = PolicyCache(session_factory, directory).snapshot
    doc = jwks(snapshot, Environment.SANDBOX)
    assert [k["kid"] for k in doc["keys"]] == [sandbox.kid]
    assert all("d" not in k for k in doc["keys"])
    assert set(verification_keys(snapshot)) == {sandbox.kid, production.kid}
