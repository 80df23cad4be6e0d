"""The federation's keys: its ES256 signing key (JWKS), and keys derived from the master secret."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
from typing import Any, Final

from joserfc.jwk import ECKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from guichet.federation.models import FederationSigningKey
from guichet.logs import event
from guichet.oauth.keys import new_signing_key
from guichet.secrets import MasterSecret

log = logging.getLogger(__name__)

ALG: Final = "ES256"
CURVE: Final = "P-256"


def derive_key(master: MasterSecret, purpose: str) -> bytes:
    """A 256-bit key for ``purpose``, derived from the master secret.

    ``MasterSecret.pseudonym`` is HMAC-SHA256 under a key derived from the master secret
    (HKDF): a PRF, so its value on a purpose label that is not an SPI is a key independent
    from every pseudonym and from every other purpose.
    """
    return bytes.fromhex(master.pseudonym(f"guichet/federation/{purpose}"))


def pairwise_sub(key: bytes, sector: str, spi: str) -> str:
    """OpenID Connect Core §8.1: a pairwise ``sub`` — the same citizen gets unrelated
    identifiers in two sectors. FranceConnect's form: 64 hex characters and ``v1``."""
    mac = hmac.new(key, f"{sector}\x00{spi}".encode(), hashlib.sha256).hexdigest()
    return f"{mac}v1"


def active_key(session: Session) -> FederationSigningKey | None:
    return session.scalars(
        select(FederationSigningKey)
        .where(FederationSigningKey.retired_at.is_(None))
        .order_by(FederationSigningKey.created_at.desc(), FederationSigningKey.kid)
        .limit(1)
    ).first()


def ensure_signing_key(
    session: Session, master: MasterSecret, now: dt.datetime
) -> FederationSigningKey:
    """The active signing key, created (ES256, ``kid`` = RFC 7638 thumbprint) if there is none."""
    existing = active_key(session)
    if existing is not None:
        return existing
    private, kid, public_jwk = new_signing_key()
    row = FederationSigningKey(
        kid=kid,
        alg=ALG,
        private_key_encrypted=master.encrypt(private.as_pem(private=True)),
        public_jwk=public_jwk,
        created_at=now,
        retired_at=None,
    )
    session.add(row)
    session.flush()
    event(log, "federation:signing_key:created", kid=kid, alg=ALG)
    return row


def load_private_key(row: FederationSigningKey, master: MasterSecret) -> ECKey:
    key = ECKey.import_key(master.decrypt(row.private_key_encrypted))
    if not key.is_private:
        raise ValueError(f"federation signing key {row.kid} holds no private part")
    return key


def public_jwks(session: Session) -> dict[str, list[dict[str, Any]]]:
    """RFC 7517 §5: every public key not yet retired (rotation keeps the old one visible)."""
    rows = session.scalars(select(FederationSigningKey).order_by(FederationSigningKey.kid)).all()
    return {"keys": [dict(r.public_jwk) for r in rows if r.retired_at is None]}
