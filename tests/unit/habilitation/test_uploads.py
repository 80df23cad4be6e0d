"""Uploaded documents: PDF sniffed from the bytes, size limit, generated names, SHA-256."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from guichet.application.issuance import DocumentKind, attach_document, read_document, start_request
from guichet.clock import FrozenClock
from guichet.db import transaction
from guichet.habilitation import uploads
from guichet.habilitation.errors import RequestNotFound
from guichet.habilitation.uploads import UploadRejected
from tests.unit.habilitation.support import PDF, make_world, user

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64


@pytest.mark.parametrize(
    ("content", "found"),
    [
        (PNG, "image/png"),
        (b"PK\x03\x04" + b"x" * 40, "application/zip"),
        (b"\x7fELF\x02\x01\x01" + b"\0" * 40, "application/x-executable"),
        (b"<html><script>alert(1)</script>%%EOF", "application/octet-stream"),
        (b"%PDF-1.7 but truncated, no trailer", "application/pdf"),
    ],
)
def test_only_real_pdfs_are_accepted(tmp_path: Path, content: bytes, found: str) -> None:
    with pytest.raises(UploadRejected) as refused:
        uploads.store(tmp_path, "attestation.pdf", content)  # the name claims a PDF
    assert refused.value.field == "file"
    assert found in refused.value.detail
    assert list(tmp_path.iterdir()) == []


def test_size_limit_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(UploadRejected, match="taille maximale"):
        uploads.store(tmp_path, "big.pdf", PDF + b"x" * 2048 + b"%%EOF", max_bytes=1024)
    with pytest.raises(UploadRejected, match="vide"):
        uploads.store(tmp_path, "empty.pdf", b"")
    with pytest.raises(UploadRejected, match="10 Mo"):
        uploads.store(tmp_path, "huge.pdf", PDF + b"\0" * uploads.MAX_BYTES)


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("../../etc/passwd", "passwd"),
        ("..\\..\\windows\\system32\\config", "config"),
        ("attest\0ation.pdf", "attestation.pdf"),
        ("/absolute/path/attestation.pdf", "attestation.pdf"),
        (".htaccess", "htaccess"),
        ("..", "document.pdf"),
        ("rapport\r\nX-Injected: 1.pdf", "rapportX-Injected: 1.pdf"),
        ("e\u0301te\u0301.pdf", "\u00e9t\u00e9.pdf"),  # NFC
    ],
)
def test_malicious_names_never_reach_the_disk(tmp_path: Path, name: str, shown: str) -> None:
    directory = tmp_path / "uploads"
    stored = uploads.store(directory, name, PDF)
    assert stored.original_name == shown
    assert [p.name for p in directory.iterdir()] == [stored.stored_name]
    assert stored.stored_name.endswith(".pdf")
    assert len(stored.stored_name) == 36
    assert list(tmp_path.iterdir()) == [directory]  # nothing escaped the directory
    path = directory / stored.stored_name
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stored.sha256 == hashlib.sha256(PDF).hexdigest()
    assert stored.size == len(PDF)
    assert uploads.read(directory, stored.stored_name, stored.sha256) == PDF


def test_stored_names_are_checked_when_read(tmp_path: Path) -> None:
    stored = uploads.store(tmp_path, "a.pdf", PDF)
    for bad in ("../secret.key", "x.pdf", stored.stored_name + "/.."):
        with pytest.raises(ValueError, match="not a stored document name"):
            uploads.read(tmp_path, bad, stored.sha256)
    (tmp_path / stored.stored_name).write_bytes(PDF + b" ")  # altered on disk
    with pytest.raises(ValueError, match="SHA-256"):
        uploads.read(tmp_path, stored.stored_name, stored.sha256)


def test_documents_belong_to_their_request(
    session_factory: sessionmaker[Session], clock: FrozenClock, uploads_dir: Path
) -> None:
    with transaction(session_factory) as s:
        world = make_world(s, clock.now())
        applicant = user(s, world.applicant)
        request = start_request(s, applicant, world.org_a, now=clock.now())
        doc = attach_document(
            s,
            request,
            applicant,
            DocumentKind.LEGAL_TEXT,
            "../../délibération.pdf",
            PDF,
            uploads_dir=uploads_dir,
            now=clock.now(),
        )
        assert doc.original_name == "délibération.pdf"
        assert doc.sha256 == hashlib.sha256(PDF).hexdigest()
        row, content = read_document(s, user(s, world.instructor), doc.id, uploads_dir=uploads_dir)
        assert content == PDF
        assert row.id == doc.id
        with pytest.raises(RequestNotFound):
            read_document(s, user(s, world.stranger), doc.id, uploads_dir=uploads_dir)
        with pytest.raises(RequestNotFound):
            attach_document(
                s,
                request,
                user(s, world.stranger),
                DocumentKind.LEGAL_TEXT,
                "x.pdf",
                PDF,
                uploads_dir=uploads_dir,
                now=clock.now(),
            )
