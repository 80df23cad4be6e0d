"""What a call does when the database fails under it (issue 13): a 503 with ``Retry-After``
and a stable code, never a 500 and never data; the outage logged when it starts and when it
ends, with the calls refused meanwhile, never a line per call.

The failures that are an outage (the database does not answer, or refuses a connection) are
told from the bugs (which stay 500 ``internal_error``, logged with their frames).
"""

from __future__ import annotations

import logging
import sqlite3

import psycopg
import sqlalchemy.exc
from redis.exceptions import RedisError

from guichet import errors
from guichet.gateway.metrics import DATABASE_UNREACHABLE
from guichet.logs import Outage

log = logging.getLogger(__name__)

# Seconds a caller is asked to wait: a database restart takes a few.
RETRY_AFTER = 5

OUTAGE_ERRORS: tuple[type[BaseException], ...] = (
    sqlalchemy.exc.OperationalError,  # connection refused or lost, server shutting down
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,  # no pooled connection in time
    sqlalchemy.exc.DisconnectionError,
    psycopg.OperationalError,  # raw driver connections (PostgreSQL)
    sqlite3.OperationalError,  # raw driver connections (SQLite: locked, disk I/O)
    RedisError,
)


class DatabaseState:
    """This process's view of the database, from the calls themselves."""

    def __init__(self) -> None:
        self._outage = Outage(log, "gateway.database_unreachable", "gateway.database_back")

    def failed(self, exc: BaseException) -> None:
        if not self._outage.down:
            DATABASE_UNREACHABLE.set(1)
        self._outage.failed(exc)

    def answered(self) -> None:
        """A journal record was committed: the database is back, if it was away."""
        if self._outage.down:
            self._outage.recovered()
            DATABASE_UNREACHABLE.set(0)


DATABASE = DatabaseState()


def unavailable(exc: BaseException) -> errors.DatabaseUnavailable:
    """The refusal of a call whose database read failed."""
    DATABASE.failed(exc)
    return errors.DatabaseUnavailable(
        "La base de données ne répond pas ; aucune donnée n'est transmise. "
        "Réessayez dans quelques secondes.",
        retry_after=RETRY_AFTER,
    )
