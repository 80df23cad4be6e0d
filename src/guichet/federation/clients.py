"""Registering the federation's clients: partners (service providers) and data providers."""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from guichet.federation.encryption import stored_jwk
from guichet.federation.models import ClientKind, FederationClient
from guichet.federation.scopes import DATA_SCOPES, IDENTITY_SCOPES, OPENID, SCOPES_SUPPORTED
from guichet.gateway.policy import bump_generation
from guichet.habilitation.models import Habilitation, HabilitationFederationClient
from guichet.logs import event
from guichet.secrets import hash_secret, new_secret

log = logging.getLogger(__name__)

DEFAULT_SCOPES = (OPENID, *IDENTITY_SCOPES)


@dataclass(frozen=True, slots=True)
class RegisteredClient:
    """A new client and its secret, shown once and never stored in clear."""

    client_id: str
    client_secret: str
    client: FederationClient


def _check_uri(uri: str) -> None:
    """OpenID Connect Core §3.1.2.1: redirect URIs are compared exactly, so each one is
    registered whole — absolute, http(s), no fragment; https except on loopback hosts."""
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an absolute http(s) URI: {uri!r}")
    if parts.fragment or "#" in uri:
        raise ValueError(f"a redirect URI has no fragment: {uri!r}")
    if parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "::1", "localhost"):
        raise ValueError(f"http is only for loopback hosts, use https: {uri!r}")


def register_client(
    session: Session,
    *,
    kind: ClientKind,
    name: str,
    now: dt.datetime,
    redirect_uris: Sequence[str] = (),
    post_logout_redirect_uris: Sequence[str] = (),
    scopes: Sequence[str] | None = None,
    habilitation_id: uuid.UUID | None = None,
    sector: str | None = None,
    encryption_jwk: Mapping[str, Any] | None = None,
) -> RegisteredClient:
    """Add a client in the caller's transaction; returns its secret (shown once).

    A service provider needs at least one redirect URI and the ``openid`` scope; its
    default scopes are ``openid`` and the identity scopes. A data provider has neither; it
    may register a public encryption key (``guichet.federation.encryption``), and its
    ``/checktoken`` answers are then encrypted to it.
    """
    name = name.strip()
    if not name:
        raise ValueError("a client needs a name")
    if kind is ClientKind.SERVICE_PROVIDER:
        if not redirect_uris:
            raise ValueError("a service provider needs at least one redirect URI")
        granted = list(dict.fromkeys(scopes if scopes is not None else DEFAULT_SCOPES))
        if OPENID not in granted:
            raise ValueError("a service provider's scopes include openid")
        unknown = sorted(set(granted) - SCOPES_SUPPORTED)
        if unknown:
            raise ValueError(f"unknown scope(s): {', '.join(unknown)}")
        for uri in (*redirect_uris, *post_logout_redirect_uris):
            _check_uri(uri)
        if encryption_jwk is not None:
            raise ValueError("only a data provider registers an encryption key")
    else:
        if redirect_uris or post_logout_redirect_uris:
            raise ValueError("a data provider has no redirect URI")
        granted = []
    encryption = stored_jwk(encryption_jwk) if encryption_jwk is not None else None
    habilitation = session.get(Habilitation, habilitation_id) if habilitation_id else None
    if habilitation_id is not None and habilitation is None:
        raise ValueError(f"no such habilitation: {habilitation_id}")
    client_id = secrets.token_hex(32)  # FranceConnect's client ids are 64 hex characters
    secret = new_secret()
    row = FederationClient(
        client_id=client_id,
        kind=kind,
        name=name,
        secret_hash=hash_secret(secret),
        redirect_uris=list(dict.fromkeys(redirect_uris)),
        post_logout_redirect_uris=list(dict.fromkeys(post_logout_redirect_uris)),
        scopes=granted,
        sector=sector or client_id,
        habilitation_id=habilitation_id,
        disabled=False,
        created_at=now,
        encryption_jwk=encryption,
    )
    session.add(row)
    session.flush()
    if habilitation is not None:
        declare_habilitation_client(session, habilitation, client_id, now)
    event(
        log,
        "federation:client:registered",
        client_id=client_id,
        kind=kind.value,
        habilitation_id=habilitation_id,
    )
    return RegisteredClient(client_id, secret, row)


def declare_habilitation_client(
    session: Session,
    habilitation: Habilitation,
    client_id: str,
    now: dt.datetime,
    *,
    replace: bool = False,
) -> None:
    """Record ``client_id`` as a federation client of ``habilitation`` (idempotent), in the
    caller's transaction, and bump the policy generation: the gateway accepts that client's
    citizen tokens for this habilitation from its next snapshot. Any federation's client id
    (the real FranceConnect's too): nothing is checked against the sandbox federation here.
    With ``replace``, the habilitation's other declared client ids are withdrawn (a request
    declares *the* client of its démarche)."""
    rows = session.scalars(
        select(HabilitationFederationClient).where(
            HabilitationFederationClient.habilitation_id == habilitation.id
        )
    ).all()
    for row in rows:
        if replace and row.client_id != client_id:
            session.delete(row)
            event(
                log,
                "federation:client:withdrawn",
                client_id=row.client_id,
                habilitation_id=habilitation.id,
            )
    if not any(row.client_id == client_id for row in rows):
        session.add(
            HabilitationFederationClient(
                habilitation_id=habilitation.id,
                client_id=client_id,
                environment=habilitation.environment,
                created_at=now,
            )
        )
        event(
            log, "federation:client:declared", client_id=client_id, habilitation_id=habilitation.id
        )
    session.flush()
    bump_generation(session)


def habilitation_scopes(client: FederationClient, habilitation: Habilitation) -> list[str]:
    """A sandbox service provider's scopes once bound to ``habilitation``: its own
    non-DGFiP scopes (``openid``, identity) and exactly the habilitation's data and revenue
    year scopes the federation can carry — what ``/authorize`` will then let it request."""
    granted = set(habilitation.data_scopes) | set(habilitation.year_scopes)
    kept = [s for s in client.scopes if s not in DATA_SCOPES]
    if OPENID not in kept:
        kept.insert(0, OPENID)
    return kept + sorted(granted & DATA_SCOPES)


def set_encryption_key(
    session: Session, client_id: str, encryption_jwk: Mapping[str, Any] | None
) -> FederationClient:
    """Register (or, with None, remove) a data provider's public encryption key, in the
    caller's transaction: its next ``/checktoken`` answers are encrypted to it."""
    row = session.get(FederationClient, client_id)
    if row is None or row.kind is not ClientKind.DATA_PROVIDER:
        raise ValueError("no such data provider")
    row.encryption_jwk = stored_jwk(encryption_jwk) if encryption_jwk is not None else None
    session.flush()
    event(
        log,
        "federation:client:encryption_key_set",
        client_id=client_id,
        kid=row.encryption_jwk["kid"] if row.encryption_jwk else None,
    )
    return row


def list_clients(session: Session) -> list[FederationClient]:
    return list(
        session.scalars(
            select(FederationClient).order_by(FederationClient.created_at, FederationClient.name)
        )
    )
