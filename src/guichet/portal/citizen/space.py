"""The citizen's space as the portal holds it: its database, secrets and relying party, and
who is signed in (read from the citizen's cookie)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import httpx
from sqlalchemy.orm import Session, sessionmaker
from starlette.requests import Request

from guichet.clock import Clock
from guichet.portal.citizen.cookie import CitizenCookie
from guichet.portal.citizen.history import ExchangeHistory
from guichet.portal.citizen.identity import Citizen
from guichet.portal.citizen.relying_party import FederationRelyingParty, load_portal_client
from guichet.portal.runtime import PortalRuntime
from guichet.portal.web import current_session
from guichet.secrets import MasterSecret

HOME_PATH: Final = "/mes-donnees"
CALLBACK_PATH: Final = "/mes-donnees/retour"
EXCHANGES_PATH: Final = "/mes-donnees/echanges"


@dataclass
class CitizenSpace:
    """What the citizen's pages need; ``relying_party`` is None until ``guichet init`` has
    registered the portal at the federation (then the pages say it is not configured)."""

    session_factory: sessionmaker[Session]
    master: MasterSecret
    clock: Clock
    issuer: str
    redirect_uri: str
    data_dir: Path
    transport: httpx.AsyncBaseTransport | None = None
    history: ExchangeHistory = field(init=False)
    cookie: CitizenCookie = field(init=False)
    _party: FederationRelyingParty | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.history = ExchangeHistory(self.session_factory)
        self.cookie = CitizenCookie(self.master, self.clock)

    @classmethod
    def from_runtime(
        cls,
        runtime: PortalRuntime,
        *,
        issuer: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> CitizenSpace:
        settings = runtime.settings
        return cls(
            session_factory=runtime.session_factory,
            master=runtime.master,
            clock=runtime.clock,
            issuer=(issuer or settings.embedded_federation_url).rstrip("/"),
            redirect_uri=f"{settings.resolved_portal_url}{CALLBACK_PATH}",
            data_dir=settings.data_dir,
            transport=transport,
        )

    def relying_party(self) -> FederationRelyingParty | None:
        """The relying party, once the portal's credentials exist (read when they appear)."""
        if self._party is None:
            client = load_portal_client(self.data_dir)
            if client is not None:
                self._party = FederationRelyingParty(
                    self.issuer, client, self.redirect_uri, self.clock, transport=self.transport
                )
        return self._party


def space(request: Request) -> CitizenSpace:
    found = request.app.state.citizen
    assert isinstance(found, CitizenSpace)
    return found


async def signed_in(request: Request) -> Citizen | None:
    data = space(request).cookie.load(request, await current_session(request))
    subject, name = data.get("subject"), data.get("name")
    if isinstance(subject, str) and isinstance(name, str) and subject:
        return Citizen(subject, name)
    return None
