"""Opens what a command or a server needs: settings, database (migrated), master secret, clock."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from guichet.clock import Clock, SystemClock
from guichet.db import make_engine, make_sessionmaker
from guichet.db.migrate import upgrade
from guichet.secrets import MasterSecret
from guichet.settings import Settings, get_settings


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    session_factory: sessionmaker[Session]
    master: MasterSecret
    clock: Clock

    def close(self) -> None:
        self.engine.dispose()


def open_runtime(settings: Settings | None = None, *, migrate: bool = True) -> Runtime:
    settings = settings or get_settings()
    # Keys, the database and the outbox live here: the owner's only.
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    engine = make_engine(settings.resolved_database_url)
    if migrate:
        upgrade(engine)
    return Runtime(
        settings=settings,
        engine=engine,
        session_factory=make_sessionmaker(engine),
        master=MasterSecret.load(settings.data_dir, settings.secret_key),
        clock=SystemClock(),
    )
