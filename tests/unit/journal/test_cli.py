"""``guichet journal verify|export|purge`` as an operator runs them."""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from guichet.clock import SystemClock
from guichet.commands.journal import app
from guichet.journal.writer import JournalWriter
from guichet.runtime import Runtime, open_runtime
from guichet.settings import Settings, use_settings
from tests.support.postgres import free_port
from tests.unit.journal.conftest import PARTNER_A, PARTNER_B, make_entry, sql

SPI_ALICE = "1234567890066"
SPI_BOB = "3023217600053"
NOW = SystemClock().now()


@pytest.fixture
def runtime(
    empty_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Runtime]:
    """A data directory in tmp (``GUICHET_DATA_DIR``), its database migrated."""
    monkeypatch.setenv("GUICHET_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("GUICHET_DATABASE_URL", empty_db_url)
    use_settings(Settings())
    rt = open_runtime()
    yield rt
    rt.close()
    use_settings(None)


@pytest.fixture
def journal(runtime: Runtime) -> Runtime:
    """Four records: Alice 800 and 400 days ago (partner A), Bob 3 days ago, Alice 1 day ago."""
    writer = JournalWriter(runtime.session_factory)
    alice, bob = runtime.master.pseudonym(SPI_ALICE), runtime.master.pseudonym(SPI_BOB)
    plan = [
        (800, PARTNER_A, alice),
        (400, PARTNER_A, alice),
        (3, PARTNER_B, bob),
        (1, PARTNER_B, alice),
    ]
    for days, partner, subject in plan:
        writer.append_sync(
            make_entry(NOW - dt.timedelta(days=days), partner_id=partner, subject=subject)
        )
    return runtime


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit
    ), result.exception
    return result.exit_code, result.stdout, result.stderr


def seqs(stdout: str) -> list[int]:
    return [json.loads(line)["seq"] for line in stdout.splitlines()]


def test_verify_intact(journal: Runtime) -> None:
    code, out, err = invoke("verify")
    assert code == 0
    assert out == ""
    assert "4 enregistrement(s) vérifié(s)" in err


def test_verify_reports_the_first_bad_record(journal: Runtime) -> None:
    sql(journal.session_factory, "UPDATE journal_record SET outcome = 'forged' WHERE seq = 3")
    code, _, err = invoke("verify")
    assert code == 1
    assert "seq 3" in err
    assert "altered content" in err
    assert "correlation_id =" in err


def test_export_to_stdout_is_clean_jsonl(journal: Runtime) -> None:
    code, out, err = invoke("export")
    assert code == 0
    assert seqs(out) == [1, 2, 3, 4]
    assert "4 enregistrement(s) exporté(s)" in err
    assert "{" not in err


def test_export_filters(journal: Runtime) -> None:
    def day(days: int) -> str:
        return (NOW - dt.timedelta(days=days)).date().isoformat()

    assert seqs(invoke("export", "--partner", str(PARTNER_B))[1]) == [3, 4]
    assert seqs(invoke("export", "--subject-spi", SPI_ALICE)[1]) == [1, 2, 4]
    # Spaces are accepted in an SPI, as people write it.
    assert seqs(invoke("export", "--subject-spi", "30 23 217 600 053")[1]) == [3]
    assert seqs(invoke("export", "--from", day(500))[1]) == [2, 3, 4]
    # A day as the upper bound includes that whole day.
    assert seqs(invoke("export", "--from", day(500), "--to", day(3))[1]) == [2, 3]
    at = (NOW - dt.timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")
    assert seqs(invoke("export", "--to", at)[1]) == [1, 2]
    both = invoke("export", "--subject-spi", SPI_ALICE, "--partner", str(PARTNER_A))[1]
    assert seqs(both) == [1, 2]


def test_export_csv_to_a_file(journal: Runtime, tmp_path: Path) -> None:
    target = tmp_path / "enquete.csv"
    code, out, err = invoke(
        "export", "--format", "csv", "--output", str(target), "--partner", str(PARTNER_A)
    )
    assert code == 0
    assert out == ""
    assert str(target) in err
    table = list(csv.DictReader(target.open(newline="", encoding="utf-8")))
    assert [r["seq"] for r in table] == ["1", "2"]
    assert table[0]["subject"] == journal.master.pseudonym(SPI_ALICE)
    assert {"seq", "hash", "prev_hash"} <= set(table[0])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "hier"], "date invalide"),
        (["--to", "2026-13-01"], "date invalide"),
        (["--partner", "pas-un-uuid"], "aucune organisation"),
        (["--subject-spi", "1234567890000"], "SPI invalide"),
        (["--format", "xml"], "xml"),
        (["--from", "2026-02-01", "--to", "2026-01-01"], "--from doit précéder --to"),
    ],
)
def test_export_bad_input_is_a_usage_error(runtime: Runtime, args: list[str], message: str) -> None:
    code, out, err = invoke("export", *args)
    assert code == 2
    assert out == ""
    assert message in err
    assert "Traceback" not in err
    assert "1234567890000" not in err  # an SPI is never echoed


def test_purge_uses_the_configured_retention(
    journal: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = invoke("purge")  # default 730 days
    assert code == 0
    assert "1 enregistrement(s) de plus de 730 jours" in err
    use_settings(journal.settings.model_copy(update={"journal_retention_days": 100}))
    code, _, err = invoke("purge")
    assert code == 0
    assert "1 enregistrement(s) de plus de 100 jours" in err
    code, _, err = invoke("purge", "--retention-days", "2")
    assert code == 0
    assert "1 enregistrement(s)" in err
    assert seqs(invoke("export")[1]) == [4]
    assert invoke("verify")[0] == 0
    assert invoke("purge", "--retention-days", "0")[0] == 2


def test_purge_refuses_a_tampered_journal(journal: Runtime) -> None:
    sql(journal.session_factory, "DELETE FROM journal_record WHERE seq = 3")
    code, _, err = invoke("purge", "--retention-days", "2")
    assert code == 1
    assert "purge refusée" in err
    assert "seq 3" in err
    assert seqs(invoke("export")[1]) == [1, 2, 4]
    code, _, _ = invoke("purge", "--retention-days", "500", "--skip-verify")
    assert code == 0
    assert seqs(invoke("export")[1]) == [2, 4]


def test_unreachable_database_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GUICHET_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv(
        "GUICHET_DATABASE_URL", f"postgresql+psycopg://guichet@127.0.0.1:{free_port()}/x"
    )
    use_settings(Settings())
    try:
        code, _, err = invoke("verify")
    finally:
        use_settings(None)
    assert code == 1
    assert "GUICHET_DATABASE_URL : base de données injoignable" in err


def test_mounted_on_the_guichet_command(journal: Runtime) -> None:
    """The real command, in its own process: stdout carries the records and nothing else."""
    if journal.engine.dialect.name != "sqlite":
        pytest.skip("mounting does not depend on the database")
    env = {
        **os.environ,
        "GUICHET_DATA_DIR": str(journal.settings.data_dir),
        "GUICHET_DATABASE_URL": journal.settings.resolved_database_url,
    }
    done = subprocess.run(
        [sys.executable, "-m", "guichet", "journal", "export", "--partner", str(PARTNER_B)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert seqs(done.stdout) == [3, 4]
    assert "2 enregistrement(s) exporté(s)" in done.stderr
