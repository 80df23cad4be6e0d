"""Storing the documents partners upload (PDF only): type sniffed from the bytes, size
limited, stored under a generated name, SHA-256 recorded.

The name the browser sent is kept for display only, cleaned of paths and control
characters; it never becomes part of a path on disk.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from guichet.errors import BadRequest

MAX_BYTES: Final = 10 * 1024 * 1024
PDF: Final = "application/pdf"

# Leading bytes of what people upload by mistake, to name it in the error message.
_SIGNATURES: Final = (
    (b"%PDF-", PDF),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF8", "image/gif"),
    (b"PK\x03\x04", "application/zip"),
    (b"\xd0\xcf\x11\xe0", "application/x-ole-storage"),
    (b"\x7fELF", "application/x-executable"),
    (b"MZ", "application/x-msdownload"),
    (b"{\\rtf", "application/rtf"),
)
_STORED_NAME: Final = re.compile(r"^[0-9a-f]{32}\.pdf$")


class UploadRejected(BadRequest):
    code = "upload_rejected"
    title = "Document refusé"


@dataclass(frozen=True, slots=True)
class StoredFile:
    stored_name: str
    original_name: str
    content_type: str
    size: int
    sha256: str


def sniff(content: bytes) -> str:
    """The content type the bytes themselves announce; ``application/octet-stream`` if none."""
    for magic, content_type in _SIGNATURES:
        if content.startswith(magic):
            return content_type
    return "application/octet-stream"


def clean_name(name: str, default: str = "document.pdf") -> str:
    """A display name: last path component, NFC, no control or separator characters."""
    name = unicodedata.normalize("NFC", name)
    name = re.split(r"[/\\]", name)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    name = name.strip().lstrip(".").strip()
    return name[:255] or default


def store(
    directory: Path, filename: str, content: bytes, *, max_bytes: int = MAX_BYTES
) -> StoredFile:
    """Check and write ``content`` as ``directory/<random>.pdf`` (mode 0600), atomically."""
    if not content:
        raise UploadRejected("Le fichier est vide.", field="file")
    if len(content) > max_bytes:
        raise UploadRejected(
            f"Le fichier dépasse la taille maximale ({max_bytes // (1024 * 1024)} Mo).",
            field="file",
        )
    found = sniff(content)
    if found != PDF or b"%%EOF" not in content[-2048:]:
        raise UploadRejected(
            f"Seuls les documents PDF sont acceptés (fichier reçu : {found}).", field="file"
        )
    stored_name = f"{secrets.token_hex(16)}.pdf"
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = directory / f".{stored_name}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(directory / stored_name)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
    return StoredFile(
        stored_name=stored_name,
        original_name=clean_name(filename),
        content_type=PDF,
        size=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
    )


def path_of(directory: Path, stored_name: str) -> Path:
    """The file of a stored name; refuses anything that is not a name ``store`` generated."""
    if not _STORED_NAME.match(stored_name):
        raise ValueError("not a stored document name")
    return directory / stored_name


def read(directory: Path, stored_name: str, sha256: str) -> bytes:
    """The stored bytes, checked against the recorded SHA-256."""
    content = path_of(directory, stored_name).read_bytes()
    if hashlib.sha256(content).hexdigest() != sha256:
        raise ValueError("stored document does not match its recorded SHA-256")
    return content


def remove(directory: Path, stored_name: str) -> None:
    path_of(directory, stored_name).unlink(missing_ok=True)
