"""What every habilitation page of the partner (and the instructors') shares: the
portal's services, running a page's work in one transaction, ids and blocks from the
path, and the labels of statuses and events.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

from cryptography import x509
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from guichet.accounts.models import User
from guichet.clock import Clock, utc
from guichet.db import transaction
from guichet.errors import GuichetError
from guichet.habilitation.lifecycle import DisplayStatus
from guichet.habilitation.models import Environment, HabilitationStatus
from guichet.habilitation.validation import Block, FieldError
from guichet.mail import Mailer
from guichet.portal.errors import shown_on
from guichet.portal.runtime import PortalRuntime
from guichet.portal.web import current_session
from guichet.secrets import MasterSecret

T = TypeVar("T")


# Where the services' refusals are shown: with a way back to the requests.
ERROR_PAGE: Final = "requests/error.html"


BLOCK_LABELS: Final = {
    Block.BASICS: "Informations générales",
    Block.LEGAL: "Cadre juridique",
    Block.PERIMETER: "Périmètre des données",
    Block.RECIPIENTS: "Destinataires des données",
    Block.PERSONAL_DATA: "Données personnelles",
    Block.CONTACTS: "Contacts",
    Block.TECHNICAL: "Données techniques",
    Block.TERMS: "Conditions générales d'utilisation",
    Block.PRODUCTION: "Prérequis de la production",
}


ENVIRONMENT_LABELS: Final = {
    Environment.SANDBOX: "Bac à sable",
    Environment.PRODUCTION: "Production",
}


HABILITATION_STATUS_LABELS: Final = {
    HabilitationStatus.ACTIVE: "Active",
    HabilitationStatus.SUSPENDED: "Suspendue",
    HabilitationStatus.TERMINATED: "Résiliée",
}


STATUS_BADGES: Final = {
    DisplayStatus.DRAFT: "fr-badge--info",
    DisplayStatus.SUBMITTED: "fr-badge--new",
    DisplayStatus.CHANGES_REQUESTED: "fr-badge--warning",
    DisplayStatus.VALIDATED: "fr-badge--success",
    DisplayStatus.REFUSED: "fr-badge--error",
    DisplayStatus.ARCHIVED: "",
    DisplayStatus.IMPLICITLY_REJECTED: "fr-badge--error",
}


EVENT_LABELS: Final = {
    "habilitation:request:created": "Demande créée",
    "habilitation:request:submitted": "Demande soumise",
    "habilitation:request:changes_requested": "Modifications demandées",
    "habilitation:request:validated": "Demande validée",
    "habilitation:request:refused": "Demande refusée",
    "habilitation:request:archived": "Demande archivée",
}


HABILITATION_EVENT_LABELS: Final = {
    "habilitation:validated": "Habilitation délivrée (demande validée)",
    "habilitation:updated": "Habilitation mise à jour (demande de mise à jour validée)",
    "habilitation:suspended": "Suspendue",
    "habilitation:resumed": "Rétablie",
    "habilitation:termination_notified": "Préavis de résiliation de deux mois",
    "habilitation:terminated": "Résiliée",
    "habilitation:secret_rotated": "Secret renouvelé",
    "habilitation:request_data_purged": "Données d'une demande supprimées (six ans après la fin)",
    "habilitation:security_notice": "Avis d'échéance de l'engagement de sécurité envoyé",
}


# Who acted, when it was not a person of the portal.
SYSTEM_ACTORS: Final = {"scheduler": "Le guichet (veille et échéances)"}


@dataclass(frozen=True)
class HabilitationPortal:
    """What the habilitation pages need beyond ``PortalDeps``: the database, the clock, the
    master secret (credentials), the mailer (decisions) and where uploads go."""

    session_factory: sessionmaker[Session]
    clock: Clock
    master: MasterSecret
    mailer: Mailer | None
    uploads_dir: Path
    # The authorities partner certificates chain to: the configured trust store, else the
    # embedded default's local authority (as the gateways read them).
    trust_files: tuple[Path, ...] = ()

    @classmethod
    def from_runtime(cls, runtime: PortalRuntime, mailer: Mailer | None) -> HabilitationPortal:
        settings = runtime.settings
        return cls(
            runtime.session_factory,
            runtime.clock,
            runtime.master,
            mailer,
            settings.data_dir / "uploads",
            (settings.client_ca_file or settings.data_dir / "pki" / "ca.crt",),
        )

    @property
    def trust_store(self) -> list[x509.Certificate]:
        """Read on each use: the local authority may be created after the portal starts."""
        found: list[x509.Certificate] = []
        for path in self.trust_files:
            if path.is_file():
                found += x509.load_pem_x509_certificates(path.read_bytes())
        return found


def portal_of(request: Request) -> HabilitationPortal:
    found = request.app.state.habilitations
    assert isinstance(found, HabilitationPortal)
    return found


class SignInRequired(GuichetError):
    status = 401
    code = "sign_in_required"
    title = "Connexion requise"


class PageNotFound(GuichetError):
    status = 404
    code = "page_not_found"
    title = "Page introuvable"


async def signed_in(request: Request) -> uuid.UUID | None:
    session = await current_session(request)
    return session.user_id if session is not None else None


async def in_transaction(request: Request, work: Callable[[Session, User, dt.datetime], T]) -> T:
    """``work`` in one transaction, as the signed-in user (rolled back on any error); its
    domain errors are shown on the requests' error page (``portal.errors.domain_error``)."""
    user_id = await signed_in(request)
    if user_id is None:
        raise SignInRequired()
    hp = portal_of(request)

    def run() -> T:
        with transaction(hp.session_factory) as session:
            user = session.get(User, user_id)
            if user is None:
                raise SignInRequired()
            return work(session, user, hp.clock.now())

    return await in_threadpool(request, run)


async def in_threadpool(request: Request, func: Callable[..., T], *args: Any) -> T:
    """``func(*args)`` in the thread pool; its domain errors are shown on the requests' error
    page (``portal.errors.domain_error`` answers them)."""
    try:
        return await run_in_threadpool(func, *args)
    except GuichetError as exc:
        shown_on(request, exc, ERROR_PAGE)
        raise


async def in_transaction_or_refusal(
    request: Request,
    work: Callable[[Session, User, dt.datetime], T],
    refusal: Callable[[GuichetError], Awaitable[Response] | None],
) -> T | Response:
    """``work`` as ``in_transaction`` runs it, for a form that shows itself again with its
    field errors: a domain error ``refusal`` turns into a page is answered with that page;
    any other goes on to the exception handlers."""
    try:
        return await in_transaction(request, work)
    except GuichetError as exc:
        page = refusal(exc)
        if page is None:
            raise
        return await page


def parse_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise PageNotFound("Cette page n'existe pas.") from None


def parse_block(value: str) -> Block:
    try:
        return Block(value)
    except ValueError:
        raise PageNotFound("Ce bloc n'existe pas.") from None


def age_days(since: dt.datetime | None, now: dt.datetime) -> int | None:
    return None if since is None else max(0, (now - utc(since)).days)


def error_map(errors: list[FieldError]) -> dict[str, str]:
    """Field path → its messages (several checks may speak about one field)."""
    found: dict[str, str] = {}
    for e in errors:
        found[e.field] = f"{found[e.field]} {e.message}" if e.field in found else e.message
    return found
