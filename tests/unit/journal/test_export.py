"""Exports for an investigation: filters by time, partner and subject; JSON Lines and CSV."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

import pytest
from sqlalchemy.orm import Session, sessionmaker

from guichet.clock import FrozenClock
from guichet.journal.entry import format_at
from guichet.journal.export import EXPORT_COLUMNS, ExportFormat, export
from guichet.journal.writer import JournalWriter
from tests.unit.journal.conftest import PARTNER_A, PARTNER_B, make_entry, rows

ALICE = "1" * 64
BOB = "2" * 64


@pytest.fixture
def journal(session_factory: sessionmaker[Session], clock: FrozenClock) -> sessionmaker[Session]:
    """Six records, one per hour from 11:00 UTC: partners A/B, subjects Alice/Bob/none."""
    writer = JournalWriter(session_factory)
    plan = [
        (PARTNER_A, ALICE),
        (PARTNER_B, ALICE),
        (PARTNER_A, BOB),
        (PARTNER_A, None),
        (PARTNER_B, BOB),
        (None, None),
    ]
    for hours, (partner, subject) in enumerate(plan, start=1):
        at = clock.now() + dt.timedelta(hours=hours)  # the clock is at 10:00
        writer.append_sync(make_entry(at, partner_id=partner, subject=subject))
    return session_factory


def jsonl(session_factory: sessionmaker[Session], **filters: object) -> list[dict[str, object]]:
    out = io.StringIO()
    count = export(session_factory, out, **filters)  # type: ignore[arg-type]
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert count == len(lines)
    return lines


def test_everything_in_seq_order_with_chain_columns(journal: sessionmaker[Session]) -> None:
    lines = jsonl(journal)
    assert [line["seq"] for line in lines] == [1, 2, 3, 4, 5, 6]
    assert all(list(line) == list(EXPORT_COLUMNS) for line in lines)
    stored = rows(journal)
    first = lines[0]
    assert first["hash"] == stored[0]["hash"]
    assert first["prev_hash"] == "0" * 64
    assert lines[1]["prev_hash"] == first["hash"]
    assert first["at"] == format_at(stored[0]["at"]) == "2026-11-23T11:00:00.000000Z"
    assert first["partner_id"] == str(PARTNER_A)
    assert first["data_scopes"] == ["dgfip_rfr", "dgfip_nbpart"]
    assert first["latency_ms"] == 3.25
    assert first["http_status"] == 200
    assert lines[5]["partner_id"] is None
    assert lines[5]["subject"] is None


def test_time_window_is_start_inclusive_end_exclusive(journal: sessionmaker[Session]) -> None:
    lines = jsonl(
        journal,
        start=dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC),
        end=dt.datetime(2026, 11, 23, 14, 0, tzinfo=dt.UTC),
    )
    assert [line["seq"] for line in lines] == [2, 3]
    # The same instants written in another offset select the same records.
    paris = dt.timezone(dt.timedelta(hours=1))
    lines = jsonl(journal, start=dt.datetime(2026, 11, 23, 13, 0, tzinfo=paris))
    assert [line["seq"] for line in lines] == [2, 3, 4, 5, 6]


def test_partner_and_subject_filters_combine(journal: sessionmaker[Session]) -> None:
    assert [r["seq"] for r in jsonl(journal, partner_id=PARTNER_B)] == [2, 5]
    assert [r["seq"] for r in jsonl(journal, subject=ALICE)] == [1, 2]
    assert [r["seq"] for r in jsonl(journal, subject=BOB, partner_id=PARTNER_A)] == [3]
    assert jsonl(journal, subject="3" * 64) == []


def test_pages_do_not_lose_or_repeat_records(journal: sessionmaker[Session]) -> None:
    out = io.StringIO()
    assert export(journal, out, subject=None, batch_size=2) == 6
    assert [json.loads(x)["seq"] for x in out.getvalue().splitlines()] == [1, 2, 3, 4, 5, 6]


def test_csv_has_a_stable_header_and_flat_cells(journal: sessionmaker[Session]) -> None:
    out = io.StringIO()
    count = export(journal, out, partner_id=PARTNER_A, fmt=ExportFormat.CSV)
    table = list(csv.reader(io.StringIO(out.getvalue())))
    assert table[0] == list(EXPORT_COLUMNS)
    assert count == len(table) - 1 == 3
    first = dict(zip(table[0], table[1], strict=True))
    assert first["seq"] == "1"
    assert first["partner_id"] == str(PARTNER_A)
    assert first["data_scopes"] == "dgfip_rfr dgfip_nbpart"
    assert first["latency_ms"] == "3.250"
    assert first["at"] == "2026-11-23T11:00:00.000000Z"
    assert first["hash"] == rows(journal)[0]["hash"]
    none_subject = dict(zip(table[0], table[3], strict=True))
    assert none_subject["subject"] == ""


def test_csv_header_alone_when_nothing_matches(journal: sessionmaker[Session]) -> None:
    out = io.StringIO()
    assert export(journal, out, subject="0" * 64, fmt="csv") == 0
    assert list(csv.reader(io.StringIO(out.getvalue()))) == [list(EXPORT_COLUMNS)]


def test_unknown_format_is_refused(journal: sessionmaker[Session]) -> None:
    with pytest.raises(ValueError, match="xml"):
        export(journal, io.StringIO(), fmt="xml")
