"""The master secret and the keys derived from it (never logged, never in the database)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets as _secrets
from pathlib import Path

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def _derive(master: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(master)


class MasterSecret:
    """Derives purpose-bound keys (HKDF, RFC 5869) from one master secret."""

    def __init__(self, master: bytes) -> None:
        if len(master) < 32:
            raise ValueError("the master secret must hold at least 32 bytes")
        self._fernet = Fernet(base64.urlsafe_b64encode(_derive(master, b"guichet/key-encryption")))
        self._pseudonym_key = _derive(master, b"guichet/subject-pseudonym")

    @classmethod
    def load(cls, data_dir: Path, configured: str | None = None) -> MasterSecret:
        """From ``GUICHET_SECRET_KEY`` if set, else ``DATA_DIR/secret.key`` (created 0600)."""
        if configured:
            return cls(configured.encode())
        path = data_dir / "secret.key"
        if not path.exists():
            data_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(_secrets.token_urlsafe(48))
        return cls(path.read_text().strip().encode())

    def encrypt(self, plaintext: bytes) -> bytes:
        return self._fernet.encrypt(plaintext)

    def decrypt(self, token: bytes) -> bytes:
        return self._fernet.decrypt(token)

    def pseudonym(self, spi: str) -> str:
        """A keyed pseudonym of an SPI: stable, searchable, not reversible without the key."""
        return hmac.new(self._pseudonym_key, spi.encode(), hashlib.sha256).hexdigest()


def hash_secret(secret: str) -> str:
    """Hash for a high-entropy generated secret (client secrets): SHA-256 suffices."""
    return hashlib.sha256(secret.encode()).hexdigest()


def check_secret(secret: str, hashed: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), hashed)


def new_secret() -> str:
    return _secrets.token_urlsafe(32)
