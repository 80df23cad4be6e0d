"""Client registration: the service, its refusals, and the ``guichet federation client`` CLI."""

from __future__ import annotations

import datetime as dt
import re
from functools import partial
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from guichet.db import make_engine
from guichet.db.registry import metadata
from guichet.federation import cli
from guichet.federation.clients import list_clients, register_client
from guichet.federation.keys import derive_key, pairwise_sub
from guichet.federation.models import ClientKind
from guichet.runtime import open_runtime
from guichet.secrets import MasterSecret, check_secret
from guichet.settings import Settings, use_settings

NOW = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC)


def test_register_and_list(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as s, s.begin():
        sp = register_client(
            s,
            kind=ClientKind.SERVICE_PROVIDER,
            name="Ville de Quimper",
            now=NOW,
            redirect_uris=["https://qf.quimper.bzh/callback"],
        )
        dp = register_client(s, kind=ClientKind.DATA_PROVIDER, name="DGFiP", now=NOW)
    with session_factory() as s:
        rows = {r.client_id: r for r in list_clients(s)}
    assert len(sp.client_id) == 64
    assert check_secret(sp.client_secret, rows[sp.client_id].secret_hash)
    assert sp.client_secret not in rows[sp.client_id].secret_hash
    assert rows[sp.client_id].scopes[0] == "openid"
    assert "family_name" in rows[sp.client_id].scopes
    assert rows[dp.client_id].kind is ClientKind.DATA_PROVIDER
    assert rows[dp.client_id].scopes == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"redirect_uris": []}, "at least one redirect URI"),
        ({"redirect_uris": ["http://qf.quimper.bzh/cb"]}, "http is only for loopback"),
        ({"redirect_uris": ["https://qf.quimper.bzh/cb#x"]}, "no fragment"),
        ({"redirect_uris": ["/callback"]}, "absolute"),
        ({"scopes": ["given_name"]}, "include openid"),
        ({"scopes": ["openid", "dgfip_everything"]}, "unknown scope"),
        ({"name": " "}, "needs a name"),
    ],
)
def test_register_refusals(
    session_factory: sessionmaker[Session], kwargs: dict[str, object], message: str
) -> None:
    args: dict[str, object] = {
        "kind": ClientKind.SERVICE_PROVIDER,
        "name": "Ville",
        "now": NOW,
        "redirect_uris": ["https://qf.quimper.bzh/callback"],
        **kwargs,
    }
    with session_factory() as s, pytest.raises(ValueError, match=message):
        register_client(s, **args)  # type: ignore[arg-type]


def test_pairwise_sub_is_keyed_by_the_master_secret() -> None:
    key = derive_key(MasterSecret(b"k" * 48), "pairwise-sub")
    other_key = derive_key(MasterSecret(b"j" * 48), "pairwise-sub")
    assert key != derive_key(MasterSecret(b"k" * 48), "session-cookie")
    sub = pairwise_sub(key, "sector-a", "3999999930262")
    assert re.fullmatch(r"[0-9a-f]{64}v1", sub)
    assert sub == pairwise_sub(key, "sector-a", "3999999930262")
    assert sub != pairwise_sub(key, "sector-b", "3999999930262")
    assert sub != pairwise_sub(other_key, "sector-a", "3999999930262")


def test_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    engine = make_engine(settings.resolved_database_url)
    (tmp_path / "data").mkdir()
    metadata.create_all(engine)
    engine.dispose()
    # The schema comes from the models here; the Alembic migration of these tables is the lead's.
    monkeypatch.setattr(cli, "open_runtime", partial(open_runtime, migrate=False))
    use_settings(settings)
    try:
        runner = CliRunner()
        added = runner.invoke(
            cli.app,
            [
                "client",
                "add",
                "--kind",
                "service-provider",
                "--name",
                "Ville de Quimper",
                "--redirect-uri",
                "http://127.0.0.1:5000/callback",
                "--scope",
                "openid",
                "--scope",
                "dgfip_rfr",
            ],
        )
        assert added.exit_code == 0, added.output
        secret = re.search(r"client_secret (\S+)", added.output)
        client_id = re.search(r"client_id\s+(\S+)", added.output)
        assert secret
        assert client_id
        refused = runner.invoke(
            cli.app, ["client", "add", "--kind", "service-provider", "--name", "Sans URL"]
        )
        assert refused.exit_code == 2
        assert "redirect URI" in refused.output
        listed = runner.invoke(cli.app, ["client", "list"])
        assert listed.exit_code == 0, listed.output
        assert client_id.group(1) in listed.output
        assert secret.group(1) not in listed.output
    finally:
        use_settings(None)
