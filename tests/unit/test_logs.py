"""Structured log lines: one line per event, fields that cannot be forged by their values."""

from __future__ import annotations

import logging

from guichet.logs import KeyValueFormatter


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
