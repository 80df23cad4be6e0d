"""Journal records, hash-chained, and the chain's head and purge anchor."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import BigInteger, Float, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from guichet.db.base import Base

# SQLite only auto-increments an INTEGER PRIMARY KEY.
SeqType = BigInteger().with_variant(Integer(), "sqlite")


class JournalRecord(Base):
    """One exchange (success or refusal); ``hash`` covers every field and ``prev_hash``."""

    __tablename__ = "journal_record"

    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    id: Mapped[uuid.UUID] = mapped_column(unique=True)
    at: Mapped[dt.datetime] = mapped_column(index=True)
    environment: Mapped[str] = mapped_column(String(16))
    correlation_id: Mapped[str] = mapped_column(String(64), index=True)
    partner_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    habilitation_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    client_id: Mapped[str | None] = mapped_column(String(64))
    api: Mapped[str | None] = mapped_column(String(64))
    operation: Mapped[str] = mapped_column(String(200))
    source_ip: Mapped[str] = mapped_column(String(64))
    cert_thumbprint: Mapped[str | None] = mapped_column(String(64))
    # Keyed pseudonym (HMAC-SHA256) of the person's SPI, never the SPI itself.
    subject: Mapped[str | None] = mapped_column(String(64), index=True)
    data_scopes: Mapped[list[str]]
    outcome: Mapped[str] = mapped_column(String(64))
    http_status: Mapped[int]
    latency_ms: Mapped[float] = mapped_column(Float)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    # Searches about several persons or companies (API FICOBA, issue 14): the search type,
    # and every subject's pseudonym (``subject`` holds the first). Null on other records,
    # and then outside the hash (``journal.entry``), so older records verify unchanged.
    search_type: Mapped[str | None] = mapped_column(String(64))
    subjects: Mapped[list[str] | None]


class JournalSubject(Base):
    """Which records are about a subject (a pseudonym of ``JournalRecord.subjects``): the
    index "who read my data" and investigations look subjects up by. Derived from the
    hashed ``subjects``, written in the same transaction, purged with its record."""

    __tablename__ = "journal_subject"

    subject: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, index=True)


class JournalHead(Base):
    """The chain's last link (id=1). Writers lock it, so the chain stays linear across processes.

    ``anchor_seq``/``anchor_hash`` are the last purged record: what remains verifies from there.
    """

    __tablename__ = "journal_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, default=0)
    hash: Mapped[str] = mapped_column(String(64))
    anchor_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    anchor_hash: Mapped[str] = mapped_column(String(64))
