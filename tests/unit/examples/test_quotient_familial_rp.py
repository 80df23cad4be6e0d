"""The example partner's OpenID Connect relying party (``examples/quotient_familial``)
against the real sandbox federation app, in process: the genuine flow, then the attacks it
must refuse — state and nonce mismatch, forged ID tokens and UserInfo JWTs (``alg: none``,
HS256 keyed with the federation's public key, another key under the federation's ``kid``),
and a discovery document that announces weak algorithms."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from examples.quotient_familial.config import Config
from examples.quotient_familial.franceconnect import SCOPES, Flows, FranceConnect, SignInError
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey
from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette

from guichet.clock import FrozenClock
from guichet.db import transaction
from guichet.federation.clients import register_client
from guichet.federation.models import ClientKind
from guichet.sandbox import personas
from guichet.secrets import MasterSecret
from tests.unit.federation.support import (
    ISSUER,
    LOGGED_OUT,
    REDIRECT,
    Federation,
    make_federation,
    query_of,
    real_now,
    sign_in,
)

Rewrite = Callable[[str], str]


class Tampering(httpx.AsyncBaseTransport):
    """The federation's real app; a test may rewrite its discovery document, the ID token of
    its ``/token`` answer or its ``/userinfo`` JWT (a man in the middle, or a federation
    gone wrong)."""

    def __init__(self, app: Starlette) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.discovery: Callable[[dict[str, Any]], dict[str, Any]] | None = None
        self.id_token: Rewrite | None = None
        self.userinfo: Rewrite | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        path = request.url.path
        if self.discovery is not None and path == "/.well-known/openid-configuration":
            return httpx.Response(200, json=self.discovery(json.loads(await response.aread())))
        if self.id_token is not None and path == "/token":
            body = json.loads(await response.aread())
            body["id_token"] = self.id_token(body["id_token"])
            return httpx.Response(response.status_code, json=body)
        if self.userinfo is not None and path == "/userinfo":
            signed = (await response.aread()).decode("ascii")
            return httpx.Response(
                response.status_code,
                text=self.userinfo(signed),
                headers={"content-type": response.headers["content-type"]},
            )
        return response


@dataclass
class World:
    fed: Federation
    transport: Tampering
    config: Config

    def relying_party(self) -> FranceConnect:
        return FranceConnect(self.config, transport=self.transport)

    async def sign_in(
        self, rp: FranceConnect, spi: str = personas.DUBOIS.spi
    ) -> tuple[dict[str, str], Any]:
        """The citizen's side: the example's authorization URL → identity provider sign-in
        → consent → back at the redirect URI. Returns its query and the flow."""
        _, flow = Flows().start()
        url = await rp.authorization_url(flow)
        async with self.fed.browser() as browser:
            back = await sign_in(browser, url, spi)
        assert back.startswith(REDIRECT), back
        return query_of(back), flow

    async def public_jwk(self) -> dict[str, Any]:
        async with self.fed.browser() as http:
            key: dict[str, Any] = (await http.get("/jwks")).json()["keys"][0]
        return key


@pytest.fixture
def world(session_factory: sessionmaker[Session], master_secret: MasterSecret) -> World:
    fed = make_federation(session_factory, master_secret, FrozenClock(real_now()))
    # The city's service provider, with the scopes the example asks for.
    with transaction(session_factory) as session:
        city = register_client(
            session,
            kind=ClientKind.SERVICE_PROVIDER,
            name="Ville de Démoville — quotient familial",
            now=fed.clock.now(),
            redirect_uris=[REDIRECT],
            post_logout_redirect_uris=[LOGGED_OUT],
            scopes=SCOPES.split(),
        )
    config = Config(
        partner_url="http://127.0.0.1:5000",
        issuer=ISSUER,
        discovery_url=f"{ISSUER}/.well-known/openid-configuration",
        fc_client_id=city.client_id,
        fc_client_secret=city.client_secret,
        redirect_uri=REDIRECT,
        post_logout_redirect_uri=LOGGED_OUT,
        token_url="https://unused.invalid/token",
        api_base_url="https://unused.invalid",
        gateway_client_id="unused",
        gateway_client_secret="unused",
        cert_file="unused",
        key_file="unused",
        ca_file="unused",
    )
    return World(fed, Tampering(fed.app), config)


# --- forgeries ----------------------------------------------------------------------------


def _parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    def load(part: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
        return data

    header, payload, _ = token.split(".")
    return load(header), load(payload)


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def alg_none(token: str) -> str:
    _, claims = _parts(token)
    return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."


def other_key(token: str) -> str:
    """A valid ES256 signature by another key, under the federation's own ``kid``."""
    header, claims = _parts(token)
    key = ECKey.generate_key("P-256", private=True)
    return jwt.encode({"alg": "ES256", "kid": header["kid"], "typ": "JWT"}, claims, key)


def hmac_with(public_jwk: dict[str, Any]) -> Rewrite:
    """Key confusion: HS256 keyed with the federation's public key, as published."""

    def forge(token: str) -> str:
        header, claims = _parts(token)
        secret = OctKey.import_key(json.dumps(public_jwk).encode())
        return jwt.encode({"alg": "HS256", "kid": header["kid"]}, claims, secret)

    return forge


async def _forgery(world: World, name: str) -> Rewrite:
    if name == "alg_none":
        return alg_none
    if name == "other_key":
        return other_key
    return hmac_with(await world.public_jwk())


FORGERIES = ("alg_none", "other_key", "hs256_public_key")


# --- the genuine flow ----------------------------------------------------------------------


def test_the_genuine_flow_signs_the_citizen_in(world: World) -> None:
    async def run() -> None:
        rp = world.relying_party()
        params, flow = await world.sign_in(rp)
        signed = await rp.finish(params, flow)
        assert signed.given_name == "Angela Claire Louise"
        assert signed.family_name == "DUBOIS"
        assert signed.access_token
        assert (await rp.logout_url(signed.id_token)).startswith(f"{ISSUER}/session/end?")

    asyncio.run(run())


# --- refused --------------------------------------------------------------------------------


def test_a_state_mismatch_is_refused_before_anything_is_redeemed(world: World) -> None:
    async def run() -> None:
        rp = world.relying_party()
        params, flow = await world.sign_in(rp)
        for state in ("x" * 43, "", flow.state[:-1]):
            with pytest.raises(SignInError, match="state mismatch"):
                await rp.finish({**params, "state": state}, flow)
        with pytest.raises(SignInError, match="state mismatch"):
            await rp.finish({k: v for k, v in params.items() if k != "state"}, flow)
        # An error answer is only believed with our state.
        with pytest.raises(SignInError, match="state mismatch") as caught:
            await rp.finish({"error": "access_denied", "state": "x" * 43}, flow)
        assert not caught.value.refused
        # The code was never spent: the genuine answer still completes.
        assert (await rp.finish(params, flow)).family_name == "DUBOIS"

    asyncio.run(run())


def test_a_nonce_mismatch_is_refused(world: World) -> None:
    """A code obtained for another sign-in (same client) is injected into this one: the ID
    token's nonce is not this flow's."""

    async def run() -> None:
        rp = world.relying_party()
        params, flow = await world.sign_in(rp)
        flow.nonce = "n" * 43
        with pytest.raises(SignInError, match="invalid ID token"):
            await rp.finish(params, flow)

    asyncio.run(run())


@pytest.mark.parametrize("forgery", FORGERIES)
def test_a_forged_id_token_is_refused(world: World, forgery: str) -> None:
    async def run() -> None:
        world.transport.id_token = await _forgery(world, forgery)
        rp = world.relying_party()
        params, flow = await world.sign_in(rp)
        with pytest.raises(SignInError, match="invalid ID token"):
            await rp.finish(params, flow)

    asyncio.run(run())


@pytest.mark.parametrize("forgery", FORGERIES)
def test_a_forged_userinfo_is_refused(world: World, forgery: str) -> None:
    """The ID token is genuine; only the UserInfo JWT that carries the names is forged."""

    async def run() -> None:
        world.transport.userinfo = await _forgery(world, forgery)
        rp = world.relying_party()
        params, flow = await world.sign_in(rp)
        with pytest.raises(SignInError, match="invalid userinfo"):
            await rp.finish(params, flow)

    asyncio.run(run())


def test_weak_algorithms_announced_by_discovery_change_nothing(world: World) -> None:
    """The allowed algorithms are fixed in the code: a discovery document announcing
    ``none`` and HS256 neither lets an HS256 forgery in nor keeps ES256 out."""

    def weaken(document: dict[str, Any]) -> dict[str, Any]:
        return {
            **document,
            "id_token_signing_alg_values_supported": ["none", "HS256"],
            "userinfo_signing_alg_values_supported": ["none", "HS256"],
        }

    async def run() -> None:
        world.transport.discovery = weaken
        rp = world.relying_party()
        params, flow = await world.sign_in(rp)
        assert (await rp.finish(params, flow)).family_name == "DUBOIS"
        world.transport.id_token = hmac_with(await world.public_jwk())
        rp = world.relying_party()
        params, flow = await world.sign_in(rp)
        with pytest.raises(SignInError, match="invalid ID token"):
            await rp.finish(params, flow)

    asyncio.run(run())
