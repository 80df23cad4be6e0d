"""``guichet user reset-second-factor``: a person who lost every factor and recovery code gets
them removed, their sessions ended, and enrols again at the next sign-in."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from guichet.accounts.models import PortalSession, ProviderRole, RecoveryCode, SecondFactor
from guichet.accounts.service import create_user, grant_provider_role
from guichet.accounts.sessions import SessionStore
from guichet.commands.accounts import app as user_app
from guichet.db import make_engine, transaction
from guichet.runtime import Runtime, open_runtime
from guichet.schema import metadata
from guichet.settings import Settings, use_settings
from tests.support.second_factor import enrol_totp


@pytest.fixture
def runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.delenv("GUICHET_DATA_DIR", raising=False)
    use_settings(Settings(data_dir=tmp_path / "var", database_url=url, smtp_url=None))
    opened = open_runtime()
    engine = make_engine(url)
    metadata.create_all(engine)  # tables a newer migration will bring
    engine.dispose()
    try:
        yield opened
    finally:
        opened.close()
        use_settings(None)


def test_reset_removes_every_factor_and_ends_the_sessions(runtime: Runtime) -> None:
    now = dt.datetime.now(dt.UTC)
    with transaction(runtime.session_factory) as session:
        agent = create_user(session, "agent@dgfip.test", "Agent", now, verified=True)
        grant_provider_role(session, agent, ProviderRole.INSTRUCTOR, now)
        enrol_totp(session, runtime.master, agent.id, now)
        session.add(RecoveryCode(user_id=agent.id, lookup="ABCD", code_hash="x", created_at=now))
        agent_id = agent.id
    SessionStore(runtime.session_factory, runtime.clock).create(agent_id, "password+totp")

    result = CliRunner().invoke(user_app, ["reset-second-factor", "Agent@DGFiP.test"])
    assert result.exit_code == 0, result.output
    assert "1 second(s) facteur(s) retiré(s)" in result.stdout
    with runtime.session_factory() as session:
        for model in (SecondFactor, RecoveryCode, PortalSession):
            assert session.scalar(select(func.count()).select_from(model)) == 0, model

    unknown = CliRunner().invoke(user_app, ["reset-second-factor", "personne@dgfip.test"])
    assert unknown.exit_code == 2
