"""Opens what a command or a server needs: settings, database (migrated), master secret, clock —
and, only when asked, one environment's records store (issue 12: the production records live
in a database of their own, opened by the production gateway and the import command only)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from sqlalchemy import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

from guichet.clock import Clock, SystemClock
from guichet.db import make_engine, make_sessionmaker
from guichet.db.migrate import is_current, upgrade
from guichet.secrets import MasterSecret
from guichet.settings import Settings, get_settings
from guichet.startup import (
    StartupError,
    check_database,
    check_secret_matches,
    load_master,
)

STORES = ("sandbox", "production")


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    session_factory: sessionmaker[Session]
    master: MasterSecret
    clock: Clock
    # Whether opening a records database brings its schema up to date (``guichet init``,
    # commands) or refuses a stale one (served processes, which never migrate).
    migrate: bool = True
    _records: dict[str, sessionmaker[Session]] = field(default_factory=dict, repr=False)
    _records_engines: list[Engine] = field(default_factory=list, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def records(self, store: str) -> sessionmaker[Session]:
        """The session factory of one store's records: the sandbox's are in the main
        database; the production's in ``GUICHET_PRODUCTION_RECORDS_URL`` (by default
        ``DATA_DIR/production-records.db``), opened on first use — a process that never asks
        for them (the sandbox gateway, the portal, the federation) never connects there."""
        if store not in STORES:
            raise ValueError(f"unknown store {store!r}")
        url = self.settings.resolved_production_records_url
        if store == "sandbox" or make_url(url) == self.engine.url:
            return self.session_factory
        with self._lock:
            factory = self._records.get(store)
            if factory is None:
                engine = make_engine(url)
                self._records_engines.append(engine)
                check_database(engine, "GUICHET_PRODUCTION_RECORDS_URL")
                if self.migrate:
                    upgrade(engine)
                elif not is_current(engine):
                    raise StartupError(
                        "La base des données de production (GUICHET_PRODUCTION_RECORDS_URL) "
                        "n'est pas à jour : lancez `guichet init` d'abord."
                    )
                factory = self._records[store] = make_sessionmaker(engine)
        return factory

    def close(self) -> None:
        for engine in self._records_engines:
            engine.dispose()
        self.engine.dispose()


def open_runtime(settings: Settings | None = None, *, migrate: bool = True) -> Runtime:
    settings = settings or get_settings()
    # Keys, the database and the outbox live here: the owner's only.
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    master = load_master(settings)
    engine = make_engine(settings.resolved_database_url)
    check_database(engine, "GUICHET_DATABASE_URL")
    if migrate:
        upgrade(engine)
    session_factory = make_sessionmaker(engine)
    check_secret_matches(session_factory, master)
    return Runtime(
        settings=settings,
        engine=engine,
        session_factory=session_factory,
        master=master,
        clock=SystemClock(),
        migrate=migrate,
    )
