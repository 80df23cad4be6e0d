"""``guichet backup`` / ``guichet restore`` on SQLite (PostgreSQL: tests/functional/
test_deployment.py): what is kept, a fresh target only unless --force, an altered backup
refused."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from sqlalchemy import text

from guichet.clock import SystemClock
from guichet.commands.backup import BackupError, backup, restore
from guichet.runtime import open_runtime
from guichet.settings import Settings

NOW = SystemClock().now()


@pytest.fixture
def source(tmp_path: Path) -> Settings:
    """A data directory with its database, a secret, a CA file, an outbox and an upload."""
    settings = Settings(data_dir=tmp_path / "source")
    runtime = open_runtime(settings)
    with runtime.engine.begin() as conn:
        conn.execute(text("CREATE TABLE marker (value TEXT)"))
        conn.execute(text("INSERT INTO marker VALUES ('avant la sauvegarde')"))
    runtime.close()
    (settings.data_dir / "pki").mkdir()
    (settings.data_dir / "pki" / "ca.key").write_text("clé de l'AC")
    (settings.data_dir / "outbox").mkdir()
    (settings.data_dir / "outbox" / "lien.eml").write_text("lien de connexion")
    (settings.data_dir / "uploads").mkdir()
    (settings.data_dir / "uploads" / "convention.pdf").write_bytes(b"%PDF")
    return settings


def test_backup_then_restore_on_a_fresh_directory(source: Settings, tmp_path: Path) -> None:
    target = tmp_path / "backup"
    manifest = backup(source, target, NOW)

    assert stat.S_IMODE(target.stat().st_mode) == 0o700
    assert [d["file"] for d in manifest["databases"]] == ["guichet.sqlite"]
    assert {"secret.key", "pki/ca.key", "uploads/convention.pdf"} <= set(manifest["files"])
    assert not any(name.startswith("outbox") for name in manifest["files"])
    assert "guichet.db" not in manifest["files"]  # in databases/, by the online backup API

    fresh = Settings(data_dir=tmp_path / "fresh")
    restore(fresh, target)

    assert (fresh.data_dir / "pki" / "ca.key").read_text() == "clé de l'AC"
    assert (fresh.data_dir / "secret.key").read_text() == (
        source.data_dir / "secret.key"
    ).read_text()
    runtime = open_runtime(fresh)
    with runtime.engine.connect() as conn:
        assert conn.execute(text("SELECT value FROM marker")).scalar() == "avant la sauvegarde"
    runtime.close()


def test_restore_refuses_a_target_that_holds_anything(source: Settings, tmp_path: Path) -> None:
    target = tmp_path / "backup"
    backup(source, target, NOW)

    with pytest.raises(BackupError, match="n'est pas vide"):
        restore(source, target)

    restore(source, target, force=True)  # the operator said so


def test_backup_refuses_a_non_empty_target(source: Settings, tmp_path: Path) -> None:
    target = tmp_path / "backup"
    target.mkdir()
    (target / "autre").write_text("x")
    with pytest.raises(BackupError, match="n'est pas vide"):
        backup(source, target, NOW)


def test_an_altered_backup_is_refused(source: Settings, tmp_path: Path) -> None:
    target = tmp_path / "backup"
    backup(source, target, NOW)
    (target / "data" / "secret.key").write_text("un autre secret de plus de trente-deux octets")

    with pytest.raises(BackupError, match=r"altérée : data/secret\.key"):
        restore(Settings(data_dir=tmp_path / "fresh"), target)
    assert json.loads((target / "manifest.json").read_text())["format"] == 1
