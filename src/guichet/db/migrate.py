"""Alembic, driven from code: ``upgrade`` at start-up, ``check`` in CI (models ↔ migrations)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, MetaData

# The scripts themselves belong to the composition (they may use the domains' code).
MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"


def alembic_config(engine: Engine | None = None, metadata: MetaData | None = None) -> Config:
    """``metadata``, every model's (``guichet.schema.metadata``), is what ``check`` and a new
    revision compare the migrations with; running migrations does not need it."""
    cfg = Config()
    if metadata is not None:
        cfg.attributes["metadata"] = metadata
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if engine is not None:
        cfg.attributes["engine"] = engine
        cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    command.upgrade(alembic_config(engine), revision)


def is_current(engine: Engine) -> bool:
    script = ScriptDirectory.from_config(alembic_config())
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_heads()
    return set(current) == set(script.get_heads())


def check(engine: Engine, metadata: MetaData) -> None:
    """Raise if the models (``metadata``) hold changes no migration describes (``alembic
    check``)."""
    command.check(alembic_config(engine, metadata))
