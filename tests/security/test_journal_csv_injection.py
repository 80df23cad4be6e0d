"""Issue 11 §3, the journal's side: an outsider chooses the HTTP method, which the journal
records in ``operation``; the investigator's CSV export must not hand it to a spreadsheet
as a formula."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator

import pytest

from guichet.journal.export import EXPORT_COLUMNS, export
from guichet.spreadsheet import FORMULA_TRIGGERS
from tests.unit.gateway.support import World, open_world

# Valid HTTP method tokens (RFC 9110 §5.6.2 tchar): "+", "-", "|", "'", "!" are all allowed.
EVIL_METHODS = ["+1+CMD|'/C CALC'!A0", "-2+3+CMD|'/C NOTEPAD'!A0"]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with open_world("sqlite", tmp_path_factory.mktemp("journal-csv")) as world:
        yield world


def exported(world: World, fmt: str) -> str:
    out = io.StringIO()
    export(world.runtime.session_factory, out, fmt=fmt)
    return out.getvalue()


def test_a_method_chosen_as_a_formula_is_neutralised_in_the_csv(world: World) -> None:
    for method in EVIL_METHODS:
        answer = world.get("/nope", token=None, cert=None, method=method)
        assert answer.status_code in (400, 404, 405)
    table = list(csv.DictReader(io.StringIO(exported(world, "csv"))))
    assert table
    operations = [row["operation"] for row in table]
    for method in EVIL_METHODS:
        assert f"'{method} unknown" in operations
    for row in table:
        for column in EXPORT_COLUMNS:
            assert not row[column].lstrip(" ").startswith(FORMULA_TRIGGERS), (column, row)
    # The JSON Lines export, for tools, keeps the value as it came.
    lines = [json.loads(line) for line in exported(world, "jsonl").splitlines()]
    assert {f"{m} unknown" for m in EVIL_METHODS} <= {line["operation"] for line in lines}
