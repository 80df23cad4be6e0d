"""Structured logs: one event name and key=value fields; never personal data in clear."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from typing import Any


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None) or {}
        parts = [
            self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            record.levelname.lower(),
            record.getMessage(),
        ]
        parts += [f"{k}={_quote(v)}" for k, v in fields.items()]
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _quote(value: Any) -> str:
    """Bare when it is one plain token, else a JSON string: a value carrying a newline, a
    quote or ``k=v`` can never forge a line or a field."""
    text = str(value)
    if text and all(c.isprintable() and c not in ' "=\\' for c in text):
        return text
    return json.dumps(text, ensure_ascii=False)


def event(logger: logging.Logger, name: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log ``name`` with ``fields`` (callers pass pseudonyms and ids, never SPI or names)."""
    logger.log(level, name, extra={"fields": fields})


class Outage:
    """A dependency's state for the log: its loss said once, its return said once with what
    was refused meanwhile — never a line per failing call (issue 13).

    ``failed()`` on every call that the outage made fail, ``recovered()`` on every success
    (a flag read while up: free on the hot path). Safe from several threads.
    """

    def __init__(self, logger: logging.Logger, lost: str, back: str) -> None:
        self._logger = logger
        self._lost = lost
        self._back = back
        self._lock = threading.Lock()
        self.down = False
        self.refused = 0
        self._since = 0.0

    def failed(self, error: BaseException | str, count: int = 1, **fields: Any) -> None:
        """``count`` more calls refused because of the outage; the first time logs it."""
        with self._lock:
            self.refused += count
            if self.down:
                return
            self.down = True
            self.refused = count
            self._since = time.monotonic()
        kind = error if isinstance(error, str) else type(error).__name__
        event(self._logger, self._lost, logging.ERROR, error=kind, **fields)

    def recovered(self, **fields: Any) -> None:
        """The dependency answered again; logs the return once, with the refusals counted."""
        if not self.down:
            return
        with self._lock:
            if not self.down:
                return
            self.down = False
            refused, seconds = self.refused, time.monotonic() - self._since
        event(
            self._logger,
            self._back,
            logging.WARNING,
            refused=refused,
            seconds=f"{seconds:.1f}",
            **fields,
        )


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes each record to ``sys.stderr`` as it is when the record is written, not when
    logging was configured: a command run in a test runner, or a process that swaps its
    streams, must not leave the log bound to a stream that has since been closed."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        """``StreamHandler`` sets it; the current ``sys.stderr`` is always the one."""


def configure(level: str = "INFO") -> None:
    handler = StderrHandler()
    handler.setFormatter(KeyValueFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # uvicorn's start/stop chatter (three servers in one process) says nothing guichet does not.
    for noisy in ("uvicorn.access", "uvicorn.error", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
