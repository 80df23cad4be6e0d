"""Client registration: the service, its refusals, and the ``guichet federation client`` CLI."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from joserfc.jwk import ECKey, OctKey, RSAKey
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from guichet.commands import federation as cli
from guichet.db import make_engine
from guichet.federation.clients import list_clients, register_client, set_encryption_key
from guichet.federation.encryption import public_jwk_of
from guichet.federation.keys import derive_key, pairwise_sub
from guichet.federation.models import ClientKind, FederationClient
from guichet.runtime import open_runtime
from guichet.schema import metadata
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


def test_a_data_provider_registers_a_public_encryption_key(
    session_factory: sessionmaker[Session],
) -> None:
    ec = ECKey.generate_key("P-256", private=True)
    rsa = RSAKey.generate_key(2048, private=True)
    with session_factory() as s, s.begin():
        dp = register_client(
            s,
            kind=ClientKind.DATA_PROVIDER,
            name="DGFiP",
            now=NOW,
            encryption_jwk=ec.as_dict(private=False),
        )
        stored = dict(dp.client.encryption_jwk or {})
        set_encryption_key(s, dp.client_id, rsa.as_dict(private=False))
        replaced = dict(dp.client.encryption_jwk or {})
    assert stored["kid"] == ec.thumbprint()
    assert (stored["use"], stored["alg"], stored["crv"]) == ("enc", "ECDH-ES", "P-256")
    assert "d" not in stored
    assert (replaced["alg"], replaced["kid"]) == ("RSA-OAEP-256", rsa.thumbprint())
    # Given as a PEM public key (the CLI's file): the same JWK.
    assert public_jwk_of(ec.as_pem(private=False)) == stored
    with pytest.raises(ValueError, match="public key"):
        public_jwk_of(ec.as_pem(private=True))


@pytest.mark.filterwarnings("ignore::joserfc.errors.SecurityWarning")  # the 1024-bit key
@pytest.mark.parametrize(
    ("jwk", "message"),
    [
        (lambda: ECKey.generate_key("P-256", private=True).as_dict(private=True), "public key"),
        (lambda: ECKey.generate_key("P-384", private=True).as_dict(private=False), "P-256"),
        (
            lambda: RSAKey.generate_key(1024, private=True, auto_kid=False).as_dict(private=False),
            "2048",
        ),
        (
            lambda: {
                **ECKey.generate_key("P-256", private=True).as_dict(private=False),
                "use": "sig",
            },
            "use 'enc'",
        ),
        (
            lambda: {
                **RSAKey.generate_key(2048, private=True).as_dict(private=False),
                "alg": "RSA1_5",
            },
            "RSA-OAEP-256",
        ),
        (lambda: OctKey.generate_key(256).as_dict(private=True), "EC .P-256. or RSA"),
    ],
)
def test_encryption_key_refusals(
    session_factory: sessionmaker[Session], jwk: Callable[[], dict[str, Any]], message: str
) -> None:
    with session_factory() as s, pytest.raises(ValueError, match=message):
        register_client(
            s, kind=ClientKind.DATA_PROVIDER, name="DGFiP", now=NOW, encryption_jwk=jwk()
        )


def test_a_service_provider_has_no_encryption_key(session_factory: sessionmaker[Session]) -> None:
    public = ECKey.generate_key("P-256", private=True).as_dict(private=False)
    with session_factory() as s, pytest.raises(ValueError, match="only a data provider"):
        register_client(
            s,
            kind=ClientKind.SERVICE_PROVIDER,
            name="Ville",
            now=NOW,
            redirect_uris=["https://qf.quimper.bzh/callback"],
            encryption_jwk=public,
        )


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
        key = ECKey.generate_key("P-256", private=True)
        (tmp_path / "dp.pem").write_bytes(key.as_pem(private=False))
        dp = runner.invoke(
            cli.app,
            [
                "client",
                "add",
                "--kind",
                "data-provider",
                "--name",
                "DGFiP",
                "--encryption-key",
                str(tmp_path / "dp.pem"),
            ],
        )
        assert dp.exit_code == 0, dp.output
        dp_id = re.search(r"client_id\s+(\S+)", dp.output)
        assert dp_id
        engine = make_engine(settings.resolved_database_url)
        try:
            with sessionmaker(engine)() as s:
                row = s.get(FederationClient, dp_id.group(1))
                assert row is not None
                assert row.encryption_jwk is not None
                assert row.encryption_jwk["kid"] == key.thumbprint()
        finally:
            engine.dispose()
        listed = runner.invoke(cli.app, ["client", "list"])
        assert listed.exit_code == 0, listed.output
        assert client_id.group(1) in listed.output
        assert secret.group(1) not in listed.output
    finally:
        use_settings(None)
