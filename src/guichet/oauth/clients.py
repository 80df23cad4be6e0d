"""OAuth clients: a habilitation's technical identifier, its scopes and how it authenticates."""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from guichet.catalog.products import PRODUCTS, RESOURCE_SCOPES
from guichet.db.models import bump_generation
from guichet.habilitation.models import Habilitation
from guichet.oauth.models import Client
from guichet.secrets import hash_secret, new_secret

log = logging.getLogger(__name__)

# RFC 6749 §2.3.1 and RFC 8705 §2.1 / §2.2.
SECRET_METHODS: Final = ("client_secret_basic", "client_secret_post")
TLS_METHODS: Final = ("tls_client_auth", "self_signed_tls_client_auth")
AUTH_METHODS: Final = SECRET_METHODS + TLS_METHODS


def _new_client_id(habilitation: Habilitation) -> str:
    # 128 random bits; the environment prefix tells a developer at a glance where it works.
    return f"{habilitation.environment.value}-{secrets.token_hex(16)}"


def _validate(habilitation: Habilitation, scopes: list[str], auth_methods: list[str]) -> None:
    if not scopes:
        raise ValueError("a client needs at least one resource scope")
    unknown = sorted(set(scopes) - RESOURCE_SCOPES)
    if unknown:
        raise ValueError(
            f"unknown resource scope(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(RESOURCE_SCOPES))}"
        )
    subscribed = frozenset().union(
        *(PRODUCTS[a].resource_scopes for a in habilitation.apis if a in PRODUCTS)
    )
    outside = sorted(set(scopes) - subscribed)
    if outside:
        raise ValueError(
            f"resource scope(s) {', '.join(outside)} belong to no API of the habilitation "
            f"(APIs: {', '.join(sorted(habilitation.apis)) or 'none'})"
        )
    if not auth_methods:
        raise ValueError("a client needs at least one authentication method")
    bad = sorted(set(auth_methods) - set(AUTH_METHODS))
    if bad:
        raise ValueError(
            f"unsupported authentication method(s) {', '.join(bad)}; "
            f"supported: {', '.join(AUTH_METHODS)}"
        )


def create_client(
    session: Session,
    *,
    habilitation: Habilitation,
    scopes: list[str],
    auth_methods: list[str],
    now: dt.datetime,
) -> tuple[Client, str | None]:
    """Register a client for ``habilitation`` in its environment.

    Returns the client and, when a secret method is allowed, its secret — shown this once,
    stored only as a hash. Raises ``ValueError`` on an unknown scope or method.
    """
    _validate(habilitation, scopes, auth_methods)
    secret = new_secret() if set(auth_methods) & set(SECRET_METHODS) else None
    client = Client(
        client_id=_new_client_id(habilitation),
        environment=habilitation.environment,
        habilitation_id=habilitation.id,
        secret_hash=hash_secret(secret) if secret else None,
        secret_created_at=now if secret else None,
        scopes=sorted(set(scopes)),
        auth_methods=[m for m in AUTH_METHODS if m in auth_methods],
        disabled=False,
        created_at=now,
    )
    session.add(client)
    bump_generation(session)
    session.flush()
    log.info(
        "oauth:client:created client_id=%s environment=%s habilitation_id=%s methods=%s",
        client.client_id,
        client.environment.value,
        client.habilitation_id,
        ",".join(client.auth_methods),
    )
    return client, secret


def rotate_secret(session: Session, client_id: str, now: dt.datetime) -> str:
    """Replace the client's secret; the old one stops working at once. Returns the new secret."""
    client = session.scalars(select(Client).where(Client.client_id == client_id)).first()
    if client is None:
        raise ValueError(f"unknown client {client_id!r}")
    if not set(client.auth_methods) & set(SECRET_METHODS):
        raise ValueError(
            f"client {client_id!r} authenticates by certificate only; it has no secret to rotate"
        )
    secret = new_secret()
    client.secret_hash = hash_secret(secret)
    client.secret_created_at = now
    bump_generation(session)
    session.flush()
    log.info("oauth:client:secret_rotated client_id=%s", client_id)
    return secret
