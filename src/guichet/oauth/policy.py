"""The policy snapshot: everything the gateway's hot path and the authorization server read
(habilitations, clients, revocations, public keys), in memory, reloaded when the generation
moves.

Any change to habilitations, clients, certificates, keys, revocations or the federation
clients bound to a habilitation bumps ``cache_generation`` in the same transaction
(``guichet.db.models.bump_generation``). Each worker polls that one row every
``cache_poll_interval`` seconds and reloads its snapshot when it moved, so a suspension
reaches every worker in well under a second without a database read per call. What the
identity federation knows of its clients comes in through a ``FederationDirectory``
(``guichet.federation.clients.directory``), so that this module does not read the
federation's tables.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import logging
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload, sessionmaker

from guichet.db.models import read_generation
from guichet.habilitation.models import (
    Environment,
    Habilitation,
    HabilitationFederationClient,
    HabilitationStatus,
)
from guichet.logs import Outage
from guichet.oauth.models import Client, RevokedToken, SigningKey

log = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class PinnedCertificate:
    thumbprint: str
    not_before: dt.datetime
    not_after: dt.datetime
    self_signed: bool
    pem: str


@dataclass(frozen=True, slots=True)
class HabilitationPolicy:
    id: uuid.UUID
    organisation_id: uuid.UUID
    organisation_name: str
    environment: Environment
    demarche: str
    status: HabilitationStatus
    apis: frozenset[str]
    access_modes: frozenset[str]
    data_scopes: frozenset[str]
    year_scopes: frozenset[str]
    ip_ranges: tuple[Network, ...]
    quotas: dict[str, int]
    valid_from: dt.datetime
    valid_until: dt.datetime | None
    certificates: dict[str, PinnedCertificate]
    # Federation ``client_id``s (FranceConnect service providers) whose citizens' tokens
    # this habilitation may present: declared with the request, whichever federation the
    # environment is configured with, plus the sandbox federation's clients bound to it.
    federation_clients: frozenset[str] = frozenset()

    def allows_ip(self, ip: str) -> bool:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(addr in net for net in self.ip_ranges)


@dataclass(frozen=True, slots=True)
class ClientPolicy:
    client_id: str
    environment: Environment
    habilitation_id: uuid.UUID
    scopes: frozenset[str]
    auth_methods: frozenset[str]
    secret_hash: str | None
    disabled: bool


@dataclass(frozen=True, slots=True)
class Snapshot:
    generation: int
    habilitations: dict[uuid.UUID, HabilitationPolicy]
    clients: dict[str, ClientPolicy]
    revoked_jtis: frozenset[str]
    # environment → {kid: public JWK}
    public_keys: dict[Environment, dict[str, dict[str, Any]]]
    # (environment, certificate thumbprint) → habilitations declaring that certificate
    by_thumbprint: dict[tuple[Environment, str], tuple[HabilitationPolicy, ...]]

    def pinned_certificates(self) -> list[str]:
        """PEMs of every declared certificate: each joins the live TLS trust store (pinning)."""
        return [c.pem for h in self.habilitations.values() for c in h.certificates.values()]


def load_snapshot(session: Session, federation: FederationDirectory) -> Snapshot:
    generation = read_generation(session)
    habs = session.scalars(
        select(Habilitation).options(
            selectinload(Habilitation.certificates), selectinload(Habilitation.organisation)
        )
    ).all()
    federation_clients = _federation_clients(session, federation)
    habilitations = {
        h.id: HabilitationPolicy(
            id=h.id,
            organisation_id=h.organisation_id,
            organisation_name=h.organisation.name,
            environment=h.environment,
            demarche=h.demarche,
            status=h.status,
            apis=frozenset(h.apis),
            access_modes=frozenset(h.access_modes),
            data_scopes=frozenset(h.data_scopes),
            year_scopes=frozenset(h.year_scopes),
            ip_ranges=tuple(ipaddress.ip_network(r, strict=False) for r in h.ip_ranges),
            quotas={k: int(v) for k, v in h.quotas.items()},
            valid_from=h.valid_from,
            valid_until=h.valid_until,
            certificates={
                c.thumbprint: PinnedCertificate(
                    c.thumbprint, c.not_before, c.not_after, c.self_signed, c.pem
                )
                for c in h.certificates
            },
            federation_clients=federation_clients.get(h.id, frozenset()),
        )
        for h in habs
    }
    clients = {
        c.client_id: ClientPolicy(
            client_id=c.client_id,
            environment=c.environment,
            habilitation_id=c.habilitation_id,
            scopes=frozenset(c.scopes),
            auth_methods=frozenset(c.auth_methods),
            secret_hash=c.secret_hash,
            disabled=c.disabled,
        )
        for c in session.scalars(select(Client)).all()
    }
    revoked = frozenset(session.scalars(select(RevokedToken.jti)).all())
    keys: dict[Environment, dict[str, dict[str, Any]]] = {e: {} for e in Environment}
    for k in session.scalars(select(SigningKey)).all():
        keys[k.environment][k.kid] = dict(k.public_jwk)
    by_thumbprint: dict[tuple[Environment, str], tuple[HabilitationPolicy, ...]] = {}
    for hab in habilitations.values():
        for tp in hab.certificates:
            key = (hab.environment, tp)
            by_thumbprint[key] = (*by_thumbprint.get(key, ()), hab)
    return Snapshot(generation, habilitations, clients, revoked, keys, by_thumbprint)


@dataclass(frozen=True, slots=True)
class FederationClients:
    """What the sandbox identity federation knows of its clients: its service providers
    bound to each habilitation, and the clients it refuses (disabled, or data providers)."""

    bound: Mapping[uuid.UUID, frozenset[str]]
    refused: frozenset[str]


# Reads the federation's clients inside the snapshot's transaction.
FederationDirectory = Callable[[Session], FederationClients]


def _federation_clients(
    session: Session, federation: FederationDirectory
) -> dict[uuid.UUID, frozenset[str]]:
    """Habilitation → its federation client ids: those declared for it
    (``habilitation_federation_client``) and the sandbox federation's service providers
    bound to it. A client the sandbox federation knows as disabled, or as a data provider,
    never counts, even when declared."""
    known = federation(session)
    found: dict[uuid.UUID, set[str]] = {hab_id: set(ids) for hab_id, ids in known.bound.items()}
    for declared in session.execute(
        select(HabilitationFederationClient.habilitation_id, HabilitationFederationClient.client_id)
    ):
        found.setdefault(declared.habilitation_id, set()).add(declared.client_id)
    return {hab_id: frozenset(ids - known.refused) for hab_id, ids in found.items()}


class PolicyCache:
    """Holds the current snapshot; ``refresh_if_stale`` is cheap and is what workers poll."""

    def __init__(self, factory: sessionmaker[Session], federation: FederationDirectory) -> None:
        self._factory = factory
        self._federation = federation
        self._listeners: list[Any] = []
        # Reloads run on the poller's thread and on request paths (e.g. /revoke): the lock
        # and the generation check keep a slower, older load from replacing a newer one.
        self._lock = threading.Lock()
        with factory() as session:
            self._snapshot = load_snapshot(session, self._federation)

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    def on_reload(self, listener: Any) -> None:
        """``listener(snapshot)`` runs after each reload (e.g. to trust new self-signed certs)."""
        self._listeners.append(listener)
        listener(self._snapshot)

    def reload(self) -> None:
        with self._factory() as session:
            loaded = load_snapshot(session, self._federation)
        with self._lock:
            if loaded.generation < self._snapshot.generation:
                return
            self._snapshot = loaded
            for listener in self._listeners:
                listener(loaded)

    def refresh_if_stale(self) -> bool:
        with self._factory() as session:
            generation = read_generation(session)
        if generation != self._snapshot.generation:
            self.reload()
            return True
        return False

    async def poll(self, interval: float) -> None:
        """Run forever in each worker; never lets a database hiccup kill the loop. An
        outage is logged when it starts and when it ends (with the polls that failed), not
        at each poll (issue 13)."""
        outage = Outage(log, "policy_cache.refresh_failed", "policy_cache.refresh_recovered")
        while True:
            await asyncio.sleep(interval)
            try:
                await asyncio.to_thread(self.refresh_if_stale)
            except Exception as exc:
                outage.failed(exc)
            else:
                outage.recovered()
