"""The call context: what one API call carries through the gateway's control chain, and what an
API operation implements. The APIs import it and the domains only; the gateway fills it."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Protocol

from cryptography import x509
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from starlette.requests import Request

from guichet.catalog.products import ApiProduct, Operation
from guichet.clock import Clock
from guichet.habilitation.models import Environment
from guichet.oauth.policy import ClientPolicy, HabilitationPolicy


@dataclass(slots=True)
class CallContext:
    """Filled step by step: by the edge, then by each check of the chain."""

    environment: Environment
    correlation_id: str
    source_ip: str
    now: dt.datetime
    method: str
    path: str
    certificate: x509.Certificate | None = None
    cert_thumbprint: str | None = None  # RFC 8705 x5t#S256 of the presented certificate
    authorization: str | None = None
    product: ApiProduct | None = None
    operation: Operation | None = None
    token_claims: dict[str, Any] | None = None
    client: ClientPolicy | None = None
    habilitation: HabilitationPolicy | None = None
    # Set by the operation once it knows whom the call is about; only its pseudonym is journaled.
    subject_spi: str | None = None
    # A search about several persons or companies (API FICOBA): the SPI or SIREN of each,
    # and the search type; only their pseudonyms are journaled, never the criteria.
    subjects: list[str] = field(default_factory=list)
    search_type: str | None = None
    request_id: str | None = None  # the caller's X-Request-ID (API FICOBA), echoed back
    data_scopes_returned: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ApiResponse:
    """A served answer: ``body`` as JSON in ``media_type``; or, with ``status`` 204 (the
    provider's "no answer can be given"), no content at all (``body`` None). Either way the
    call is journaled as served (outcome ``ok``), with the data scopes the operation set."""

    body: Any
    media_type: str
    status: int = 200

    @property
    def has_content(self) -> bool:
        return self.status != NO_CONTENT


NO_CONTENT = 204


class OperationHandler(Protocol):
    """One API operation, split so the chain can check rights between parsing and fetching."""

    def parse(self, request: Request, body: Any) -> Any:
        """Validate path, query and ``body`` (the decoded JSON document of a POST, None for a
        GET); raise a ``BadRequest`` naming the field at fault."""
        ...

    def authorize(self, ctx: CallContext, params: Any) -> None:
        """Operation-specific rights (revenue year, access mode…); raise a ``Forbidden``."""
        ...

    async def fetch(self, ctx: CallContext, params: Any) -> ApiResponse:
        """Read the environment's store; set ``ctx.subject_spi`` and ``ctx.data_scopes_returned``;
        raise ``NotFound`` when there is nothing for this person."""
        ...


@dataclass(frozen=True, slots=True)
class ApiDeps:
    """What an API package needs to build its operation handlers."""

    session_factory: sessionmaker[Session]
    clock: Clock

    @property
    def engine(self) -> Engine:
        """The factory's engine, for Core reads on the hot path."""
        bind = self.session_factory.kw["bind"]
        assert isinstance(bind, Engine)
        return bind
