"""Signed checkpoints of the chain's head outside the database (issue 12): ``journal
checkpoint`` writes them, ``journal verify`` finds a chain rewritten or cut short since."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, update
from typer.testing import CliRunner

from guichet.clock import SystemClock
from guichet.commands.journal import app
from guichet.db import transaction
from guichet.habilitation.models import Organisation
from guichet.journal import checkpoint
from guichet.journal.chain import head_table, record_table
from guichet.journal.entry import record_hash
from guichet.journal.writer import JournalWriter
from guichet.mail.outbox import Outbox
from guichet.runtime import Runtime, open_runtime
from guichet.settings import Settings, use_settings
from tests.unit.journal.conftest import PARTNER_A, PARTNER_B, make_entry

NOW = SystemClock().now()


@pytest.fixture
def runtime(
    empty_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Runtime]:
    """Six records (partners A and B, sandbox and production) and two organisations."""
    monkeypatch.setenv("GUICHET_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("GUICHET_DATABASE_URL", empty_db_url)
    monkeypatch.setenv("GUICHET_JOURNAL_CHECKPOINT_DIR", str(tmp_path / "anchors"))
    monkeypatch.setenv("GUICHET_JOURNAL_CHECKPOINT_MAIL", "rssi@fournisseur.example")
    use_settings(Settings())
    rt = open_runtime()
    with transaction(rt.session_factory) as session:
        session.add(
            Organisation(
                id=PARTNER_A, siret="21750001600019", name="Ville de Paris", created_at=NOW
            )
        )
        session.add(
            Organisation(id=PARTNER_B, siret="21690123100011", name="Ville de Lyon", created_at=NOW)
        )
    writer = JournalWriter(rt.session_factory)
    for i, (partner, environment) in enumerate(
        [(PARTNER_A, "sandbox"), (PARTNER_A, "production"), (PARTNER_B, "production")] * 2
    ):
        writer.append_sync(
            make_entry(
                NOW - dt.timedelta(minutes=10 - i), partner_id=partner, environment=environment
            )
        )
    yield rt
    rt.close()
    use_settings(None)


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit
    ), result.exception
    return result.exit_code, result.stdout, result.stderr


def seqs(stdout: str) -> list[int]:
    return [json.loads(line)["seq"] for line in stdout.splitlines()]


def rewrite_from(runtime: Runtime, seq: int, **changes: object) -> None:
    """What a database administrator can do: change record ``seq`` and rehash the chain
    from there, head included — ``verify`` alone finds it whole."""
    with transaction(runtime.session_factory) as session:
        rows = [
            dict(r._mapping)
            for r in session.execute(
                select(record_table).where(record_table.c.seq >= seq).order_by(record_table.c.seq)
            )
        ]
        prev = session.execute(
            select(record_table.c.hash).where(record_table.c.seq == seq - 1)
        ).scalar_one()
        for row in rows:
            if row["seq"] == seq:
                row.update(changes)
            row["prev_hash"] = prev
            row["hash"] = record_hash(row)
            prev = row["hash"]
            session.execute(
                update(record_table)
                .where(record_table.c.seq == row["seq"])
                .values({k: v for k, v in row.items() if k != "seq"})
            )
        session.execute(update(head_table).values(hash=prev))


def test_checkpoint_is_written_signed_and_mailed(runtime: Runtime, tmp_path: Path) -> None:
    code, _, err = invoke("checkpoint")

    assert code == 0, err
    (written,) = list(checkpoint.files(tmp_path / "anchors"))
    document = json.loads(written.read_text())
    assert document["seq"] == 6
    assert document["alg"] == "Ed25519"
    (mail,) = Outbox(runtime.settings.resolved_outbox_dir).list()
    assert mail.to == "rssi@fournisseur.example"
    assert (runtime.settings.data_dir / checkpoint.PUBLIC_KEY_FILE).exists()


def test_verify_with_matching_checkpoints(runtime: Runtime) -> None:
    assert invoke("checkpoint")[0] == 0
    JournalWriter(runtime.session_factory).append_sync(make_entry(NOW))  # the chain goes on
    assert invoke("checkpoint")[0] == 0

    code, _, err = invoke("verify")

    assert code == 0, err
    assert "7 enregistrement(s) vérifié(s)" in err
    assert "2 concordent" in err


def test_verify_without_checkpoint_says_the_head_is_not_anchored(runtime: Runtime) -> None:
    code, _, err = invoke("verify")
    assert code == 0
    assert "Aucun point de contrôle" in err


def test_a_rewritten_chain_no_longer_matches_its_checkpoint(runtime: Runtime) -> None:
    assert invoke("checkpoint")[0] == 0
    rewrite_from(runtime, 3, outcome="ip_not_allowed", http_status=403)

    code, _, err = invoke("verify")

    assert "Journal intègre" in err  # the chain alone is consistent again…
    assert code == 1  # …but the checkpoint, outside the database, says otherwise
    assert "Journal réécrit" in err
    assert "record 6 no longer holds the checkpointed hash" in err


def test_a_chain_cut_short_is_found(runtime: Runtime) -> None:
    assert invoke("checkpoint")[0] == 0
    with transaction(runtime.session_factory) as session:
        last = session.execute(
            select(record_table.c.hash).where(record_table.c.seq == 4)
        ).scalar_one()
        session.execute(record_table.delete().where(record_table.c.seq > 4))
        session.execute(update(head_table).values(seq=4, hash=last))

    code, _, err = invoke("verify")

    assert code == 1
    assert "chain cut short" in err


def test_a_forged_checkpoint_is_refused(runtime: Runtime, tmp_path: Path) -> None:
    assert invoke("checkpoint")[0] == 0
    (written,) = list(checkpoint.files(tmp_path / "anchors"))
    document = json.loads(written.read_text())
    written.write_text(json.dumps({**document, "hash": "0" * 64}))

    code, _, err = invoke("verify")

    assert code == 1
    assert "signature invalide" in err


def test_export_by_siret_name_and_environment(runtime: Runtime) -> None:
    assert seqs(invoke("export", "--partner", "21690123100011")[1]) == [3, 6]
    assert seqs(invoke("export", "--partner", "ville de paris")[1]) == [1, 2, 4, 5]
    assert seqs(invoke("export", "--partner", "Lyon")[1]) == [3, 6]
    assert seqs(invoke("export", "--environment", "sandbox")[1]) == [1, 4]
    both = invoke("export", "--partner", "Paris", "--environment", "production")[1]
    assert seqs(both) == [2, 5]


def test_export_names_the_organisations_an_ambiguous_name_matches(runtime: Runtime) -> None:
    code, out, err = invoke("export", "--partner", "Ville de")

    assert code == 2
    assert out == ""
    assert "Ville de Lyon (SIRET 21690123100011)" in err
    assert "Ville de Paris (SIRET 21750001600019)" in err
