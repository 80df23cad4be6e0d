"""Structured log lines: one line per event, fields that cannot be forged by their values."""

from __future__ import annotations

import io
import logging
import sys

import pytest

from guichet.logs import KeyValueFormatter, configure


def line(**fields: object) -> str:
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "gateway:call", None, None)
    record.fields = fields
    return KeyValueFormatter().format(record)


def test_plain_values_stay_bare() -> None:
    text = line(client_id="sandbox-abc", status=403, path="/token")
    assert text.endswith("info gateway:call client_id=sandbox-abc status=403 path=/token")


def test_a_value_cannot_forge_a_line_or_a_field() -> None:
    text = line(path="/x\n2026-01-01T00:00:00 info forged admin=1", who='a" b=c', empty="")
    assert "\n" not in text
    assert 'path="/x\\n2026-01-01T00:00:00 info forged admin=1"' in text
    assert 'who="a\\" b=c"' in text
    assert 'empty=""' in text


def test_the_log_follows_stderr_when_it_is_swapped(capsys: pytest.CaptureFixture[str]) -> None:
    """A command run under a test runner configures logging onto the runner's stream, which is
    closed afterwards: later records go to the stderr of their time, never to a closed file."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    swapped = io.StringIO()
    real, sys.stderr = sys.stderr, swapped
    try:
        configure()
        logging.getLogger("guichet.test").warning("pendant")
    finally:
        sys.stderr = real
    assert "pendant" in swapped.getvalue()
    swapped.close()
    try:
        logging.getLogger("guichet.test").warning("apres")
        err = capsys.readouterr().err
    finally:
        root.handlers[:], root.level = saved
    assert "apres" in err
    assert "Logging error" not in err
