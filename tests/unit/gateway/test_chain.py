"""Every check of the control chain, attacked through the in-process gateway app.

Each refusal is asserted end to end: status, problem+json ``code``, correlation id echoed, no
data in the body, and the journal record with that outcome (``support.refused``).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from joserfc import jwt
from sqlalchemy import select, update

from guichet.db import transaction
from guichet.db.models import bump_generation
from guichet.edge import ProxyChannel
from guichet.habilitation.models import Certificate, Environment
from guichet.habilitation.service import Action
from guichet.oauth.keys import active_key, load_private_key
from guichet.oauth.models import Client
from guichet.pki import ensure_local_pki, self_signed_certificate
from guichet.platform import Platform
from guichet.records import service
from tests.conftest import BACKENDS
from tests.support.factories import Partner
from tests.unit.gateway.support import (
    IR_MEDIA,
    PERSONA,
    World,
    cert_thumbprint,
    client_cert_header,
    ir_path,
    open_world,
    refused,
    served,
)

PROXY = "10.0.0.2"


@pytest.fixture(scope="module", params=BACKENDS)
def shared(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    postgres = request.getfixturevalue("postgres_server") if request.param == "postgres" else None
    with open_world(request.param, tmp_path_factory.mktemp("chain"), postgres) as world:
        yield world


@pytest.fixture
def world(shared: World) -> Iterator[World]:
    """The module's world, put back as it was: clock at its start, extra platforms stopped."""
    with shared.scoped():
        yield shared


@pytest.fixture
def partner(world: World) -> Partner:
    """A partner of its own, free to be suspended, narrowed or moved in time."""
    return world.partner()


def default(world: World) -> Partner:
    assert world.default is not None
    return world.default


def n1(world: World) -> str:
    return ir_path(world.year - 1)


# --- JWS by hand --------------------------------------------------------------------------


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def split(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    header, payload, signature = token.split(".")
    return json.loads(unb64(header)), json.loads(unb64(payload)), signature


def compact(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())


def signed_with_environment_key(world: World, claims: dict[str, Any]) -> str:
    """A token with the sandbox's own private key: only a claim can be wrong in it."""
    with world.runtime.session_factory() as session:
        row = active_key(session, Environment.SANDBOX)
        assert row is not None
        key = load_private_key(row, world.master)
        kid = row.kid
    return jwt.encode({"alg": "ES256", "typ": "at+jwt", "kid": kid}, claims, key)


# --- 1. certificate -----------------------------------------------------------------------


def test_a_call_without_a_certificate_is_refused(world: World) -> None:
    token = world.token(default(world))

    r = world.get(n1(world), token=token, cert=None)

    record = refused(world, r, 401, "certificate_missing", source_ip="127.0.0.1")
    assert record["cert_thumbprint"] is None


def test_a_certificate_not_yet_valid_is_refused(world: World) -> None:
    cert, key = world.certificate(not_before=world.start + dt.timedelta(days=1))
    world.partner(certificate=(cert, key))

    r = world.get(n1(world), token=world.token(default(world)), cert=cert)

    refused(world, r, 401, "certificate_expired", cert=cert)


def test_a_certificate_past_its_end_is_refused(world: World) -> None:
    cert, key = world.certificate(days=1)
    partner = world.partner(certificate=(cert, key))
    token = world.token(partner)
    assert world.get(n1(world), token=token, cert=cert).status_code == 200

    world.clock.advance(dt.timedelta(days=1, seconds=1).total_seconds())
    r = world.get(n1(world), token=token, cert=cert)

    refused(world, r, 401, "certificate_expired", cert=cert)


def test_a_certificate_declared_in_the_other_environment_only_is_refused(world: World) -> None:
    cert, key = world.certificate()
    production = world.partner(certificate=(cert, key), environment=Environment.PRODUCTION)
    token = world.token(production, app=world.apps[Environment.PRODUCTION])

    r = world.get(n1(world), token=token, cert=cert)

    refused(world, r, 401, "certificate_not_declared", cert=cert)


@pytest.fixture
def proxied(world: World) -> Platform:
    """A platform whose gateways trust 10.0.0.0/8 as proxies, with the local CA as the
    partners' trust store; ``ProxyChannel(app)`` stands for nginx's Unix socket."""
    return world.new_platform(trusted_proxies=["10.0.0.0/8"], client_ca_file=world.pki.ca_cert_file)


def via_proxy(cert: bytes, forwarded_for: str = "127.0.0.1") -> dict[str, str]:
    return {"Client-Cert": client_cert_header(cert), "X-Forwarded-For": forwarded_for}


def test_a_trusted_proxy_passes_a_certificate_that_chains_to_the_trust_store(
    world: World, proxied: Platform
) -> None:
    app = ProxyChannel(proxied.gateway_app(Environment.SANDBOX))
    partner = default(world)
    token = world.token(partner, app=app, cert=b"", ip=PROXY, headers=via_proxy(partner.cert_pem))

    r = world.get(
        n1(world), token=token, cert=None, ip=PROXY, app=app, headers=via_proxy(partner.cert_pem)
    )

    record = served(world, r, partner)
    assert record["source_ip"] == "127.0.0.1"
    assert record["cert_thumbprint"] == cert_thumbprint(partner.cert_pem)


def test_a_certificate_issued_after_start_up_chains_to_the_trust_store(
    world: World, proxied: Platform
) -> None:
    # The gateway has been up for a day when the partner's new certificate is issued: the
    # chain is validated at the call's time, not at the time the gateway started.
    app = ProxyChannel(proxied.gateway_app(Environment.SANDBOX))
    world.clock.advance(86_400)
    cert, key = world.certificate(not_before=world.clock.now())
    partner = world.partner(certificate=(cert, key))
    token = world.token(partner, app=app, cert=b"", ip=PROXY, headers=via_proxy(cert))

    r = world.get(n1(world), token=token, cert=None, ip=PROXY, app=app, headers=via_proxy(cert))

    served(world, r, partner)


def test_a_proxied_certificate_from_another_authority_is_untrusted(
    world: World, proxied: Platform, tmp_path: Path
) -> None:
    foreign = ensure_local_pki(tmp_path / "foreign", world.start, ["127.0.0.1"])
    cert, key = world.certificate(pki=foreign)
    partner = world.partner(certificate=(cert, key))
    token = world.token(partner)  # directly connected: the pin alone let it in
    app = ProxyChannel(proxied.gateway_app(Environment.SANDBOX))

    r = world.get(n1(world), token=token, cert=None, ip=PROXY, app=app, headers=via_proxy(cert))

    refused(world, r, 401, "certificate_untrusted", cert=cert, source_ip="127.0.0.1")


def test_a_pinned_self_signed_certificate_needs_no_authority(
    world: World, proxied: Platform
) -> None:
    cert, key = self_signed_certificate("Mairie autosignée", 30, world.start)
    partner = world.partner(certificate=(cert, key))
    token = world.token(partner)
    app = ProxyChannel(proxied.gateway_app(Environment.SANDBOX))

    r = world.get(n1(world), token=token, cert=None, ip=PROXY, app=app, headers=via_proxy(cert))

    served(world, r, partner)


def test_a_client_cert_header_from_an_untrusted_peer_is_ignored(
    world: World, proxied: Platform
) -> None:
    partner = default(world)
    app = proxied.gateway_app(Environment.SANDBOX)

    r = world.get(
        n1(world),
        token=world.token(partner),
        cert=None,
        ip="127.0.0.1",
        app=app,
        headers=via_proxy(partner.cert_pem),
    )

    record = refused(world, r, 401, "certificate_missing", source_ip="127.0.0.1")
    assert record["cert_thumbprint"] is None


def test_a_client_cert_header_over_tcp_is_ignored_even_from_a_trusted_proxy(
    world: World, proxied: Platform
) -> None:
    """Issue 12: only the proxy channel carries a certificate; any local user can speak TCP."""
    partner = default(world)
    app = proxied.gateway_app(Environment.SANDBOX)

    r = world.get(
        n1(world),
        token=world.token(partner),
        cert=None,
        ip=PROXY,
        app=app,
        headers=via_proxy(partner.cert_pem),
    )

    record = refused(world, r, 401, "certificate_missing", source_ip="127.0.0.1")
    assert record["cert_thumbprint"] is None


def test_a_certificate_from_the_handshake_wins_over_a_forwarded_one(
    world: World, proxied: Platform
) -> None:
    partner = default(world)
    other, _key = world.certificate()
    app = ProxyChannel(proxied.gateway_app(Environment.SANDBOX))

    r = world.get(
        n1(world),
        token=world.token(partner),
        cert=partner.cert_pem,
        ip=PROXY,
        app=app,
        headers=via_proxy(other),
    )

    record = served(world, r, partner)
    assert record["cert_thumbprint"] == cert_thumbprint(partner.cert_pem)


def test_an_unreadable_client_cert_header_is_refused(world: World, proxied: Platform) -> None:
    app = ProxyChannel(proxied.gateway_app(Environment.SANDBOX))

    r = world.get(
        n1(world),
        token=world.token(default(world)),
        cert=None,
        ip=PROXY,
        app=app,
        headers={"Client-Cert": ":bm90IGEgY2VydGlmaWNhdGU=:", "X-Forwarded-For": "127.0.0.1"},
    )

    refused(world, r, 401, "certificate_invalid", source_ip="127.0.0.1")


# --- 2. source IP -------------------------------------------------------------------------


def test_a_peer_outside_the_declared_addresses_is_refused(world: World) -> None:
    partner = default(world)

    r = world.get(n1(world), token=world.token(partner), cert=partner.cert_pem, ip="127.0.0.2")

    refused(world, r, 403, "ip_not_allowed", source_ip="127.0.0.2", cert=partner.cert_pem)


def test_an_ipv6_peer_is_checked_against_ipv6_ranges(world: World) -> None:
    partner = world.partner(ip_ranges=("2001:db8:7::/48",))
    token = world.token(partner, ip="2001:db8:7::10")

    ok = world.get(n1(world), token=token, cert=partner.cert_pem, ip="2001:db8:7::10")
    outside = world.get(n1(world), token=token, cert=partner.cert_pem, ip="2001:db8:8::10")
    loopback = world.get(n1(world), token=token, cert=partner.cert_pem, ip="::1")

    assert served(world, ok, partner)["source_ip"] == "2001:db8:7::10"
    refused(world, outside, 403, "ip_not_allowed", source_ip="2001:db8:8::10")
    refused(world, loopback, 403, "ip_not_allowed", source_ip="::1")


def test_an_ipv4_client_seen_through_a_dual_stack_listener_is_allowed(world: World) -> None:
    partner = default(world)

    r = world.get(
        n1(world), token=world.token(partner), cert=partner.cert_pem, ip="::ffff:127.0.0.1"
    )

    served(world, r, partner)


def test_x_forwarded_for_from_an_untrusted_peer_is_ignored(world: World) -> None:
    partner = default(world)
    token = world.token(partner)

    spoofed = world.get(
        n1(world),
        token=token,
        cert=partner.cert_pem,
        ip="127.0.0.2",
        headers={"X-Forwarded-For": "127.0.0.1"},
    )
    hidden = world.get(
        n1(world),
        token=token,
        cert=partner.cert_pem,
        ip="127.0.0.1",
        headers={"X-Forwarded-For": "192.0.2.1"},
    )

    refused(world, spoofed, 403, "ip_not_allowed", source_ip="127.0.0.2")
    assert served(world, hidden, partner)["source_ip"] == "127.0.0.1"


def test_a_forged_hop_before_the_proxys_own_is_not_believed(
    world: World, proxied: Platform
) -> None:
    partner = default(world)
    app = ProxyChannel(proxied.gateway_app(Environment.SANDBOX))
    # The caller wrote "127.0.0.1"; the proxy appended the address it really saw.
    headers = via_proxy(partner.cert_pem, forwarded_for="127.0.0.1, 192.0.2.9")

    r = world.get(
        n1(world), token=world.token(partner), cert=None, ip=PROXY, app=app, headers=headers
    )

    refused(world, r, 403, "ip_not_allowed", source_ip="192.0.2.9", cert=partner.cert_pem)


def test_an_address_declared_by_another_habilitation_of_the_certificate_does_not_count(
    world: World,
) -> None:
    cert, key = world.certificate()
    world.partner(certificate=(cert, key), ip_ranges=("127.0.0.1/32",))
    elsewhere = world.partner(certificate=(cert, key), ip_ranges=("192.0.2.0/24",))
    token = world.token(elsewhere, ip="192.0.2.5")

    r = world.get(n1(world), token=token, cert=cert, ip="127.0.0.1")

    record = refused(world, r, 403, "ip_not_allowed", source_ip="127.0.0.1", cert=cert)
    assert str(record["habilitation_id"]) == elsewhere.habilitation_id


# --- 3. token -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("authorization", "code"),
    [
        (None, "token_missing"),
        ("Basic dXNlcjpwYXNz", "token_missing"),
        ("Bearer ", "token_missing"),
        ("Bearer not-a-jwt", "token_invalid"),
        ("Bearer a.b.c", "token_invalid"),
    ],
)
def test_a_missing_or_malformed_token_is_refused(
    world: World, authorization: str | None, code: str
) -> None:
    partner = default(world)
    headers = {"Authorization": authorization} if authorization else {}

    r = world.get(n1(world), token=None, cert=partner.cert_pem, headers=headers)

    record = refused(world, r, 401, code, cert=partner.cert_pem)
    assert record["client_id"] is None


def test_a_token_with_an_altered_signature_is_refused(world: World) -> None:
    partner = default(world)
    header, payload, signature = world.token(partner).split(".")
    middle = len(signature) // 2
    flipped = "A" if signature[middle] != "A" else "B"
    altered = signature[:middle] + flipped + signature[middle + 1 :]

    r = world.get(n1(world), token=f"{header}.{payload}.{altered}", cert=partner.cert_pem)

    refused(world, r, 401, "token_invalid")


def test_a_token_with_an_altered_payload_is_refused(world: World) -> None:
    partner = world.partner(scopes=("RessourceR2P",))
    token = world.token(partner)
    header, claims, signature = split(token)
    claims["scope"] = "RessourceIR RessourceR2P"

    forged = compact(header, claims) + "." + signature
    r = world.get(n1(world), token=forged, cert=partner.cert_pem)

    refused(world, r, 401, "token_invalid")


def test_an_unsigned_alg_none_token_is_refused(world: World) -> None:
    partner = default(world)
    header, claims, _ = split(world.token(partner))

    forged = compact({**header, "alg": "none"}, claims) + "."
    r = world.get(n1(world), token=forged, cert=partner.cert_pem)

    refused(world, r, 401, "token_invalid")


@pytest.mark.parametrize("secret_form", ["jwk", "pem"])
def test_an_hs256_token_keyed_with_the_public_key_is_refused(
    world: World, secret_form: str
) -> None:
    partner = default(world)
    header, claims, _ = split(world.token(partner))
    jwks = world.request("GET", "/jwks", cert=None).json()["keys"]
    jwk = next(k for k in jwks if k["kid"] == header["kid"])
    if secret_form == "jwk":
        secret = json.dumps(jwk).encode()
    else:
        from joserfc.jwk import ECKey

        public = ECKey.import_key(jwk).public_key
        secret = public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)

    signing_input = compact({**header, "alg": "HS256"}, claims)
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    r = world.get(n1(world), token=f"{signing_input}.{b64(mac)}", cert=partner.cert_pem)

    refused(world, r, 401, "token_invalid")


def test_an_expired_token_is_refused(world: World) -> None:
    partner = default(world)
    token = world.token(partner)
    assert world.get(n1(world), token=token, cert=partner.cert_pem).status_code == 200

    world.clock.advance(3600)
    r = world.get(n1(world), token=token, cert=partner.cert_pem)

    refused(world, r, 401, "token_expired", cert=partner.cert_pem)


def test_a_revoked_token_is_refused(world: World) -> None:
    partner = default(world)
    token = world.token(partner)
    assert world.get(n1(world), token=token, cert=partner.cert_pem).status_code == 200

    revoked = world.request(
        "POST",
        "/revoke",
        cert=partner.cert_pem,
        data={"token": token},
        auth=(partner.client_id, partner.client_secret),
    )
    assert revoked.status_code == 200, revoked.text
    world.reload()
    r = world.get(n1(world), token=token, cert=partner.cert_pem)

    refused(world, r, 401, "token_revoked", cert=partner.cert_pem)


def test_a_token_used_with_another_declared_certificate_is_refused(
    world: World, partner: Partner
) -> None:
    other, _ = world.certificate()
    world.add_certificate(partner, other)
    token = world.token(partner)  # bound to the partner's first certificate
    assert (
        world.get(n1(world), token=world.token(partner, cert=other), cert=other).status_code == 200
    )

    r = world.get(n1(world), token=token, cert=other)

    refused(world, r, 401, "token_certificate_mismatch", cert=other)


def test_a_token_signed_by_the_environment_but_bound_to_nothing_is_refused(
    world: World,
) -> None:
    partner = default(world)
    _, claims, _ = split(world.token(partner))
    del claims["cnf"]

    r = world.get(
        n1(world), token=signed_with_environment_key(world, claims), cert=partner.cert_pem
    )

    refused(world, r, 401, "token_certificate_mismatch")


def test_a_token_of_the_other_environment_is_refused_both_ways(world: World) -> None:
    cert, key = world.certificate()
    sandbox = world.partner(certificate=(cert, key))
    production = world.partner(certificate=(cert, key), environment=Environment.PRODUCTION)
    production_app = world.apps[Environment.PRODUCTION]
    production_token = world.token(production, app=production_app)

    in_sandbox = world.get(n1(world), token=production_token, cert=cert)
    in_production = world.get(n1(world), token=world.token(sandbox), cert=cert, app=production_app)

    refused(world, in_sandbox, 401, "token_wrong_audience", cert=cert)
    assert in_production.status_code == 401
    assert in_production.json()["code"] == "token_wrong_audience"
    record = world.record(in_production.headers["x-correlation-id"])
    assert (record["environment"], record["outcome"]) == ("production", "token_wrong_audience")


def test_a_token_of_a_disabled_client_is_refused(world: World, partner: Partner) -> None:
    token = world.token(partner)
    with transaction(world.runtime.session_factory) as session:
        session.execute(
            update(Client).where(Client.client_id == partner.client_id).values(disabled=True)
        )
        bump_generation(session)
    world.reload()

    r = world.get(n1(world), token=token, cert=partner.cert_pem)

    refused(world, r, 401, "token_invalid")


def test_a_token_whose_certificate_left_the_clients_habilitation_is_refused(
    world: World,
) -> None:
    cert, key = world.certificate()
    world.partner(certificate=(cert, key))  # still declares it: the first check passes
    leaving = world.partner(certificate=(cert, key))
    token = world.token(leaving)
    with transaction(world.runtime.session_factory) as session:
        row = session.scalars(
            select(Certificate).where(
                Certificate.habilitation_id == uuid.UUID(leaving.habilitation_id)
            )
        ).one()
        session.delete(row)
        bump_generation(session)
    world.reload()

    r = world.get(n1(world), token=token, cert=cert)

    record = refused(world, r, 401, "certificate_not_declared", cert=cert)
    assert str(record["habilitation_id"]) == leaving.habilitation_id


# --- 4. identity --------------------------------------------------------------------------


def test_a_suspended_habilitation_is_refused_until_resumed(world: World, partner: Partner) -> None:
    token = world.token(partner)

    world.transition(partner, Action.SUSPEND)
    suspended = world.get(n1(world), token=token, cert=partner.cert_pem)
    world.transition(partner, Action.RESUME)
    resumed = world.get(n1(world), token=token, cert=partner.cert_pem)

    record = refused(world, suspended, 403, "habilitation_suspended")
    assert str(record["habilitation_id"]) == partner.habilitation_id
    assert record["client_id"] == partner.client_id
    served(world, resumed, partner)


def test_a_terminated_habilitation_is_refused(world: World, partner: Partner) -> None:
    token = world.token(partner)

    world.transition(partner, Action.REVOKE)
    r = world.get(n1(world), token=token, cert=partner.cert_pem)

    refused(world, r, 403, "habilitation_terminated")


def test_a_habilitation_past_its_end_is_refused(world: World, partner: Partner) -> None:
    token = world.token(partner)
    world.change_habilitation(partner, valid_until=world.start + dt.timedelta(minutes=30))
    assert world.get(n1(world), token=token, cert=partner.cert_pem).status_code == 200

    world.clock.advance(30 * 60)
    r = world.get(n1(world), token=token, cert=partner.cert_pem)

    refused(world, r, 403, "habilitation_out_of_dates")


def test_a_habilitation_not_yet_in_force_is_refused(world: World, partner: Partner) -> None:
    token = world.token(partner)

    world.change_habilitation(partner, valid_from=world.start + dt.timedelta(days=1))
    r = world.get(n1(world), token=token, cert=partner.cert_pem)

    refused(world, r, 403, "habilitation_out_of_dates")


# --- 5. rights ----------------------------------------------------------------------------


def test_an_api_outside_the_habilitation_is_refused(world: World, partner: Partner) -> None:
    world.change_habilitation(partner, apis=["r2p"], quotas={"r2p": 120})
    token = world.token(partner)

    r = world.get(n1(world), token=token, cert=partner.cert_pem)

    refused(world, r, 403, "api_not_subscribed")
    assert world.get(f"/r2p/v1/personne/{PERSONA}", token=token, cert=partner.cert_pem).is_success


def test_a_token_narrowed_by_scope_is_refused_the_other_resources(world: World) -> None:
    partner = default(world)
    token = world.token(partner, scope="RessourceR2P")

    r = world.get(n1(world), token=token, cert=partner.cert_pem)

    refused(world, r, 403, "scope_not_granted")


def test_an_access_mode_not_granted_is_refused(world: World) -> None:
    partner = world.partner(access_modes=("franceconnect",))

    r = world.get(n1(world), token=world.token(partner), cert=partner.cert_pem)

    refused(world, r, 403, "access_mode_not_granted", spi=PERSONA)


def test_a_habilitation_without_ir_data_is_refused(world: World) -> None:
    partner = world.partner(data_scopes=("dgfip_locaux_th",))

    r = world.get(n1(world), token=world.token(partner), cert=partner.cert_pem)

    refused(world, r, 403, "data_scope_not_granted", spi=PERSONA)


def test_a_year_not_granted_is_refused(world: World) -> None:
    partner = default(world)

    r = world.get(ir_path(world.year - 3), token=world.token(partner), cert=partner.cert_pem)

    refused(world, r, 403, "year_not_granted", spi=PERSONA)
    assert r.json()["field"] == "annrev"


def test_the_response_holds_only_the_granted_data_scopes(world: World) -> None:
    partner = world.partner(data_scopes=("dgfip_rfr",))
    with world.runtime.session_factory() as session:
        situation = service.situations_of_year(session, "sandbox", PERSONA, world.year - 1)[0]

    r = world.get(n1(world), token=world.token(partner), cert=partner.cert_pem)

    assert r.headers["content-type"].startswith(IR_MEDIA)
    assert r.json() == {"rfr": situation.record["rfr"]}
    assert served(world, r, partner)["data_scopes"] == ["dgfip_rfr"]
