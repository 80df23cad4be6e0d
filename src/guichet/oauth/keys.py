"""Each environment's token signing key: private part encrypted at rest, public part in a JWKS."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any, Final

from joserfc.jwk import ECKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from guichet.db.models import bump_generation
from guichet.habilitation.models import Environment
from guichet.oauth.models import SigningKey
from guichet.oauth.policy import Snapshot
from guichet.secrets import MasterSecret

log = logging.getLogger(__name__)

ALG: Final = "ES256"
CURVE: Final = "P-256"


def active_key(session: Session, environment: Environment) -> SigningKey | None:
    """The newest key of ``environment`` that is not retired: the one that signs new tokens."""
    return session.scalars(
        select(SigningKey)
        .where(SigningKey.environment == environment, SigningKey.retired_at.is_(None))
        .order_by(SigningKey.created_at.desc(), SigningKey.kid)
        .limit(1)
    ).first()


def new_signing_key() -> tuple[ECKey, str, dict[str, Any]]:
    """A fresh ES256 key, its ``kid`` (RFC 7638 JWK thumbprint) and its public JWK."""
    private = ECKey.generate_key(CURVE, private=True)
    kid = private.thumbprint()
    public_jwk: dict[str, Any] = {
        **private.as_dict(private=False),
        "kid": kid,
        "alg": ALG,
        "use": "sig",
    }
    return private, kid, public_jwk


def ensure_signing_key(
    session: Session, environment: Environment, master: MasterSecret, now: dt.datetime
) -> SigningKey:
    """Return the environment's active key, creating an ES256 (P-256) one if there is none.

    The ``kid`` is the key's RFC 7638 JWK thumbprint. Runs inside the caller's transaction,
    which it marks as changing the policy snapshot (the public key joins the JWKS).
    """
    existing = active_key(session, environment)
    if existing is not None:
        return existing
    private, kid, public_jwk = new_signing_key()
    key = SigningKey(
        kid=kid,
        environment=environment,
        alg=ALG,
        private_key_encrypted=master.encrypt(private.as_pem(private=True)),
        public_jwk=public_jwk,
        created_at=now,
        retired_at=None,
    )
    session.add(key)
    bump_generation(session)
    session.flush()
    log.info("oauth:signing_key:created environment=%s kid=%s alg=%s", environment.value, kid, ALG)
    return key


def load_private_key(key: SigningKey, master: MasterSecret) -> ECKey:
    """Decrypt and parse the private part of ``key`` (callers cache the result by ``kid``)."""
    private = ECKey.import_key(master.decrypt(key.private_key_encrypted))
    if not private.is_private:
        raise ValueError(f"signing key {key.kid} holds no private part")
    return private


def jwks(snapshot: Snapshot, environment: Environment) -> dict[str, list[dict[str, Any]]]:
    """RFC 7517 §5 JWK Set of the environment's public signing keys, from the policy snapshot."""
    keys = snapshot.public_keys.get(environment, {})
    return {"keys": [dict(keys[kid]) for kid in sorted(keys)]}


def verification_keys(snapshot: Snapshot) -> dict[str, dict[str, Any]]:
    """``kid`` → public JWK of every environment, for ``verify_access_token``.

    Passing every environment's keys (not only the gateway's own) lets the verifier say
    *why* a sibling environment's token is refused — its audience — instead of "unknown
    key"; the audience and issuer checks still refuse it.
    """
    merged: dict[str, dict[str, Any]] = {}
    for keys in snapshot.public_keys.values():
        merged.update(keys)
    return merged
