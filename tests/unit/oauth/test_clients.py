"""Client registration and secret rotation."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session, sessionmaker

from guichet.clock import FrozenClock
from guichet.db import transaction
from guichet.db.models import read_generation
from guichet.habilitation.models import Environment
from guichet.oauth.clients import create_client, rotate_secret
from guichet.oauth.models import Client
from guichet.secrets import check_secret
from tests.unit.oauth.support import make_habilitation


def test_create_client_with_secret_stores_only_its_hash(
    session_factory: sessionmaker[Session], clock: FrozenClock
) -> None:
    with transaction(session_factory) as s:
        hab = make_habilitation(s, environment=Environment.SANDBOX, now=clock.now())
        before = read_generation(s)
        client, secret = create_client(
            s,
            habilitation=hab,
            scopes=["RessourceIR", "RessourceR2P"],
            auth_methods=["client_secret_post", "client_secret_basic"],
            now=clock.now(),
        )
        assert read_generation(s) == before + 1
    assert secret is not None
    assert len(secret) >= 40
    with session_factory() as s:
        stored = s.get(Client, client.id)
        assert stored is not None
        assert stored.secret_hash is not None
        assert secret not in stored.secret_hash
        assert check_secret(secret, stored.secret_hash)
        assert stored.client_id.startswith("sandbox-")
        assert len(stored.client_id) >= 32
        assert stored.environment is Environment.SANDBOX
        assert stored.scopes == ["RessourceIR", "RessourceR2P"]
        assert stored.auth_methods == ["client_secret_basic", "client_secret_post"]


def test_client_ids_are_unguessable(
    session_factory: sessionmaker[Session], clock: FrozenClock
) -> None:
    with transaction(session_factory) as s:
        hab = make_habilitation(s, environment=Environment.PRODUCTION, now=clock.now())
        ids = {
            create_client(
                s,
                habilitation=hab,
                scopes=["RessourceIR"],
                auth_methods=["tls_client_auth"],
                now=clock.now(),
            )[0].client_id
            for _ in range(20)
        }
    assert len(ids) == 20
    assert all(i.startswith("production-") for i in ids)


def test_certificate_only_client_has_no_secret(
    session_factory: sessionmaker[Session], clock: FrozenClock
) -> None:
    with transaction(session_factory) as s:
        hab = make_habilitation(s, environment=Environment.SANDBOX, now=clock.now())
        client, secret = create_client(
            s,
            habilitation=hab,
            scopes=["RessourceIR"],
            auth_methods=["tls_client_auth", "self_signed_tls_client_auth"],
            now=clock.now(),
        )
    assert secret is None
    assert client.secret_hash is None
    with transaction(session_factory) as s, pytest.raises(ValueError, match="no secret"):
        rotate_secret(s, client.client_id, clock.now())


@pytest.mark.parametrize(
    ("scopes", "methods", "message"),
    [
        (
            ["RessourceInconnue"],
            ["client_secret_basic"],
            "unknown resource scope.*RessourceInconnue",
        ),
        ([], ["client_secret_basic"], "at least one resource scope"),
        (["RessourceR2P"], ["client_secret_basic"], "belong to no API of the habilitation"),
        (["RessourceIR"], [], "at least one authentication method"),
        (["RessourceIR"], ["private_key_jwt"], "unsupported authentication method"),
    ],
)
def test_create_client_validates(
    session_factory: sessionmaker[Session],
    clock: FrozenClock,
    scopes: list[str],
    methods: list[str],
    message: str,
) -> None:
    with transaction(session_factory) as s:
        hab = make_habilitation(
            s, environment=Environment.SANDBOX, now=clock.now(), apis=["impot_particulier"]
        )
        with pytest.raises(ValueError, match=message):
            create_client(s, habilitation=hab, scopes=scopes, auth_methods=methods, now=clock.now())


def test_rotate_secret_replaces_the_old_one(
    session_factory: sessionmaker[Session], clock: FrozenClock
) -> None:
    with transaction(session_factory) as s:
        hab = make_habilitation(s, environment=Environment.SANDBOX, now=clock.now())
        client, old = create_client(
            s,
            habilitation=hab,
            scopes=["RessourceIR"],
            auth_methods=["client_secret_basic"],
            now=clock.now(),
        )
    assert old is not None
    clock.advance(3600)
    with transaction(session_factory) as s:
        before = read_generation(s)
        new = rotate_secret(s, client.client_id, clock.now())
        assert read_generation(s) == before + 1
    assert new != old
    with session_factory() as s:
        stored = s.get(Client, client.id)
        assert stored is not None
        assert stored.secret_hash is not None
        assert check_secret(new, stored.secret_hash)
        assert not check_secret(old, stored.secret_hash)
        assert stored.secret_created_at == clock.now()
    with transaction(session_factory) as s, pytest.raises(ValueError, match="unknown client"):
        rotate_secret(s, "sandbox-nope", clock.now())
