"""Alembic environment: uses the engine handed over by ``guichet.db.migrate``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

from guichet.db import make_engine
from guichet.db.registry import metadata

config = context.config


def run() -> None:
    engine = config.attributes.get("engine")
    if not isinstance(engine, Engine):
        engine = make_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


run()
