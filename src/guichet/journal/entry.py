"""One journal entry and the canonical hash that chains records together.

Record hash, format 1 (what ``guichet journal verify`` recomputes):

    hash = hex(SHA-256(UTF-8(canonical JSON of the record)))

The canonical JSON is one object holding every column of ``journal_record`` except
``hash`` itself — ``seq``, ``id``, ``at``, ``environment``, ``correlation_id``,
``partner_id``, ``habilitation_id``, ``client_id``, ``api``, ``operation``, ``source_ip``,
``cert_thumbprint``, ``subject``, ``data_scopes``, ``outcome``, ``http_status``,
``latency_ms`` and ``prev_hash`` — serialised per RFC 8785 (JCS): keys sorted, no
whitespace, strings unescaped beyond what JSON requires. Every value is a string, an
integer, ``null`` or an array of strings, so no floating-point formatting is involved:

- UUIDs in their lowercase hyphenated form;
- ``at`` as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` in UTC (microseconds, the precision both
  SQLite and PostgreSQL keep), so both databases give the same hash;
- ``latency_ms`` as a decimal string with three digits after the point (``"12.345"``);
  entries round it to the millisecond's thousandth on construction;
- ``seq`` is the record's position in the chain; the writer assigns it from the locked
  chain head, so it is known before the insert and is covered by the hash (moving a record
  changes its hash).

The first record's ``prev_hash`` is ``GENESIS_HASH`` (64 zeros).

Two later columns (issue 14, API FICOBA's searches) are hashed **only when set**, so every
record written before them keeps its hash: ``search_type`` (a string) and ``subjects`` (an
array of strings: the keyed pseudonyms of each person — SPI — or company — SIREN — the
answer is about; ``subject`` then holds the first). A record without them has neither key
in its canonical JSON; clearing one on a record that had it changes the hash.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

GENESIS_HASH = "0" * 64

# Column widths of ``journal_record``: PostgreSQL enforces them, SQLite does not, so the
# entry checks them up front rather than letting one bad entry fail a whole batch.
_MAX_LENGTH = {
    "environment": 16,
    "correlation_id": 64,
    "client_id": 64,
    "api": 64,
    "operation": 200,
    "source_ip": 64,
    "cert_thumbprint": 64,
    "subject": 64,
    "outcome": 64,
    "search_type": 64,
}
# Hashed only when not null (see the module docstring).
OPTIONAL_FIELDS: tuple[str, ...] = ("search_type", "subjects")


def format_at(value: dt.datetime) -> str:
    """The fixed UTC form of a record's time, identical whatever database stored it."""
    if value.tzinfo is None:
        raise ValueError("naive datetime")
    utc = value.astimezone(dt.UTC).replace(tzinfo=None)
    return utc.isoformat(sep="T", timespec="microseconds") + "Z"


@dataclass(frozen=True)
class JournalEntry:
    """One exchange, success or refusal, as the gateway reports it (before chaining).

    ``subject`` is already a pseudonym (``MasterSecret.pseudonym(spi)``), never an SPI;
    ``outcome`` is ``"ok"`` or the refusal's stable error code. ``subjects`` (pseudonyms
    too) and ``search_type`` are set by searches about several persons (API FICOBA).
    """

    id: uuid.UUID
    at: dt.datetime
    environment: str
    correlation_id: str
    partner_id: uuid.UUID | None
    habilitation_id: uuid.UUID | None
    client_id: str | None
    api: str | None
    operation: str
    source_ip: str
    cert_thumbprint: str | None
    subject: str | None
    data_scopes: list[str]
    outcome: str
    http_status: int
    latency_ms: float
    search_type: str | None = None
    subjects: list[str] | None = None

    def __post_init__(self) -> None:
        if self.at.tzinfo is None:
            raise ValueError("JournalEntry.at must be timezone-aware")
        object.__setattr__(self, "at", self.at.astimezone(dt.UTC))
        # Enum members (Environment, HTTPStatus…) become the plain str and int the database
        # returns, so the hash computed now is the one recomputed from the stored row.
        for name, limit in _MAX_LENGTH.items():
            value = getattr(self, name)
            if value is None:
                continue
            if not isinstance(value, str):
                raise ValueError(f"JournalEntry.{name} must be a string")
            if len(value) > limit:
                raise ValueError(f"JournalEntry.{name} longer than {limit} characters")
            object.__setattr__(self, name, str.__str__(value))
        if not all(isinstance(s, str) for s in self.data_scopes):
            raise ValueError("JournalEntry.data_scopes must be strings")
        object.__setattr__(self, "data_scopes", [str.__str__(s) for s in self.data_scopes])
        if self.subjects is not None:
            if not all(isinstance(s, str) and len(s) <= 64 for s in self.subjects):
                raise ValueError("JournalEntry.subjects must be pseudonyms (strings)")
            subjects = [str.__str__(s) for s in self.subjects]
            object.__setattr__(self, "subjects", subjects or None)
        object.__setattr__(self, "http_status", int(self.http_status))
        if not math.isfinite(self.latency_ms) or self.latency_ms < 0:
            raise ValueError("JournalEntry.latency_ms must be a finite, non-negative number")
        object.__setattr__(self, "latency_ms", round(float(self.latency_ms), 3))

    def values(self) -> dict[str, Any]:
        """The entry's columns, as inserted into ``journal_record``."""
        return {name: getattr(self, name) for name in ENTRY_FIELDS}

    def hash(self, seq: int, prev_hash: str) -> str:
        return record_hash({**self.values(), "seq": seq, "prev_hash": prev_hash})


ENTRY_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(JournalEntry))
HASHED_FIELDS: tuple[str, ...] = ("seq", *ENTRY_FIELDS, "prev_hash")


# Each field's canonical form. Values read back from a tampered row may have any type:
# they must still serialise, never raise, and never to the form a genuine value would take.
def _text(value: Any) -> Any:
    return value if value is None or type(value) is str else repr(value)


def _wrong(value: Any) -> Any:
    # A value of the wrong type (a string where a number was, …) is quoted by repr().
    return None if value is None else repr(value)


def _integer(value: Any) -> Any:
    return value if type(value) is int else _wrong(value)


def _uuid(value: Any) -> Any:
    return str(value) if isinstance(value, uuid.UUID) else _wrong(value)


def _at(value: Any) -> Any:
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return format_at(value)
    return _wrong(value)


def _latency(value: Any) -> Any:
    return f"{value:.3f}" if type(value) in (float, int) else _wrong(value)


def _scopes(value: Any) -> Any:
    if type(value) is list and all(type(v) is str for v in value):
        return value
    return _wrong(value)


_CANONICAL = {
    name: {
        "seq": _integer,
        "http_status": _integer,
        "id": _uuid,
        "partner_id": _uuid,
        "habilitation_id": _uuid,
        "at": _at,
        "latency_ms": _latency,
        "data_scopes": _scopes,
        "subjects": _scopes,
    }.get(name, _text)
    for name in sorted(HASHED_FIELDS)
}
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def canonical_form(record: Mapping[str, Any]) -> bytes:
    """RFC 8785 serialisation of a record's hashed fields (see the module docstring)."""
    # _CANONICAL is in key order, so the dict serialises with its keys sorted.
    obj = {
        name: convert(record.get(name))
        for name, convert in _CANONICAL.items()
        if name not in OPTIONAL_FIELDS or record.get(name) is not None
    }
    return _encode(obj).encode("utf-8", "surrogatepass")


def record_hash(record: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical form: the value stored in ``journal_record.hash``."""
    return hashlib.sha256(canonical_form(record)).hexdigest()
