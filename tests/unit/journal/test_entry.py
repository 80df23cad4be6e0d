"""The canonical record form and hash (format 1), and what an entry accepts."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import uuid
from typing import Any

import pytest

from guichet.habilitation.models import Environment
from guichet.journal.entry import GENESIS_HASH, JournalEntry, canonical_form, record_hash
from tests.unit.journal.conftest import make_entry

# The documented canonical form, written out by hand: a change here breaks every
# existing chain, so it must be deliberate (a new format number).
CANONICAL = (
    '{"api":"impot_particulier","at":"2026-11-23T10:00:00.123456Z","cert_thumbprint":null,'
    '"client_id":"client-démo","correlation_id":"c0ffee00-0000-4000-8000-000000000001",'
    '"data_scopes":["dgfip_rfr"],"environment":"sandbox","habilitation_id":null,'
    '"http_status":200,"id":"11111111-2222-4333-8444-555555555555","latency_ms":"12.346",'
    '"operation":"GET situations_ir","outcome":"ok",'
    '"partner_id":"00000000-0000-4000-8000-00000000000a","prev_hash":"' + "0" * 64 + '",'
    '"seq":1,"source_ip":"127.0.0.1","subject":null}'
)


def fixed_entry() -> JournalEntry:
    return JournalEntry(
        id=uuid.UUID("11111111-2222-4333-8444-555555555555"),
        # 11:00 in UTC+1 is 10:00 UTC: the form is always UTC.
        at=dt.datetime(2026, 11, 23, 11, 0, 0, 123456, tzinfo=dt.timezone(dt.timedelta(hours=1))),
        environment=Environment.SANDBOX,
        correlation_id="c0ffee00-0000-4000-8000-000000000001",
        partner_id=uuid.UUID("00000000-0000-4000-8000-00000000000a"),
        habilitation_id=None,
        client_id="client-démo",
        api="impot_particulier",
        operation="GET situations_ir",
        source_ip="127.0.0.1",
        cert_thumbprint=None,
        subject=None,
        data_scopes=["dgfip_rfr"],
        outcome="ok",
        http_status=200,
        latency_ms=12.3456,
    )


def test_canonical_form_is_the_documented_one() -> None:
    record = {**fixed_entry().values(), "seq": 1, "prev_hash": GENESIS_HASH}
    assert canonical_form(record).decode() == CANONICAL
    expected = hashlib.sha256(CANONICAL.encode()).hexdigest()
    assert record_hash(record) == expected
    assert fixed_entry().hash(1, GENESIS_HASH) == expected


def test_entry_is_normalised() -> None:
    e = fixed_entry()
    assert e.at.tzinfo is dt.UTC
    assert e.at.hour == 10
    assert type(e.environment) is str
    assert e.environment == "sandbox"
    assert e.latency_ms == 12.346


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("seq", 2),
        ("prev_hash", "1" * 64),
        ("at", dt.datetime(2026, 11, 23, 10, 0, 0, 123457, tzinfo=dt.UTC)),
        ("outcome", "scope_not_granted"),
        ("http_status", 403),
        ("data_scopes", ["dgfip_rfr", "dgfip_nbpart"]),
        ("data_scopes", []),
        ("subject", "b" * 64),
        ("partner_id", None),
        ("cert_thumbprint", "x"),
        ("latency_ms", 12.347),
        ("source_ip", "127.0.0.2"),
    ],
)
def test_every_field_is_covered_by_the_hash(field: str, value: Any) -> None:
    record = {**fixed_entry().values(), "seq": 1, "prev_hash": GENESIS_HASH}
    assert record_hash({**record, field: value}) != record_hash(record)


def test_null_and_empty_string_hash_differently() -> None:
    record = {**fixed_entry().values(), "seq": 1, "prev_hash": GENESIS_HASH}
    assert record_hash({**record, "client_id": None}) != record_hash({**record, "client_id": ""})


def test_tampered_values_of_any_type_still_hash() -> None:
    record = {**fixed_entry().values(), "seq": 1, "prev_hash": GENESIS_HASH}
    for field, value in [
        ("http_status", "200"),
        ("seq", "1"),
        ("latency_ms", "12.346"),
        ("data_scopes", [1]),
        ("at", "2026-11-23T10:00:00.123456Z"),
        ("id", "11111111-2222-4333-8444-555555555555"),
    ]:
        assert record_hash({**record, field: value}) != record_hash(record)


@pytest.mark.parametrize(
    "overrides",
    [
        {"at": dt.datetime(2026, 11, 23, 10, 0)},
        {"operation": "x" * 201},
        {"correlation_id": "x" * 65},
        {"latency_ms": float("nan")},
        {"latency_ms": -1.0},
        {"data_scopes": ["ok", 3]},
    ],
)
def test_invalid_entries_are_refused_up_front(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="JournalEntry"):
        dataclasses.replace(make_entry(dt.datetime(2026, 11, 23, tzinfo=dt.UTC)), **overrides)


def test_entry_is_frozen_and_owns_its_scopes() -> None:
    scopes = ["dgfip_rfr"]
    e = make_entry(dt.datetime(2026, 11, 23, tzinfo=dt.UTC), data_scopes=scopes)
    scopes.append("dgfip_nbpart")
    assert e.data_scopes == ["dgfip_rfr"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        e.outcome = "ok"  # type: ignore[misc]


def test_enum_members_hash_as_the_plain_values_the_database_returns() -> None:
    from enum import StrEnum
    from http import HTTPStatus

    class Outcome(StrEnum):
        OK = "ok"

    plain = fixed_entry()
    enums = dataclasses.replace(plain, outcome=Outcome.OK, http_status=HTTPStatus.OK)
    assert type(enums.outcome) is str
    assert type(enums.http_status) is int
    assert enums.hash(1, GENESIS_HASH) == plain.hash(1, GENESIS_HASH)
