"""The consent step between sign-in and the return to the partner, and its consent page.

After the citizen signs in, the federation asks ``FederationDeps.consent`` for a page.
``ConsentPage`` (the default, issue 5 §2) shows which partner asks, for which démarche, the
DGFiP data requested in the partner's literal labels with their origin and revenue years,
and the identity data transmitted [003 annexe 1 "Affichage des données sur la page de
consentement", art. 6]; the citizen accepts or refuses, ``decide`` records the answer
(kept 36 months [003 art. 4]) and a refusal sends ``access_denied`` to the partner.
``NoConsentStep`` keeps the seam: nothing shown, nothing recorded.
"""

from __future__ import annotations

import calendar
import datetime as dt
import logging
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol
from zoneinfo import ZoneInfo

from jinja2 import Environment as Jinja
from jinja2 import FileSystemLoader, select_autoescape
from sqlalchemy import delete
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, Response

from guichet.catalog.products import (
    DATA_SCOPE_LABELS,
    IR_DATA_SCOPES,
    YEAR_FALLBACK_SCOPE,
    YEAR_SCOPES,
)
from guichet.clock import Clock, utc
from guichet.federation.citizens import Citizen
from guichet.federation.models import ConsentRecord
from guichet.federation.providers import IdentityProvider
from guichet.federation.scopes import DATA_SCOPES, IDENTITY_SCOPES, OPENID
from guichet.habilitation.models import Habilitation, HabilitationStatus
from guichet.logs import event
from guichet.secrets import MasterSecret

log = logging.getLogger(__name__)

DGFIP_ORIGIN: Final = "Direction générale des Finances publiques"
RETENTION_MONTHS: Final = 36  # [003 art. 4] "trente-six mois"
PARIS: Final = ZoneInfo("Europe/Paris")  # year N as the provider counts it (docs/catalogue.md)
ACCEPT: Final = "accept"
REFUSE: Final = "refuse"

# The catalogue's plain-French label of each data scope, for a partner whose habilitation
# declares none (the demo clients have no habilitation at all).
CATALOGUE_LABELS: Final[Mapping[str, str]] = DATA_SCOPE_LABELS
# What the identity provider transmits for each identity scope (FranceConnect v2).
IDENTITY_LABELS: Final[Mapping[str, str]] = {
    "given_name": "Prénoms",
    "family_name": "Nom de naissance",
    "birthdate": "Date de naissance",
    "gender": "Sexe",
    "birthplace": "Lieu de naissance",
    "birthcountry": "Pays de naissance",
    "preferred_username": "Nom d'usage",
    "email": "Adresse électronique",
}

_TEMPLATES: Final = Jinja(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
)
# The federation's page headers (as ``app.py``): no caching, no framing, no script at all.
_PAGE_HEADERS: Final = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'"
    ),
}


@dataclass(frozen=True, slots=True)
class Interaction:
    """One authorization request, once the citizen has signed in."""

    id: str  # the interaction id in the federation's URLs
    client_id: str
    client_name: str
    habilitation_id: uuid.UUID | None
    scopes: tuple[str, ...]
    citizen: Citizen
    idp: IdentityProvider
    csrf: str  # to put in the consent form's hidden ``csrf`` field
    action: str  # where the consent form posts (``POST``, fields ``csrf`` and ``decision``)


class ConsentStep(Protocol):
    async def show(self, interaction: Interaction) -> Response | None:
        """The consent page for this interaction, or None to continue without asking."""
        ...

    async def decide(self, interaction: Interaction, form: Mapping[str, str]) -> bool:
        """Record the citizen's answer (posted form, CSRF already checked); True = accepted."""
        ...


class NoConsentStep:
    """No consent page: nothing shown, nothing recorded, the flow continues (tests, tools)."""

    async def show(self, interaction: Interaction) -> Response | None:
        return None

    async def decide(self, interaction: Interaction, form: Mapping[str, str]) -> bool:
        return True


class FirstPartyConsent:
    """The platform's own service (the portal's "Qui a consulté mes données ?") signs the
    citizen in to show them their own exchanges: it reads their identity only, for no
    démarche, so no consent to a partner's démarche is asked. Any other client, or that one
    asking for more than the identity, goes through ``inner``."""

    def __init__(self, inner: ConsentStep, first_party: Callable[[], frozenset[str]]) -> None:
        self._inner = inner
        self._first_party = first_party

    def skips(self, interaction: Interaction) -> bool:
        return (
            interaction.habilitation_id is None
            and set(interaction.scopes) <= {OPENID, *IDENTITY_SCOPES}
            and interaction.client_id in self._first_party()
        )

    async def show(self, interaction: Interaction) -> Response | None:
        if self.skips(interaction):
            event(log, "federation:consent:first_party", client_id=interaction.client_id)
            return None
        return await self._inner.show(interaction)

    async def decide(self, interaction: Interaction, form: Mapping[str, str]) -> bool:
        return await self._inner.decide(interaction, form)


# --- what the page shows ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Partner:
    """Who asks, as the habilitation says (or the client alone, without one)."""

    organisation: str
    service: str
    demarche: str | None
    labels: Mapping[str, str]  # the habilitation's ``data_labels``


def data_labels(scopes: Iterable[str], declared: Mapping[str, str]) -> list[str]:
    """[003 annexe 1] "sous la forme littérale suivante": the partner's declared label of
    each DGFiP data scope requested, else the catalogue's; in the request's order."""
    return [
        declared.get(scope) or CATALOGUE_LABELS[scope]
        for scope in dict.fromkeys(scopes)
        if scope in IR_DATA_SCOPES
    ]


def revenue_years(scopes: Iterable[str], now: dt.datetime) -> list[str]:
    """The revenue years of the request's ``dgfip_annee_n_moins_*`` scopes, as actual years
    (N is the current year in Paris)."""
    requested = set(scopes)
    n = now.astimezone(PARIS).year
    years = [
        f"Revenus {n - offset} (déclarés en {n - offset + 1})"
        for scope, offset in YEAR_SCOPES.items()
        if scope in requested
    ]
    if YEAR_FALLBACK_SCOPE in requested:
        years.append(
            f"Revenus {n - 2} (déclarés en {n - 1}), si ceux de {n - 1} ne sont pas disponibles"
        )
    return years


def identity_labels(scopes: Iterable[str]) -> list[str]:
    requested = set(scopes)
    return [label for scope, label in IDENTITY_LABELS.items() if scope in requested]


def partner_of(session: Session, interaction: Interaction) -> Partner:
    hab = (
        session.get(Habilitation, interaction.habilitation_id)
        if interaction.habilitation_id is not None
        else None
    )
    if hab is None:
        return Partner(interaction.client_name, interaction.client_name, None, {})
    labels = {str(k): str(v) for k, v in (hab.data_labels or {}).items() if v}
    return Partner(hab.organisation.name, interaction.client_name, hab.demarche, labels)


# --- what the partner may ask for -----------------------------------------------------


def habilitation_refusal(
    session: Session,
    habilitation_id: uuid.UUID | None,
    scopes: Iterable[str],
    now: dt.datetime,
) -> str | None:
    """Why the request's DGFiP scopes exceed the client's habilitation, or None.

    [003 annexe 1] the provider limits access "aux seules offres de services autorisées à ce
    fournisseur de services": a client bound to a habilitation may only ask for the data
    scopes and revenue-year scopes it grants, and only while it is in force. A client bound
    to none (the demo clients) is limited by its registered scopes alone.
    """
    requested = [s for s in dict.fromkeys(scopes) if s in DATA_SCOPES]
    if habilitation_id is None or not requested:
        return None
    hab = session.get(Habilitation, habilitation_id)
    if (
        hab is None
        or hab.status is not HabilitationStatus.ACTIVE
        or utc(hab.valid_from) > now
        or (hab.valid_until is not None and utc(hab.valid_until) <= now)
    ):
        return "The client's habilitation is not in force: no DGFiP data may be requested."
    granted = {*hab.data_scopes, *hab.year_scopes}
    refused = [s for s in requested if s not in granted]
    if refused:
        return f"Scope(s) not granted by the client's habilitation: {' '.join(refused)}."
    return None


# --- the records ------------------------------------------------------------------------


def record_consent(
    session: Session,
    *,
    subject: str,
    client_id: str,
    habilitation_id: uuid.UUID | None,
    scopes: Iterable[str],
    accepted: bool,
    at: dt.datetime,
) -> ConsentRecord:
    """Add one decision in the caller's transaction; ``subject`` is the SPI's pseudonym."""
    row = ConsentRecord(
        subject=subject,
        client_id=client_id,
        habilitation_id=habilitation_id,
        scopes=list(dict.fromkeys(scopes)),
        accepted=accepted,
        at=at,
    )
    session.add(row)
    return row


def months_before(moment: dt.datetime, months: int) -> dt.datetime:
    """The same day and time ``months`` calendar months earlier (clamped to the month's end)."""
    index = moment.year * 12 + moment.month - 1 - months
    year, month = divmod(index, 12)
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    return moment.replace(year=year, month=month + 1, day=day)


def purge_consents(session: Session, now: dt.datetime) -> int:
    """[003 art. 4] traceability kept "pour une durée de trente-six mois": delete the records
    older than 36 months; returns how many."""
    cutoff = months_before(now, RETENTION_MONTHS)
    result = session.execute(
        delete(ConsentRecord)
        .where(ConsentRecord.at < cutoff)
        .execution_options(synchronize_session=False)
    )
    count = int(getattr(result, "rowcount", 0) or 0)
    event(log, "federation:consent:purged", deleted=count, before=cutoff.isoformat())
    return count


# --- the step ---------------------------------------------------------------------------


class ConsentPage:
    """The consent page of issue 5 §2 [003 annexe 1, art. 6]."""

    def __init__(
        self, session_factory: sessionmaker[Session], master: MasterSecret, clock: Clock
    ) -> None:
        self._session_factory = session_factory
        self._master = master
        self._clock = clock

    async def show(self, interaction: Interaction) -> Response | None:
        """[003 art. 6] "que la liste et l'origine des données transmises soient affichées
        sur la page de consentement de l'utilisateur"."""

        def read() -> Partner:
            with self._session_factory() as session:
                return partner_of(session, interaction)

        partner = await run_in_threadpool(read)
        html = _TEMPLATES.get_template("consent.html").render(
            partner=partner,
            citizen=f"{interaction.citizen.given_name} {interaction.citizen.family_name}",
            idp=interaction.idp,
            data=data_labels(interaction.scopes, partner.labels),
            origin=DGFIP_ORIGIN,
            years=revenue_years(interaction.scopes, self._clock.now()),
            identity=identity_labels(interaction.scopes),
            action=interaction.action,
            csrf=interaction.csrf,
            accept=ACCEPT,
            refuse=REFUSE,
        )
        event(log, "federation:consent:shown", client_id=interaction.client_id)
        return HTMLResponse(html, headers=_PAGE_HEADERS)

    async def decide(self, interaction: Interaction, form: Mapping[str, str]) -> bool:
        """Only an explicit "accept" is consent [003 § 1.3.3 "consentement préalable et
        explicite"]; anything else is a refusal. Either way the answer is recorded."""
        accepted = form.get("decision") == ACCEPT
        subject = self._master.pseudonym(interaction.citizen.spi)
        now = self._clock.now()

        def write() -> None:
            with self._session_factory() as session, session.begin():
                record_consent(
                    session,
                    subject=subject,
                    client_id=interaction.client_id,
                    habilitation_id=interaction.habilitation_id,
                    scopes=interaction.scopes,
                    accepted=accepted,
                    at=now,
                )

        await run_in_threadpool(write)
        event(
            log,
            "federation:consent:recorded",
            client_id=interaction.client_id,
            accepted=accepted,
        )
        return accepted
