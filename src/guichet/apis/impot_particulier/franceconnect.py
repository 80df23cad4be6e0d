"""API Impôt Particulier in FranceConnect mode: the person is the citizen whose federation
access token the partner sends in ``X-FranceConnect-OAuth`` [003 annexe 3 §3.4, DESIGN].

After the gateway's chain and ``authorize`` (access mode ``franceconnect``, data scopes,
years), ``FranceConnectGate.identify`` checks the token with the federation and decides:

1. the token is active (``federation.checktoken``: RFC 9701 answer, verified);
2. it was issued to a federation client of the calling partner's habilitation: the token's
   ``client_id`` must be one of the habilitation's federation clients in the policy
   snapshot (declared with the request — the real FranceConnect's or the sandbox's — or
   bound at the sandbox federation; ``federation_client_habilitation``); else 403
   ``federation_client_not_habilitated``;
3. its scopes cover the data this call returns — the habilitation's data scopes of the
   resource that the federation can carry (``federation.scopes.DATA_SCOPES``: a catalogue
   scope the federation never issues, e.g. ``dgfip_montantimpot``, is neither required nor
   returned in this mode), and the requested revenue year (the citizen consented to both);
   else 403 ``federation_scope_not_granted``;
4. the identity pivot designates exactly one person of this environment's store (birth name
   in the provider's canonical form, first first-name, birth date, sex, birth country and,
   born in France, COG birth commune); none or several → 404, whoever has a situation.

Then the SPI mode's reading, year rules and filtering run for that person, so the journal
records the same thing as in SPI mode (the subject's pseudonym, the scopes returned).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Final

from starlette.requests import Request

from guichet.apis.context import ApiDeps, ApiResponse, CallContext
from guichet.apis.impot_particulier.operations import (
    RECORD_SCOPES,
    IrOperation,
    IrParams,
    Resource,
    parse_annrev,
)
from guichet.apis.impot_particulier.years import granted_years
from guichet.errors import (
    AccessModeNotGranted,
    DataScopeNotGranted,
    Forbidden,
    HabilitationUnknown,
    NotFound,
    UpstreamUnavailable,
    YearNotGranted,
)
from guichet.federation.checktoken import RETRY_AFTER, FederationCheck, FederationTokenMissing
from guichet.federation.pivot import persons_of_pivot
from guichet.federation.scopes import DATA_SCOPES as FEDERATION_DATA_SCOPES
from guichet.habilitation.models import AccessMode, Environment
from guichet.logs import event
from guichet.oauth.policy import HabilitationPolicy

log = logging.getLogger(__name__)

ACCESS_MODE: Final = AccessMode.FRANCECONNECT.value
HEADER: Final = "X-FranceConnect-OAuth"
# The record's scopes a citizen can consent to at the federation: the only ones this mode
# can ever serve (derived, so a scope added to both tables is served at once).
CARRIED_RECORD_SCOPES: Final = RECORD_SCOPES & FEDERATION_DATA_SCOPES


class FederationScopeNotGranted(Forbidden):
    code = "federation_scope_not_granted"
    title = "Données ou année non consenties par l'usager (portées du jeton FranceConnect)"


class FederationClientNotHabilitated(Forbidden):
    code = "federation_client_not_habilitated"
    title = "Jeton FranceConnect émis pour un service d'une autre habilitation"


# --- request and rights ----------------------------------------------------------------


def federation_token(request: Request) -> str:
    """The citizen's federation access token, from ``X-FranceConnect-OAuth`` (a bare token;
    a ``Bearer`` prefix is tolerated)."""
    raw = (request.headers.get(HEADER) or "").strip()
    scheme, _, rest = raw.partition(" ")
    token = rest.strip() if scheme.lower() == "bearer" else raw
    if not token or " " in token:
        raise FederationTokenMissing(
            f"En-tête {HEADER} attendu : le jeton d'accès FranceConnect de l'usager.",
            field=HEADER,
        )
    return token


def franceconnect_habilitation(ctx: CallContext) -> HabilitationPolicy:
    """The habilitation, which must grant the FranceConnect access mode [003 annexe 3 §3.4]."""
    if ctx.habilitation is None:
        raise HabilitationUnknown()
    if ACCESS_MODE not in ctx.habilitation.access_modes:
        raise AccessModeNotGranted("Le mode d'accès FranceConnect n'est pas habilité.")
    return ctx.habilitation


def check_year(hab: HabilitationPolicy, ctx: CallContext, annrev: int | None, field: str) -> None:
    """The habilitation's revenue years, as in SPI mode."""
    grant = granted_years(hab.year_scopes, ctx.now)
    if annrev is None:
        if not grant.years and grant.fallback_year is None:
            raise YearNotGranted("Aucune année de revenus n'est habilitée.")
    elif not grant.allows(annrev):
        raise YearNotGranted(f"L'année de revenus {annrev} n'est pas habilitée.", field=field)


# --- read-only lookups -----------------------------------------------------------------


def federation_client_habilitation(hab: HabilitationPolicy, client_id: str) -> uuid.UUID | None:
    """``hab``'s id when ``client_id`` is one of its federation clients (the snapshot's
    ``federation_clients``, whatever federation the environment is configured with); None
    otherwise (another partner's, unknown, disabled or data-provider client)."""
    return hab.id if client_id in hab.federation_clients else None


# --- the gate ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Identified:
    """Whom the call is about, and the habilitation narrowed to what the citizen consented."""

    spi: str
    habilitation: HabilitationPolicy


class FranceConnectGate:
    """Checks the federation token and designates the person; shared by every
    FranceConnect-mode operation (this package's and the OS contract's)."""

    def __init__(self, deps: ApiDeps, checks: Mapping[Environment, FederationCheck]) -> None:
        self._deps = deps
        self._checks = dict(checks)

    async def identify(
        self,
        ctx: CallContext,
        token: str,
        data_scopes: frozenset[str],
        annrev: int | None,
    ) -> Identified:
        """The person designated by ``token``, for a call returning ``data_scopes`` of
        ``annrev`` (None: the two most recent granted years); raises a domain error."""
        hab = franceconnect_habilitation(ctx)
        check = self._checks.get(ctx.environment)
        if check is None:
            raise UpstreamUnavailable(
                "Aucun fournisseur d'identité n'est configuré pour cet environnement.",
                retry_after=RETRY_AFTER,
            )
        identity = await check.check(token)
        store = ctx.environment.value
        # A scope the federation never issues could never be consented to: not required.
        data_scopes = data_scopes & FEDERATION_DATA_SCOPES

        if federation_client_habilitation(hab, identity.client_id) != hab.id:
            event(log, "franceconnect:client_refused", client_id=identity.client_id)
            raise FederationClientNotHabilitated(
                "Le jeton FranceConnect a été émis pour un service qui n'appartient pas à "
                "cette habilitation."
            )

        def lookup() -> list[str]:
            with self._deps.engine.connect() as conn:
                return persons_of_pivot(conn, store, identity.pivot)

        spis = await asyncio.to_thread(lookup)
        missing = sorted(data_scopes - identity.scopes)
        if missing:
            raise FederationScopeNotGranted(
                "L'usager n'a pas consenti à la transmission de : " + ", ".join(missing) + "."
            )
        consented_years = hab.year_scopes & identity.scopes
        grant = granted_years(consented_years, ctx.now)
        if annrev is not None and not grant.allows(annrev):
            raise FederationScopeNotGranted(
                f"L'usager n'a pas consenti à la transmission de l'année {annrev}."
            )
        if annrev is None and not grant.years and grant.fallback_year is None:
            raise FederationScopeNotGranted("L'usager n'a consenti à aucune année de revenus.")
        if len(spis) != 1:
            event(log, "franceconnect:pivot_unmatched", candidates=len(spis))
            raise NotFound()
        narrowed = replace(
            hab, data_scopes=hab.data_scopes & identity.scopes, year_scopes=consented_years
        )
        return Identified(spis[0], narrowed)


async def fetch_as(
    ctx: CallContext, who: Identified, operation: IrOperation, params: IrParams
) -> ApiResponse:
    """Run SPI mode's reading and filtering for the identified person, under the habilitation
    narrowed to the consent (restored afterwards: the journal names the real one)."""
    original = ctx.habilitation
    ctx.habilitation = who.habilitation
    try:
        return await operation.fetch(ctx, params)
    finally:
        ctx.habilitation = original


# --- the operations ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FcParams:
    token: str
    annrev: int | None  # None for ``deuxans``

    def __repr__(self) -> str:  # never print the token
        return f"FcParams(annrev={self.annrev!r})"


class FcIrOperation:
    """One of the four IR "assiettes" resources, for the citizen of the federation token."""

    def __init__(self, deps: ApiDeps, resource: Resource, gate: FranceConnectGate) -> None:
        self.resource = resource
        self._gate = gate
        self._spi_mode = IrOperation(deps, resource)

    def parse(self, request: Request, body: Any = None) -> FcParams:
        annrev = None
        if self.resource is not Resource.DEUXANS:
            annrev = parse_annrev(request.path_params.get("annrev"))
        return FcParams(federation_token(request), annrev)

    def authorize(self, ctx: CallContext, params: FcParams) -> None:
        """Rights on the data for the period [SPEC §5 check 5]: access mode, data scopes,
        year; the federation token is checked in ``fetch`` (it needs a network call)."""
        hab = franceconnect_habilitation(ctx)
        if not hab.data_scopes & CARRIED_RECORD_SCOPES:
            raise DataScopeNotGranted(
                "Aucune donnée habilitée ne peut être consentie par l'usager via FranceConnect."
            )
        check_year(hab, ctx, params.annrev, "annrev")

    async def fetch(self, ctx: CallContext, params: FcParams) -> ApiResponse:
        hab = franceconnect_habilitation(ctx)
        who = await self._gate.identify(
            ctx, params.token, hab.data_scopes & CARRIED_RECORD_SCOPES, params.annrev
        )
        return await fetch_as(ctx, who, self._spi_mode, IrParams(who.spi, params.annrev))


def build_franceconnect_operations(
    deps: ApiDeps, gate: FranceConnectGate
) -> dict[str, FcIrOperation]:
    """The FranceConnect-mode handlers, keyed by the catalogue's operation names."""
    return {
        "ir_assiettes_fc": FcIrOperation(deps, Resource.ASSIETTES, gate),
        "ir_assiettes_multiple_fc": FcIrOperation(deps, Resource.MULTIPLE, gate),
        "ir_derniere_situation_fc": FcIrOperation(deps, Resource.DERNIERE, gate),
        "ir_derniere_situation_deuxans_fc": FcIrOperation(deps, Resource.DEUXANS, gate),
    }
