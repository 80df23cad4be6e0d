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

from guichet.db.models import bump_generation
from guichet.federation.encryption import stored_jwk
from guichet.federation.models import ClientKind, FederationClient
from guichet.federation.scopes import DATA_SCOPES, IDENTITY_SCOPES, OPENID, SCOPES_SUPPORTED
from guichet.habilitation.models import Habilitation, HabilitationFederationClient, Organisation
from guichet.logs import event
from guichet.oauth.policy import FederationClients
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
    organisation_id: uuid.UUID | None = None,
    internal: bool = False,
) -> RegisteredClient:
    """Add a client in the caller's transaction; returns its secret (shown once).

    A service provider needs at least one redirect URI and the ``openid`` scope; its
    default scopes are ``openid`` and the identity scopes. A data provider has neither; it
    may register a public encryption key (``guichet.federation.encryption``), and its
    ``/checktoken`` answers are then encrypted to it.

    The owner is recorded here: ``organisation_id`` (by default, the organisation of
    ``habilitation_id``), whose requests alone may later bind the client; ``internal`` for
    a client guichet registers for itself, never bindable (a data provider always is).
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
    internal = internal or kind is ClientKind.DATA_PROVIDER
    if habilitation is not None:
        if internal:
            raise ValueError("un client de guichet n'est lié à aucune habilitation")
        if organisation_id is not None and organisation_id != habilitation.organisation_id:
            raise ValueError("l'habilitation appartient à une autre organisation que le client")
        organisation_id = habilitation.organisation_id
    if organisation_id is not None:
        if internal:
            raise ValueError("un client de guichet n'appartient à aucune organisation")
        if session.get(Organisation, organisation_id) is None:
            raise ValueError(f"aucune organisation : {organisation_id}")
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
        organisation_id=organisation_id,
        internal=internal,
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
        organisation_id=organisation_id,
        internal=internal,
    )
    return RegisteredClient(client_id, secret, row)


def claim_refusal(
    session: Session, client_id: str, organisation_id: uuid.UUID, *, unknown_refused: bool
) -> str | None:
    """Why ``organisation_id``'s request may not bind the sandbox federation's client
    ``client_id`` to its habilitation, in French for the request's field; None when it may.

    Only the client's owner may bind it: never one of guichet's own clients (the portal's,
    a data provider), a disabled client, a client nobody owns yet, or another
    organisation's. An id the sandbox federation does not know is refused with
    ``unknown_refused`` (the sandbox); else (production) it is the real FranceConnect's,
    which the caller checks against the client ids other organisations declared."""
    row = session.get(FederationClient, client_id)
    if row is None:
        if unknown_refused:
            return "Ce client_id est inconnu de la fédération du bac à sable."
        return None
    if row.internal or row.kind is not ClientKind.SERVICE_PROVIDER:
        return (
            "Ce client_id est un client de guichet lui-même : "
            "il ne peut être lié à aucune habilitation."
        )
    if row.disabled:
        return "Ce client de la fédération est désactivé."
    bound = session.get(Habilitation, row.habilitation_id) if row.habilitation_id else None
    if (row.organisation_id is not None and row.organisation_id != organisation_id) or (
        bound is not None and bound.organisation_id != organisation_id
    ):
        return "Ce client_id appartient à un autre fournisseur de service."
    if row.organisation_id is None:
        return (
            "Ce client de la fédération n'a pas de propriétaire enregistré : demandez à "
            "l'exploitant de l'attribuer à votre organisation."
        )
    return None


def assign_owner(session: Session, client_id: str, siret: str) -> FederationClient:
    """Record the organisation of ``siret`` as the owner of a service provider (the
    operator's ``guichet federation client assign-owner``), in the caller's transaction.
    Refused for guichet's own clients and for a client bound to another organisation's
    habilitation; a client already owned changes owner only when still unbound."""
    row = session.get(FederationClient, client_id)
    if row is None:
        raise ValueError(f"aucun client de la fédération : {client_id}")
    if row.internal or row.kind is not ClientKind.SERVICE_PROVIDER:
        raise ValueError("ce client est un client de guichet lui-même : il n'a pas de propriétaire")
    organisation = session.scalar(select(Organisation).where(Organisation.siret == siret.strip()))
    if organisation is None:
        raise ValueError(f"aucune organisation avec le SIRET {siret.strip()}")
    bound = session.get(Habilitation, row.habilitation_id) if row.habilitation_id else None
    if bound is not None and bound.organisation_id != organisation.id:
        raise ValueError(
            "ce client est lié à une habilitation d'une autre organisation "
            f"({bound.id}) : il ne peut pas changer de propriétaire"
        )
    previous = row.organisation_id
    row.organisation_id = organisation.id
    session.flush()
    event(
        log,
        "federation:client:owner_assigned",
        client_id=client_id,
        organisation_id=organisation.id,
        previous=previous,
    )
    return row


@dataclass(frozen=True, slots=True)
class ClientSummary:
    """What an instructor sees of a request's federation client before validating."""

    client_id: str
    name: str
    kind: ClientKind
    redirect_uris: tuple[str, ...]
    internal: bool
    disabled: bool
    owner_name: str | None
    owner_siret: str | None
    habilitation_id: uuid.UUID | None


def describe_client(session: Session, client_id: str) -> ClientSummary | None:
    """The sandbox federation's client ``client_id`` as the instruction page shows it; None
    when the sandbox federation does not know it."""
    row = session.get(FederationClient, client_id.strip())
    if row is None:
        return None
    owner = session.get(Organisation, row.organisation_id) if row.organisation_id else None
    return ClientSummary(
        client_id=row.client_id,
        name=row.name,
        kind=row.kind,
        redirect_uris=tuple(row.redirect_uris),
        internal=row.internal,
        disabled=row.disabled,
        owner_name=owner.name if owner else None,
        owner_siret=owner.siret if owner else None,
        habilitation_id=row.habilitation_id,
    )


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


def directory(session: Session) -> FederationClients:
    """The federation's clients as the policy snapshot reads them
    (``guichet.oauth.policy.FederationDirectory``): service providers bound to a
    habilitation; disabled clients, data providers and guichet's own clients, refused even
    when declared."""
    bound: dict[uuid.UUID, set[str]] = {}
    refused: set[str] = set()
    for row in session.execute(
        select(
            FederationClient.client_id,
            FederationClient.habilitation_id,
            FederationClient.kind,
            FederationClient.disabled,
            FederationClient.internal,
        )
    ):
        if row.disabled or row.internal or row.kind is not ClientKind.SERVICE_PROVIDER:
            refused.add(row.client_id)
        elif row.habilitation_id is not None:
            bound.setdefault(row.habilitation_id, set()).add(row.client_id)
    return FederationClients(
        {hab_id: frozenset(ids) for hab_id, ids in bound.items()}, frozenset(refused)
    )
