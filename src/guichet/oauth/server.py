"""The authorization server of one environment as Starlette routes, on Authlib's generic server.

Authlib has no Starlette integration, so ``_Server`` subclasses its framework-neutral
``AuthorizationServer`` as its docs describe: it builds ``OAuth2Request`` objects from an
already-read form, renders responses, and looks clients up in the database. Authlib then does
the protocol: grant dispatch, ``client_secret_basic`` / ``client_secret_post``, RFC 6749 §5.2
errors, RFC 7662 introspection and RFC 7009 revocation. Guichet adds the RFC 8705 methods
(``rfc8705``), the rule that a declared client certificate is presented at every endpoint,
and JWT access tokens bound to it (``tokens``). Like every gateway response, each answer
carries ``X-Correlation-ID``; refusals at ``/token`` are journaled.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final, cast
from urllib.parse import parse_qsl

from authlib.oauth2.rfc6749 import (
    AuthorizationServer,
    ClientMixin,
    InvalidClientError,
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Error,
    OAuth2Request,
    TokenMixin,
    UnauthorizedClientError,
)
from authlib.oauth2.rfc6749.grants import ClientCredentialsGrant
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oauth2.rfc6749.util import extract_basic_authorization, scope_to_list
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from cryptography import x509
from joserfc.jwk import ECKey
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from guichet.catalog.products import RESOURCE_SCOPES
from guichet.clock import Clock, utc
from guichet.db.models import bump_generation
from guichet.edge import (
    Network,
    PresentedCertificate,
    client_certificate,
    client_ip,
)
from guichet.edge import correlation_id as request_correlation_id
from guichet.errors import GuichetError, JournalUnavailable
from guichet.habilitation.models import Environment, Habilitation, HabilitationStatus
from guichet.journal.service import JournalEntry, JournalWriter
from guichet.logs import event
from guichet.oauth import keys as signing_keys
from guichet.oauth import rfc8705
from guichet.oauth.clients import AUTH_METHODS
from guichet.oauth.models import Client, RevokedToken, SigningKey
from guichet.oauth.policy import PolicyCache
from guichet.oauth.tokens import issue_access_token, verify_access_token
from guichet.pki.verify import ChainVerifier
from guichet.secrets import MasterSecret, check_secret

log = logging.getLogger(__name__)

GRANT_TYPE: Final = "client_credentials"
_MAX_BODY: Final = 16 * 1024
_FORM: Final = "application/x-www-form-urlencoded"
_ANY_METHOD: Final = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
# RFC 6749 §5.2 error_description (ASCII only) for the errors Authlib raises without one.
_DESCRIPTIONS: Final = {
    "unsupported_grant_type": "Only grant_type=client_credentials is supported.",
    "invalid_request": "A required parameter is missing or malformed.",
    "invalid_grant": "The token was not issued to this client.",
    "unsupported_token_type": "This token type is not supported.",
    "invalid_scope": "The requested scope is not granted to this client.",
}


@dataclass(frozen=True, slots=True)
class OAuthDeps:
    """What the authorization server of one environment needs."""

    environment: Environment
    issuer: str  # this environment's public origin (https), the tokens' ``iss``
    audience: str  # this environment's gateway, the tokens' ``aud``
    session_factory: sessionmaker[Session]
    master: MasterSecret
    clock: Clock
    cache: PolicyCache
    trusted_proxies: list[Network] = field(default_factory=list)
    client_cert_header: str = "Client-Cert"
    token_lifetime: int = 3600
    service_documentation: str | None = None
    # RFC 8705 §2.1: the CAs a tls_client_auth certificate must chain to (the gateway's own
    # trust store); empty, that method is refused (no chain can be validated).
    trust_store: Sequence[x509.Certificate] = ()
    # Where refusals at /token are recorded, as the gateway records refused calls.
    journal: JournalWriter | None = None


# (client id, habilitation id, partner id) of a refused token request, when known.
_Identity = tuple[str | None, uuid.UUID | None, uuid.UUID | None]


# --- Authlib models ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _DeclaredCertificate:
    not_before: dt.datetime
    not_after: dt.datetime


@dataclass(frozen=True, slots=True)
class _Client(ClientMixin):  # type: ignore[misc]
    """A client as the server sees it during one request: its row and its habilitation."""

    client_id: str
    environment: Environment
    scopes: frozenset[str]
    auth_methods: frozenset[str]
    secret_hash: str | None
    habilitation_id: uuid.UUID
    organisation_id: uuid.UUID
    habilitation_environment: Environment
    habilitation_status: HabilitationStatus
    valid_from: dt.datetime
    valid_until: dt.datetime | None
    certificates: Mapping[str, _DeclaredCertificate]  # thumbprint → validity

    def get_client_id(self) -> str:
        return self.client_id

    def check_client_secret(self, client_secret: str) -> bool:
        return self.secret_hash is not None and check_secret(client_secret, self.secret_hash)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in self.auth_methods

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == GRANT_TYPE


@dataclass(frozen=True, slots=True)
class _AccessToken(TokenMixin):  # type: ignore[misc]
    claims: dict[str, Any]
    revoked: bool

    def check_client(self, client: _Client) -> bool:
        return bool(self.claims.get("client_id") == client.client_id)

    def get_scope(self) -> str:
        return str(self.claims.get("scope", ""))

    def get_expires_in(self) -> int:
        return int(self.claims["exp"]) - int(self.claims["iat"])

    def is_expired(self) -> bool:
        return False  # only verified, unexpired tokens become _AccessToken

    def is_revoked(self) -> bool:
        return self.revoked


class _Request(OAuth2Request):  # type: ignore[misc]
    """An ``OAuth2Request`` over a form read beforehand (Starlette reads bodies asynchronously)."""

    def __init__(
        self,
        method: str,
        uri: str,
        headers: Mapping[str, str],
        form: dict[str, str],
        certificate: PresentedCertificate | None,
        correlation_id: str = "",
    ) -> None:
        super().__init__(method, uri, headers=headers)
        self._form = form
        self.payload = BasicOAuth2Payload(form)
        self.certificate = certificate
        self.correlation_id = correlation_id
        self.auth_failure: str | None = None

    @property
    def form(self) -> dict[str, str]:
        return self._form

    @property
    def args(self) -> dict[str, str]:
        return {}


def _safe(text: str) -> str:
    """RFC 6749 §5.2: error_description "MUST NOT include characters outside the set
    %x20-21 / %x23-5B / %x5D-7E" — the caller's own input is echoed only within it."""
    return "".join(c if 0x20 <= ord(c) <= 0x7E and c not in '"\\' else "?" for c in text)


def _carries_secret(request: _Request) -> bool:
    """RFC 6749 §2.3: "The client MUST NOT use more than one authentication method in each
    request" — a request with a secret is judged on that secret alone."""
    basic_id, _ = extract_basic_authorization(request.headers)
    return bool(basic_id) or "client_secret" in request.form


def _claimed_client_id(request: _Request) -> str | None:
    """The client id the request names, authenticated or not (form, else Basic)."""
    basic_id, _ = extract_basic_authorization(request.headers)
    return request.form.get("client_id") or basic_id or None


def _mtls_method(
    method: str, check: Callable[[PresentedCertificate, Any], None]
) -> Callable[[Callable[[str], _Client | None], _Request], _Client | None]:
    """An Authlib client-auth function for an RFC 8705 §2 method.

    RFC 8705 §2: "For all requests to the authorization server utilizing mutual-TLS client
    authentication, the client MUST include the client_id parameter".
    """

    def authenticate(
        query_client: Callable[[str], _Client | None], request: _Request
    ) -> _Client | None:
        client_id = request.form.get("client_id")
        if not client_id or request.certificate is None or _carries_secret(request):
            return None
        client = query_client(client_id)
        if client is None or method not in client.auth_methods:
            return None
        try:
            check(request.certificate, client.certificates.keys())
        except GuichetError as exc:
            request.auth_failure = f"{method}: {exc.code}"
            return None
        return client

    return authenticate


# --- grants and endpoints --------------------------------------------------------------


class _ClientCredentialsGrant(ClientCredentialsGrant):  # type: ignore[misc]
    """RFC 6749 §4.4, with the habilitation checks and JWT tokens bound to the certificate."""

    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = list(AUTH_METHODS)
    server: _Server

    def validate_token_request(self) -> None:
        client: _Client = self.authenticate_token_endpoint_client()
        self.request.client = client
        self.server.check_habilitation(client)
        self.validate_requested_scope()

    def validate_requested_scope(self) -> None:
        """RFC 6749 §3.3: the requested scope must lie within what the client was granted;
        RFC 6749 §5.2 ``invalid_scope`` otherwise."""
        client: _Client = self.request.client
        requested = scope_to_list(self.request.payload.scope) or []
        refused = sorted(set(requested) - client.scopes)
        if refused:
            raise InvalidScopeError(
                description=_safe(f"Scope(s) not granted to this client: {' '.join(refused)}")
            )

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        """RFC 6749 §4.4.3 / §5.1; an empty request gets every scope the client holds."""
        client: _Client = self.request.client
        requested = scope_to_list(self.request.payload.scope) or []
        scopes = list(dict.fromkeys(requested)) or sorted(client.scopes)
        certificate = self.request.certificate
        assert certificate is not None  # checked in _Server.authenticate_client
        token = self.server.issue(client, scopes, certificate)
        return 200, token, self.TOKEN_RESPONSE_HEADER


class _Introspection(IntrospectionEndpoint):  # type: ignore[misc]
    """RFC 7662, restricted to the authenticated client's own tokens."""

    CLIENT_AUTH_METHODS: ClassVar[list[str]] = list(AUTH_METHODS)
    server: _Server

    def query_token(self, token_string: str, token_type_hint: str | None) -> _AccessToken | None:
        return self.server.lookup_token(token_string)

    def check_permission(self, token: _AccessToken, client: _Client, request: _Request) -> bool:
        """RFC 7662 §4: the server "MUST determine whether or not the protected resource is
        allowed to introspect" — here, a client sees only the tokens issued to itself."""
        return token.check_client(client)

    def introspect_token(self, token: _AccessToken) -> dict[str, Any]:
        """RFC 7662 §2.2, plus RFC 8705 §3.2's ``cnf`` member."""
        keep = ("scope", "client_id", "sub", "aud", "iss", "exp", "iat", "nbf", "jti", "cnf")
        return {
            "active": True,
            "token_type": "Bearer",
            **{k: token.claims[k] for k in keep if k in token.claims},
        }


class _Revocation(RevocationEndpoint):  # type: ignore[misc]
    """RFC 7009; revoked ``jti``s reach the gateway through the policy snapshot."""

    CLIENT_AUTH_METHODS: ClassVar[list[str]] = list(AUTH_METHODS)
    server: _Server

    def query_token(self, token_string: str, token_type_hint: str | None) -> _AccessToken | None:
        return self.server.lookup_token(token_string)

    def revoke_token(self, token: _AccessToken, request: _Request) -> None:
        self.server.revoke(token)


class _Server(AuthorizationServer):  # type: ignore[misc]
    def __init__(self, deps: OAuthDeps) -> None:
        super().__init__(scopes_supported=sorted(RESOURCE_SCOPES))
        self.deps = deps
        self._private_keys: dict[str, ECKey] = {}
        # The gateway's chain validation (``guichet.pki.verify``), at the request's time.
        self.verifier = ChainVerifier(deps.trust_store)
        self.register_grant(_ClientCredentialsGrant)
        self.register_endpoint(_Introspection)
        self.register_endpoint(_Revocation)

        def pki_method(presented: PresentedCertificate, declared: Any) -> None:
            rfc8705.tls_client_auth(presented, declared, self.verifier, deps.clock.now())

        self.register_client_auth_method(
            "tls_client_auth", _mtls_method("tls_client_auth", pki_method)
        )
        self.register_client_auth_method(
            "self_signed_tls_client_auth",
            _mtls_method("self_signed_tls_client_auth", rfc8705.self_signed_tls_client_auth),
        )

    # framework integration -------------------------------------------------------------

    def create_oauth2_request(self, request: _Request) -> _Request:
        return request

    def handle_response(self, status: int, body: Any, headers: list[tuple[str, str]]) -> Response:
        extra = {k: v for k, v in headers if k.lower() != "content-type"}
        extra["Cache-Control"] = "no-store"
        extra["Pragma"] = "no-cache"
        return JSONResponse(body, status_code=status, headers=extra)

    def handle_error_response(self, request: _Request | None, error: OAuth2Error) -> Response:
        if not error.description:
            error.description = _DESCRIPTIONS.get(error.error, "The request was refused.")
        event(
            log,
            "oauth:request:refused",
            environment=self.deps.environment.value,
            error=error.error,
            status=error.status_code,
            client_id=request.client.client_id if request is not None and request.client else None,
            correlation_id=request.correlation_id if request is not None else None,
        )
        return super().handle_error_response(request, error)  # type: ignore[no-any-return]

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        """Authlib's hook points; nothing listens."""

    def save_token(self, token: dict[str, Any], request: _Request) -> None:
        """Access tokens are self-contained JWTs: nothing to store."""

    # clients ---------------------------------------------------------------------------

    def query_client(self, client_id: str) -> _Client | None:
        with self.deps.session_factory() as session:
            row = session.scalars(select(Client).where(Client.client_id == client_id)).first()
            if row is None or row.disabled:
                return None
            if row.environment != self.deps.environment:
                # Said plainly: mixing up the two environments' credentials is a common mistake.
                raise InvalidClientError(
                    status_code=401,
                    description=(
                        f"This client belongs to the {row.environment.value} environment, "
                        f"not to {self.deps.environment.value}."
                    ),
                )
            hab = session.scalars(
                select(Habilitation)
                .where(Habilitation.id == row.habilitation_id)
                .options(selectinload(Habilitation.certificates))
            ).one()
            return _Client(
                client_id=row.client_id,
                environment=row.environment,
                scopes=frozenset(row.scopes),
                auth_methods=frozenset(row.auth_methods),
                secret_hash=row.secret_hash,
                habilitation_id=hab.id,
                organisation_id=hab.organisation_id,
                habilitation_environment=hab.environment,
                habilitation_status=hab.status,
                valid_from=utc(hab.valid_from),
                valid_until=utc(hab.valid_until) if hab.valid_until else None,
                certificates={
                    c.thumbprint: _DeclaredCertificate(utc(c.not_before), utc(c.not_after))
                    for c in hab.certificates
                },
            )

    def authenticate_client(
        self, request: _Request, methods: list[str], endpoint: str = "token"
    ) -> _Client:
        """Authlib's method registry, framed by guichet's rule: every request to the
        authorization server presents a client certificate declared on the client's
        habilitation, valid now — whatever the authentication method."""
        if request.certificate is None:
            raise InvalidClientError(
                status_code=401,
                description="A client certificate is required (mutual TLS) at this endpoint.",
            )
        try:
            client: _Client = super().authenticate_client(request, methods, endpoint)
        except InvalidClientError as exc:
            exc.status_code = 401
            if request.auth_failure:
                exc.description = f"Client authentication failed ({request.auth_failure})."
            elif exc.description.startswith("The client cannot authenticate"):
                exc.description = "Client authentication failed."
            raise
        declared = client.certificates.get(request.certificate.thumbprint)
        if declared is None:
            raise InvalidClientError(
                status_code=401,
                description="The client certificate is not declared on the client's habilitation.",
            )
        now = self.deps.clock.now()
        if not declared.not_before <= now <= declared.not_after:
            raise InvalidClientError(
                status_code=401, description="The client certificate is outside its validity dates."
            )
        return client

    def refused_identity(self, request: _Request) -> _Identity:
        """(client id, habilitation, partner) of a refused /token request, for its journal
        record: the authenticated client, else the client the request names if it exists
        (an id nobody holds is not recorded: it may be anything the caller typed)."""
        if request.client is not None:
            c: _Client = request.client
            return c.client_id, c.habilitation_id, c.organisation_id
        claimed = _claimed_client_id(request)
        if not claimed:
            return None, None, None
        with self.deps.session_factory() as session:
            row = session.execute(
                select(Client.client_id, Habilitation.id, Habilitation.organisation_id)
                .join(Habilitation, Habilitation.id == Client.habilitation_id)
                .where(Client.client_id == claimed)
            ).first()
        if row is None:
            return None, None, None
        return row[0], row[1], row[2]

    def check_habilitation(self, client: _Client) -> None:
        """Tokens only for a habilitation that is active, in this environment, within its dates."""
        env = self.deps.environment
        now = self.deps.clock.now()
        if client.habilitation_environment != env:
            reason = "The client's habilitation belongs to another environment."
        elif client.habilitation_status is not HabilitationStatus.ACTIVE:
            reason = f"The client's habilitation is {client.habilitation_status.value}."
        elif now < client.valid_from or (
            client.valid_until is not None and now > client.valid_until
        ):
            reason = "The client's habilitation is outside its validity dates."
        else:
            return
        raise UnauthorizedClientError(description=reason)

    # tokens ----------------------------------------------------------------------------

    def _signing_key(self) -> tuple[str, ECKey]:
        deps = self.deps
        with deps.session_factory() as session, session.begin():
            row = signing_keys.active_key(session, deps.environment)
            if row is None:
                row = signing_keys.ensure_signing_key(
                    session, deps.environment, deps.master, deps.clock.now()
                )
            kid = row.kid
            key = self._private_keys.get(kid)
            if key is None:
                key = signing_keys.load_private_key(row, deps.master)
                self._private_keys[kid] = key
        return kid, key

    def issue(
        self, client: _Client, scopes: list[str], certificate: PresentedCertificate
    ) -> dict[str, Any]:
        deps = self.deps
        kid, key = self._signing_key()
        access_token = issue_access_token(
            key=key,
            kid=kid,
            issuer=deps.issuer,
            audience=deps.audience,
            client_id=client.client_id,
            scopes=scopes,
            cert_thumbprint=certificate.thumbprint,
            now=deps.clock.now(),
            lifetime=deps.token_lifetime,
        )
        log.info(
            "oauth:token:issued environment=%s client_id=%s habilitation_id=%s scope=%s",
            deps.environment.value,
            client.client_id,
            client.habilitation_id,
            " ".join(scopes),
        )
        return {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": deps.token_lifetime,
            "scope": " ".join(scopes),
        }

    def lookup_token(self, token_string: str) -> _AccessToken | None:
        """A token this environment issued, still within its lifetime; else None."""
        deps = self.deps
        with deps.session_factory() as session:
            keys = {
                k.kid: k.public_jwk
                for k in session.scalars(
                    select(SigningKey).where(SigningKey.environment == deps.environment)
                )
            }
            try:
                claims = verify_access_token(
                    token_string,
                    issuer=deps.issuer,
                    audience=deps.audience,
                    keys=keys,
                    now=deps.clock.now(),
                )
            except GuichetError:
                return None
            revoked = session.get(RevokedToken, claims["jti"]) is not None
        return _AccessToken(claims, revoked)

    def revoke(self, token: _AccessToken) -> None:
        deps = self.deps
        claims = token.claims
        try:
            with deps.session_factory() as session, session.begin():
                if session.get(RevokedToken, claims["jti"]) is not None:
                    if claims["jti"] not in deps.cache.snapshot.revoked_jtis:
                        deps.cache.reload()  # revoked through another worker, not yet polled
                    return
                session.add(
                    RevokedToken(
                        jti=claims["jti"],
                        environment=deps.environment,
                        client_id=claims["client_id"],
                        expires_at=dt.datetime.fromtimestamp(claims["exp"], dt.UTC),
                        revoked_at=deps.clock.now(),
                    )
                )
                bump_generation(session)
        except IntegrityError:
            pass  # revoked concurrently: the outcome is the same
        # This worker refuses the token on its very next call, without waiting for its
        # poller; the other workers follow through the generation just bumped (≤ 0.2 s).
        deps.cache.reload()
        log.info(
            "oauth:token:revoked environment=%s client_id=%s jti=%s",
            deps.environment.value,
            claims["client_id"],
            claims["jti"],
        )


# --- metadata ----------------------------------------------------------------------------


class _Metadata(AuthorizationServerMetadata):  # type: ignore[misc]
    def validate_response_types_supported(self) -> None:
        """RFC 8414 §2 makes the array REQUIRED; a server without an authorization endpoint
        (client credentials only) supports no response type, so it is present and empty."""
        if not isinstance(self.get("response_types_supported"), list):
            raise ValueError('"response_types_supported" MUST be JSON array')


def metadata(deps: OAuthDeps) -> dict[str, Any]:
    """RFC 8414 §2 authorization server metadata, with RFC 8705 §3.3's
    ``tls_client_certificate_bound_access_tokens``."""
    base = deps.issuer.rstrip("/")
    methods = list(AUTH_METHODS)
    doc: dict[str, Any] = {
        "issuer": deps.issuer,
        "token_endpoint": f"{base}/token",
        "jwks_uri": f"{base}/jwks",
        "introspection_endpoint": f"{base}/introspect",
        "revocation_endpoint": f"{base}/revoke",
        "scopes_supported": sorted(RESOURCE_SCOPES),
        "response_types_supported": [],
        "grant_types_supported": [GRANT_TYPE],
        "token_endpoint_auth_methods_supported": methods,
        "introspection_endpoint_auth_methods_supported": methods,
        "revocation_endpoint_auth_methods_supported": methods,
        "tls_client_certificate_bound_access_tokens": True,
    }
    if deps.service_documentation:
        doc["service_documentation"] = deps.service_documentation
    _Metadata(doc).validate()
    return doc


# --- routes ------------------------------------------------------------------------------


def token_routes(deps: OAuthDeps) -> list[BaseRoute]:
    """``/token``, ``/introspect``, ``/revoke``, ``/jwks`` and the RFC 8414 document."""
    server = _Server(deps)
    document = metadata(deps)  # validated once, at start-up
    base = deps.issuer.rstrip("/")

    async def read(request: Request, correlation_id: str) -> _Request | Response:
        try:
            certificate = client_certificate(
                cast(dict[str, Any], request.scope), deps.client_cert_header
            )
        except GuichetError:
            return server.handle_error_response(
                None,
                InvalidClientError(
                    status_code=401, description="The client certificate is unreadable."
                ),
            )
        form = await _read_form(request)
        if isinstance(form, OAuth2Error):
            return server.handle_error_response(None, form)
        return _Request(
            request.method,
            base + request.url.path,
            request.headers,
            form,
            certificate,
            correlation_id,
        )

    def endpoint(
        run: Callable[[_Request], Response], *, journaled: bool = False
    ) -> Callable[[Request, str], Awaitable[Response]]:
        async def handle(request: Request, correlation_id: str) -> Response:
            started = time.perf_counter()
            at = deps.clock.now()
            parsed = await read(request, correlation_id)
            response: Response
            identity: _Identity = (None, None, None)
            if isinstance(parsed, Response):
                response = parsed
            else:
                # Authlib is synchronous and the handlers read the database.
                response, identity = await run_in_threadpool(_answer, run, parsed, journaled)
            if journaled and response.status_code >= 400:
                await _journal_refusal(request, correlation_id, response, identity, at, started)
            return response

        return handle

    def _answer(
        run: Callable[[_Request], Response], r: _Request, journaled: bool
    ) -> tuple[Response, _Identity]:
        response = run(r)
        if journaled and response.status_code >= 400:
            return response, server.refused_identity(r)
        return response, (None, None, None)

    async def _journal_refusal(
        request: Request,
        correlation_id: str,
        response: Response,
        identity: _Identity,
        at: dt.datetime,
        started: float,
    ) -> None:
        """A refusal at /token is journaled like a refused API call: who (when known), from
        where, with which certificate, and the RFC 6749 §5.2 error code as the outcome."""
        if deps.journal is None:
            return
        client_id, habilitation_id, partner_id = identity
        try:
            outcome = str(json.loads(bytes(response.body))["error"])[:64]
        except (ValueError, KeyError, TypeError):
            outcome = "invalid_request"
        scope = cast(dict[str, Any], request.scope)
        try:
            presented = client_certificate(scope, deps.client_cert_header)
        except GuichetError:
            presented = None
        entry = JournalEntry(
            id=uuid.uuid4(),
            at=at,
            environment=deps.environment.value,
            correlation_id=correlation_id,
            partner_id=partner_id,
            habilitation_id=habilitation_id,
            client_id=client_id,
            api=None,
            operation="POST /token",
            source_ip=client_ip(scope, deps.trusted_proxies),
            cert_thumbprint=presented.thumbprint if presented else None,
            subject=None,
            data_scopes=[],
            outcome=outcome,
            http_status=response.status_code,
            latency_ms=round((time.perf_counter() - started) * 1000, 3),
        )
        try:
            await deps.journal.append(entry)
        except JournalUnavailable:
            # The answer is a refusal either way: nothing to fail closed on; said loudly.
            event(
                log,
                "oauth.journal_unavailable",
                logging.ERROR,
                correlation_id=correlation_id,
                outcome=outcome,
            )

    def introspect(r: _Request) -> Response:
        return server.create_endpoint_response(_Introspection.ENDPOINT_NAME, r)  # type: ignore[no-any-return]

    def revoke(r: _Request) -> Response:
        return server.create_endpoint_response(_Revocation.ENDPOINT_NAME, r)  # type: ignore[no-any-return]

    async def well_known(request: Request, correlation_id: str) -> Response:
        return JSONResponse(document, headers={"Cache-Control": "public, max-age=300"})

    async def jwks(request: Request, correlation_id: str) -> Response:
        body = signing_keys.jwks(deps.cache.snapshot, deps.environment)
        return JSONResponse(
            body,
            media_type="application/jwk-set+json",
            headers={"Cache-Control": "public, max-age=60"},
        )

    return [
        _route("/token", "POST", endpoint(server.create_token_response, journaled=True)),
        _route("/introspect", "POST", endpoint(introspect)),
        _route("/revoke", "POST", endpoint(revoke)),
        _route("/jwks", "GET", jwks),
        _route("/.well-known/oauth-authorization-server", "GET", well_known),
    ]


def _route(path: str, method: str, handler: Callable[[Request, str], Awaitable[Response]]) -> Route:
    """A route whose every answer, 405 included, carries ``X-Correlation-ID`` as the
    gateway's do: the caller's if it is a UUID, else a fresh one.

    Unlike an API call, a malformed id is not refused here (400): OAuth client libraries
    send no such header and may add a tracing id of their own format, and a token request
    is not an exchange of data; the caller sees the id that was used instead and the log
    says it was replaced.
    """
    allowed = {method, "HEAD"} if method == "GET" else {method}

    async def endpoint(request: Request) -> Response:
        correlation_id, valid = request_correlation_id(request)
        if not valid and request.headers.get("x-correlation-id") is not None:
            event(log, "oauth:correlation_id_replaced", path=path, correlation_id=correlation_id)
        if request.method not in allowed:
            # RFC 6749 §3.2: "The client MUST use the HTTP "POST" method" at /token.
            response: Response = JSONResponse(
                {"error": "invalid_request", "error_description": f"Use {method}."},
                status_code=405,
                headers={"Allow": ", ".join(sorted(allowed))},
            )
        else:
            response = await handler(request, correlation_id)
        response.headers["X-Correlation-ID"] = correlation_id
        return response

    # Every method reaches ``endpoint``, which answers 405 itself, with the id.
    return Route(path, endpoint, methods=_ANY_METHOD)


async def _read_form(request: Request) -> dict[str, str] | OAuth2Error:
    """RFC 6749 §3.2 / Appendix B: an ``application/x-www-form-urlencoded`` UTF-8 body whose
    parameters "MUST NOT be included more than once"."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != _FORM:
        return InvalidRequestError(description=f"The request body must be {_FORM}.")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_BODY:
            return InvalidRequestError(description="The request body is too large.")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        return InvalidRequestError(description="The request body is not valid form data.")
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            return InvalidRequestError(description=f"Parameter '{name}' is repeated.")
        form[name] = value
    return form


__all__ = ["OAuthDeps", "metadata", "token_routes"]
