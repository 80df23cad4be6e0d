"""The authorization server over HTTP: /token, /introspect, /revoke, /jwks and RFC 8414 metadata."""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from joserfc import jwt
from joserfc.jwk import ECKey
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette
from starlette.testclient import TestClient
from starlette.types import ASGIApp, Receive, Scope, Send

from guichet.clock import FrozenClock
from guichet.db import transaction
from guichet.db.models import read_generation
from guichet.edge import ProxyChannel
from guichet.errors import TokenWrongAudience
from guichet.federation.clients import directory
from guichet.habilitation.models import Environment, Habilitation, HabilitationStatus
from guichet.oauth import rfc8705
from guichet.oauth.clients import create_client
from guichet.oauth.keys import ensure_signing_key, verification_keys
from guichet.oauth.models import RevokedToken
from guichet.oauth.policy import PolicyCache
from guichet.oauth.server import OAuthDeps, token_routes
from guichet.oauth.tokens import verify_access_token
from guichet.secrets import MasterSecret
from tests.unit.oauth.support import Issued, issue, make_ca, make_habilitation, self_signed

ISSUER = {
    Environment.SANDBOX: "https://127.0.0.1:8443",
    Environment.PRODUCTION: "https://127.0.0.1:9443",
}
PROXY = "10.0.0.5"


def with_tls(app: ASGIApp, pem: str | None, peer: str | None, headers: dict[str, str]) -> ASGIApp:
    """Stands for the TLS edge: puts the client certificate where the ASGI TLS extension does
    (``peer`` None: the proxy's Unix socket, which has no address)."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope = dict(scope)
            scope["client"] = (peer, 50000) if peer else None
            if pem is not None:
                scope["extensions"] = {
                    **(scope.get("extensions") or {}),
                    "tls": {"client_cert_chain": [pem], "tls_version": 0x0304},
                }
            scope["headers"] = [
                *scope["headers"],
                *((k.lower().encode(), v.encode()) for k, v in headers.items()),
            ]
        await app(scope, receive, send)

    return wrapped


@dataclass
class Partner:
    client_id: str
    secret: str | None
    cert: Issued
    habilitation_id: Any


@dataclass
class World:
    session_factory: sessionmaker[Session]
    clock: FrozenClock
    ca: Issued
    apps: dict[Environment, Starlette]
    deps: dict[Environment, OAuthDeps]

    def partner(
        self,
        methods: list[str],
        *,
        cert: Issued | None = None,
        environment: Environment = Environment.SANDBOX,
        status: HabilitationStatus = HabilitationStatus.ACTIVE,
        scopes: tuple[str, ...] = ("RessourceIR", "RessourceR2P"),
    ) -> Partner:
        cert = cert or issue(self.ca, "partner.example")
        now = self.clock.now()
        with transaction(self.session_factory) as s:
            hab = make_habilitation(
                s, environment=environment, now=now, certificates=[cert], status=status
            )
            client, secret = create_client(
                s, habilitation=hab, scopes=list(scopes), auth_methods=methods, now=now
            )
        return Partner(client.client_id, secret, cert, hab.id)

    def http(
        self,
        cert: Issued | None,
        *,
        environment: Environment = Environment.SANDBOX,
        peer: str = "127.0.0.1",
        headers: dict[str, str] | None = None,
        proxy_channel: bool = False,
    ) -> TestClient:
        """``proxy_channel``: the request comes through nginx's Unix socket (no peer address)."""
        app = self.apps[environment]
        if proxy_channel:
            app = with_tls(ProxyChannel(app), cert.pem if cert else None, None, headers or {})
        else:
            app = with_tls(app, cert.pem if cert else None, peer, headers or {})
        return TestClient(app, base_url=ISSUER[environment])

    def post(
        self,
        path: str,
        partner: Partner,
        method: str,
        data: dict[str, str] | None = None,
        *,
        cert: Issued | bool | None = True,
        secret: str | None = None,
        environment: Environment = Environment.SANDBOX,
    ) -> httpx.Response:
        form = dict(data or {})
        auth: tuple[str, str] | None = None
        secret = secret if secret is not None else partner.secret
        if method == "client_secret_basic":
            assert secret is not None
            auth = (partner.client_id, secret)
        elif method == "client_secret_post":
            form.update(client_id=partner.client_id, client_secret=secret or "")
        else:
            form["client_id"] = partner.client_id
        presented = partner.cert if cert is True else (cert or None)
        resp: httpx.Response = self.http(presented, environment=environment).post(
            path, data=form, auth=auth
        )
        return resp

    def token(self, partner: Partner, method: str, **kw: Any) -> httpx.Response:
        scope = kw.pop("scope", None)
        data = {"grant_type": "client_credentials"}
        if scope is not None:
            data["scope"] = scope
        return self.post("/token", partner, method, data, **kw)


@pytest.fixture
def world(
    session_factory: sessionmaker[Session], master_secret: MasterSecret, clock: FrozenClock
) -> World:
    with transaction(session_factory) as s:
        for env in Environment:
            ensure_signing_key(s, env, master_secret, clock.now())
    cache = PolicyCache(session_factory, directory)
    ca = make_ca()
    deps = {
        env: OAuthDeps(
            environment=env,
            issuer=ISSUER[env],
            audience=ISSUER[env],
            session_factory=session_factory,
            master=master_secret,
            clock=clock,
            cache=cache,
            trusted_proxies=[ipaddress.ip_network("10.0.0.0/24")],
            client_cert_header="Client-Cert",
            token_lifetime=3600,
            trust_store=[ca.cert],
        )
        for env in Environment
    }
    apps = {env: Starlette(routes=token_routes(d)) for env, d in deps.items()}
    return World(session_factory, clock, ca, apps, deps)


def claims_of(world: World, token: str, env: Environment = Environment.SANDBOX) -> dict[str, Any]:
    world.deps[env].cache.reload()
    return verify_access_token(
        token,
        issuer=ISSUER[env],
        audience=ISSUER[env],
        keys=verification_keys(world.deps[env].cache.snapshot),
        now=world.clock.now(),
    )


def assert_oauth_error(resp: httpx.Response, status: int, error: str) -> None:
    assert resp.status_code == status, resp.text
    assert resp.json()["error"] == error
    assert "error_description" in resp.json()
    assert resp.headers["cache-control"] == "no-store"
    if error == "invalid_client":
        assert resp.headers["www-authenticate"].startswith("Basic ")


# --- /token: each authentication method ---------------------------------------------------


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_secret_methods_issue_a_certificate_bound_token(world: World, method: str) -> None:
    partner = world.partner([method])
    resp = world.token(partner, method)
    assert resp.status_code == 200, resp.text
    assert resp.headers["cache-control"] == "no-store"
    assert resp.headers["pragma"] == "no-cache"
    body = resp.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["scope"] == "RessourceIR RessourceR2P"
    assert "refresh_token" not in body
    claims = claims_of(world, body["access_token"])
    rfc8705.check_binding(claims, partner.cert.thumbprint)


def test_token_claims_follow_rfc9068_and_rfc8705(world: World) -> None:
    partner = world.partner(["client_secret_basic"])
    token = world.token(partner, "client_secret_basic").json()["access_token"]
    header = jwt.decode(
        token,
        ECKey.import_key(
            next(
                iter(
                    world.deps[Environment.SANDBOX]
                    .cache.snapshot.public_keys[Environment.SANDBOX]
                    .values()
                )
            )
        ),
    ).header
    assert header["typ"] == "at+jwt"
    assert header["alg"] == "ES256"
    assert header["kid"]
    c = claims_of(world, token)
    now = int(world.clock.now().timestamp())
    assert c["iss"] == c["aud"] == ISSUER[Environment.SANDBOX]
    assert c["sub"] == c["client_id"] == partner.client_id
    assert c["scope"] == "RessourceIR RessourceR2P"
    assert c["iat"] == c["nbf"] == now
    assert c["exp"] == now + 3600
    assert c["jti"]
    assert c["cnf"] == {"x5t#S256": partner.cert.thumbprint}


def test_tls_client_auth_with_a_ca_issued_certificate(world: World) -> None:
    partner = world.partner(["tls_client_auth"])
    resp = world.token(partner, "tls_client_auth")
    assert resp.status_code == 200, resp.text
    claims = claims_of(world, resp.json()["access_token"])
    assert claims["cnf"]["x5t#S256"] == partner.cert.thumbprint


def test_self_signed_tls_client_auth_with_a_pinned_certificate(world: World) -> None:
    partner = world.partner(["self_signed_tls_client_auth"], cert=self_signed("partner"))
    resp = world.token(partner, "self_signed_tls_client_auth")
    assert resp.status_code == 200, resp.text
    assert claims_of(world, resp.json()["access_token"])["client_id"] == partner.client_id


def test_tls_client_auth_refuses_a_self_signed_certificate(world: World) -> None:
    partner = world.partner(["tls_client_auth"], cert=self_signed("partner"))
    resp = world.token(partner, "tls_client_auth")
    assert_oauth_error(resp, 401, "invalid_client")
    assert "certificate_untrusted" in resp.json()["error_description"]


def test_self_signed_method_refuses_a_ca_issued_certificate(world: World) -> None:
    partner = world.partner(["self_signed_tls_client_auth"])
    assert_oauth_error(world.token(partner, "self_signed_tls_client_auth"), 401, "invalid_client")


def test_client_allowing_both_mtls_methods_gets_the_right_one(world: World) -> None:
    both = ["tls_client_auth", "self_signed_tls_client_auth"]
    for cert in (issue(world.ca, "a"), self_signed("b")):
        partner = world.partner(both, cert=cert)
        assert world.token(partner, "tls_client_auth").status_code == 200


def test_method_not_allowed_for_the_client_is_refused(world: World) -> None:
    partner = world.partner(["client_secret_basic"])
    resp = world.token(partner, "client_secret_post")
    assert_oauth_error(resp, 401, "invalid_client")
    secret_only = world.partner(["client_secret_basic"])
    assert_oauth_error(world.token(secret_only, "tls_client_auth"), 401, "invalid_client")


# --- /token: refusals ----------------------------------------------------------------------


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_wrong_secret(world: World, method: str) -> None:
    partner = world.partner([method])
    assert_oauth_error(world.token(partner, method, secret="not-the-secret"), 401, "invalid_client")


def test_unknown_client(world: World) -> None:
    partner = world.partner(["client_secret_basic"])
    partner.client_id = "sandbox-0000"
    assert_oauth_error(world.token(partner, "client_secret_basic"), 401, "invalid_client")


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post", "tls_client_auth"])
def test_missing_certificate(world: World, method: str) -> None:
    partner = world.partner([method])
    resp = world.token(partner, method, cert=None)
    assert_oauth_error(resp, 401, "invalid_client")
    assert "certificate is required" in resp.json()["error_description"]


@pytest.mark.parametrize("method", ["client_secret_basic", "tls_client_auth"])
def test_certificate_not_declared_on_the_habilitation(world: World, method: str) -> None:
    partner = world.partner([method])
    stranger = issue(world.ca, "partner.example")  # same CA, same name, other certificate
    assert_oauth_error(world.token(partner, method, cert=stranger), 401, "invalid_client")


def test_certificate_of_another_habilitation_is_refused(world: World) -> None:
    partner = world.partner(["client_secret_basic"])
    other = world.partner(["client_secret_basic"])
    assert_oauth_error(
        world.token(partner, "client_secret_basic", cert=other.cert), 401, "invalid_client"
    )


def test_expired_declared_certificate_is_refused(world: World) -> None:
    old = issue(
        world.ca,
        "partner.example",
        not_before=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
        not_after=dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
    )
    partner = world.partner(["client_secret_basic"], cert=old)
    resp = world.token(partner, "client_secret_basic")
    assert_oauth_error(resp, 401, "invalid_client")
    assert "validity" in resp.json()["error_description"]


def test_suspended_habilitation(world: World) -> None:
    partner = world.partner(["client_secret_basic"], status=HabilitationStatus.SUSPENDED)
    resp = world.token(partner, "client_secret_basic")
    assert_oauth_error(resp, 400, "unauthorized_client")
    assert "suspended" in resp.json()["error_description"]


def test_suspension_takes_effect_on_the_next_token_request(world: World) -> None:
    partner = world.partner(["client_secret_basic"])
    assert world.token(partner, "client_secret_basic").status_code == 200
    with transaction(world.session_factory) as s:
        hab = s.get(Habilitation, partner.habilitation_id)
        assert hab is not None
        hab.status = HabilitationStatus.SUSPENDED
    assert_oauth_error(world.token(partner, "client_secret_basic"), 400, "unauthorized_client")


def test_client_of_the_other_environment(world: World) -> None:
    partner = world.partner(["client_secret_basic"], environment=Environment.PRODUCTION)
    resp = world.token(partner, "client_secret_basic")  # at the sandbox
    assert_oauth_error(resp, 401, "invalid_client")
    assert "production" in resp.json()["error_description"]
    ok = world.token(partner, "client_secret_basic", environment=Environment.PRODUCTION)
    assert ok.status_code == 200
    with pytest.raises(TokenWrongAudience):
        claims_of(world, ok.json()["access_token"], Environment.SANDBOX)


def test_habilitation_of_the_other_environment(world: World) -> None:
    partner = world.partner(["client_secret_basic"])
    with transaction(world.session_factory) as s:
        hab = s.get(Habilitation, partner.habilitation_id)
        assert hab is not None
        hab.environment = Environment.PRODUCTION
    assert_oauth_error(world.token(partner, "client_secret_basic"), 400, "unauthorized_client")


def test_unsupported_grant_type(world: World) -> None:
    partner = world.partner(["client_secret_basic"])
    resp = world.post(
        "/token", partner, "client_secret_basic", {"grant_type": "password", "username": "x"}
    )
    assert_oauth_error(resp, 400, "unsupported_grant_type")


def test_malformed_requests(world: World) -> None:
    partner = world.partner(["client_secret_basic"])
    client = world.http(partner.cert)
    auth = (partner.client_id, partner.secret or "")
    resp = client.post("/token", json={"grant_type": "client_credentials"}, auth=auth)
    assert_oauth_error(resp, 400, "invalid_request")
    resp = client.post(
        "/token",
        content="grant_type=client_credentials&scope=RessourceIR&scope=RessourceR2P",
        headers={"content-type": "application/x-www-form-urlencoded"},
        auth=auth,
    )
    assert_oauth_error(resp, 400, "invalid_request")
    assert client.get("/token").status_code == 405


# --- /token: scopes ------------------------------------------------------------------------


def test_requested_subset_of_scopes(world: World) -> None:
    partner = world.partner(["client_secret_basic"])
    resp = world.token(partner, "client_secret_basic", scope="RessourceR2P")
    assert resp.status_code == 200
    assert resp.json()["scope"] == "RessourceR2P"
    assert claims_of(world, resp.json()["access_token"])["scope"] == "RessourceR2P"


def test_requested_superset_is_invalid_scope(world: World) -> None:
    partner = world.partner(["client_secret_basic"], scopes=("RessourceIR",))
    for scope in ("RessourceIR RessourceR2P", "RessourceInconnue"):
        resp = world.token(partner, "client_secret_basic", scope=scope)
        assert_oauth_error(resp, 400, "invalid_scope")


@pytest.mark.parametrize("scope", [None, ""])
def test_empty_scope_request_gets_every_granted_scope(world: World, scope: str | None) -> None:
    partner = world.partner(["client_secret_basic"])
    resp = world.token(partner, "client_secret_basic", scope=scope)
    assert resp.status_code == 200
    assert resp.json()["scope"] == "RessourceIR RessourceR2P"


# --- behind the proxy (RFC 9440) ------------------------------------------------------------


def test_certificate_from_the_proxy_channel_only(world: World) -> None:
    partner = world.partner(["client_secret_basic"])
    der = partner.cert.cert.public_bytes(Encoding.DER)
    header = {"Client-Cert": ":" + base64.b64encode(der).decode() + ":"}
    auth = (partner.client_id, partner.secret or "")
    form = {"grant_type": "client_credentials"}
    via_proxy = world.http(None, headers=header, proxy_channel=True).post(
        "/token", data=form, auth=auth
    )
    assert via_proxy.status_code == 200, via_proxy.text
    claims = claims_of(world, via_proxy.json()["access_token"])
    assert claims["cnf"]["x5t#S256"] == partner.cert.thumbprint
    # nginx's $ssl_client_escaped_cert form
    escaped = {"Client-Cert": quote(partner.cert.pem)}
    assert (
        world.http(None, headers=escaped, proxy_channel=True)
        .post("/token", data=form, auth=auth)
        .status_code
        == 200
    )
    # over TCP the header is ignored, even from a GUICHET_TRUSTED_PROXIES address (issue 12)
    for peer in (PROXY, "192.0.2.7", "127.0.0.1"):
        spoofed = world.http(None, peer=peer, headers=header).post("/token", data=form, auth=auth)
        assert_oauth_error(spoofed, 401, "invalid_client")
    garbage = world.http(None, headers={"Client-Cert": ":AAAA:"}, proxy_channel=True)
    assert_oauth_error(garbage.post("/token", data=form, auth=auth), 401, "invalid_client")


def test_a_certificate_from_the_handshake_wins_over_a_forwarded_one(world: World) -> None:
    partner = world.partner(["tls_client_auth"])
    other = world.partner(["tls_client_auth"])
    der = other.cert.cert.public_bytes(Encoding.DER)
    header = {"Client-Cert": ":" + base64.b64encode(der).decode() + ":"}
    form = {"grant_type": "client_credentials", "client_id": partner.client_id}

    resp = world.http(partner.cert, headers=header, proxy_channel=True).post("/token", data=form)

    assert resp.status_code == 200, resp.text
    claims = claims_of(world, resp.json()["access_token"])
    assert claims["cnf"]["x5t#S256"] == partner.cert.thumbprint


# --- introspection and revocation ----------------------------------------------------------


def _token(world: World, partner: Partner, method: str = "client_secret_basic") -> str:
    resp = world.token(partner, method)
    assert resp.status_code == 200, resp.text
    return str(resp.json()["access_token"])


def test_introspection_of_own_token(world: World) -> None:
    partner = world.partner(["client_secret_basic"])
    token = _token(world, partner)
    resp = world.post("/introspect", partner, "client_secret_basic", {"token": token})
    assert resp.status_code == 200
    assert resp.headers["cache-control"] == "no-store"
    body = resp.json()
    assert body["active"] is True
    assert body["client_id"] == body["sub"] == partner.client_id
    assert body["scope"] == "RessourceIR RessourceR2P"
    assert body["token_type"] == "Bearer"
    assert body["cnf"] == {"x5t#S256": partner.cert.thumbprint}
    assert body["iss"] == ISSUER[Environment.SANDBOX]
    assert body["exp"] > body["iat"]


def test_introspection_with_tls_client_auth(world: World) -> None:
    partner = world.partner(["tls_client_auth"])
    token = _token(world, partner, "tls_client_auth")
    resp = world.post("/introspect", partner, "tls_client_auth", {"token": token})
    assert resp.json()["active"] is True


def test_introspection_of_another_clients_token_is_inactive(world: World) -> None:
    owner = world.partner(["client_secret_basic"])
    other = world.partner(["client_secret_basic"])
    token = _token(world, owner)
    resp = world.post("/introspect", other, "client_secret_basic", {"token": token})
    assert resp.status_code == 200
    assert resp.json() == {"active": False}


def test_introspection_of_expired_garbage_and_foreign_tokens(world: World) -> None:
    partner = world.partner(["client_secret_basic"])
    token = _token(world, partner)
    prod = world.partner(["client_secret_basic"], environment=Environment.PRODUCTION)
    prod_token = world.token(prod, "client_secret_basic", environment=Environment.PRODUCTION)
    for candidate in ("garbage", prod_token.json()["access_token"]):
        resp = world.post("/introspect", partner, "client_secret_basic", {"token": candidate})
        assert resp.json() == {"active": False}
    world.clock.advance(3600)
    resp = world.post("/introspect", partner, "client_secret_basic", {"token": token})
    assert resp.json() == {"active": False}


def test_introspection_requires_client_authentication(world: World) -> None:
    partner = world.partner(["client_secret_basic"])
    token = _token(world, partner)
    resp = world.http(partner.cert).post("/introspect", data={"token": token})
    assert_oauth_error(resp, 401, "invalid_client")
    resp = world.post("/introspect", partner, "client_secret_basic", {"token": token}, cert=None)
    assert_oauth_error(resp, 401, "invalid_client")
    assert_oauth_error(
        world.post("/introspect", partner, "client_secret_basic", {}), 400, "invalid_request"
    )


def test_revocation_then_introspection_is_inactive(world: World) -> None:
    partner = world.partner(["client_secret_post"])
    token = _token(world, partner, "client_secret_post")
    with world.session_factory() as s:
        before = read_generation(s)
    resp = world.post("/revoke", partner, "client_secret_post", {"token": token})
    assert resp.status_code == 200
    assert resp.headers["cache-control"] == "no-store"
    jti = claims_of(world, token)["jti"]
    with world.session_factory() as s:
        row = s.get(RevokedToken, jti)
        assert row is not None
        assert row.client_id == partner.client_id
        assert row.environment is Environment.SANDBOX
        assert read_generation(s) == before + 1
    world.deps[Environment.SANDBOX].cache.reload()
    assert jti in world.deps[Environment.SANDBOX].cache.snapshot.revoked_jtis
    resp = world.post("/introspect", partner, "client_secret_post", {"token": token})
    assert resp.json() == {"active": False}
    # revoking again changes nothing and still answers 200
    assert world.post("/revoke", partner, "client_secret_post", {"token": token}).status_code == 200
    with world.session_factory() as s:
        assert read_generation(s) == before + 1


def test_revocation_of_unknown_token_is_200(world: World) -> None:
    partner = world.partner(["client_secret_basic"])
    resp = world.post("/revoke", partner, "client_secret_basic", {"token": "not-a-token"})
    assert resp.status_code == 200
    with world.session_factory() as s:
        assert s.scalars(select(RevokedToken)).all() == []


def test_revocation_of_another_clients_token_is_refused(world: World) -> None:
    owner = world.partner(["client_secret_basic"])
    other = world.partner(["client_secret_basic"])
    token = _token(world, owner)
    resp = world.post("/revoke", other, "client_secret_basic", {"token": token})
    assert_oauth_error(resp, 400, "invalid_grant")  # RFC 7009 §2.1, as Authlib implements it
    with world.session_factory() as s:
        assert s.scalars(select(RevokedToken)).all() == []


# --- metadata and keys ---------------------------------------------------------------------


def test_metadata_document(world: World) -> None:
    resp = world.http(None).get("/.well-known/oauth-authorization-server")
    assert resp.status_code == 200
    doc = resp.json()
    base = ISSUER[Environment.SANDBOX]
    assert doc["issuer"] == base
    assert doc["token_endpoint"] == f"{base}/token"
    assert doc["jwks_uri"] == f"{base}/jwks"
    assert doc["introspection_endpoint"] == f"{base}/introspect"
    assert doc["revocation_endpoint"] == f"{base}/revoke"
    assert doc["grant_types_supported"] == ["client_credentials"]
    assert doc["tls_client_certificate_bound_access_tokens"] is True
    methods = {
        "client_secret_basic",
        "client_secret_post",
        "tls_client_auth",
        "self_signed_tls_client_auth",
    }
    assert set(doc["token_endpoint_auth_methods_supported"]) == methods
    assert set(doc["introspection_endpoint_auth_methods_supported"]) == methods
    assert set(doc["revocation_endpoint_auth_methods_supported"]) == methods
    assert "RessourceIR" in doc["scopes_supported"]
    assert "RessourceR2P" in doc["scopes_supported"]
    prod = world.http(None, environment=Environment.PRODUCTION).get(
        "/.well-known/oauth-authorization-server"
    )
    assert prod.json()["issuer"] == ISSUER[Environment.PRODUCTION]


def test_jwks_publishes_the_environment_public_keys(world: World) -> None:
    partner = world.partner(["client_secret_basic"])
    token = _token(world, partner)
    resp = world.http(None).get("/jwks")
    assert resp.status_code == 200
    keys = resp.json()["keys"]
    kid = jwt.decode(token, ECKey.import_key(keys[0])).header["kid"]
    assert [k["kid"] for k in keys] == [kid]
    assert all("d" not in k and k["use"] == "sig" and k["alg"] == "ES256" for k in keys)
    prod_keys = world.http(None, environment=Environment.PRODUCTION).get("/jwks").json()["keys"]
    assert {k["kid"] for k in prod_keys}.isdisjoint({kid})


def test_hostile_scope_is_echoed_safely(world: World) -> None:
    partner = world.partner(["client_secret_basic"])
    resp = world.token(partner, "client_secret_basic", scope='Ressource"IR\\é\n')
    assert_oauth_error(resp, 400, "invalid_scope")
    assert all(0x20 <= ord(c) <= 0x7E for c in resp.json()["error_description"])


def test_secret_and_certificate_method_are_not_mixed(world: World) -> None:
    # RFC 6749 §2.3: one method per request — a wrong secret is not rescued by the certificate.
    partner = world.partner(["client_secret_post", "tls_client_auth"])
    resp = world.post(
        "/token",
        partner,
        "client_secret_post",
        {"grant_type": "client_credentials"},
        secret="wrong",
    )
    assert_oauth_error(resp, 401, "invalid_client")
    assert world.token(partner, "tls_client_auth").status_code == 200


def test_tls_client_auth_refuses_a_declared_certificate_of_an_untrusted_ca(world: World) -> None:
    # RFC 8705 §2.1: the chain is validated; being declared on the habilitation is not enough.
    rogue = issue(make_ca("Rogue CA"), "partner.example")
    partner = world.partner(["tls_client_auth"], cert=rogue)
    resp = world.token(partner, "tls_client_auth")
    assert_oauth_error(resp, 401, "invalid_client")
    assert "certificate_untrusted" in resp.json()["error_description"]
    # The self-signed method keeps trusting a pinned self-signed certificate, chain or not.
    pinned = world.partner(["self_signed_tls_client_auth"], cert=self_signed("pinned"))
    assert world.token(pinned, "self_signed_tls_client_auth").status_code == 200


# --- X-Correlation-ID ------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/token", "/introspect", "/revoke"])
def test_a_valid_correlation_id_is_echoed(world: World, path: str) -> None:
    partner = world.partner(["client_secret_basic"])
    token = _token(world, partner)
    sent = str(uuid.uuid4())
    data = {"grant_type": "client_credentials"} if path == "/token" else {"token": token}
    client = world.http(partner.cert, headers={"X-Correlation-ID": sent.upper()})
    ok = client.post(path, data=data, auth=(partner.client_id, partner.secret or ""))
    assert ok.status_code == 200, ok.text
    assert ok.headers["x-correlation-id"] == sent  # the canonical (lowercase) form
    refused = client.post(path, data=data, auth=(partner.client_id, "wrong"))
    assert_oauth_error(refused, 401, "invalid_client")
    assert refused.headers["x-correlation-id"] == sent


@pytest.mark.parametrize("sent", [None, "abc", "{" + str(uuid.UUID(int=7)) + "}", " "])
def test_a_missing_or_malformed_correlation_id_is_replaced_not_refused(
    world: World, sent: str | None
) -> None:
    partner = world.partner(["client_secret_basic"])
    headers = {} if sent is None else {"X-Correlation-ID": sent}
    resp = world.http(partner.cert, headers=headers).post(
        "/token",
        data={"grant_type": "client_credentials"},
        auth=(partner.client_id, partner.secret or ""),
    )
    assert resp.status_code == 200, resp.text
    given = resp.headers["x-correlation-id"]
    assert str(uuid.UUID(given)) == given
    assert given != sent


def test_every_oauth_answer_carries_a_correlation_id(world: World) -> None:
    client = world.http(None)
    answers = [
        client.get("/jwks"),
        client.get("/.well-known/oauth-authorization-server"),
        client.get("/token"),  # RFC 6749 §3.2: POST only
        client.post("/token", data={"grant_type": "client_credentials"}),  # no certificate
        client.post("/token", content=b"{}", headers={"Content-Type": "application/json"}),
    ]
    assert [a.status_code for a in answers] == [200, 200, 405, 401, 400]
    for answer in answers:
        uuid.UUID(answer.headers["x-correlation-id"])
    assert answers[2].headers["allow"] == "POST"
    assert answers[2].json()["error"] == "invalid_request"
    assert len({a.headers["x-correlation-id"] for a in answers}) == len(answers)
