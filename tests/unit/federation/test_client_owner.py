"""A federation client's owner: recorded at registration (service and CLI ``--siret``),
assigned later by an operator (``guichet federation client assign-owner``); guichet's own
clients have none and never get one."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from guichet.commands import federation as cli
from guichet.db import make_engine
from guichet.federation.clients import assign_owner, claim_refusal, register_client
from guichet.federation.models import ClientKind, FederationClient
from guichet.habilitation.service import get_or_create_organisation
from guichet.runtime import open_runtime
from guichet.schema import metadata
from guichet.settings import Settings, use_settings

NOW = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC)
SIRET_A, SIRET_B = "21000000610001", "73282932000074"
URI = "http://127.0.0.1:5000/retour"


def test_owner_recorded_at_registration(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as s, s.begin():
        a = get_or_create_organisation(s, SIRET_A, "Ville A", NOW)
        b = get_or_create_organisation(s, SIRET_B, "Société B", NOW)
        sp = ClientKind.SERVICE_PROVIDER
        owned = register_client(
            s, kind=sp, name="A", now=NOW, redirect_uris=[URI], organisation_id=a.id
        )
        free = register_client(s, kind=sp, name="Libre", now=NOW, redirect_uris=[URI])
        own = register_client(
            s, kind=sp, name="Portail", now=NOW, redirect_uris=[URI], internal=True
        )
        dp = register_client(s, kind=ClientKind.DATA_PROVIDER, name="DGFiP", now=NOW)
        with pytest.raises(ValueError, match="client de guichet"):
            register_client(
                s,
                kind=sp,
                name="X",
                now=NOW,
                redirect_uris=[URI],
                internal=True,
                organisation_id=a.id,
            )
        assert owned.client.organisation_id == a.id
        assert not owned.client.internal
        assert free.client.organisation_id is None
        assert own.client.internal
        assert dp.client.internal  # a data provider is always guichet's own
        # Only the owner may bind; nobody binds guichet's own or an ownerless client.
        assert claim_refusal(s, owned.client_id, a.id, unknown_refused=True) is None
        assert "autre fournisseur" in str(
            claim_refusal(s, owned.client_id, b.id, unknown_refused=True)
        )
        for client_id in (own.client_id, dp.client_id):
            assert "guichet lui-même" in str(
                claim_refusal(s, client_id, a.id, unknown_refused=True)
            )
        assert "propriétaire" in str(claim_refusal(s, free.client_id, a.id, unknown_refused=True))
        assert "inconnu" in str(claim_refusal(s, "0" * 64, a.id, unknown_refused=True))
        assert claim_refusal(s, "0" * 64, a.id, unknown_refused=False) is None
        # The operator assigns an owner; never to guichet's own clients.
        assert assign_owner(s, free.client_id, SIRET_B).organisation_id == b.id
        with pytest.raises(ValueError, match="guichet lui-même"):
            assign_owner(s, own.client_id, SIRET_A)
        with pytest.raises(ValueError, match="SIRET"):
            assign_owner(s, owned.client_id, "99999999999999")


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[sessionmaker[Session]]:
    settings = Settings(data_dir=tmp_path / "data")
    (tmp_path / "data").mkdir()
    engine = make_engine(settings.resolved_database_url)
    metadata.create_all(engine)
    with sessionmaker(engine)() as s, s.begin():
        get_or_create_organisation(s, SIRET_A, "Ville A", NOW)
        get_or_create_organisation(s, SIRET_B, "Société B", NOW)
    monkeypatch.setattr(cli, "open_runtime", partial(open_runtime, migrate=False))
    use_settings(settings)
    try:
        yield sessionmaker(engine)
    finally:
        use_settings(None)
        engine.dispose()


def _add(*extra: str) -> tuple[int, str]:
    args = ["client", "add", "--kind", "service-provider", "--name", "Service", *extra]
    result = CliRunner().invoke(cli.app, [*args, "--redirect-uri", URI])
    return result.exit_code, result.output


def test_cli_register_with_siret_and_assign_owner(runner: sessionmaker[Session]) -> None:
    code, out = _add("--siret", SIRET_A)
    assert code == 0, out
    found = re.search(r"client_id\s+(\S+)", out)
    assert found
    owned = found.group(1)
    assert "pas de propriétaire" not in out
    code, out = _add("--siret", "99999999999999")
    assert code == 2
    assert "aucune organisation avec le SIRET 99999999999999" in out
    code, out = _add()
    assert code == 0, out
    assert "pas de propriétaire" in out
    assert "assign-owner" in out
    found = re.search(r"client_id\s+(\S+)", out)
    assert found
    free = found.group(1)
    assigned = CliRunner().invoke(cli.app, ["client", "assign-owner", free, "--siret", SIRET_B])
    assert assigned.exit_code == 0, assigned.output
    assert "appartient désormais" in assigned.output
    dp = CliRunner().invoke(
        cli.app, ["client", "add", "--kind", "data-provider", "--name", "DGFiP"]
    )
    assert dp.exit_code == 0, dp.output
    found = re.search(r"client_id\s+(\S+)", dp.output)
    assert found
    refused = CliRunner().invoke(
        cli.app, ["client", "assign-owner", found.group(1), "--siret", SIRET_A]
    )
    assert refused.exit_code == 2
    assert "guichet lui-même" in refused.output
    unknown = CliRunner().invoke(cli.app, ["client", "assign-owner", "0" * 64, "--siret", SIRET_A])
    assert unknown.exit_code == 2
    with runner() as s:
        rows = {r.client_id: r for r in s.query(FederationClient)}
        orgs = {
            siret: get_or_create_organisation(s, siret, "", NOW).id for siret in (SIRET_A, SIRET_B)
        }
    assert rows[owned].organisation_id == orgs[SIRET_A]
    assert rows[free].organisation_id == orgs[SIRET_B]
    assert rows[found.group(1)].internal
    listed = CliRunner().invoke(cli.app, ["client", "list"])
    assert listed.exit_code == 0, listed.output
    for shown in (SIRET_A, SIRET_B, "guichet"):
        assert shown in listed.output


def test_cli_help_is_french() -> None:
    helped = CliRunner().invoke(cli.app, ["client", "assign-owner", "--help"])
    assert helped.exit_code == 0
    assert "Attribuer un client de la fédération à une organisation" in helped.output
    assert "SIRET de l'organisation propriétaire" in helped.output
    added = CliRunner().invoke(cli.app, ["client", "add", "--help"])
    assert "--siret" in added.output
