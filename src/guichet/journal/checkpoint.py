"""Signed checkpoints of the chain's head, kept outside the database (issue 12).

The head row lives beside the records: whoever can write the database can rewrite both and
``verify`` alone would find the chain whole. A checkpoint — the head's ``seq`` and ``hash`` at a
moment, signed (Ed25519, RFC 8032) with a key of the data directory — is written to a directory
the database administrator cannot write (another disk or host) and may be mailed to the
security officer. ``verify_checkpoints`` then requires every checkpointed record to still hold
the checkpointed hash: a rewritten chain, or one cut short, no longer matches.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from guichet.journal.chain import engine_of, read_head, record_table
from guichet.journal.entry import GENESIS_HASH

KEY_FILE = "journal-checkpoint-key.pem"
PUBLIC_KEY_FILE = "journal-checkpoint-key.pub.pem"
SUFFIX = ".checkpoint.json"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The chain's head (``seq``, ``hash``) at ``at``, as signed."""

    seq: int
    hash: str
    at: dt.datetime

    def payload(self) -> bytes:
        """The signed bytes: canonical JSON (sorted keys, no spaces) of the three fields."""
        fields = {"seq": self.seq, "hash": self.hash, "at": self.at.isoformat()}
        return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True, slots=True)
class CheckpointReport:
    """``checked`` checkpoints matched; ``skipped`` lie in the purged part (unverifiable)."""

    ok: bool
    checked: int
    skipped: int = 0
    file: str | None = None
    reason: str | None = None


def load_signing_key(data_dir: Path) -> Ed25519PrivateKey:
    """The data directory's checkpoint key, created (0600) on first use, with its public
    half beside it for whoever checks checkpoints elsewhere."""
    path = data_dir / KEY_FILE
    if not path.exists():
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        public = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        (data_dir / PUBLIC_KEY_FILE).write_bytes(public)
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(loaded, Ed25519PrivateKey):
        raise ValueError(f"{path} n'est pas une clé Ed25519")
    return loaded


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def current(session_factory: sessionmaker[Session], now: dt.datetime) -> Checkpoint:
    """The chain's head now (genesis when nothing was ever written)."""
    with engine_of(session_factory).connect() as conn:
        head = read_head(conn)
    if head is None:
        return Checkpoint(0, GENESIS_HASH, now)
    return Checkpoint(head.seq, head.hash, now)


def document(checkpoint: Checkpoint, key: Ed25519PrivateKey) -> str:
    """The checkpoint as a signed JSON document (what is written and mailed)."""
    signed = {
        "seq": checkpoint.seq,
        "hash": checkpoint.hash,
        "at": checkpoint.at.isoformat(),
        "alg": "Ed25519",
        "signature": _b64(key.sign(checkpoint.payload())),
    }
    return json.dumps(signed, indent=2) + "\n"


def write(checkpoint: Checkpoint, key: Ed25519PrivateKey, directory: Path) -> Path:
    """Write ``checkpoint`` signed into ``directory``, one file per checkpoint (never
    overwritten: the directory may be append-only)."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = checkpoint.at.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    path = directory / f"{stamp}-{checkpoint.seq}{SUFFIX}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(document(checkpoint, key))
    return path


def read(path: Path, public: Ed25519PublicKey) -> Checkpoint:
    """A checkpoint file, its signature checked; ``ValueError`` saying why it is refused."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        checkpoint = Checkpoint(
            int(data["seq"]), str(data["hash"]), dt.datetime.fromisoformat(data["at"])
        )
        public.verify(_unb64(str(data["signature"])), checkpoint.payload())
    except InvalidSignature:
        raise ValueError("signature invalide") from None
    except (OSError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"illisible ({type(exc).__name__})") from None
    return checkpoint


def files(directory: Path) -> Iterator[Path]:
    if directory.is_dir():
        yield from sorted(directory.glob(f"*{SUFFIX}"))


def verify_checkpoints(
    session_factory: sessionmaker[Session], public: Ed25519PublicKey, directory: Path
) -> CheckpointReport:
    """Every checkpoint of ``directory`` must be signed by ``public`` and its record must
    still hold its hash (the purge anchor's hash for the last purged record); a checkpoint
    beyond the head means records were removed."""
    checked = skipped = 0
    with engine_of(session_factory).connect() as conn:
        head = read_head(conn)
        for path in files(directory):
            try:
                point = read(path, public)
            except ValueError as exc:
                return CheckpointReport(False, checked, skipped, path.name, f"point {exc}")
            head_seq = head.seq if head else 0
            anchor_seq = head.anchor_seq if head else 0
            if point.seq > head_seq:
                return CheckpointReport(
                    False,
                    checked,
                    skipped,
                    path.name,
                    f"chain cut short: the checkpoint is at seq {point.seq}, "
                    f"the head at seq {head_seq}",
                )
            if point.seq < anchor_seq or point.seq == 0:
                skipped += 1  # purged (or genesis): nothing left to compare
                continue
            if head is not None and point.seq == anchor_seq:
                found: str | None = head.anchor_hash
            else:
                found = conn.execute(
                    select(record_table.c.hash).where(record_table.c.seq == point.seq)
                ).scalar()
            if found != point.hash:
                return CheckpointReport(
                    False,
                    checked,
                    skipped,
                    path.name,
                    f"rewritten chain: record {point.seq} no longer holds the checkpointed hash",
                )
            checked += 1
    return CheckpointReport(True, checked, skipped)


def public_key(data_dir: Path) -> Ed25519PublicKey | None:
    """The key checkpoints are checked against, if the data directory has one."""
    path = data_dir / KEY_FILE
    if not path.exists():
        public_path = data_dir / PUBLIC_KEY_FILE
        if not public_path.exists():
            return None
        loaded = serialization.load_pem_public_key(public_path.read_bytes())
        return loaded if isinstance(loaded, Ed25519PublicKey) else None
    return load_signing_key(data_dir).public_key()
