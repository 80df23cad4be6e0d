"""The OpenID Connect relying party: signing a citizen in with FranceConnect v2 (or guichet's
sandbox federation), with Authlib's client: ``state``, ``nonce``, PKCE, ID token checks."""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlencode

import httpx
from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuthError
from authlib.oidc.core import CodeIDToken
from examples.quotient_familial.config import Config
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

# What this démarche asks the citizen for: the identity needed to greet them (so they can
# check it is them), and the two tax data of the deliberation for years N-1 and N-2. The
# federation refuses anything the city's habilitation does not grant.
SCOPES: Final = (
    "openid given_name family_name "
    "dgfip_rfr dgfip_nbpart dgfip_annee_n_moins_1 dgfip_annee_n_moins_2"
)
ACR: Final = "eidas1"
# The signatures FranceConnect v2 uses, fixed here: never taken from the discovery document,
# which would let whoever can alter it (or the JWT's own header) pick ``none`` or HS256.
ALGORITHMS: Final = ["ES256", "RS256"]
FLOW_LIFETIME: Final = 600  # seconds between the click and the return from FranceConnect
MAX_FLOWS: Final = 10_000  # sign-ins in progress at once, well beyond a city's peak


@dataclass
class Flow:
    """One sign-in in progress: what must come back from FranceConnect unchanged.

    ``state`` (OAuth 2.0 CSRF protection) and ``nonce`` (ID token replay protection) are
    32+ characters, as FranceConnect requires; ``code_verifier`` is PKCE's (RFC 7636).
    """

    state: str
    nonce: str
    code_verifier: str
    created: float
    id_token: str | None = None  # kept after sign-in only to sign out of FranceConnect


class Flows:
    """The flows, server-side, keyed by a random cookie value: the browser only holds an
    opaque identifier. One process keeps them in memory; several workers would share a
    store (Redis, the database) instead.

    Bounded: a flow expires after ``FLOW_LIFETIME`` seconds, and beyond ``max_flows``
    pending at once the oldest is dropped (its citizen starts again), so a flood of
    sign-in starts cannot grow the memory without bound.
    """

    def __init__(self, max_flows: int = MAX_FLOWS) -> None:
        self.max_flows = max_flows
        # In creation order: the oldest, first to expire or to be dropped, comes first.
        self._flows: OrderedDict[str, Flow] = OrderedDict()

    def __len__(self) -> int:
        return len(self._flows)

    def start(self) -> tuple[str, Flow]:
        self._expire()
        while len(self._flows) >= self.max_flows:
            self._flows.popitem(last=False)
        key = secrets.token_urlsafe(32)
        flow = Flow(
            state=secrets.token_urlsafe(32),
            nonce=secrets.token_urlsafe(32),
            code_verifier=secrets.token_urlsafe(48),
            created=time.monotonic(),
        )
        self._flows[key] = flow
        return key, flow

    def get(self, key: str | None) -> Flow | None:
        self._expire()
        return self._flows.get(key) if key else None

    def forget(self, key: str | None) -> None:
        if key:
            self._flows.pop(key, None)

    def _expire(self) -> None:
        limit = time.monotonic() - FLOW_LIFETIME
        while self._flows:
            key, oldest = next(iter(self._flows.items()))
            if oldest.created >= limit:
                return
            del self._flows[key]


class SignInError(Exception):
    """The sign-in did not complete; ``refused`` when the citizen said no."""

    def __init__(self, reason: str, *, refused: bool = False) -> None:
        super().__init__(reason)
        self.refused = refused


@dataclass(frozen=True)
class SignedIn:
    """The citizen, after a valid sign-in. ``access_token`` lives 60 seconds: use it now."""

    access_token: str
    id_token: str
    given_name: str
    family_name: str


class FranceConnect:
    """The OpenID Connect flow against FranceConnect v2 (or guichet's sandbox federation)."""

    def __init__(
        self, config: Config, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.config = config
        # Tests route the calls to an in-process federation; ``None`` is the network.
        self._transport = transport
        self._metadata: dict[str, Any] | None = None
        self._keys: KeySet | None = None

    def _http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(timeout=10, transport=self._transport)

    def _client(self) -> AsyncOAuth2Client:
        return AsyncOAuth2Client(
            transport=self._transport,
            client_id=self.config.fc_client_id,
            client_secret=self.config.fc_client_secret,
            scope=SCOPES,
            redirect_uri=self.config.redirect_uri,
            code_challenge_method="S256",
            token_endpoint_auth_method="client_secret_post",  # noqa: S106 (a method name)
            timeout=10,
        )

    async def metadata(self) -> dict[str, Any]:
        """OpenID Connect Discovery; the issuer must be the one we were configured with."""
        if self._metadata is None:
            async with self._http() as http:
                response = await http.get(self.config.discovery_url)
                response.raise_for_status()
                metadata: dict[str, Any] = response.json()
            if metadata.get("issuer") != self.config.issuer:
                raise SignInError("discovery issuer mismatch")
            self._metadata = metadata
        return self._metadata

    async def keys(self, *, refresh: bool = False) -> KeySet:
        if self._keys is None or refresh:
            metadata = await self.metadata()
            async with self._http() as http:
                response = await http.get(metadata["jwks_uri"])
                response.raise_for_status()
            self._keys = KeySet.import_key_set(response.json())
        return self._keys

    async def authorization_url(self, flow: Flow) -> str:
        metadata = await self.metadata()
        async with self._client() as client:
            url, _ = client.create_authorization_url(
                metadata["authorization_endpoint"],
                state=flow.state,
                nonce=flow.nonce,
                code_verifier=flow.code_verifier,
                acr_values=ACR,
            )
        return str(url)

    async def finish(self, params: dict[str, str], flow: Flow) -> SignedIn:
        """The return to the redirect URI: check ``state`` first, then the outcome."""
        if not secrets.compare_digest(params.get("state", ""), flow.state):
            raise SignInError("state mismatch")  # not our request: ignore it entirely
        if "error" in params:
            raise SignInError(params["error"], refused=params["error"] == "access_denied")
        code = params.get("code")
        if not code:
            raise SignInError("no code")
        metadata = await self.metadata()
        async with self._client() as client:
            try:
                token = await client.fetch_token(
                    metadata["token_endpoint"], code=code, code_verifier=flow.code_verifier
                )
            except OAuthError as exc:  # e.g. invalid_grant: a code used twice, or expired
                raise SignInError(f"token endpoint: {exc.error}") from None
            access_token = str(token["access_token"])
            id_token = str(token.get("id_token", ""))
            claims = await self.validate_id_token(id_token, access_token, flow.nonce)
        userinfo = await self.userinfo(metadata, access_token, claims["sub"])
        return SignedIn(
            access_token=access_token,
            id_token=id_token,
            given_name=str(userinfo.get("given_name", "")),
            family_name=str(userinfo.get("family_name", "")),
        )

    async def _decode(self, value: str) -> jwt.Token:
        """A JWT signed by one of the federation's keys, in ES256 or RS256 only
        (``ALGORITHMS``: never ``none``, never HS256 keyed with its public key), whatever
        the discovery document or the JWT's header say."""
        keys = await self.keys()
        try:
            return jwt.decode(value, keys, algorithms=ALGORITHMS)
        except JoseError:
            if _kid(value) in {k.kid for k in keys.keys}:
                raise  # a known key that does not verify: a forgery, not a rotation
            # An unknown key id: the federation may have rotated its keys. Fetch them once.
            return jwt.decode(value, await self.keys(refresh=True), algorithms=ALGORITHMS)

    async def validate_id_token(
        self, id_token: str, access_token: str, nonce: str
    ) -> dict[str, Any]:
        """OpenID Connect Core §3.1.3.7 (with Authlib's ``CodeIDToken``): ``iss``, ``aud``,
        ``exp``, ``iat``, ``nonce``, ``at_hash``; FranceConnect: ``acr`` = eidas1."""
        try:
            token = await self._decode(id_token)
            claims = CodeIDToken(
                token.claims,
                token.header,
                {
                    "iss": {"essential": True, "value": self.config.issuer},
                    "acr": {"essential": True, "value": ACR},
                },
                {
                    "nonce": nonce,
                    "client_id": self.config.fc_client_id,
                    "access_token": access_token,
                },
            )
            claims.validate(leeway=30)
        except (JoseError, ValueError) as exc:
            raise SignInError(f"invalid ID token ({type(exc).__name__})") from None
        return dict(claims)

    async def userinfo(
        self, metadata: dict[str, Any], access_token: str, sub: str
    ) -> dict[str, Any]:
        """FranceConnect v2's ``/userinfo`` answers a signed JWT (``application/jwt``).

        A plain bearer call: Authlib's session would refuse a token that lives less than its
        60-second leeway, which every FranceConnect access token does."""
        async with self._http() as http:
            response = await http.get(
                metadata["userinfo_endpoint"], headers={"Authorization": f"Bearer {access_token}"}
            )
        response.raise_for_status()
        try:
            claims = dict((await self._decode(response.text)).claims)
        except (JoseError, ValueError):
            raise SignInError("invalid userinfo") from None
        if (
            claims.get("iss") != self.config.issuer
            or claims.get("aud") != self.config.fc_client_id
            or claims.get("sub") != sub
        ):
            raise SignInError("userinfo not for this sign-in")
        return claims

    async def logout_url(self, id_token: str) -> str:
        """RP-Initiated Logout: FranceConnect requires ``id_token_hint``."""
        metadata = await self.metadata()
        query = urlencode(
            {
                "id_token_hint": id_token,
                "state": secrets.token_urlsafe(32),
                "post_logout_redirect_uri": self.config.post_logout_redirect_uri,
            }
        )
        return f"{metadata['end_session_endpoint']}?{query}"


def _kid(value: str) -> object:
    """The ``kid`` of a compact JWS's header, or None when it cannot be read."""
    try:
        segment = value.split(".")[0]
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, TypeError, UnicodeError):
        return None
    return header.get("kid") if isinstance(header, dict) else None
