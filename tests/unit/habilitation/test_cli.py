"""``guichet habilitation suspend|resume|revoke|rotate-secret`` go through the lifecycle's
services: contacts are notified, revocation ends the validity, the secret is printed once."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from guichet.cli import habilitation_app
from guichet.db import make_engine, transaction
from guichet.habilitation.models import Habilitation, HabilitationEvent, HabilitationStatus
from guichet.mail.outbox import Outbox
from guichet.oauth.models import Client
from guichet.pki import ensure_local_pki, issue_client_certificate
from guichet.runtime import Runtime, open_runtime
from guichet.schema import metadata
from guichet.secrets import check_secret
from guichet.settings import Settings, use_settings
from tests.unit.habilitation.support import make_world, new_complete_request, validated


@dataclass
class Cli:
    runtime: Runtime
    habilitation_id: str
    client_id: str
    outbox: Outbox

    def run(self, *args: str) -> tuple[int, str, str]:
        result = CliRunner().invoke(habilitation_app, list(args))
        if result.exit_code not in (0, 2):
            raise AssertionError(result.output) from result.exception
        return result.exit_code, result.stdout, result.stderr

    def habilitation(self) -> Habilitation:
        with self.runtime.session_factory() as s:
            hab = s.get(Habilitation, uuid.UUID(self.habilitation_id))
            assert hab is not None
            s.expunge(hab)
            return hab


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cli]:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    # Settings in force rather than in the environment: the command's ``--data-dir`` callback
    # does not then replace them with the (cached) environment's.
    monkeypatch.delenv("GUICHET_DATA_DIR", raising=False)
    use_settings(Settings(data_dir=tmp_path / "var", database_url=url, smtp_url=None))
    runtime = open_runtime()
    engine = make_engine(url)
    metadata.create_all(engine)  # tables a newer migration will bring
    engine.dispose()
    now = dt.datetime.now(dt.UTC)
    pki = ensure_local_pki(tmp_path / "pki", now, ["127.0.0.1"])
    cert, _key = issue_client_certificate(pki, "qf client", "Ville A", 365, now)
    with transaction(runtime.session_factory) as s:
        world = make_world(s, now)
        issued = validated(
            s, world, new_complete_request(s, world, cert.decode(), now), now, runtime.master
        )
    try:
        yield Cli(
            runtime,
            str(issued.habilitation_id),
            issued.client_id,
            Outbox(runtime.settings.resolved_outbox_dir),
        )
    finally:
        runtime.close()
        use_settings(None)


def test_suspend_resume_revoke_notify_the_contacts(cli: Cli) -> None:
    code, _, err = cli.run("suspend", cli.habilitation_id[:8], "--reason", "incident de sécurité")
    assert code == 0, err
    assert f"Habilitation {cli.habilitation_id} : suspended (incident de sécurité)." in err
    assert cli.habilitation().status is HabilitationStatus.SUSPENDED
    subjects = [e.subject for e in cli.outbox.list()]
    assert subjects.count("Habilitation du bac à sable suspendue : Quotient familial") == 2

    code, _, err = cli.run("suspend", cli.habilitation_id, "--reason", "encore")
    assert code == 2
    assert "Impossible de suspendre une habilitation suspendue" in err
    code, _, err = cli.run("resume", cli.habilitation_id, "--reason", " ")
    assert code == 2
    assert "motif" in err

    code, _, err = cli.run("resume", cli.habilitation_id, "--reason", "incident clos")
    assert code == 0, err
    assert ": active (incident clos)." in err
    code, _, err = cli.run(
        "revoke", cli.habilitation_id, "--reason", "clé compromise", "--actor", "rssi"
    )
    assert code == 0, err
    hab = cli.habilitation()
    assert hab.status is HabilitationStatus.TERMINATED
    assert hab.valid_until is not None  # immediate termination ends the validity now
    subjects = [e.subject for e in cli.outbox.list()]
    assert subjects.count("Habilitation du bac à sable résiliée : Quotient familial") == 2
    with cli.runtime.session_factory() as s:
        actors = s.scalars(
            select(HabilitationEvent.actor).where(HabilitationEvent.name.like("%terminated"))
        ).all()
    assert actors == ["rssi"]
    code, _, err = cli.run("suspend", "ffffffff", "--reason", "x")
    assert code == 2
    assert "Aucune habilitation" in err


def test_rotate_secret_prints_the_new_secret_once(cli: Cli) -> None:
    with cli.runtime.session_factory() as s:
        before = s.scalar(select(Client.secret_hash).where(Client.client_id == cli.client_id))
    code, out, err = cli.run("rotate-secret", cli.habilitation_id)
    assert code == 0, err
    secret = out.strip()
    assert len(secret) >= 40
    assert secret not in err
    assert cli.client_id in err
    with cli.runtime.session_factory() as s:
        after = s.scalar(select(Client.secret_hash).where(Client.client_id == cli.client_id))
    assert after is not None
    assert after != before
    assert check_secret(secret, after)
    assert any(e.subject.startswith("Secret renouvelé") for e in cli.outbox.list())
    for entry in cli.outbox.list():
        message = cli.outbox.get(entry.id)
        assert message is not None
        assert secret not in message.text
