"""The policy cache: a reload never goes back to an older generation."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session, sessionmaker

from guichet.db.models import bump_generation
from guichet.federation.clients import directory
from guichet.oauth import policy
from guichet.oauth.policy import PolicyCache


def test_a_slower_older_load_never_replaces_a_newer_snapshot(
    session_factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = PolicyCache(session_factory, directory)
    older = cache.snapshot
    seen: list[int] = []
    cache.on_reload(lambda snapshot: seen.append(snapshot.generation))
    with session_factory.begin() as session:
        bump_generation(session)
    cache.reload()  # e.g. /revoke reloading on its own worker
    newer = cache.snapshot
    assert newer.generation > older.generation

    # The poller's load started before the change and ends after that reload.
    monkeypatch.setattr(policy, "load_snapshot", lambda _session, _federation: older)
    cache.reload()

    assert cache.snapshot is newer
    assert seen == [older.generation, newer.generation]


def test_a_newer_generation_is_taken(session_factory: sessionmaker[Session]) -> None:
    cache = PolicyCache(session_factory, directory)
    before = cache.snapshot.generation
    with session_factory.begin() as session:
        bump_generation(session)
    assert cache.refresh_if_stale()
    assert cache.snapshot.generation == before + 1
    assert not cache.refresh_if_stale()
