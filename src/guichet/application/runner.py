"""Running ``tick`` by itself: every ``GUICHET_SCHEDULER_INTERVAL`` seconds inside the serving
process, and never twice at once across processes (an advisory lock).

The lock is PostgreSQL's ``pg_try_advisory_lock`` when the database is PostgreSQL (it holds
across hosts), else an ``flock`` on ``DATA_DIR/operations.lock`` (SQLite lives on one host).
``guichet operations tick`` takes the same lock, so a cron job and a running server do not
overlap either: whoever comes second skips that run.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from sqlalchemy import Engine, text

from guichet.application.scheduler import TickReport, TickRuntime, tick
from guichet.logs import event
from guichet.mail import Mailer

log = logging.getLogger(__name__)

# pg_advisory_lock's key space is one bigint shared by every application of the database.
ADVISORY_LOCK_KEY: Final = 0x6775_6963_6865_7401  # "guichet" + 1
LOCK_FILE: Final = "operations.lock"


def _engine(runtime: TickRuntime) -> Engine:
    bind = runtime.session_factory.kw.get("bind")
    assert isinstance(bind, Engine), "the session factory is bound to one engine"
    return bind


@contextmanager
def operations_lock(runtime: TickRuntime) -> Iterator[bool]:
    """Yield whether this process holds the operations lock; it is released on exit."""
    engine = _engine(runtime)
    if engine.dialect.name == "postgresql":
        # A session-level lock, on a connection kept out of the pool until it is released:
        # the tick's own transactions use other connections.
        with engine.connect() as conn:
            held = bool(
                conn.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": ADVISORY_LOCK_KEY})
            )
            conn.commit()
            try:
                yield held
            finally:
                if held:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": ADVISORY_LOCK_KEY})
                    conn.commit()
        return
    directory = runtime.settings.data_dir
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True  # closing the descriptor releases the lock, even if the process dies
    finally:
        os.close(fd)


def run_once(runtime: TickRuntime, *, mailer: Mailer | None = None) -> TickReport | None:
    """One scheduled run, as of the runtime's clock: the report, or None when it was skipped
    (another process holds the lock) or failed. Never raises: the next run retries."""
    started = time.monotonic()
    try:
        with operations_lock(runtime) as held:
            if not held:
                event(log, "operations:scheduler_run", outcome="skipped", reason="locked")
                return None
            report = tick(runtime, runtime.clock.now(), mailer=mailer)
    except Exception as exc:
        # The class only: a message may quote a row. The traceback goes to the log.
        event(
            log,
            "operations:scheduler_run",
            logging.ERROR,
            outcome="error",
            error=type(exc).__name__,
            duration_ms=round((time.monotonic() - started) * 1000),
        )
        log.debug("operations:scheduler_run traceback", exc_info=True)
        return None
    event(
        log,
        "operations:scheduler_run",
        logging.WARNING if report.failures else logging.INFO,
        outcome="partial" if report.failures else "ok",
        idle=report.idle,
        failures=len(report.failures),
        duration_ms=round((time.monotonic() - started) * 1000),
    )
    return report


async def run_periodically(runtime: TickRuntime, interval: float) -> None:
    """Forever: one run now, then one every ``interval`` seconds (measured between runs).

    The run happens in a thread (``tick`` is synchronous and reads the database), so serving
    goes on meanwhile; cancelling the task stops the loop.
    """
    if interval <= 0:
        raise ValueError("the scheduler interval must be positive (0 means: do not start it)")
    event(log, "operations:scheduler_started", interval=interval)
    while True:
        await asyncio.to_thread(run_once, runtime)
        await asyncio.sleep(interval)
