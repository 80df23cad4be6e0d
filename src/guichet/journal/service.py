"""The journal's public surface: append (writer), verify, export and purge, in one import."""

from guichet.journal.chain import ensure_head
from guichet.journal.entry import GENESIS_HASH, JournalEntry, canonical_form, record_hash
from guichet.journal.export import EXPORT_COLUMNS, ExportFormat, export
from guichet.journal.retention import purge
from guichet.journal.verify import VerifyReport, verify
from guichet.journal.writer import JournalWriter

__all__ = [
    "EXPORT_COLUMNS",
    "GENESIS_HASH",
    "ExportFormat",
    "JournalEntry",
    "JournalWriter",
    "VerifyReport",
    "canonical_form",
    "ensure_head",
    "export",
    "purge",
    "record_hash",
    "verify",
]
