"""``guichet backup`` / ``guichet restore``: the databases and the data directory's files, taken
together while the product runs and put back on a fresh host (issue 12).

A backup is a directory (mode 0700: it holds the master secret and the CA's key):
``manifest.json``, ``databases/<name>.sqlite`` (SQLite's online backup API: a consistent copy
while the gateways write) or ``databases/<name>.pgdump`` (``pg_dump --format=custom``), and
``data/`` — every file of the data directory but the databases themselves, the outbox (mails in
transit, sign-in links) and the scheduler's lock. Restoring refuses a target that already holds
anything unless ``--force``, then brings the schema to this version (``alembic upgrade``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from sqlalchemy import inspect
from sqlalchemy.engine import make_url

from guichet import __version__
from guichet.db import make_engine
from guichet.settings import Settings, get_settings

console = Console(stderr=True, soft_wrap=True)

MANIFEST = "manifest.json"
FORMAT = 1
# Not state to bring back: mails in transit (sign-in links), the scheduler's lock.
SKIPPED = frozenset({"outbox", "operations.lock"})
SQLITE_SIDE_FILES = ("", "-wal", "-shm", "-journal")


class BackupError(RuntimeError):
    """What went wrong, in French, for the operator."""


@dataclass(frozen=True)
class Database:
    """One database of the product: its name in the backup and its SQLAlchemy URL."""

    name: str
    url: str

    @property
    def kind(self) -> str:
        return "sqlite" if self.url.startswith("sqlite") else "postgresql"

    @property
    def sqlite_path(self) -> Path:
        database = make_url(self.url).database
        assert database, "an SQLite URL names its file"
        return Path(database)


def databases(settings: Settings) -> list[Database]:
    """The product's databases: its own, and the production records' store when separate."""
    found = [Database("guichet", settings.resolved_database_url)]
    records = settings.resolved_production_records_url
    if records != settings.resolved_database_url:
        found.append(Database("production-records", records))
    return found


# ---------------------------------------------------------------- PostgreSQL


def _libpq(url: str) -> tuple[str, dict[str, str]]:
    """A libpq connection URI for the client tools, the password passed in the environment
    (never on a command line other users can read in ``ps``)."""
    parsed = make_url(url)
    env = {**os.environ}
    if parsed.password:
        env["PGPASSWORD"] = str(parsed.password)
    plain = parsed.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


def _run(command: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BackupError(f"{command[0]} a échoué : {done.stderr.strip()[-2000:]}")


# ---------------------------------------------------------------- backup


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _data_files(data_dir: Path, excluded: set[Path]) -> list[Path]:
    """The data directory's files to keep, relative to it."""
    kept = []
    for path in sorted(data_dir.rglob("*")):
        relative = path.relative_to(data_dir)
        if relative.parts[0] in SKIPPED or path.resolve() in excluded:
            continue
        if path.is_file() and not path.is_symlink():
            kept.append(relative)
    return kept


def backup(settings: Settings, target: Path, now: dt.datetime) -> dict[str, Any]:
    """Write a backup into ``target`` (created; must not exist or be empty); its manifest."""
    if target.exists() and any(target.iterdir()):
        raise BackupError(f"{target} existe et n'est pas vide.")
    target.mkdir(parents=True, exist_ok=True, mode=0o700)
    target.chmod(0o700)
    (target / "databases").mkdir(mode=0o700)
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "guichet": __version__,
        "created_at": now.isoformat(),
        "databases": [],
        "files": {},
    }
    excluded: set[Path] = set()
    for db in databases(settings):
        if db.kind == "sqlite":
            source = db.sqlite_path
            excluded |= {Path(f"{source}{s}").resolve() for s in SQLITE_SIDE_FILES}
            if not source.exists():
                continue
            dump = target / "databases" / f"{db.name}.sqlite"
            # The online backup API: a consistent copy, writers carry on meanwhile.
            with sqlite3.connect(source) as src, sqlite3.connect(dump) as dst:
                src.backup(dst)
            src.close()
            dst.close()
        else:
            dump = target / "databases" / f"{db.name}.pgdump"
            uri, env = _libpq(db.url)
            _run(["pg_dump", "--format=custom", "--no-owner", f"--file={dump}", uri], env)
        dump.chmod(0o600)
        manifest["databases"].append(
            {"name": db.name, "kind": db.kind, "file": dump.name, "sha256": _sha256(dump)}
        )
    data_dir = settings.data_dir.resolve()
    for relative in _data_files(data_dir, excluded):
        copy = target / "data" / relative
        copy.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        shutil.copy2(data_dir / relative, copy)
        manifest["files"][str(relative)] = _sha256(copy)
    (target / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


# ---------------------------------------------------------------- restore


def _holds_tables(url: str) -> bool:
    engine = make_engine(url)
    try:
        return bool(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _occupied(settings: Settings) -> list[str]:
    """What the target already holds: data directory files, databases with tables."""
    found = []
    data_dir = settings.data_dir
    if data_dir.exists() and any(data_dir.iterdir()):
        found.append(f"le répertoire de données {data_dir}")
    for db in databases(settings):
        if db.kind == "sqlite" and not db.sqlite_path.exists():
            continue
        if _holds_tables(db.url):
            found.append(f"la base {db.name}")
    return found


def _check(source: Path) -> dict[str, Any]:
    try:
        manifest: dict[str, Any] = json.loads((source / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise BackupError(f"{source} n'est pas une sauvegarde guichet ({MANIFEST}).") from None
    if manifest.get("format") != FORMAT:
        raise BackupError(f"format de sauvegarde inconnu : {manifest.get('format')}.")
    for entry in manifest["databases"]:
        if _sha256(source / "databases" / entry["file"]) != entry["sha256"]:
            raise BackupError(f"sauvegarde altérée : databases/{entry['file']}.")
    for relative, digest in manifest["files"].items():
        if _sha256(source / "data" / relative) != digest:
            raise BackupError(f"sauvegarde altérée : data/{relative}.")
    return manifest


def restore(settings: Settings, source: Path, *, force: bool = False) -> dict[str, Any]:
    """Put the backup ``source`` back into the configured data directory and databases."""
    manifest = _check(source)
    targets = {db.name: db for db in databases(settings)}
    for entry in manifest["databases"]:
        db = targets.get(entry["name"])
        if db is None or db.kind != entry["kind"]:
            raise BackupError(
                f"la base {entry['name']} a été sauvegardée depuis {entry['kind']} : "
                "configurez la même sorte de base pour la restaurer (GUICHET_DATABASE_URL)."
            )
    if not force and (occupied := _occupied(settings)):
        raise BackupError(
            f"la cible n'est pas vide ({', '.join(occupied)}) : restaurez sur un répertoire "
            "et des bases vierges, ou ajoutez --force pour les remplacer."
        )
    data_dir = settings.data_dir
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    for relative in manifest["files"]:
        copy = data_dir / relative
        copy.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        shutil.copy2(source / "data" / relative, copy)
    for entry in manifest["databases"]:
        db = targets[entry["name"]]
        dump = source / "databases" / entry["file"]
        if db.kind == "sqlite":
            path = db.sqlite_path
            for suffix in SQLITE_SIDE_FILES:
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            path.parent.mkdir(parents=True, exist_ok=True)
            with sqlite3.connect(dump) as src, sqlite3.connect(path) as dst:
                src.backup(dst)
            src.close()
            dst.close()
            path.chmod(0o600)
        else:
            uri, env = _libpq(db.url)
            options = ["--clean", "--if-exists"] if force else []
            _run(
                [
                    "pg_restore",
                    "--no-owner",
                    "--no-privileges",
                    "--single-transaction",
                    *options,
                    f"--dbname={uri}",
                    str(dump),
                ],
                env,
            )
    return manifest


# ---------------------------------------------------------------- commands


def backup_command(
    target: Annotated[
        Path, typer.Argument(help="Répertoire à créer (absent ou vide) ; mode 0700.")
    ],
) -> None:
    """Sauvegarder les bases (SQLite : API de sauvegarde en ligne ; PostgreSQL : pg_dump) et les
    fichiers du répertoire de données (secret, AC, clés) ; possible en service."""
    from guichet.clock import SystemClock

    settings = get_settings()
    try:
        manifest = backup(settings, target, SystemClock().now())
    except (BackupError, OSError, sqlite3.Error) as exc:
        console.print(f"[bold red]Erreur :[/] {exc}")
        raise typer.Exit(1) from None
    names = ", ".join(d["name"] for d in manifest["databases"]) or "aucune"
    console.print(
        f"Sauvegarde écrite dans {target} : base(s) {names}, "
        f"{len(manifest['files'])} fichier(s) du répertoire de données. "
        "Elle contient le secret maître et la clé de l'AC : conservez-la chiffrée, hors de l'hôte."
    )


def restore_command(
    source: Annotated[
        Path, typer.Argument(exists=True, file_okay=False, help="Répertoire de la sauvegarde.")
    ],
    force: Annotated[
        bool,
        typer.Option("--force", help="Remplacer un répertoire de données ou des bases non vides."),
    ] = False,
) -> None:
    """Restaurer une sauvegarde dans GUICHET_DATA_DIR et les bases configurées, puis mettre le
    schéma de chaque base à jour ; refuse une cible non vide sans --force.
    Ensuite : guichet journal verify."""
    from guichet.db.migrate import upgrade

    settings = get_settings()
    try:
        manifest = restore(settings, source, force=force)
    except (BackupError, OSError, sqlite3.Error) as exc:
        console.print(f"[bold red]Erreur :[/] {exc}")
        raise typer.Exit(1) from None
    # Every database, so a backup older than the code is brought to this version as a whole
    # (the production records' store has its own copy of the schema).
    for database in databases(settings):
        engine = make_engine(database.url)
        try:
            upgrade(engine)
        finally:
            engine.dispose()
    console.print(
        f"Sauvegarde du {manifest['created_at']} restaurée dans {settings.data_dir}. "
        "Vérifiez le journal : guichet journal verify."
    )
