"""Alembic environment: uses the engine, and the models' metadata when comparing them with the
migrations, handed over by ``guichet.db.migrate``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

from guichet.db import make_engine

config = context.config


def run() -> None:
    engine = config.attributes.get("engine")
    if not isinstance(engine, Engine):
        engine = make_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=config.attributes.get("metadata"),
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


run()
