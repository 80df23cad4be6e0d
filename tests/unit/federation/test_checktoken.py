"""The data provider's check of a federation token, against the real sandbox federation app
(in process, over ``httpx.ASGITransport``): RFC 9701 verification, cache, outages, attacks."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import re
import secrets
import socket
import stat
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from joserfc import jwe, jwt
from joserfc.jwk import ECKey, OctKey, RSAKey
from sqlalchemy import Engine, insert
from sqlalchemy.orm import Session, sessionmaker

from guichet.apis.context import ApiDeps, CallContext
from guichet.apis.impot_particulier.franceconnect import (
    FederationClientNotHabilitated,
    FranceConnectGate,
)
from guichet.clock import FrozenClock
from guichet.db import transaction
from guichet.demo import ensure_federation_data_provider
from guichet.errors import UpstreamUnavailable
from guichet.federation.checktoken import (
    FederationAcrInsufficient,
    FederationAnswerInvalid,
    FederationConfig,
    FederationTokenInvalid,
    FederationTokenMissing,
    HttpFederationCheck,
    from_settings,
    load_decryption_key,
    token_key,
)
from guichet.federation.clients import (
    RegisteredClient,
    declare_habilitation_client,
    directory,
    register_client,
    set_encryption_key,
)
from guichet.federation.encryption import encrypt_answer
from guichet.federation.models import ClientKind, FederationClient
from guichet.federation.server import FederationDeps
from guichet.federation_web.app import build_federation_app
from guichet.habilitation.models import Environment, Habilitation
from guichet.habilitation.service import (
    HabilitationSpec,
    create_habilitation,
    get_or_create_organisation,
)
from guichet.oauth.policy import HabilitationPolicy, load_snapshot
from guichet.records.models import Person
from guichet.runtime import Runtime
from guichet.sandbox import personas
from guichet.sandbox.population import seed
from guichet.secrets import MasterSecret
from guichet.settings import Settings
from tests.support.certs import self_signed

ISSUER = "http://127.0.0.1:8600"
REDIRECT = "http://127.0.0.1:9000/callback"
IDENTITY = "openid given_name family_name birthdate gender birthplace birthcountry"
DATA = "dgfip_rfr dgfip_nbpart dgfip_annee_n_moins_1"


# --- the real sandbox federation, in process -------------------------------------------


def make_habilitation(
    session_factory: sessionmaker[Session],
    now: dt.datetime,
    *,
    environment: Environment = Environment.SANDBOX,
    access_modes: tuple[str, ...] = ("franceconnect",),
    data_scopes: tuple[str, ...] = ("dgfip_rfr", "dgfip_nbpart"),
    year_scopes: tuple[str, ...] = ("dgfip_annee_n_moins_1", "dgfip_annee_n_moins_2"),
    siret: str = "21000000610001",
) -> uuid.UUID:
    """A validated habilitation row, built through the habilitation service."""
    with transaction(session_factory) as session:
        org = get_or_create_organisation(session, siret, "Commune de Testville", now)
        hab = create_habilitation(
            session,
            org,
            HabilitationSpec(
                demarche="Quotient familial",
                environment=environment,
                apis=["impot_particulier"],
                access_modes=list(access_modes),
                data_scopes=list(data_scopes),
                year_scopes=list(year_scopes),
                ip_ranges=["127.0.0.1/32"],
                certificates_pem=[self_signed(now).cert_pem.decode()],
            ),
            actor="tests",
            now=now,
        )
        return hab.id


@dataclass
class Federation:
    """The sandbox federation app on the test database, and the provider's client at it."""

    session_factory: sessionmaker[Session]
    clock: FrozenClock
    master: MasterSecret
    app: Any
    data_provider: RegisteredClient
    # The provider's decryption key, its public part registered on ``data_provider``; None
    # for a data provider registered without one (plain signed answers).
    decryption_key: ECKey | None = None
    checks: list[HttpFederationCheck] = field(default_factory=list)

    def http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url=ISSUER)

    def config(self, **values: Any) -> FederationConfig:
        base: dict[str, Any] = {
            "checktoken_url": f"{ISSUER}/checktoken",
            "jwks_url": f"{ISSUER}/jwks",
            "issuer": ISSUER,
            "client_id": self.data_provider.client_id,
            "client_secret": self.data_provider.client_secret,
            "decryption_key": self.decryption_key,
        }
        base.update(values)
        return FederationConfig(**base)

    @property
    def key(self) -> ECKey:
        assert self.decryption_key is not None
        return self.decryption_key

    def seal(self, signed: str) -> str:
        """What anyone can do with the provider's public key: encrypt a JWS to it."""
        return encrypt_answer(signed, self.key.as_dict(private=False))

    def check(self, client: httpx.AsyncClient | None = None, **values: Any) -> HttpFederationCheck:
        made = HttpFederationCheck(self.config(**values), self.clock, client=client or self.http())
        self.checks.append(made)
        return made

    def service_provider(
        self, habilitation_id: uuid.UUID | None = None, scopes: str = f"{IDENTITY} {DATA}"
    ) -> RegisteredClient:
        with transaction(self.session_factory) as session:
            return register_client(
                session,
                kind=ClientKind.SERVICE_PROVIDER,
                name="Mairie de Testville",
                now=self.clock.now(),
                redirect_uris=[REDIRECT],
                scopes=scopes.split(),
                habilitation_id=habilitation_id,
            )

    async def citizen_token(
        self,
        sp: RegisteredClient,
        spi: str = personas.DUBOIS.spi,
        scope: str = f"{IDENTITY} {DATA}",
    ) -> str:
        """The real authorization code flow: /authorize → identity provider sign-in →
        consent (accepted) → code at the redirect URI → /token."""
        async with self.http() as browser:
            state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
            r = await browser.get(
                "/authorize",
                params={
                    "response_type": "code",
                    "client_id": sp.client_id,
                    "redirect_uri": REDIRECT,
                    "scope": scope,
                    "state": state,
                    "nonce": nonce,
                    "acr_values": "eidas1",
                },
            )
            assert r.status_code == 302, r.text
            interaction = urlsplit(r.headers["location"]).path
            r = await browser.get(f"{interaction}/fi/impots-gouv")
            assert r.status_code == 200, r.text
            csrf = re.search(r'name="csrf" value="([^"]+)"', r.text)
            assert csrf is not None
            r = await browser.post(
                f"{interaction}/fi/impots-gouv",
                data={"csrf": csrf.group(1), "spi": spi, "password": "123"},
            )
            assert r.status_code == 303, r.text
            step = urlsplit(r.headers["location"]).path
            r = await browser.get(step)
            if r.status_code == 200:  # the consent page: the citizen accepts
                csrf = re.search(r'name="csrf" value="([^"]+)"', r.text)
                assert csrf is not None
                r = await browser.post(step, data={"csrf": csrf.group(1), "decision": "accept"})
            assert r.status_code in (302, 303), r.text
            back = urlsplit(r.headers["location"])
            assert f"{back.scheme}://{back.netloc}{back.path}" == REDIRECT
            query = parse_qs(back.query)
            assert query["state"] == [state]
            r = await browser.post(
                "/token",
                data={
                    "grant_type": "authorization_code",
                    "code": query["code"][0],
                    "redirect_uri": REDIRECT,
                    "client_id": sp.client_id,
                    "client_secret": sp.client_secret,
                },
            )
            assert r.status_code == 200, r.text
            return str(r.json()["access_token"])


@pytest.fixture
def federation(
    session_factory: sessionmaker[Session], clock: FrozenClock, master_secret: MasterSecret
) -> Iterator[Federation]:
    seed(session_factory, households=2, reference_year=clock.now().year)
    deps = FederationDeps(
        issuer=ISSUER, session_factory=session_factory, master=master_secret, clock=clock
    )
    decryption_key = ECKey.generate_key("P-256", private=True)
    with transaction(session_factory) as session:
        provider = register_client(
            session,
            kind=ClientKind.DATA_PROVIDER,
            name="DGFiP (guichet)",
            now=clock.now(),
            encryption_jwk=decryption_key.as_dict(private=False),
        )
    fed = Federation(
        session_factory,
        clock,
        master_secret,
        build_federation_app(deps),
        provider,
        decryption_key,
    )
    yield fed
    for check in fed.checks:
        asyncio.run(check.client.aclose())


class CountingTransport(httpx.AsyncBaseTransport):
    """Counts the requests that reach the real federation app (no answer is changed)."""

    def __init__(self, app: Any) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.paths: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        return await self.inner.handle_async_request(request)


# --- an active token --------------------------------------------------------------------


def test_an_active_token_gives_the_identity_pivot_and_scopes(federation: Federation) -> None:
    async def run() -> None:
        sp = federation.service_provider()
        token = await federation.citizen_token(sp)
        identity = await federation.check().check(token)
        assert identity.active is True
        assert identity.client_id == sp.client_id
        assert identity.scopes == frozenset(f"{IDENTITY} {DATA}".split())
        assert identity.acr == "eidas1"
        assert identity.exp == federation.clock.now() + dt.timedelta(seconds=60)
        pivot = identity.pivot
        assert pivot.family_name == "DUBOIS"
        assert pivot.given_name == "Angela Claire Louise"
        assert pivot.birthdate == dt.date(1962, 8, 24)
        assert pivot.gender == "female"
        assert (pivot.birthplace, pivot.birthcountry) == ("75107", "99100")
        assert identity.sub
        assert identity.sub != personas.DUBOIS.spi

    asyncio.run(run())


def test_a_burst_costs_one_check_and_the_cache_never_holds_the_token(
    federation: Federation,
) -> None:
    async def run() -> None:
        sp = federation.service_provider()
        token = await federation.citizen_token(sp)
        counting = CountingTransport(federation.app)
        check = federation.check(httpx.AsyncClient(transport=counting, base_url=ISSUER))
        found = await asyncio.gather(*(check.check(token) for _ in range(20)))
        assert len({id(f) for f in found}) == 1
        await check.check(token)
        assert counting.paths.count("/checktoken") == 1
        assert check.checks_sent == 1
        # Keyed by the token's SHA-256: the raw token is nowhere in the check's memory.
        assert list(check._answers) == [token_key(token)]
        assert token not in repr(vars(check))
        # The answer lives as long as the token: past its exp, the federation is asked again.
        federation.clock.advance(61)
        with pytest.raises(FederationTokenInvalid):
            await check.check(token)
        assert counting.paths.count("/checktoken") == 2

    asyncio.run(run())


# --- refusals ---------------------------------------------------------------------------


def test_an_expired_or_unknown_token_is_a_401_and_not_cached(federation: Federation) -> None:
    async def run() -> None:
        sp = federation.service_provider()
        token = await federation.citizen_token(sp)
        check = federation.check()
        federation.clock.advance(60)  # FranceConnect tokens live 60 s
        with pytest.raises(FederationTokenInvalid) as caught:
            await check.check(token)
        assert caught.value.status == 401
        assert caught.value.code == "federation_token_invalid"
        with pytest.raises(FederationTokenInvalid):
            await check.check(secrets.token_urlsafe(32))
        with pytest.raises(FederationTokenMissing):
            await check.check("")
        assert not check._answers

    asyncio.run(run())


def test_a_federation_outage_is_a_503_with_retry_after(federation: Federation) -> None:
    async def run() -> None:
        sp = federation.service_provider()
        token = await federation.citizen_token(sp)

        # A port nobody listens on: the connection is refused.
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        closed = f"http://127.0.0.1:{port}"
        down = federation.check(
            httpx.AsyncClient(),
            checktoken_url=f"{closed}/checktoken",
            jwks_url=f"{closed}/jwks",
        )
        with pytest.raises(UpstreamUnavailable) as caught:
            await down.check(token)
        assert caught.value.status == 503
        assert caught.value.retry_after
        assert not down._answers

        # A server that accepts the connection and never answers: the timeout is an outage.
        with socket.socket() as mute:
            mute.bind(("127.0.0.1", 0))
            mute.listen(8)
            silent = f"http://127.0.0.1:{mute.getsockname()[1]}"
            slow = federation.check(
                httpx.AsyncClient(),
                checktoken_url=f"{silent}/checktoken",
                jwks_url=f"{silent}/jwks",
                timeout=0.2,
            )
            with pytest.raises(UpstreamUnavailable):
                await asyncio.wait_for(slow.check(token), 5)

    asyncio.run(run())


def test_wrong_data_provider_credentials_are_an_outage_not_data(federation: Federation) -> None:
    async def run() -> None:
        sp = federation.service_provider()
        token = await federation.citizen_token(sp)
        with pytest.raises(UpstreamUnavailable):
            await federation.check(client_secret="not-the-secret").check(token)
        with pytest.raises(UpstreamUnavailable):
            await federation.check(client_id=None).check(token)

    asyncio.run(run())


def test_wrong_issuer_or_audience_is_refused(federation: Federation) -> None:
    async def run() -> None:
        sp = federation.service_provider()
        token = await federation.citizen_token(sp)
        with pytest.raises(FederationAnswerInvalid, match="émetteur"):
            await federation.check(issuer="https://fc.example").check(token)
        # Another data provider's answer (aud = its client id) is not ours.
        with transaction(federation.session_factory) as session:
            other = register_client(
                session, kind=ClientKind.DATA_PROVIDER, name="Autre", now=federation.clock.now()
            )
        check = federation.check(client_id=other.client_id, client_secret=other.client_secret)
        answer = (
            await check.client.post(
                f"{ISSUER}/checktoken",
                data={
                    "token": token,
                    "client_id": other.client_id,
                    "client_secret": other.client_secret,
                },
            )
        ).text
        mine = federation.check()
        with pytest.raises(FederationAnswerInvalid, match="destinataire"):
            await mine.verify(federation.seal(answer))

    asyncio.run(run())


# --- forged answers: alg=none, HS256 key confusion, foreign keys, wrong typ ---------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(federation: Federation, sp_client_id: str) -> dict[str, Any]:
    now = int(federation.clock.now().timestamp())
    return {
        "iss": ISSUER,
        "aud": federation.data_provider.client_id,
        "iat": now,
        "token_introspection": {
            "active": True,
            "sub": "x" * 64,
            "scope": f"{IDENTITY} {DATA}",
            "acr": "eidas1",
            "exp": now + 60,
            "client_id": sp_client_id,
            "given_name": "Angela Claire Louise",
            "family_name": "DUBOIS",
            "birthdate": "1962-08-24",
            "gender": "female",
            "birthplace": "75107",
            "birthcountry": "99100",
        },
    }


async def _federation_kid(federation: Federation) -> tuple[str, dict[str, Any]]:
    async with federation.http() as client:
        jwks = (await client.get("/jwks")).json()
    key = jwks["keys"][0]
    return str(key["kid"]), key


def test_alg_none_is_refused(federation: Federation) -> None:
    async def run() -> None:
        kid, _ = await _federation_kid(federation)
        header = {"alg": "none", "typ": "token-introspection+jwt", "kid": kid}
        forged = (
            _b64(json.dumps(header).encode())
            + "."
            + _b64(json.dumps(_claims(federation, "c")).encode())
            + "."
        )
        with pytest.raises(FederationAnswerInvalid, match="algorithme"):
            await federation.check().verify(federation.seal(forged))

    asyncio.run(run())


def test_hs256_keyed_with_the_public_key_is_refused(federation: Federation) -> None:
    """Key confusion: an HMAC "signed" with the federation's public JWK as the secret."""

    async def run() -> None:
        kid, public = await _federation_kid(federation)
        secret = OctKey.import_key(json.dumps(public, sort_keys=True).encode())
        forged = jwt.encode(
            {"alg": "HS256", "typ": "token-introspection+jwt", "kid": kid},
            _claims(federation, "c"),
            secret,
            algorithms=["HS256"],
        )
        with pytest.raises(FederationAnswerInvalid, match="algorithme"):
            await federation.check().verify(federation.seal(forged))

    asyncio.run(run())


def test_a_signature_by_another_key_under_the_federation_kid_is_refused(
    federation: Federation,
) -> None:
    async def run() -> None:
        kid, _ = await _federation_kid(federation)
        ours = ECKey.generate_key("P-256", private=True)
        forged = jwt.encode(
            {"alg": "ES256", "typ": "token-introspection+jwt", "kid": kid},
            _claims(federation, "c"),
            ours,
            algorithms=["ES256"],
        )
        with pytest.raises(FederationAnswerInvalid, match="signature"):
            await federation.check().verify(federation.seal(forged))
        # RS256 claimed for the federation's EC key: the family must match the key.
        rsa = RSAKey.generate_key(2048, private=True)
        forged = jwt.encode(
            {"alg": "RS256", "typ": "token-introspection+jwt", "kid": kid},
            _claims(federation, "c"),
            rsa,
            algorithms=["RS256"],
        )
        with pytest.raises(FederationAnswerInvalid, match="famille"):
            await federation.check().verify(federation.seal(forged))
        # An unknown kid, even after refreshing the JWKS, is refused.
        forged = jwt.encode(
            {"alg": "ES256", "typ": "token-introspection+jwt", "kid": "elsewhere"},
            _claims(federation, "c"),
            ours,
            algorithms=["ES256"],
        )
        with pytest.raises(FederationAnswerInvalid, match="inconnue"):
            await federation.check().verify(federation.seal(forged))

    asyncio.run(run())


def test_an_answer_without_the_introspection_typ_is_refused(federation: Federation) -> None:
    """RFC 9701 §5 typ: a userinfo or ID token JWT of the same federation is no answer."""

    async def run() -> None:
        sp = federation.service_provider()
        token = await federation.citizen_token(sp)
        async with federation.http() as client:
            userinfo = (
                await client.get("/userinfo", headers={"Authorization": f"Bearer {token}"})
            ).text
        with pytest.raises(FederationAnswerInvalid, match="typ"):
            await federation.check().verify(federation.seal(userinfo))

    asyncio.run(run())


# --- the real FranceConnect, by configuration -------------------------------------------


FRANCECONNECT = "https://oidc.franceconnect.example/api/v2"


class FakeFranceConnect:
    """Another federation than the sandbox one, answering ``/checktoken`` as FranceConnect v2
    does (RFC 9701 signed answer, its own ES256 key and issuer): a token is whatever
    ``tokens`` maps it to — its service provider's ``client_id`` and its ``acr``."""

    def __init__(self, clock: FrozenClock) -> None:
        self.clock = clock
        self.key = ECKey.generate_key("P-256", private=True, parameters={"kid": "fc-sig-1"})
        self.provider_id, self.provider_secret = "dgfip-at-franceconnect", secrets.token_hex(16)
        self.tokens: dict[str, tuple[str, str | None]] = {}

    def answer(self, token: str) -> httpx.Response:
        now = int(self.clock.now().timestamp())
        if token not in self.tokens:
            body: dict[str, Any] = {"active": False}
        else:
            client_id, acr = self.tokens[token]
            body = {
                "active": True,
                "sub": "f" * 64 + "v1",
                "scope": f"{IDENTITY} {DATA}",
                "exp": now + 60,
                "client_id": client_id,
                "given_name": "Angela Claire Louise",
                "family_name": "DUBOIS",
                "birthdate": "1962-08-24",
                "gender": "female",
                "birthplace": "75107",
                "birthcountry": "99100",
            }
            if acr is not None:
                body["acr"] = acr
        claims = {
            "iss": FRANCECONNECT,
            "aud": self.provider_id,
            "iat": now,
            "token_introspection": body,
        }
        signed = jwt.encode(
            {"alg": "ES256", "typ": "token-introspection+jwt", "kid": "fc-sig-1"},
            claims,
            self.key,
            algorithms=["ES256"],
        )
        return httpx.Response(
            200, text=signed, headers={"content-type": "application/token-introspection+jwt"}
        )

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/jwks"):
            public = {**self.key.as_dict(private=False), "kid": "fc-sig-1", "use": "sig"}
            return httpx.Response(200, json={"keys": [public]})
        form = parse_qs(request.content.decode())
        if form.get("client_secret") != [self.provider_secret]:
            return httpx.Response(401, json={"error": "invalid_client"})
        return self.answer(form["token"][0])

    def check(self, clock: FrozenClock) -> HttpFederationCheck:
        """The gateway's check as ``from_settings`` builds it for the real FranceConnect."""
        return HttpFederationCheck(
            FederationConfig(
                checktoken_url=f"{FRANCECONNECT}/checktoken",
                jwks_url=f"{FRANCECONNECT}/jwks",
                issuer=FRANCECONNECT,
                client_id=self.provider_id,
                client_secret=self.provider_secret,
            ),
            clock,
            client=httpx.AsyncClient(transport=httpx.MockTransport(self.handle)),
        )


def _production_context(
    federation: Federation, hab_id: uuid.UUID
) -> tuple[CallContext, HabilitationPolicy]:
    with federation.session_factory() as session:
        policy = load_snapshot(session, directory).habilitations[hab_id]
    ctx = CallContext(
        environment=Environment.PRODUCTION,
        correlation_id=str(uuid.uuid4()),
        source_ip="127.0.0.1",
        now=federation.clock.now(),
        method="GET",
        path="/impotparticulier/1.0/situations/ir/assiettes/annrev/2025",
        habilitation=policy,
    )
    return ctx, policy


def test_a_real_franceconnect_client_declared_for_the_habilitation_is_accepted(
    federation: Federation,
) -> None:
    """Production trusts the real FranceConnect (configured, not the sandbox federation):
    its tokens are accepted when issued to the client_id the habilitation declared — a
    client the sandbox federation has never heard of — and refused otherwise."""
    now = federation.clock.now()
    hab_id = make_habilitation(federation.session_factory, now, environment=Environment.PRODUCTION)
    other_id = make_habilitation(
        federation.session_factory, now, environment=Environment.PRODUCTION, siret="21000000620000"
    )
    declared, foreign = "a" * 64, "b" * 64
    with transaction(federation.session_factory) as session:
        persons, _ = personas.rows("production", now.year)
        session.execute(insert(Person), persons)
        hab, other = session.get(Habilitation, hab_id), session.get(Habilitation, other_id)
        assert hab is not None
        assert other is not None
        declare_habilitation_client(session, hab, declared, now)
        declare_habilitation_client(session, other, foreign, now)
        assert session.get(FederationClient, declared) is None  # not a sandbox client
    fc = FakeFranceConnect(federation.clock)
    fc.tokens = {"mine": (declared, "eidas1"), "theirs": (foreign, "eidas1")}
    fc.tokens["unknown-client"] = ("c" * 64, "eidas2")
    check = fc.check(federation.clock)
    federation.checks.append(check)
    gate = FranceConnectGate(
        ApiDeps(federation.session_factory, federation.clock), {Environment.PRODUCTION: check}
    )
    ctx, policy = _production_context(federation, hab_id)
    assert policy.federation_clients == frozenset({declared})
    wanted = frozenset({"dgfip_rfr", "dgfip_nbpart"})

    async def run() -> None:
        who = await gate.identify(ctx, "mine", wanted, now.year - 1)
        assert who.spi == personas.DUBOIS.spi
        for token in ("theirs", "unknown-client"):
            with pytest.raises(FederationClientNotHabilitated):
                await gate.identify(ctx, token, wanted, now.year - 1)

    asyncio.run(run())


def test_a_token_below_eidas1_gives_no_data(federation: Federation) -> None:
    """FranceConnect's levels are eidas1 (low), eidas2, eidas3: anything else — no acr,
    eidas0, a made-up value — is refused with a stable code, and never cached."""
    fc = FakeFranceConnect(federation.clock)
    fc.tokens = {
        "low": ("a" * 64, "eidas1"),
        "substantial": ("a" * 64, "eidas2"),
        "high": ("a" * 64, "eidas3"),
        "none": ("a" * 64, None),
        "zero": ("a" * 64, "eidas0"),
        "made-up": ("a" * 64, "eidas9"),
        "wrong-type": ("a" * 64, "EIDAS1"),
    }
    check = fc.check(federation.clock)
    federation.checks.append(check)

    async def run() -> None:
        for token in ("low", "substantial", "high"):
            assert (await check.check(token)).acr == fc.tokens[token][1]
        for token in ("none", "zero", "made-up", "wrong-type"):
            sent = check.checks_sent
            for _ in range(2):  # refused each time: a refusal is not cached
                with pytest.raises(FederationAcrInsufficient) as caught:
                    await check.check(token)
                assert caught.value.code == "federation_acr_insufficient"
                assert caught.value.status == 401
            assert check.checks_sent == sent + 2

    asyncio.run(run())


def test_an_rs256_federation_key_is_accepted(federation: Federation) -> None:
    """The real FranceConnect may sign RS256: verified against an RSA key of the JWKS."""

    async def run() -> None:
        rsa = RSAKey.generate_key(2048, private=True, parameters={"kid": "rsa-1"})
        jwks = {"keys": [{**rsa.as_dict(private=False), "kid": "rsa-1", "use": "sig"}]}
        answer = federation.seal(
            jwt.encode(
                {"alg": "RS256", "typ": "token-introspection+jwt", "kid": "rsa-1"},
                _claims(federation, "client-x"),
                rsa,
                algorithms=["RS256"],
            )
        )

        def serve(request: httpx.Request) -> httpx.Response:
            if request.url.path == "/jwks":
                return httpx.Response(200, json=jwks)
            return httpx.Response(
                200, text=answer, headers={"content-type": "application/token-introspection+jwt"}
            )

        check = federation.check(httpx.AsyncClient(transport=httpx.MockTransport(serve)))
        identity = await check.check("opaque")
        assert identity.client_id == "client-x"
        # The same answer served as plain JSON is refused (RFC 9701 media type).

        def as_json(request: httpx.Request) -> httpx.Response:
            if request.url.path == "/jwks":
                return httpx.Response(200, json=jwks)
            return httpx.Response(200, json={"active": True})

        plain = federation.check(httpx.AsyncClient(transport=httpx.MockTransport(as_json)))
        with pytest.raises(FederationAnswerInvalid, match="type de contenu"):
            await plain.check("opaque")

    asyncio.run(run())


# --- encrypted answers (RFC 9701 §5 nested JWT, as FranceConnect answers) ----------------


async def _raw_answer(federation: Federation, token: str) -> str:
    async with federation.http() as client:
        response = await client.post(
            "/checktoken",
            data={
                "token": token,
                "client_id": federation.data_provider.client_id,
                "client_secret": federation.data_provider.client_secret,
            },
            headers={"Accept": "application/token-introspection+jwt"},
        )
    assert response.status_code == 200, response.text
    return response.text


def _header(compact: str) -> dict[str, Any]:
    segment = compact.split(".")[0]
    return dict(json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))))


def test_the_answer_is_a_jws_encrypted_to_the_provider_key(federation: Federation) -> None:
    async def run() -> None:
        sp = federation.service_provider()
        token = await federation.citizen_token(sp)
        answer = await _raw_answer(federation, token)
        assert answer.count(".") == 4  # a compact JWE, not a JWS
        header = _header(answer)
        assert (header["alg"], header["enc"], header["cty"]) == ("ECDH-ES", "A256GCM", "JWT")
        assert header["typ"] == "token-introspection+jwt"
        assert "DUBOIS" not in answer
        inner = jwe.decrypt_compact(
            answer, federation.key, algorithms=["ECDH-ES", "A256GCM"]
        ).plaintext
        assert inner is not None
        assert inner.count(b".") == 2
        assert _header(inner.decode())["alg"] == "ES256"
        # The whole check, through the real federation: decrypted, then verified as before.
        counting = CountingTransport(federation.app)
        check = federation.check(httpx.AsyncClient(transport=counting, base_url=ISSUER))
        identity = await check.check(token)
        assert identity.pivot.family_name == "DUBOIS"
        assert identity.client_id == sp.client_id
        await check.check(token)
        assert counting.paths.count("/checktoken") == 1
        assert list(check._answers) == [token_key(token)]

    asyncio.run(run())


def test_an_rsa_encryption_key_gets_rsa_oaep_256(federation: Federation) -> None:
    async def run() -> None:
        rsa = RSAKey.generate_key(2048, private=True)
        with transaction(federation.session_factory) as session:
            set_encryption_key(
                session, federation.data_provider.client_id, rsa.as_dict(private=False)
            )
        sp = federation.service_provider()
        token = await federation.citizen_token(sp)
        answer = await _raw_answer(federation, token)
        assert (_header(answer)["alg"], _header(answer)["enc"]) == ("RSA-OAEP-256", "A256GCM")
        identity = await federation.check(decryption_key=rsa).check(token)
        assert identity.pivot.family_name == "DUBOIS"
        # The EC key no longer opens it: its algorithm is not the answer's.
        with pytest.raises(FederationAnswerInvalid, match="algorithme de chiffrement"):
            await federation.check().verify(answer)

    asyncio.run(run())


def test_a_tampered_ciphertext_tag_or_header_is_refused(federation: Federation) -> None:
    async def run() -> None:
        sp = federation.service_provider()
        token = await federation.citizen_token(sp)
        answer = await _raw_answer(federation, token)
        parts = answer.split(".")

        def flip(segment: str) -> str:
            raw = bytearray(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
            raw[len(raw) // 2] ^= 0x01
            return _b64(bytes(raw))

        check = federation.check()
        for index in (2, 3, 4):  # IV, ciphertext, authentication tag
            tampered = ".".join(flip(p) if i == index else p for i, p in enumerate(parts))
            with pytest.raises(FederationAnswerInvalid, match="déchiffrement"):
                await check.verify(tampered)
        # The protected header is the AAD: an added member breaks the tag.
        header = {**_header(answer), "kid": "autre"}
        tampered = ".".join([_b64(json.dumps(header).encode()), *parts[1:]])
        with pytest.raises(FederationAnswerInvalid, match="déchiffrement"):
            await check.verify(tampered)
        assert not check._answers

    asyncio.run(run())


def test_an_answer_for_another_key_is_refused(federation: Federation) -> None:
    async def run() -> None:
        sp = federation.service_provider()
        token = await federation.citizen_token(sp)
        other = ECKey.generate_key("P-256", private=True)
        with pytest.raises(FederationAnswerInvalid, match="déchiffrement") as caught:
            await federation.check(decryption_key=other).check(token)
        assert caught.value.status == 503  # no data without a verified check

    asyncio.run(run())


def test_only_ecdh_es_or_rsa_oaep_256_with_a256gcm_are_accepted(federation: Federation) -> None:
    async def run() -> None:
        sp = federation.service_provider()
        token = await federation.citizen_token(sp)
        signed = jwe.decrypt_compact(
            await _raw_answer(federation, token),
            federation.key,
            algorithms=["ECDH-ES", "A256GCM"],
        ).plaintext
        assert signed is not None
        public = ECKey.import_key(federation.key.as_dict(private=False))
        check = federation.check()

        def sealed(header: dict[str, Any], key: Any) -> str:
            algorithms = [header["alg"], header["enc"], *(["DEF"] if "zip" in header else [])]
            return jwe.encrypt_compact(header, signed, key, algorithms=algorithms)

        # alg "dir": a symmetric key is no key of ours (and anyone can claim one).
        direct = sealed({"alg": "dir", "enc": "A256GCM", "cty": "JWT"}, OctKey.generate_key(256))
        with pytest.raises(FederationAnswerInvalid, match="algorithme de chiffrement 'dir'"):
            await check.verify(direct)
        # Another content encryption than A256GCM.
        cbc = sealed({"alg": "ECDH-ES", "enc": "A128CBC-HS256", "cty": "JWT"}, public)
        with pytest.raises(FederationAnswerInvalid, match="chiffrement de contenu"):
            await check.verify(cbc)
        # ECDH-ES with key wrapping is not the registered algorithm either.
        wrapped = sealed({"alg": "ECDH-ES+A256KW", "enc": "A256GCM", "cty": "JWT"}, public)
        with pytest.raises(FederationAnswerInvalid, match="algorithme de chiffrement"):
            await check.verify(wrapped)
        # Compression (a decompression bomb's vehicle) is refused.
        zipped = sealed({"alg": "ECDH-ES", "enc": "A256GCM", "zip": "DEF"}, public)
        with pytest.raises(FederationAnswerInvalid, match="compression"):
            await check.verify(zipped)
        # A nested payload that says it is something else.
        other_cty = sealed({"alg": "ECDH-ES", "enc": "A256GCM", "cty": "json"}, public)
        with pytest.raises(FederationAnswerInvalid, match="cty"):
            await check.verify(other_cty)
        # The allowed pair, sealed by anyone with the public key, still needs the signature.
        fine = sealed({"alg": "ECDH-ES", "enc": "A256GCM", "cty": "JWT"}, public)
        assert (await check.verify(fine))["token_introspection"]["active"] is True

    asyncio.run(run())


def test_a_plain_answer_is_refused_when_a_decryption_key_is_configured(
    federation: Federation,
) -> None:
    """Downgrade: a signed but unencrypted answer — a federation told to stop encrypting,
    or an attacker replaying a plain answer — never passes when we expect encryption."""

    async def run() -> None:
        sp = federation.service_provider()
        token = await federation.citizen_token(sp)
        with transaction(federation.session_factory) as session:
            set_encryption_key(session, federation.data_provider.client_id, None)
        plain = await _raw_answer(federation, token)
        assert plain.count(".") == 2
        check = federation.check()
        with pytest.raises(FederationAnswerInvalid, match="non chiffrée") as caught:
            await check.check(token)
        assert caught.value.status == 503
        assert not check._answers
        with pytest.raises(FederationAnswerInvalid, match="non chiffrée"):
            await check.verify(plain)
        # Without a decryption key configured, the same plain answer is accepted…
        assert (await federation.check(decryption_key=None).check(token)).active
        # …and an encrypted one is refused: it cannot be read, so it cannot be trusted.
        with transaction(federation.session_factory) as session:
            set_encryption_key(
                session,
                federation.data_provider.client_id,
                federation.key.as_dict(private=False),
            )
        with pytest.raises(FederationAnswerInvalid, match="aucune clé"):
            await federation.check(decryption_key=None).check(token)

    asyncio.run(run())


# --- the decryption key: settings, `guichet init` ------------------------------------------


@pytest.mark.filterwarnings("ignore::joserfc.errors.SecurityWarning")  # the 1024-bit key
def test_the_decryption_key_file_is_a_private_p256_or_rsa_2048_pem(tmp_path: Path) -> None:
    ec = ECKey.generate_key("P-256", private=True)
    (tmp_path / "ec.pem").write_bytes(ec.as_pem(private=True))
    assert load_decryption_key(tmp_path / "ec.pem").thumbprint() == ec.thumbprint()
    rsa = RSAKey.generate_key(2048, private=True)
    (tmp_path / "rsa.pem").write_bytes(rsa.as_pem(private=True))
    assert isinstance(load_decryption_key(tmp_path / "rsa.pem"), RSAKey)
    refused = {
        "public.pem": ec.as_pem(private=False),
        "p384.pem": ECKey.generate_key("P-384", private=True).as_pem(private=True),
        "rsa1024.pem": RSAKey.generate_key(1024, private=True, auto_kid=False).as_pem(private=True),
        "junk.pem": b"not a key",
    }
    for name, data in refused.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ValueError, match=r"private|P-256|2048|not a PEM"):
            load_decryption_key(tmp_path / name)


def test_init_makes_the_key_registers_it_and_the_gateway_uses_it(
    federation: Federation, engine: Engine, tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path, federation_port=8600, host="127.0.0.1")
    runtime = Runtime(
        settings, engine, federation.session_factory, federation.master, federation.clock
    )
    # A data provider registered before keys existed (an older `guichet init`)…
    with transaction(federation.session_factory) as session:
        old = register_client(
            session, kind=ClientKind.DATA_PROVIDER, name="DGFiP", now=federation.clock.now()
        )
    (tmp_path / "federation").mkdir()
    (tmp_path / "federation" / "data-provider.json").write_text(
        json.dumps({"client_id": old.client_id, "client_secret": old.client_secret})
    )
    # …gets its key on the next start: 0600, its public part registered on the client.
    ensure_federation_data_provider(runtime)
    key_path = tmp_path / "federation" / "data-provider-key.pem"
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    key = load_decryption_key(key_path)
    with federation.session_factory() as session:
        row = session.get(FederationClient, old.client_id)
        assert row is not None
        assert row.encryption_jwk is not None
        assert row.encryption_jwk["kid"] == key.thumbprint()
        assert "d" not in row.encryption_jwk
        registered = dict(row.encryption_jwk)
    # Idempotent: the same key, the same registration.
    ensure_federation_data_provider(runtime)
    assert load_decryption_key(key_path).thumbprint() == key.thumbprint()
    with federation.session_factory() as session:
        row = session.get(FederationClient, old.client_id)
        assert row is not None
        assert row.encryption_jwk == registered
    # The gateway's default configuration picks the key and the credentials up, and the
    # real federation's encrypted answer passes.
    check = from_settings(settings, federation.clock)
    assert check.config.decryption_key is not None
    assert check.config.decryption_key.thumbprint() == key.thumbprint()
    check._client = federation.http()
    federation.checks.append(check)

    async def run() -> None:
        sp = federation.service_provider()
        token = await federation.citizen_token(sp)
        assert (await check.check(token)).pivot.family_name == "DUBOIS"

    asyncio.run(run())
    # A real federation (explicit credentials) does not inherit the embedded key…
    explicit = Settings(data_dir=tmp_path, federation_client_id="x", federation_client_secret="y")
    assert from_settings(explicit, federation.clock).config.decryption_key is None
    # …unless configured.
    configured = Settings(
        data_dir=tmp_path,
        federation_client_id="x",
        federation_client_secret="y",
        federation_decryption_key_file=key_path,
    )
    assert from_settings(configured, federation.clock).config.decryption_key is not None
