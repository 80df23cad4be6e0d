"""Issue 11 §6: the gateways sent neither HSTS nor ``nosniff``, and TLS 1.2 still offered
two CBC suites."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from guichet.clock import SystemClock
from guichet.gateway.tls import build_server_ssl_context
from guichet.pki import LocalPki
from tests.support import certs
from tests.unit.gateway.support import PERSONA, World, ir_path, open_world
from tests.unit.gateway.test_tls import serving

HSTS = "max-age=31536000"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with open_world("sqlite", tmp_path_factory.mktemp("edge")) as world:
        yield world


def answers(world: World) -> dict[str, httpx.Response]:
    partner = world.default
    assert partner is not None
    token = world.token(partner)
    call = ir_path(world.year - 1, PERSONA)
    return {
        "served": world.get(call, token=token, cert=partner.cert_pem),
        "no-token": world.get(call, token=None, cert=partner.cert_pem),
        "bad-correlation-id": world.get(
            call, token=token, cert=partner.cert_pem, headers={"X-Correlation-ID": "x"}
        ),
        "unknown-path": world.get("/nope", token=None, cert=None),
        "wrong-method": world.get(call, token=token, cert=partner.cert_pem, method="POST"),
        "token-refused": world.request(
            "POST",
            "/token",
            cert=partner.cert_pem,
            data={"grant_type": "client_credentials"},
            auth=(partner.client_id, "not-the-secret"),
        ),
        "healthz": world.request("GET", "/healthz", cert=None),
        "openapi": world.request("GET", "/openapi/impotparticulier.json", cert=None),
    }


def test_every_gateway_answer_carries_hsts_and_nosniff(world: World) -> None:
    seen = answers(world)
    assert seen["served"].status_code == 200, seen["served"].text
    assert {name: r.status_code for name, r in seen.items()} == {
        "served": 200,
        "no-token": 401,
        "bad-correlation-id": 400,
        "unknown-path": 404,
        "wrong-method": 405,
        "token-refused": 401,
        "healthz": 200,
        "openapi": 200,
    }
    for name, answer in seen.items():
        assert answer.headers.get("strict-transport-security") == HSTS, name
        assert answer.headers.get("x-content-type-options") == "nosniff", name
        # Once each, whatever the route added itself.
        assert answer.headers.get_list("x-content-type-options") == ["nosniff"], name


# --- TLS 1.2 suites -------------------------------------------------------------------------


@pytest.fixture
def pki(tmp_path: Path) -> LocalPki:
    return certs.make_ca(tmp_path / "pki", SystemClock().now())


@pytest.fixture
def gateway_origin(pki: LocalPki) -> Iterator[tuple[str, int]]:
    """A server with the gateways' very TLS context (``Platform.ssl_context`` builds it so)."""
    context = build_server_ssl_context(
        pki.server_cert_file, pki.server_key_file, [pki.ca_cert_file]
    )
    with serving(context) as url:
        host, port = url.removeprefix("https://").split(":")
        yield host, int(port)


def tls12_client(pki: LocalPki, ciphers: str) -> ssl.SSLContext:
    context = certs.client_context(pki.ca_cert_file)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(ciphers)
    return context


def handshake(context: ssl.SSLContext, origin: tuple[str, int]) -> tuple[str, str, int]:
    with (
        socket.create_connection(origin, timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=origin[0]) as tls,
    ):
        cipher = tls.cipher()
        assert cipher is not None
        return cipher


def test_a_client_offering_only_cbc_suites_fails_the_handshake(
    pki: LocalPki, gateway_origin: tuple[str, int]
) -> None:
    # Every TLS 1.2 suite OpenSSL has, less the AEAD ones: what a downgrading attacker offers.
    attacker = tls12_client(pki, "ALL:!AESGCM:!AESCCM:!CHACHA20:!ARIAGCM:@SECLEVEL=0")
    offered = [c for c in attacker.get_ciphers() if c["protocol"] == "TLSv1.2"]
    assert offered
    assert not any(c["aead"] for c in offered)
    assert any(c["symmetric"].endswith("-cbc") for c in offered)
    with pytest.raises(ssl.SSLError):
        handshake(attacker, gateway_origin)


def test_tls12_with_an_aead_suite_still_works(
    pki: LocalPki, gateway_origin: tuple[str, int]
) -> None:
    name, version, _ = handshake(tls12_client(pki, "ECDHE+AESGCM:ECDHE+CHACHA20"), gateway_origin)
    assert version == "TLSv1.2"
    assert "GCM" in name or "CHACHA20" in name


def test_the_server_context_lists_aead_suites_only(pki: LocalPki) -> None:
    context = build_server_ssl_context(
        pki.server_cert_file, pki.server_key_file, [pki.ca_cert_file]
    )
    suites = context.get_ciphers()
    assert suites
    assert all(c["aead"] for c in suites), [c["name"] for c in suites if not c["aead"]]
    assert all(c["kea"] in ("kx-ecdhe", "kx-any") for c in suites)
