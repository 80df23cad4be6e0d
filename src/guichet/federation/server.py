"""The sandbox federation's OpenID Connect provider, on Authlib's generic server.

Authlib has no Starlette integration, so ``_Server`` subclasses its framework-neutral
``AuthorizationServer`` (as ``guichet.oauth.server`` does): Authlib does the protocol —
RFC 6749 §4.1 authorization code grant, ``client_secret_post`` / ``client_secret_basic``,
RFC 7636 PKCE, OpenID Connect Core §3.1 ID tokens, RP-Initiated Logout — and the
FranceConnect v2 rules are one small grant extension (``_FranceConnectRules``). Codes and
access tokens are opaque random values stored as their SHA-256.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Final, cast

from authlib.oauth2.rfc6749 import (
    AuthorizationServer,
    ClientMixin,
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Error,
    OAuth2Request,
)
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oauth2.rfc6749.util import scope_to_list
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import AuthorizationCodeMixin
from authlib.oidc.core.grants import OpenIDCode
from authlib.oidc.rpinitiated import EndSessionEndpoint, EndSessionRequest
from joserfc import jwt
from joserfc.jwk import ECKey
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker
from starlette.responses import JSONResponse, Response

from guichet.clock import Clock, utc
from guichet.federation import citizens
from guichet.federation import keys as fkeys
from guichet.federation.citizens import Citizen, SuggestedCitizen
from guichet.federation.consent import (
    ConsentPage,
    ConsentStep,
    FirstPartyConsent,
    habilitation_refusal,
)
from guichet.federation.encryption import CONTENT_ENCRYPTION, KEY_ALGORITHMS, encrypt_answer
from guichet.federation.models import (
    ClientKind,
    FederationClient,
    FederationCode,
    FederationToken,
)
from guichet.federation.providers import BY_SLUG, IdentityProvider
from guichet.federation.scopes import ACR, CLAIMS_SUPPORTED, OPENID, SCOPES_SUPPORTED
from guichet.logs import event
from guichet.secrets import MasterSecret, check_secret

log = logging.getLogger(__name__)

SECRET_METHODS: Final = ("client_secret_post", "client_secret_basic")
MIN_STATE_NONCE: Final = 32  # FranceConnect v2: state and nonce of at least 32 characters
INTROSPECTION_TYP: Final = "token-introspection+jwt"  # RFC 9701 §5


@dataclass(frozen=True, slots=True)
class FederationDeps:
    """What the sandbox federation needs."""

    issuer: str  # its own origin, e.g. http://127.0.0.1:8600
    session_factory: sessionmaker[Session]
    master: MasterSecret
    clock: Clock
    code_lifetime: int = 30
    access_token_lifetime: int = 60
    id_token_lifetime: int = 60
    session_lifetime: int = 1800  # the citizen's browser session at the federation
    # The consent step; None (the default): the consent page (issue 5 §2) over these deps.
    consent: ConsentStep | None = None
    # The platform's own clients (the portal's), read when needed: identity only, no consent.
    first_party_clients: Callable[[], frozenset[str]] | None = None
    # Offered on every sign-in page; the composition passes the sandbox's
    # (``guichet.sandbox.personas.SIGN_IN_SUGGESTIONS``).
    suggested: tuple[SuggestedCitizen, ...] = ()

    @property
    def consent_step(self) -> ConsentStep:
        step = self.consent or ConsentPage(self.session_factory, self.master, self.clock)
        if self.first_party_clients is None:
            return step
        return FirstPartyConsent(step, self.first_party_clients)


def token_hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


# --- Authlib models ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FedClient(ClientMixin):  # type: ignore[misc]
    """A federation client as the server sees it during one request."""

    client_id: str
    kind: ClientKind
    name: str
    secret_hash: str
    redirect_uris: tuple[str, ...]
    post_logout_redirect_uris: tuple[str, ...]
    scopes: frozenset[str]
    sector: str
    habilitation_id: Any
    # A data provider's public encryption JWK (``guichet.federation.encryption``), if any.
    encryption_jwk: Mapping[str, Any] | None = None

    @classmethod
    def of(cls, row: FederationClient) -> FedClient:
        return cls(
            client_id=row.client_id,
            kind=row.kind,
            name=row.name,
            secret_hash=row.secret_hash,
            redirect_uris=tuple(row.redirect_uris),
            post_logout_redirect_uris=tuple(row.post_logout_redirect_uris),
            scopes=frozenset(row.scopes),
            sector=row.sector,
            habilitation_id=row.habilitation_id,
            encryption_jwk=dict(row.encryption_jwk) if row.encryption_jwk else None,
        )

    @property
    def is_service_provider(self) -> bool:
        return self.kind is ClientKind.SERVICE_PROVIDER

    @property
    def client_metadata(self) -> dict[str, Any]:
        return {"post_logout_redirect_uris": list(self.post_logout_redirect_uris)}

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return None  # FranceConnect: redirect_uri is required, never defaulted

    def get_allowed_scope(self, scope: str | None) -> str:
        return " ".join(s for s in dict.fromkeys(scope_to_list(scope) or []) if s in self.scopes)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        """OpenID Connect Core §3.1.2.1: "This URI MUST exactly match one of the Redirection
        URI values for the Client pre-registered at the OpenID Provider" (simple string
        comparison, RFC 3986 §6.2.1) — no prefix, no port or path variation."""
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return check_secret(client_secret, self.secret_hash)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return self.is_service_provider and method in SECRET_METHODS

    def check_response_type(self, response_type: str) -> bool:
        return self.is_service_provider and response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return self.is_service_provider and grant_type == "authorization_code"


@dataclass(frozen=True, slots=True)
class EndUser:
    """The signed-in citizen, with how and when they signed in (and, at /token, their sub)."""

    citizen: Citizen
    idp: IdentityProvider
    auth_time: dt.datetime
    sub: str = ""


@dataclass(frozen=True, slots=True)
class _Code(AuthorizationCodeMixin):  # type: ignore[misc]
    code_hash: str
    client_id: str
    spi: str
    idp: str
    redirect_uri: str
    scope: str
    nonce: str
    code_challenge: str | None
    code_challenge_method: str | None
    acr: str
    amr: tuple[str, ...]
    auth_time: dt.datetime

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str:
        return self.nonce

    def get_auth_time(self) -> int:
        return int(self.auth_time.timestamp())

    def get_acr(self) -> str:
        return self.acr

    def get_amr(self) -> list[str]:
        return list(self.amr)


class FedRequest(OAuth2Request):  # type: ignore[misc]
    """An ``OAuth2Request`` over parameters read beforehand (Starlette reads asynchronously)."""

    def __init__(
        self,
        method: str,
        uri: str,
        headers: Mapping[str, str],
        *,
        args: Mapping[str, str] | None = None,
        form: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(method, uri, headers=headers)
        self._args = dict(args or {})
        self._form = dict(form or {})
        self.payload = BasicOAuth2Payload({**self._args, **self._form})

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form


# --- grant and extensions ------------------------------------------------------------


class _FranceConnectRules:
    """FranceConnect v2's requirements on the authorization request, checked once the
    redirect URI is known good (so that a refusal goes back to the partner, RFC 6749
    §4.1.2.1)."""

    def __call__(self, grant: AuthorizationCodeGrant) -> None:
        grant.register_hook("after_validate_authorization_request_payload", self.check)

    def check(self, grant: AuthorizationCodeGrant, redirect_uri: str) -> None:
        data = grant.request.payload.data
        client: FedClient = grant.request.client
        scopes = scope_to_list(data.get("scope")) or []
        if OPENID not in scopes:
            raise InvalidScopeError(description="The scope must include 'openid'.")
        refused = sorted(set(scopes) - client.scopes)
        if refused:
            raise InvalidScopeError(
                description=f"Scope(s) not granted to this client: {' '.join(refused)}."
            )
        for name in ("state", "nonce"):
            value = data.get(name) or ""
            if len(value) < MIN_STATE_NONCE:
                raise InvalidRequestError(
                    description=f"'{name}' is required, with at least {MIN_STATE_NONCE} characters."
                )
        if data.get("acr_values") != ACR:
            raise InvalidRequestError(description=f"'acr_values' must be '{ACR}'.")
        if data.get("code_challenge") and data.get("code_challenge_method") != "S256":
            raise InvalidRequestError(description="Only 'code_challenge_method=S256' is accepted.")
        # Before the citizen is asked anything: DGFiP scopes within the client's habilitation.
        deps: FederationDeps = grant.server.deps
        with deps.session_factory() as session:
            refusal = habilitation_refusal(
                session, client.habilitation_id, scopes, deps.clock.now()
            )
        if refusal:
            raise InvalidScopeError(description=refusal)


class _CodeChallenge(CodeChallenge):  # type: ignore[misc]
    """RFC 7636, S256 only (RFC 9700 §2.1.1: "plain" adds nothing against a leaked code)."""

    SUPPORTED_CODE_CHALLENGE_METHOD: ClassVar[list[str]] = ["S256"]


class _CodeGrant(AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = list(SECRET_METHODS)
    server: FederationServer

    def save_authorization_code(self, code: str, request: FedRequest) -> None:
        self.server.store_code(code, request)

    def query_authorization_code(self, code: str, client: FedClient) -> _Code | None:
        return self.server.redeem_code(code, client)

    def delete_authorization_code(self, authorization_code: _Code) -> None:
        """Nothing to do: ``redeem_code`` marked the code used, atomically, when it read it."""

    def authenticate_user(self, authorization_code: _Code) -> EndUser | None:
        return self.server.end_user(authorization_code, self.request.client)


class _OpenIDCode(OpenIDCode):  # type: ignore[misc]
    """OpenID Connect Core §3.1.3.6: the ID token, ES256, ``sub`` pairwise (§8.1)."""

    server: FederationServer

    def __init__(self, server: FederationServer) -> None:
        super().__init__(require_nonce=True)
        self.server = server

    def exists_nonce(self, nonce: str, request: FedRequest) -> bool:
        """OpenID Connect Core §15.5.2: a nonce already bound to a code is a replay."""
        return self.server.nonce_used(request.payload.client_id, nonce)

    def resolve_client_private_key(self, client: FedClient) -> ECKey:
        return self.server.signing_key()[1]

    def get_client_algorithm(self, client: FedClient) -> str:
        return fkeys.ALG

    def get_encode_header(self, client: FedClient) -> dict[str, str]:
        return {"alg": fkeys.ALG, "kid": self.server.signing_key()[0], "typ": "JWT"}

    def get_client_claims(self, client: FedClient) -> dict[str, Any]:
        now = int(self.server.deps.clock.now().timestamp())
        return {
            "iss": self.server.deps.issuer,
            "aud": client.client_id,
            "iat": now,
            "exp": now + self.server.deps.id_token_lifetime,
        }

    def generate_user_info(self, user: EndUser, scope: str) -> dict[str, Any]:
        """As FranceConnect v2, the ID token identifies (``sub``, ``idp``); the identity
        claims come from /userinfo."""
        return {"sub": user.sub, "idp": user.idp.slug}


class _EndSession(EndSessionEndpoint):  # type: ignore[misc]
    """OpenID Connect RP-Initiated Logout 1.0 §2, with our ES256 keys only."""

    server: FederationServer

    def get_server_jwks(self) -> dict[str, Any]:
        return self.server.jwks()

    def get_algorithms(self) -> list[str]:
        # Only what we sign with: "none", HS256 keyed with the public key… never verify.
        return [fkeys.ALG]

    def validate_request(self, request: FedRequest) -> EndSessionRequest:
        """FranceConnect v2: ``id_token_hint`` is required; we check it is one of ours (§2:
        "the OP MUST validate that it was the issuer of the ID Token")."""
        if not request.payload.data.get("id_token_hint"):
            raise InvalidRequestError(description="'id_token_hint' is required.")
        validated: EndSessionRequest = super().validate_request(request)
        claims = validated.id_token_claims or {}
        if claims.get("iss") != self.server.deps.issuer:
            raise InvalidRequestError(description="The ID token was not issued here.")
        return validated

    def end_session(self, end_session_request: EndSessionRequest) -> None:
        """The browser session is the caller's (its cookie is cleared by the route)."""


# --- the server ----------------------------------------------------------------------


class FederationServer(AuthorizationServer):  # type: ignore[misc]
    def __init__(self, deps: FederationDeps) -> None:
        super().__init__(scopes_supported=sorted(SCOPES_SUPPORTED))
        self.deps = deps
        self._sub_key = fkeys.derive_key(deps.master, "pairwise-sub")
        self._key: tuple[str, ECKey] | None = None
        self.register_grant(
            _CodeGrant,
            [_FranceConnectRules(), _CodeChallenge(required=False), _OpenIDCode(self)],
        )
        self.register_token_generator("default", self._bearer_token)
        self.register_endpoint(_EndSession)

    # framework integration -------------------------------------------------------------

    def create_oauth2_request(self, request: FedRequest) -> FedRequest:
        return request

    def handle_response(self, status: int, body: Any, headers: list[tuple[str, str]]) -> Response:
        if isinstance(body, dict):
            extra = {k: v for k, v in headers if k.lower() != "content-type"}
            extra["Cache-Control"] = "no-store"
            extra["Pragma"] = "no-cache"
            return JSONResponse(body, status_code=status, headers=extra)
        return Response(body or b"", status_code=status, headers=dict(headers))

    def handle_error_response(self, request: FedRequest | None, error: OAuth2Error) -> Response:
        event(
            log,
            "federation:request:refused",
            error=error.error,
            status=error.status_code,
            client_id=(
                request.client.client_id if request is not None and request.client else None
            ),
        )
        return super().handle_error_response(request, error)  # type: ignore[no-any-return]

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        """Authlib's hook points; nothing listens."""

    # clients ---------------------------------------------------------------------------

    def query_client(self, client_id: str) -> FedClient | None:
        with self.deps.session_factory() as session:
            row = session.get(FederationClient, client_id)
            if row is None or row.disabled:
                return None
            return FedClient.of(row)

    def authenticate_data_provider(self, client_id: str, client_secret: str) -> FedClient | None:
        client = self.query_client(client_id)
        if client is None or client.kind is not ClientKind.DATA_PROVIDER:
            check_secret(client_secret, "0" * 64)  # same work whether the client exists or not
            return None
        return client if client.check_client_secret(client_secret) else None

    # keys ------------------------------------------------------------------------------

    def signing_key(self) -> tuple[str, ECKey]:
        if self._key is None:
            deps = self.deps
            with deps.session_factory() as session, session.begin():
                row = fkeys.ensure_signing_key(session, deps.master, deps.clock.now())
                self._key = (row.kid, fkeys.load_private_key(row, deps.master))
        return self._key

    def jwks(self) -> dict[str, Any]:
        self.signing_key()
        with self.deps.session_factory() as session:
            return fkeys.public_jwks(session)

    def sign(self, claims: dict[str, Any], typ: str = "JWT") -> str:
        kid, key = self.signing_key()
        return jwt.encode({"alg": fkeys.ALG, "kid": kid, "typ": typ}, claims, key, [fkeys.ALG])

    def sub_for(self, sector: str, spi: str) -> str:
        return fkeys.pairwise_sub(self._sub_key, sector, spi)

    # codes -----------------------------------------------------------------------------

    def store_code(self, code: str, request: FedRequest) -> None:
        user: EndUser = request.user
        client: FedClient = request.client
        data = request.payload.data
        now = self.deps.clock.now()
        with self.deps.session_factory() as session, session.begin():
            session.add(
                FederationCode(
                    code_hash=token_hash(code),
                    client_id=client.client_id,
                    spi=user.citizen.spi,
                    idp=user.idp.slug,
                    redirect_uri=data["redirect_uri"],
                    scope=request.scope,
                    nonce=data["nonce"],
                    code_challenge=data.get("code_challenge"),
                    code_challenge_method=data.get("code_challenge_method"),
                    acr=ACR,
                    amr=list(user.idp.amr),
                    auth_time=user.auth_time,
                    issued_at=now,
                    expires_at=now + dt.timedelta(seconds=self.deps.code_lifetime),
                    used_at=None,
                )
            )
        event(log, "federation:code:issued", client_id=client.client_id, idp=user.idp.slug)

    def nonce_used(self, client_id: str | None, nonce: str) -> bool:
        with self.deps.session_factory() as session:
            return (
                session.scalars(
                    select(FederationCode.code_hash)
                    .where(FederationCode.client_id == client_id, FederationCode.nonce == nonce)
                    .limit(1)
                ).first()
                is not None
            )

    def redeem_code(self, code: str, client: FedClient) -> _Code | None:
        """RFC 6749 §4.1.2: "The client MUST NOT use the authorization code more than once.
        If an authorization code is used more than once, the authorization server MUST deny
        the request and SHOULD revoke (when possible) all tokens previously issued based on
        that authorization code." The code is marked used in the same statement that checks
        it is unused, so two concurrent redemptions cannot both succeed."""
        hashed = token_hash(code)
        now = self.deps.clock.now()
        with self.deps.session_factory() as session, session.begin():
            row = session.get(FederationCode, hashed)
            if row is None or row.client_id != client.client_id:
                return None
            claimed = session.execute(
                update(FederationCode)
                .where(FederationCode.code_hash == hashed, FederationCode.used_at.is_(None))
                .values(used_at=now)
                .execution_options(synchronize_session=False)
            )
            if cast(Any, claimed).rowcount != 1:
                revoked = session.execute(
                    update(FederationToken)
                    .where(
                        FederationToken.code_hash == hashed, FederationToken.revoked_at.is_(None)
                    )
                    .values(revoked_at=now)
                    .execution_options(synchronize_session=False)
                )
                event(
                    log,
                    "federation:code:replayed",
                    client_id=client.client_id,
                    tokens_revoked=cast(Any, revoked).rowcount,
                )
                return None
            if utc(row.expires_at) <= now:
                event(log, "federation:code:expired", client_id=client.client_id)
                return None
            return _Code(
                code_hash=hashed,
                client_id=row.client_id,
                spi=row.spi,
                idp=row.idp,
                redirect_uri=row.redirect_uri,
                scope=row.scope,
                nonce=row.nonce,
                code_challenge=row.code_challenge,
                code_challenge_method=row.code_challenge_method,
                acr=row.acr,
                amr=tuple(row.amr),
                auth_time=utc(row.auth_time),
            )

    def end_user(self, code: _Code, client: FedClient) -> EndUser | None:
        idp = BY_SLUG.get(code.idp)
        with self.deps.session_factory() as session:
            citizen = citizens.find(session, code.spi)
        if citizen is None or idp is None:
            return None
        return EndUser(citizen, idp, code.auth_time, self.sub_for(client.sector, code.spi))

    # access tokens ---------------------------------------------------------------------

    def _bearer_token(
        self,
        grant_type: str,
        client: FedClient,
        user: EndUser | None = None,
        scope: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = False,
    ) -> dict[str, Any]:
        """RFC 6750 bearer token, opaque, 60 seconds, no refresh token (FranceConnect)."""
        return {
            "token_type": "Bearer",
            "access_token": secrets.token_urlsafe(32),
            "expires_in": self.deps.access_token_lifetime,
            "scope": scope or "",
        }

    def save_token(self, token: dict[str, Any], request: FedRequest) -> None:
        code: _Code = request.authorization_code
        user: EndUser = request.user
        now = self.deps.clock.now()
        with self.deps.session_factory() as session, session.begin():
            session.add(
                FederationToken(
                    token_hash=token_hash(token["access_token"]),
                    client_id=request.client.client_id,
                    code_hash=code.code_hash,
                    spi=user.citizen.spi,
                    idp=user.idp.slug,
                    scope=token["scope"],
                    acr=code.acr,
                    amr=list(code.amr),
                    issued_at=now,
                    expires_at=now + dt.timedelta(seconds=self.deps.access_token_lifetime),
                    revoked_at=None,
                )
            )
        event(log, "federation:token:issued", client_id=request.client.client_id)

    def live_token(self, session: Session, token: str) -> FederationToken | None:
        """The stored token, if it exists, is not revoked and has not expired."""
        row = session.get(FederationToken, token_hash(token))
        if row is None or row.revoked_at is not None:
            return None
        if utc(row.expires_at) <= self.deps.clock.now():
            return None
        return row

    # resources -------------------------------------------------------------------------

    def userinfo(self, token: str) -> str | None:
        """OpenID Connect Core §5.3.2, signed (FranceConnect v2): the claims the token's
        scopes release, with ``iss`` and ``aud`` ("If signed, the UserInfo Response MUST
        contain the Claims iss … and aud"). None if the token is not live."""
        with self.deps.session_factory() as session:
            row = self.live_token(session, token)
            if row is None:
                return None
            client = session.get(FederationClient, row.client_id)
            citizen = citizens.find(session, row.spi)
        idp = BY_SLUG.get(row.idp)
        if client is None or citizen is None or idp is None:
            return None
        claims = {
            "sub": self.sub_for(client.sector, row.spi),
            **citizens.released_claims(citizen.claims(idp), scope_to_list(row.scope) or []),
            "idp": idp.slug,
            "iss": self.deps.issuer,
            "aud": client.client_id,
            "iat": int(self.deps.clock.now().timestamp()),
        }
        event(log, "federation:userinfo:served", client_id=client.client_id)
        return self.sign(claims)

    def checktoken(self, data_provider: FedClient, token: str) -> str:
        """RFC 9701 §5: the introspection response as a signed JWT whose
        ``token_introspection`` claim holds the RFC 7662 §2.2 members — ``active: false``
        alone for a token that is unknown, expired or revoked. ``sub`` is the citizen's
        pairwise identifier for the data provider; the identity pivot lets it find its
        record. "If the JWT is signed and encrypted, it MUST be a Nested JWT": encrypted
        to the data provider's registered key, when it has one (as FranceConnect does)."""
        now = self.deps.clock.now()
        introspection: dict[str, Any] = {"active": False}
        with self.deps.session_factory() as session:
            row = self.live_token(session, token)
            client = session.get(FederationClient, row.client_id) if row is not None else None
            citizen = citizens.find(session, row.spi) if row is not None else None
        if row is not None and client is not None and citizen is not None:
            introspection = {
                "active": True,
                "sub": self.sub_for(data_provider.sector, row.spi),
                "scope": row.scope,
                "acr": row.acr,
                "amr": list(row.amr),
                "idp": row.idp,
                "iat": int(utc(row.issued_at).timestamp()),
                "exp": int(utc(row.expires_at).timestamp()),
                "client_id": client.client_id,
                "aud": client.client_id,
                "client": {"id": client.client_id, "name": client.name},
                **citizen.pivot(),
            }
        event(
            log,
            "federation:checktoken:answered",
            data_provider=data_provider.client_id,
            active=introspection["active"],
            client_id=introspection.get("client_id"),
        )
        claims = {
            "iss": self.deps.issuer,
            "aud": data_provider.client_id,
            "iat": int(now.timestamp()),
            "token_introspection": introspection,
        }
        signed = self.sign(claims, typ=INTROSPECTION_TYP)
        if data_provider.encryption_jwk is None:
            return signed
        return encrypt_answer(signed, data_provider.encryption_jwk)

    # discovery -------------------------------------------------------------------------

    def metadata(self) -> dict[str, Any]:
        """OpenID Connect Discovery 1.0 §3, with RP-Initiated Logout's
        ``end_session_endpoint`` and RFC 9701 §7's introspection signing and encryption
        algorithms."""
        base = self.deps.issuer.rstrip("/")
        return {
            "issuer": self.deps.issuer,
            "authorization_endpoint": f"{base}/authorize",
            "token_endpoint": f"{base}/token",
            "userinfo_endpoint": f"{base}/userinfo",
            "end_session_endpoint": f"{base}/session/end",
            "jwks_uri": f"{base}/jwks",
            "introspection_endpoint": f"{base}/checktoken",
            "scopes_supported": sorted(SCOPES_SUPPORTED),
            "claims_supported": list(CLAIMS_SUPPORTED),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code"],
            "acr_values_supported": [ACR],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": [fkeys.ALG],
            "userinfo_signing_alg_values_supported": [fkeys.ALG],
            "introspection_signing_alg_values_supported": [fkeys.ALG],
            "introspection_encryption_alg_values_supported": sorted(KEY_ALGORITHMS.values()),
            "introspection_encryption_enc_values_supported": [CONTENT_ENCRYPTION],
            "token_endpoint_auth_methods_supported": list(SECRET_METHODS),
            "introspection_endpoint_auth_methods_supported": ["client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
            "claims_parameter_supported": False,
            "request_parameter_supported": False,
            "request_uri_parameter_supported": False,
            "ui_locales_supported": ["fr"],
        }
